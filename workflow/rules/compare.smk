rule compare:
    input:
        evals=main_budget_evaluations,
        splits=[split_parquet(s) for s in SPLIT_NAMES],
    output:
        json="results/{run}/comparisons.json",
        md=report(
            "results/{run}/comparisons.md",
            caption="../report/comparisons.rst",
            category="Results",
        ),
    log:
        "results/{run}/logs/compare.log",
    benchmark:
        "results/{run}/benchmarks/compare.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        prefix=subpath(output.json, strip_suffix=".json"),
        benchmark_dir=benchmark_dir,
        budget=config["report"]["main_budget"],
        settings=section_flags("report"),
        seed=config["evaluate"]["seed"],
    shell:
        recorded(
            "compare",
            "salmu compare --evals {input.evals} --benchmark {params.benchmark_dir}"
            " --budget {params.budget} {params.settings}"
            " --seed {params.seed} --out-prefix {params.prefix} > {log} 2>&1",
        )
