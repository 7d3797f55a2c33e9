# One job per identity range (config faces.jobs), then a merge: a failed job redoes its own range.
rule faces:
    input:
        personas="results/{run}/data/personas.parquet",
    output:
        faces="results/{run}/data/faces_parts/{job_part}.parquet",
    log:
        "results/{run}/logs/faces/{job_part}.log",
    benchmark:
        "results/{run}/benchmarks/faces/{job_part}.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=config["faces"]["runtime"],
        gpu=1 if config["faces"]["backend"] == "diffusers" else 0,
    params:
        settings=face_renderer_flags,
        seed=config["seed"],
        part=part_flags,
    shell:
        recorded(
            "faces",
            "salmu faces --personas {input.personas} {params.settings} --seed {params.seed}"
            " {params.part} --out {output.faces} > {log} 2>&1",
        )


rule merge_faces:
    input:
        parts=faces_parts("results/{run}/data/faces_parts"),
    output:
        faces="results/{run}/data/faces.parquet",
        sheet=report(
            "results/{run}/data/faces_contact_sheet.png",
            caption="../report/faces.rst",
            category="Data",
        ),
    log:
        "results/{run}/logs/merge_faces.log",
    benchmark:
        "results/{run}/benchmarks/merge_faces.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        recorded(
            "merge_faces",
            "salmu faces-merge --parts {input.parts} --out {output.faces}"
            " --contact-sheet {output.sheet} > {log} 2>&1",
        )
