# Released-artifacts mode (artifacts.clean / artifacts.compromised): an outside reference model
# stands in for `train`; the base wildcard only matches the roles taken from outside.
rule import_model:
    input:
        unpack(outside_model_inputs),
    output:
        checkpoint="results/{run}/models/{base}/checkpoint.pt",
        config="results/{run}/models/{base}/open_clip_config.json",
        source="results/{run}/models/{base}/source.json",
    log:
        "results/{run}/logs/import_model_{base}.log",
    benchmark:
        "results/{run}/benchmarks/import_model_{base}.tsv"
    wildcard_constraints:
        base=IMPORTED_PATTERN,
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        flags=outside_model_flags,
        out_dir=subpath(output.checkpoint, parent=True),
    shell:
        recorded(
            "import_model",
            "salmu import-model --role {wildcards.base} {params.flags}"
            " --out-dir {params.out_dir} > {log} 2>&1",
        )
