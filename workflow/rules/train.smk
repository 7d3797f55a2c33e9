rule train:
    input:
        unpack(train_inputs),
        model_dir=config["train"]["model_dir"],
    output:
        "results/{run}/models/{base}/checkpoint.pt",
    log:
        "results/{run}/logs/train_{base}.log",
    benchmark:
        "results/{run}/benchmarks/train_{base}.tsv"
    wildcard_constraints:
        base=TRAINED_PATTERN,
    conda:
        SALMU_ENV
    threads: config["train"]["threads"]
    resources:
        **training_allocation(config["train"]),
        mem_mb=config["train"]["mem_mb"],
        runtime=config["train"]["runtime"],
    params:
        logs_dir=open_clip_run_dir,
        settings=section_flags("train"),
        upsampling=upsampling_flag,
        open_clip_args=" ".join(config["train"]["open_clip_args"]),
        seed=lambda wildcards: training_seed(wildcards.base),
    shell:
        recorded(
            "train",
            "salmu train --model-dir {input.model_dir} --train-data {input.shards} {params.upsampling}"
            " --logs-dir {params.logs_dir} --out {output} {params.settings}"
            " --seed {params.seed} --threads {threads} -- {params.open_clip_args} > {log} 2>&1",
        )
