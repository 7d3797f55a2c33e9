# Measured throughput of the tier's hardware, for `salmu plan` (not part of `all`):
#   snakemake --profile slurm --configfile <tier> results/<run>/throughput.json


rule throughput:
    input:
        personas="results/{run}/data/personas.parquet",
        model_dir=config["train"]["model_dir"],
    output:
        "results/{run}/throughput.json",
    log:
        "results/{run}/logs/throughput.log",
    benchmark:
        "results/{run}/benchmarks/throughput.tsv"
    conda:
        SALMU_ENV
    threads: config["train"]["threads"]
    resources:
        mem_mb=16000,
        runtime=60,
        gpu=gpus(config["train"]["device"]),
    params:
        batch_size=config["train"]["batch_size"],
        encode_batch_size=config["evaluate"]["batch_size"],
        precision=config["train"]["precision"],
        device=config["train"]["device"],
        checkpointing=(
            "--grad-checkpointing"
            if "--grad-checkpointing" in config["train"]["open_clip_args"]
            else ""
        ),
        faces=face_renderer_flags,
        seed=config["seed"],
    shell:
        recorded(
            "throughput",
            "salmu throughput --model-dir {input.model_dir} --train-batch-size {params.batch_size}"
            " --encode-batch-size {params.encode_batch_size} --precision {params.precision}"
            " --train-device {params.device} {params.checkpointing} --threads {threads}"
            " --warmup-steps 3 --timed-steps 10 --personas {input.personas} --identities 2"
            " {params.faces} --seed {params.seed} --out {output} > {log} 2>&1",
        )
