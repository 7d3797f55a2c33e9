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
        model_dir=config["train"]["model_dir"],
        seed=config["seed"],
    shell:
        recorded(
            "export",
            "salmu export --run-dir {params.run_dir} --states {params.states}"
            " --model-dir {params.model_dir} --seed {params.seed} --out-dir {output}"
            " > {log} 2>&1",
        )


rule release:
    # The export target: `snakemake release` (export.unlearned adds every unlearned model).
    input:
        f"results/{config['run']}/release",
