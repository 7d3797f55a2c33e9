rule shards:
    input:
        parquets=shard_inputs,
        generic=generic_captions,
    output:
        directory("results/{run}/shards/{source}"),
    log:
        "results/{run}/logs/shards_{source}.log",
    benchmark:
        "results/{run}/benchmarks/shards_{source}.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=section_flags("shards"),
        seed=config["seed"],
        generic=lambda wildcards, input: (
            f"--generic-captions {input.generic}" if input.generic else ""
        ),
    shell:
        recorded(
            "shards",
            "salmu shards --inputs {input.parquets} --out-dir {output}"
            " {params.settings} --seed {params.seed} {params.generic}"
            " > {log} 2>&1",
        )
