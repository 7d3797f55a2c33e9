rule evaluate:
    input:
        checkpoint="results/{run}/models/{state}/checkpoint.pt",
        splits=[split_parquet(s) for s in SPLIT_NAMES],
        metadata=expand("results/{{run}}/benchmark/{name}", name=BENCHMARK_JSONS),
        genknow=genknow_input,
        model_config=model_config,
    output:
        "results/{run}/eval/{state}/evaluation.json",
    log:
        "results/{run}/logs/evaluate/{state}.log",
    benchmark:
        "results/{run}/benchmarks/evaluate/{state}.tsv"
    conda:
        SALMU_ENV
    threads: SETTINGS["evaluate"].threads
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpus(SETTINGS["evaluate"].device),
    params:
        benchmark_dir=benchmark_dir,
        cache_dir=evaluation_cache_dir,
        settings=section_flags("evaluate"),
        genknow=genknow_flag,
        model_dir=lambda wildcards, input: Path(input.model_config).parent,
    shell:
        recorded(
            "evaluate",
            "salmu evaluate --benchmark {params.benchmark_dir} {params.genknow}"
            " --model-dir {params.model_dir} --checkpoint {input.checkpoint} --state {wildcards.state}"
            " --out {output} --cache-dir {params.cache_dir} {params.settings}"
            " --threads {threads} > {log} 2>&1",
        )
