# One img2dataset job per metadata row range (config retain.commonpool.jobs), each resumable from
# its own state; then a merge publishes one shard list and the totals.
rule commonpool:
    input:
        sensitive="results/{run}/shards/sensitive",
    output:
        directory("results/{run}/shards/commonpool_parts/{job_part}"),
    log:
        "results/{run}/logs/commonpool/{job_part}.log",
    benchmark:
        "results/{run}/benchmarks/commonpool/{job_part}.tsv"
    conda:
        SALMU_ENV
    threads: config["retain"]["commonpool"]["processes"]
    resources:
        mem_mb=16000,
        runtime=config["retain"]["commonpool"]["runtime"],
    params:
        # Outside the output: Snakemake deletes a failed job's output, the download resumes.
        work_dir="results/{run}/downloads/commonpool/{job_part}",
        # Its threads are img2dataset's download threads, not the job's cores.
        settings=section_flags("retain.commonpool", exclude=()),
        part=part_flags,
    shell:
        recorded(
            "commonpool",
            "salmu commonpool --out-dir {output} --work-dir {params.work_dir}"
            " --exclude-sha256 {input.sensitive} {params.settings} {params.part} > {log} 2>&1",
        )


rule merge_commonpool:
    input:
        parts=commonpool_parts("results/{run}/shards/commonpool_parts"),
    output:
        directory("results/{run}/shards/commonpool"),
    log:
        "results/{run}/logs/merge_commonpool.log",
    benchmark:
        "results/{run}/benchmarks/merge_commonpool.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        recorded(
            "merge_commonpool",
            "salmu commonpool-merge --parts {input.parts} --out-dir {output} > {log} 2>&1",
        )
