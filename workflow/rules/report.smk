rule results_table:
    input:
        evaluation_jsons,
    output:
        parquet="results/{run}/benchmark.parquet",
        csv=report(
            "results/{run}/benchmark.csv",
            caption="../report/table.rst",
            category="Results",
        ),
        md="results/{run}/benchmark.md",
        summary=multiext("results/{run}/benchmark_summary", ".parquet", ".csv"),
    log:
        "results/{run}/logs/results_table.log",
    benchmark:
        "results/{run}/benchmarks/results_table.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        prefix=subpath(output.parquet, strip_suffix=".parquet"),
        level=config["report"]["seed_interval_level"],
        agreement=config["report"]["seed_agreement"],
    shell:
        recorded(
            "results_table",
            "salmu table --evals {input} --out-prefix {params.prefix}"
            " --seed-level {params.level} --seed-agreement {params.agreement} > {log} 2>&1",
        )


rule fidelity:
    input:
        table="results/{run}/benchmark.parquet",
        reference="results/{run}/eval/clean/evaluation.json",
    output:
        json="results/{run}/fidelity.json",
        md=report(
            "results/{run}/fidelity.md",
            caption="../report/fidelity.rst",
            category="Results",
        ),
    log:
        "results/{run}/logs/fidelity.log",
    benchmark:
        "results/{run}/benchmarks/fidelity.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        prefix=subpath(output.json, strip_suffix=".json"),
        budget=config["report"]["main_budget"],
        agreement=config["report"]["seed_agreement"],
    shell:
        recorded(
            "fidelity",
            "salmu fidelity --table {input.table} --reference-eval {input.reference}"
            " --budget {params.budget} --seed-agreement {params.agreement}"
            " --out-prefix {params.prefix} > {log} 2>&1",
        )


rule comparisons:
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
        "results/{run}/logs/comparisons.log",
    benchmark:
        "results/{run}/benchmarks/comparisons.tsv"
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
        resamples=config["report"]["comparison_resamples"],
        level=config["report"]["seed_interval_level"],
        seed=config["evaluate"]["seed"],
    shell:
        recorded(
            "comparisons",
            "salmu compare --evals {input.evals} --benchmark {params.benchmark_dir}"
            " --budget {params.budget} --bootstrap {params.resamples} --ci-level {params.level}"
            " --seed {params.seed} --out-prefix {params.prefix} > {log} 2>&1",
        )


rule plots:
    input:
        "results/{run}/benchmark.parquet",
    output:
        report(
            multiext("results/{run}/plots/retfail_vs_genknow", ".png", ".svg"),
            caption="../report/plots.rst",
            category="Results",
        ),
        report(
            multiext("results/{run}/plots/retfail_vs_intraidsim", ".png", ".svg"),
            caption="../report/plots.rst",
            category="Results",
        ),
    log:
        "results/{run}/logs/plots.log",
    benchmark:
        "results/{run}/benchmarks/plots.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        out_dir=plots_dir,
    shell:
        recorded(
            "plots",
            "salmu plots --table {input} --out-dir {params.out_dir} > {log} 2>&1",
        )


rule provenance_summary:
    input:
        # Last in the run: after the table and the plots, every job has its record.
        table="results/{run}/benchmark.parquet",
        plot="results/{run}/plots/retfail_vs_genknow.png",
    output:
        report(
            "results/{run}/provenance.html",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    log:
        "results/{run}/logs/provenance_summary.log",
    benchmark:
        "results/{run}/benchmarks/provenance_summary.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        run_dir=lambda wildcards: f"results/{wildcards.run}",
    shell:
        recorded(
            "provenance_summary",
            "salmu provenance-summary --run-dir {params.run_dir} --out {output} > {log} 2>&1",
        )
