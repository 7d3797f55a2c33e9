rule resolved_config:
    output:
        "results/{run}/config.{part}.json",
    log:
        "results/{run}/logs/config_{part}.log",
    benchmark:
        "results/{run}/benchmarks/config_{part}.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        config=config_part,
    run:
        from salmu.provenance import write_recorded_json

        write_recorded_json(params.config, output[0], rule)
