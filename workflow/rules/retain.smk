rule retain:
    output:
        pairs="results/{run}/data/retain.parquet",
        genknow="results/{run}/data/genknow.parquet",
    log:
        "results/{run}/logs/retain.log",
    benchmark:
        "results/{run}/benchmarks/retain.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        backend=config["retain"]["backend"],
        n=config["retain"]["n_pairs"],
        size=config["retain"]["size"],
        per_class=config["retain"]["genknow_images_per_class"],
        quality=config["retain"]["jpeg_quality"],
        seed=config["seed"],
    shell:
        recorded(
            "retain",
            "salmu retain --backend {params.backend} --n-pairs {params.n} --size {params.size}"
            " --genknow-images-per-class {params.per_class} --jpeg-quality {params.quality}"
            " --seed {params.seed} --out-pairs {output.pairs} --out-genknow {output.genknow}"
            " > {log} 2>&1",
        )


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
