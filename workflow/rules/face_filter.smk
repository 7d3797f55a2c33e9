# The per-row checks run on each faces part; the merge applies the per-persona minimum, writes the
# kept rows and the report.
rule face_filter:
    input:
        faces="results/{run}/data/faces_parts/{job_part}.parquet",
        personas="results/{run}/data/personas.parquet",
    output:
        checks="results/{run}/data/face_filter_parts/{job_part}.parquet",
    log:
        "results/{run}/logs/face_filter/{job_part}.log",
    benchmark:
        "results/{run}/benchmarks/face_filter/{job_part}.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=config["faces"]["filter"]["runtime"],
        gpu=1 if config["faces"]["filter"]["embedder"] == "clip" else 0,
    params:
        settings=section_flags("faces.filter"),
    shell:
        recorded(
            "face_filter",
            "salmu face-filter --faces {input.faces} --personas {input.personas}"
            " {params.settings} --out-checks {output.checks} > {log} 2>&1",
        )


rule merge_face_filter:
    input:
        checks=faces_parts("results/{run}/data/face_filter_parts"),
        faces=faces_parts("results/{run}/data/faces_parts"),
        personas="results/{run}/data/personas.parquet",
    output:
        faces="results/{run}/data/faces_kept.parquet",
        report="results/{run}/data/face_filter_report.json",
    log:
        "results/{run}/logs/merge_face_filter.log",
    benchmark:
        "results/{run}/benchmarks/merge_face_filter.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        settings=section_flags("faces.filter"),
    shell:
        recorded(
            "merge_face_filter",
            "salmu face-filter-merge --checks {input.checks} --faces {input.faces}"
            " --personas {input.personas} {params.settings}"
            " --out-faces {output.faces} --out-report {output.report} > {log} 2>&1",
        )
