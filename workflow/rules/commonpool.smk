rule commonpool:
    input:
        sensitive="results/{run}/shards/sensitive",
    output:
        directory("results/{run}/shards/commonpool"),
    log:
        "results/{run}/logs/commonpool.log",
    benchmark:
        "results/{run}/benchmarks/commonpool.tsv"
    conda:
        SALMU_ENV
    threads: config["retain"]["commonpool"]["processes"]
    resources:
        mem_mb=16000,
        runtime=2880,
    params:
        # Outside the output: Snakemake deletes a failed job's output, the download resumes.
        work_dir="results/{run}/downloads/commonpool",
        flags=commonpool_flags(config["retain"]["commonpool"]),
    shell:
        recorded(
            "commonpool",
            "salmu commonpool --out-dir {output} --work-dir {params.work_dir}"
            " --exclude-sha256 {input.sensitive} {params.flags} > {log} 2>&1",
        )
