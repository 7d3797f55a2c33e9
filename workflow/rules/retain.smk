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
