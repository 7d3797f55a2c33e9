rule export:
    input:
        unpack(export_inputs),
    output:
        directory("results/{run}/release"),
    log:
        "results/{run}/logs/export.log",
    benchmark:
        "results/{run}/benchmarks/export.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        states=lambda wildcards: " ".join(export_states()),
        run_dir=lambda wildcards: f"results/{wildcards.run}",
        seed=config["seed"],
        datasets="--no-datasets" if RELEASED else "--datasets",
    shell:
        recorded(
            "export",
            "salmu export --run-dir {params.run_dir} --states {params.states}"
            " --configs {input.configs} --sources {input.sources} {params.datasets}"
            " --seed {params.seed}"
            " --out-dir {output}"
            " > {log} 2>&1",
        )


rule release:
    # The export target: `snakemake release` (export.unlearned adds every unlearned model).
    input:
        f"results/{config['run']}/release",
