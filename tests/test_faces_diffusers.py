"""Tests for the ``diffusers`` face backend with tiny random weights built offline (tiny_diffusers).

The images are noise (random weights); what is tested is the plumbing: the table layout matches
the procedural backend's, runs are byte-identical, missing weights fail fast with the config key,
and the anchor really reaches the variants through the IP-Adapter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import tiny_diffusers

from salmu import faces, look_draws
from salmu.cli import main as salmu_main
from salmu.io import open_image, read_parquet

diffusers_backend = pytest.importorskip("salmu.face_backends.diffusers")
from salmu.face_backends import diffusers_prompts, diffusers_weights  # noqa: E402

COUNTRIES = ["Nigeria", "Cameroon", "China"]


@pytest.fixture(scope="module", autouse=True)
def offline_single_thread():
    """The hub is offline for this module, whatever the environment (answers must be immediate),
    and torch uses one thread: the tiny models are all overhead, and two OpenMP threads on a busy
    2-core machine run several times slower than one."""
    import torch
    from huggingface_hub import constants

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_weights")
    pipe = tiny_diffusers.build_tiny_sd(root / "sd")
    tiny_diffusers.build_tiny_ip_adapter(root / "ip", pipe.unet)
    return {"model": str(root / "sd"), "ip_adapter": str(root / "ip"), "root": root}


def tiny_flags(tiny, **overrides) -> list[str]:
    options = {
        "--diffusers-model": tiny["model"],
        "--diffusers-ip-adapter": tiny["ip_adapter"],
        "--diffusers-ip-adapter-subfolder": tiny_diffusers.IP_SUBFOLDER,
        "--diffusers-ip-adapter-weight-name": tiny_diffusers.IP_WEIGHT_NAME,
        "--diffusers-ip-adapter-scale": "0.6",
        "--diffusers-steps": "2",
        "--diffusers-guidance-scale": "2.0",
        "--diffusers-resolution": "64",
        "--diffusers-batch-size": "2",
        "--diffusers-device": "cpu",
        "--diffusers-dtype": "auto",
    }
    options.update(overrides)
    return [x for flag, value in options.items() if value is not None for x in (flag, value)]


def make_personas(path: Path, n: int = 3) -> None:
    pl.DataFrame(
        {
            "identity_id": [f"{188 + 13 * i:08d}" for i in range(n)],
            "name": [f"Person {i}" for i in range(n)],
            "gender": [["female", "male"][i % 2] for i in range(n)],
            "age_band": [look_draws.AGE_BANDS[i % 3] for i in range(n)],
            "country": COUNTRIES[:n],
        }
    ).write_parquet(path)


def run_cli(tmp_path: Path, backend: str, out: str, extra: list[str] = ()) -> int:
    return salmu_main(
        [
            "faces",
            "--personas",
            str(tmp_path / "personas.parquet"),
            "--backend",
            backend,
            "--images-per-identity",
            "2",
            "--generic-per-identity",
            "1",
            "--anonymous-identities",
            "1",
            "--images-per-anonymous",
            "2",
            "--size",
            "64",
            "--aspect-range",
            "0.6",
            "1.7",
            "--seed",
            "5",
            "--out",
            str(tmp_path / out),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def cli_runs(tiny, tmp_path_factory):
    """The real CLI, twice with the diffusers backend and once with the procedural one."""
    tmp_path = tmp_path_factory.mktemp("cli")
    make_personas(tmp_path / "personas.parquet")
    stdout = {}
    for out, backend in (("a.parquet", "diffusers"), ("b.parquet", "diffusers")):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert run_cli(tmp_path, backend, out, tiny_flags(tiny)) == 0
        stdout[out] = buffer.getvalue()
    # The procedural backend ignores every diffusers flag.
    assert run_cli(tmp_path, "procedural", "p.parquet", tiny_flags(tiny)) == 0
    return tmp_path, stdout


def test_cli_table_layout_matches_procedural(cli_runs):
    tmp_path, _ = cli_runs
    diff, proc = read_parquet(tmp_path / "a.parquet"), read_parquet(tmp_path / "p.parquet")
    assert diff.columns == list(faces.COLUMNS) and diff.schema == proc.schema
    assert diff.height == 3 * (2 + 1) + 1 * 2
    # Same plan whatever renders it: names, kinds, indices, sizes and look JSON all agree.
    same = ["file_name", "identity_id", "kind", "image_idx", "aspect", "width", "height", "look"]
    assert diff.select(same).equals(proc.select(same))
    assert diff["aspect"].n_unique() > 1
    for row in diff.iter_rows(named=True):
        image = open_image(row["image"])
        assert image.size == (row["width"], row["height"]) and max(image.size) == 64
        assert row["aspect"] == pytest.approx(row["width"] / row["height"])
    assert diff["image"].n_unique() == diff.height  # no two images alike


def test_cli_runs_are_byte_identical(cli_runs):
    tmp_path, _ = cli_runs
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_cli_reports_model_and_throughput(cli_runs):
    _, stdout = cli_runs
    out = stdout["a.parquet"]
    assert "StableDiffusionPipeline" in out and "cpu (torch.float32)" in out
    assert re.search(
        r"11 images \(part 1 of 1; 3 personas \+ 1 anonymous in all\) in [0-9.]+s \([0-9.]+ images/s",
        out,
    )


# -- missing weights ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"--diffusers-model": "nobody/not-in-cache"},
            "--diffusers-model (config key faces.diffusers.model)",
        ),
        ({"--diffusers-model": "/no/such/model"}, "faces.diffusers.model"),
        (
            {"--diffusers-model": None},
            "--diffusers-model (config key faces.diffusers.model) is not set",
        ),
        (
            {"--diffusers-ip-adapter": "nobody/no-adapter"},
            "--diffusers-ip-adapter (config key faces.diffusers.ip_adapter)",
        ),
        ({"--diffusers-ip-adapter": None}, "faces.diffusers.ip_adapter) is not set"),
        (
            {"--diffusers-ip-adapter-weight-name": "missing.bin"},
            "faces.diffusers.ip_adapter_weight_name",
        ),
        (
            {"--diffusers-ip-adapter-weight-name": ""},
            "faces.diffusers.ip_adapter_weight_name) is not set",
        ),
    ],
)
def test_missing_weights_fail_fast_naming_the_config_key(
    tiny, tmp_path, capsys, overrides, expected
):
    make_personas(tmp_path / "personas.parquet", 2)
    start = time.perf_counter()
    rc = run_cli(tmp_path, "diffusers", "x.parquet", tiny_flags(tiny, **overrides))
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert rc == 2, err
    assert expected in err
    assert "put " in err  # says what belongs there
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.parquet").exists()
    assert elapsed < 2.0


def test_missing_model_fails_before_importing_torch(tmp_path):
    """A fresh process: the check needs neither torch nor diffusers, so it answers at once."""
    make_personas(tmp_path / "personas.parquet", 2)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "empty_cache"))
    code = (
        "import sys; from salmu.cli import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules; sys.exit(rc)"
    )
    argv = ["faces", "--personas", str(tmp_path / "personas.parquet"), "--backend", "diffusers"]
    argv += ["--images-per-identity", "2", "--seed", "1", "--out", str(tmp_path / "x.parquet")]
    argv += ["--diffusers-model", "some-org/sd-model", "--diffusers-ip-adapter", "some-org/adapter"]
    argv += ["--diffusers-ip-adapter-weight-name", "w.safetensors"]
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 2, result.stderr
    assert "faces.diffusers.model" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 20.0  # mostly interpreter + polars start-up


def test_bad_numbers_name_the_config_key(tiny):
    with pytest.raises(ValueError, match=r"--diffusers-steps \(config key faces.diffusers.steps\)"):
        diffusers_backend.DiffusersFaceBackend(model=tiny["model"], steps=0)
    with pytest.raises(ValueError, match="faces.diffusers.resolution"):
        diffusers_backend.DiffusersFaceBackend(model=tiny["model"], resolution=100)
    with pytest.raises(ValueError, match="faces.diffusers.dtype"):
        diffusers_backend.DiffusersFaceBackend(
            model=tiny["model"],
            ip_adapter=tiny["ip_adapter"],
            ip_adapter_subfolder=tiny_diffusers.IP_SUBFOLDER,
            ip_adapter_weight_name=tiny_diffusers.IP_WEIGHT_NAME,
            dtype="float16",
            device="cpu",
        )


def test_hub_id_loads_from_the_local_cache(tiny, tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    tiny_diffusers.install_in_hub_cache(Path(tiny["model"]), "local/tiny-sd", cache)
    tiny_diffusers.install_in_hub_cache(Path(tiny["ip_adapter"]), "local/tiny-ip", cache)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    weights = diffusers_weights.locate_model("local/tiny-sd")
    assert weights.local_only and (weights.folder / "model_index.json").is_file()
    adapter = diffusers_weights.locate_ip_adapter(
        "local/tiny-ip", "models", tiny_diffusers.IP_WEIGHT_NAME, "image_encoder"
    )
    assert adapter.local_only and adapter.ref == "local/tiny-ip"
    with pytest.raises(ValueError, match="lacks models/other.bin"):
        diffusers_weights.locate_ip_adapter("local/tiny-ip", "models", "other.bin", "image_encoder")


# -- the anchor and the adapter -------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend(tiny):
    return diffusers_backend.DiffusersFaceBackend(
        model=tiny["model"],
        ip_adapter=tiny["ip_adapter"],
        ip_adapter_subfolder=tiny_diffusers.IP_SUBFOLDER,
        ip_adapter_weight_name=tiny_diffusers.IP_WEIGHT_NAME,
        ip_adapter_scale=0.6,
        steps=2,
        guidance_scale=2.0,
        resolution=64,
        batch_size=2,
        device="cpu",
    )


def one_identity(seed: int = 3):
    look = look_draws.assign_looks([(188, "female", "older")], seed)[188]
    identity = faces.make_identity(188, True, "female", "older", "Nigeria", seed)
    planned = [faces.plan_image(188, True, "sensitive", i, 64, (0.6, 1.7), seed) for i in range(2)]
    return look, identity, planned


def pixels(images) -> np.ndarray:
    return np.concatenate([np.asarray(im, dtype=np.int16).ravel() for im in images])


def test_anchor_seed_changes_the_variants_through_the_adapter(backend):
    look, identity, planned = one_identity()
    other = dataclasses.replace(identity, anchor_seed=identity.anchor_seed + 1)
    base = backend.render_identity(look, identity, planned)
    assert [im.size for im in base] == [(p.width, p.height) for p in planned]
    assert np.array_equal(pixels(base), pixels(backend.render_identity(look, identity, planned)))
    moved = backend.render_identity(look, other, planned)
    assert np.abs(pixels(base) - pixels(moved)).mean() > 1.0
    # With the adapter at scale 0 the anchor has no path into the variants.
    backend.pipe.set_ip_adapter_scale(0.0)
    try:
        a = backend.render_identity(look, identity, planned)
        b = backend.render_identity(look, other, planned)
    finally:
        backend.pipe.set_ip_adapter_scale(backend.ip_adapter_scale)
    assert np.array_equal(pixels(a), pixels(b))


def test_anchor_is_plain_text_to_image(backend, tiny):
    """The adapter is off while the anchor is drawn: same pixels as a pipeline without it."""
    import torch
    from diffusers import DiffusionPipeline

    look, identity, _ = one_identity()
    anchor = backend.anchor(look, identity)
    plain = DiffusionPipeline.from_pretrained(tiny["model"], local_files_only=True)
    plain.set_progress_bar_config(disable=True)
    expected = plain(
        prompt=[diffusers_prompts.anchor_prompt(look, identity)],
        negative_prompt=[backend.negative_prompt],
        height=64,
        width=64,
        num_inference_steps=2,
        guidance_scale=2.0,
        generator=[torch.Generator("cpu").manual_seed(identity.anchor_seed)],
    ).images[0]
    assert np.array_equal(np.asarray(anchor), np.asarray(expected))


# -- prompts and sizes ----------------------------------------------------------------------------


def test_prompts_carry_demographics_look_and_variation(tiny):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tiny["model"], subfolder="tokenizer")
    look, identity, planned = one_identity()
    anchor = diffusers_prompts.anchor_prompt(look, identity)
    assert "elderly woman from Nigeria" in anchor and f"{look['skin_tone']} skin" in anchor
    prompts = [diffusers_prompts.variant_prompt(look, identity, p) for p in planned]
    for prompt, item in zip(prompts, planned):
        assert "elderly woman from Nigeria" in prompt
        assert f"{item.variation['background']} background" in prompt
        assert item.variation["shirt_color"] in prompt
    assert len(set(prompts)) == len(prompts)
    anonymous = dataclasses.replace(identity, is_persona=False, country=None)
    assert "woman, " in diffusers_prompts.variant_prompt(look, anonymous, planned[0])
    # The longest realistic prompts still fit CLIP's 77 tokens (nothing is truncated).
    long = dataclasses.replace(identity, country="Central African Republic", gender="male")
    worst = dict(look, hair_style="side part", hair_color="platinum blonde", glasses=True)
    worst.update(beard=True, skin_tone="dark brown", eye_color="dark brown")
    for item in planned:
        for prompt in (
            diffusers_prompts.variant_prompt(worst, long, item),
            diffusers_prompts.anchor_prompt(worst, long),
        ):
            assert len(tokenizer(prompt).input_ids) <= 77


def test_generation_sizes_keep_the_aspect():
    for width, height in [(64, 64), (64, 21), (21, 64), (512, 171), (300, 512)]:
        gw, gh = diffusers_backend.generation_size(width, height, 512, 8)
        assert max(gw, gh) == 512 and gw % 8 == 0 and gh % 8 == 0
        assert abs(gw / gh - width / height) / (width / height) < 0.1
        image = diffusers_backend.fit(_blank(gw, gh), width, height)
        assert image.size == (width, height)


def _blank(width: int, height: int):
    from PIL import Image

    return Image.new("RGB", (width, height), (10, 20, 30))
