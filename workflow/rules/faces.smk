rule faces:
    input:
        personas="results/{run}/data/personas.parquet",
    output:
        faces="results/{run}/data/faces.parquet",
        sheet=report(
            "results/{run}/data/faces_contact_sheet.png",
            caption="../report/faces.rst",
            category="Data",
        ),
    log:
        "results/{run}/logs/faces.log",
    benchmark:
        "results/{run}/benchmarks/faces.tsv"
    conda:
        SALMU_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1 if config["faces"]["backend"] == "diffusers" else 0,
    params:
        settings=face_renderer_flags,
        seed=config["seed"],
    shell:
        recorded(
            "faces",
            "salmu faces --personas {input.personas} {params.settings} --seed {params.seed}"
            " --out {output.faces}"
            " --contact-sheet {output.sheet} > {log} 2>&1",
        )
