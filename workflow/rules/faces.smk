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
        backend=config["faces"]["backend"],
        backend_flags=face_backend_flags,
        n=config["faces"]["images_per_identity"],
        generic=config["faces"]["generic_per_identity"],
        anonymous=config["faces"]["anonymous_identities"],
        per_anonymous=config["faces"]["images_per_anonymous"],
        size=config["faces"]["size"],
        aspect=config["faces"]["aspect_range"],
        quality=config["faces"]["jpeg_quality"],
        seed=config["seed"],
    shell:
        recorded(
            "faces",
            "salmu faces --personas {input.personas} --backend {params.backend}"
            " --images-per-identity {params.n} --generic-per-identity {params.generic}"
            " --anonymous-identities {params.anonymous} --images-per-anonymous {params.per_anonymous}"
            " --size {params.size} --aspect-range {params.aspect} --jpeg-quality {params.quality}"
            " {params.backend_flags} --seed {params.seed} --out {output.faces}"
            " --contact-sheet {output.sheet} > {log} 2>&1",
        )
