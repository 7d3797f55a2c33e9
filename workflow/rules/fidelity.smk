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
        settings=section_flags("report", "report.diagnosis"),
    shell:
        recorded(
            "fidelity",
            "salmu fidelity --table {input.table} --reference-eval {input.reference}"
            " --budget {params.budget} {params.settings}"
            " --out-prefix {params.prefix} > {log} 2>&1",
        )
