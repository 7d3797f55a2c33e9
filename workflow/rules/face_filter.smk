rule face_filter:
    input:
        faces="results/{run}/data/faces.parquet",
        personas="results/{run}/data/personas.parquet",
    output:
        faces="results/{run}/data/faces_kept.parquet",
        report="results/{run}/data/face_filter_report.json",
    log:
        "results/{run}/logs/face_filter.log",
    benchmark:
        "results/{run}/benchmarks/face_filter.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1 if config["faces"]["filter"]["embedder"] == "clip" else 0,
    params:
        settings=section_flags("faces.filter"),
    shell:
        recorded(
            "face_filter",
            "salmu face-filter --faces {input.faces} --personas {input.personas}"
            " {params.settings} --out-faces {output.faces} --out-report {output.report} > {log} 2>&1",
        )
