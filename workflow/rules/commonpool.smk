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
        # Its threads are img2dataset's download threads, not the job's cores.
        settings=section_flags("retain.commonpool", exclude=()),
    shell:
        recorded(
            "commonpool",
            "salmu commonpool --out-dir {output} --work-dir {params.work_dir}"
            " --exclude-sha256 {input.sensitive} {params.settings} > {log} 2>&1",
        )
