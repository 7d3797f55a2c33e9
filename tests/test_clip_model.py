"""``load_clip`` loads the same weights identically from every checkpoint / model form.

The same seeded tiny-CLIP weights are saved as an open_clip_train ``epoch_K.pt`` (optimizer state,
DDP ``module.`` prefix), a raw ``.bin``, a legacy-format ``.pth``, ``.safetensors``, a model dir
with weights, repos in a hand-built offline Hugging Face cache (.safetensors, .bin, config only
+ checkpoint) and a registered architecture name; each form must give bit-identical embeddings. Errors must be one line, name the path or id, and never unpickle.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import time
from pathlib import Path

import huggingface_hub.constants
import open_clip
import pytest
import torch
from safetensors.torch import save_file

from salmu.clip_model import load_clip, resolve_clip
from salmu.evaluate.encode import model_key

TINY = Path(__file__).resolve().parents[1] / "resources" / "models" / "tiny-clip"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
ARCH = "SalmuTest-Tiny-64"  # registered as a built-in open_clip architecture by a fixture


def build_hub_cache(cache: Path, repo: str, files: dict[str, Path], commit: str = COMMIT) -> None:
    """``models--org--name/{blobs,snapshots/<commit>,refs/main}``, as huggingface_hub writes it."""
    base = cache / ("models--" + repo.replace("/", "--"))
    for rel, source in files.items():
        data = Path(source).read_bytes()
        blob = base / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = base / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / "main").write_text(commit)


def use_offline_cache(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """Point huggingface_hub at ``cache``, offline (its constants are read at import time)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def tiny_weights(seed: int = 123) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, _, _ = load_clip(TINY)
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def save_all_forms(root: Path, state: dict[str, torch.Tensor]) -> dict[str, Path]:
    """The same weights in every file form a user may have; returns form -> path."""
    root.mkdir(parents=True, exist_ok=True)
    paths = {
        "epoch": root / "epoch_3.pt",
        "bin": root / "open_clip_pytorch_model.bin",
        "pth": root / "tiny.pth",
        "safetensors": root / "open_clip_model.safetensors",
    }
    # open_clip_train epoch_K.pt from DDP: state_dict keys "module."-prefixed, optimizer state.
    with torch.random.fork_rng(devices=[]):
        model, _, _ = load_clip(TINY)
    model.load_state_dict(state)
    shadow = copy.deepcopy(model)  # take an optimizer step on a copy: the saved weights stay put
    optimizer = torch.optim.AdamW(shadow.parameters(), lr=1e-3)
    for p in shadow.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    torch.save(
        {
            "epoch": 3,
            "name": "tiny",
            "state_dict": {f"module.{k}": v for k, v in state.items()},
            "optimizer": optimizer.state_dict(),
        },
        paths["epoch"],
    )
    torch.save(state, paths["bin"])
    torch.save(state, paths["pth"], _use_new_zipfile_serialization=False)  # legacy format
    save_file(state, paths["safetensors"])
    return paths


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip_forms")
    state = tiny_weights()
    paths = save_all_forms(root / "files", state)
    cache = root / "hub"
    config = TINY / "open_clip_config.json"
    build_hub_cache(
        cache,
        "local/tiny-clip",
        {"open_clip_config.json": config, "open_clip_model.safetensors": paths["safetensors"]},
    )
    build_hub_cache(  # the Compromised release's layout: a raw .bin only
        cache,
        "local/tiny-clip-bin",
        {"open_clip_config.json": config, "open_clip_pytorch_model.bin": paths["bin"]},
    )
    build_hub_cache(cache, "local/config-only", {"open_clip_config.json": config})
    local = root / "local-copy"  # a downloaded copy of the hub repo: config + weights in one dir
    local.mkdir()
    shutil.copy(config, local / "open_clip_config.json")
    shutil.copy(paths["bin"], local / "open_clip_pytorch_model.bin")
    return {"root": root, "cache": cache, "local": local, **paths}


@pytest.fixture
def hub(forms, monkeypatch):
    use_offline_cache(monkeypatch, forms["cache"])
    return forms


@pytest.fixture
def tiny_arch(monkeypatch):
    """Register tiny-clip's model_cfg as a built-in open_clip architecture name."""
    import json

    cfg = json.loads((TINY / "open_clip_config.json").read_text())["model_cfg"]
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, ARCH, cfg)
    return ARCH


def embed(model, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised embeddings of a fixed image tensor and fixed texts (preprocessing excluded:
    an architecture name uses open_clip's default mean/std, a model dir its own)."""
    generator = torch.Generator().manual_seed(7)
    images = torch.rand(2, 3, 32, 32, generator=generator)
    tokens = tokenizer(["a photo of a person", "Ana Ruiz lives in Lyon"])
    with torch.no_grad():
        image = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
        text = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
    return image, text


@pytest.fixture(scope="module")
def reference(forms):
    # The module-scoped weights loaded straight from the state dict, no file involved.
    with torch.random.fork_rng(devices=[]):
        model, _, tokenizer = load_clip(TINY)
    model.load_state_dict(tiny_weights())
    return embed(model.eval(), tokenizer)


CASES = {
    "epoch_K.pt (optimizer, module.)": lambda f: (TINY, f["epoch"]),
    "raw .bin": lambda f: (TINY, f["bin"]),
    "legacy .pth": lambda f: (str(TINY), str(f["pth"])),
    ".safetensors": lambda f: (TINY, f["safetensors"]),
    "local-dir: prefix": lambda f: (f"local-dir:{TINY}", f["safetensors"]),
    "model dir with weights": lambda f: (f["local"], None),
    "hf-hub safetensors": lambda f: ("hf-hub:local/tiny-clip", None),
    "hf-hub pinned revision": lambda f: (f"hf-hub:local/tiny-clip@{COMMIT}", None),
    "hf-hub .bin": lambda f: ("hf-hub:local/tiny-clip-bin", None),
    "hf-hub config + checkpoint": lambda f: ("hf-hub:local/config-only", f["epoch"]),
    "architecture + .safetensors": lambda f: (ARCH, f["safetensors"]),
    "architecture + epoch_K.pt": lambda f: (ARCH, f["epoch"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_form_gives_identical_embeddings(case, hub, tiny_arch, reference):
    model_spec, checkpoint = CASES[case](hub)
    model, preprocess, tokenizer = load_clip(model_spec, checkpoint, "cpu")
    assert not model.training and callable(preprocess)
    image, text = embed(model, tokenizer)
    torch.testing.assert_close(image, reference[0], rtol=0, atol=0)
    torch.testing.assert_close(text, reference[1], rtol=0, atol=0)


def test_loading_really_replaces_the_random_init(reference):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(999)
        model, _, tokenizer = load_clip(TINY)
    assert not torch.allclose(embed(model, tokenizer)[0], reference[0])


def test_sources_and_cache_keys(hub, tiny_arch):
    by_id = resolve_clip("hf-hub:local/tiny-clip")
    assert by_id.kind == "hf-hub" and by_id.weights_from == "model"
    assert by_id.weights.name == "open_clip_model.safetensors" and by_id.state_name == "tiny-clip"
    snapshot = by_id.config.parent
    assert snapshot.name == COMMIT
    # The hub id hashes its resolved files: same key as its snapshot used as a model dir.
    key = model_key(by_id, 42, "cpu")
    assert key == model_key(resolve_clip(str(snapshot)), 42, "cpu")
    assert key == model_key(resolve_clip(TINY, hub["safetensors"]), 42, "cpu")
    assert key != model_key(resolve_clip("hf-hub:local/tiny-clip-bin"), 42, "cpu")  # other bytes
    assert key != model_key(resolve_clip(tiny_arch, hub["safetensors"]), 42, "cpu")  # other config
    assert key != model_key(by_id, 42, "cuda")
    random_init = resolve_clip(TINY)
    assert random_init.weights is None and random_init.state_name == "random-init"
    assert model_key(random_init, 1, "cpu") != model_key(random_init, 2, "cpu")
    assert resolve_clip(TINY, hub["epoch"]).state_name == "epoch_3"
    assert resolve_clip("hf-hub:local/config-only", hub["bin"]).weights == hub["bin"]


def one_line(err: pytest.ExceptionInfo, *needles: str) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


def test_missing_files_are_one_line_errors(hub, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_clip(TINY, tmp_path / "nope.safetensors")
    one_line(err, "nope.safetensors", "checkpoint not found", ".safetensors")
    with pytest.raises(FileNotFoundError) as err:
        load_clip(tmp_path / "no-model", hub["bin"])
    one_line(err, "no-model", "open_clip model dir")
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as err:
        load_clip(empty)
    one_line(err, "empty-dir", "open_clip_config.json")
    with pytest.raises(FileNotFoundError) as err:
        load_clip("someorg/somemodel")
    one_line(err, "someorg/somemodel", "hf-hub:someorg/somemodel")
    with pytest.raises(ValueError) as err:
        load_clip(TINY, hub["root"])
    one_line(err, "is a directory")


def test_missing_hub_entry_offline_is_fast_and_names_a_local_alternative(hub):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as err:
        load_clip("hf-hub:nobody/missing-model")
    message = one_line(err, "hf-hub:nobody/missing-model", "HF_HUB_OFFLINE", "local copy")
    assert "open_clip_config.json" in message and str(hub["cache"]) in message
    with pytest.raises(FileNotFoundError) as err:  # config cached, weights not: say which
        load_clip("hf-hub:local/config-only")
    one_line(err, "hf-hub:local/config-only", "open_clip_model.safetensors", "local copy")
    with pytest.raises(FileNotFoundError) as err:
        load_clip("hf-hub:local/tiny-clip@" + "f" * 40)
    one_line(err, "hf-hub:local/tiny-clip@ffff")
    with pytest.raises(ValueError) as err:
        load_clip("hf-hub:not-an-org-slash-name")
    one_line(err, "hf-hub:org/name")
    assert time.perf_counter() - start < 5  # no retries, no network


def test_mismatched_architecture_is_a_one_line_error(forms, tmp_path):
    with pytest.raises(ValueError) as err:
        load_clip("ViT-S-32-alt", forms["safetensors"])  # a tiny checkpoint, a built-in ViT
    one_line(err, "open_clip_model.safetensors", "ViT-S-32-alt", "another architecture", "shape")
    narrow = tmp_path / "narrow"  # same key names, other widths
    narrow.mkdir()
    text = (TINY / "open_clip_config.json").read_text()
    (narrow / "open_clip_config.json").write_text(
        text.replace('"embed_dim": 64', '"embed_dim": 32')
    )
    with pytest.raises(ValueError) as err:
        load_clip(narrow, forms["epoch"])
    one_line(err, "epoch_3.pt", "text_projection", "[64, 64] vs [64, 32]")


class _Payload:
    """Unpickling this would create ``marker``: proof that nothing is ever unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoints_that_need_pickle_are_refused(forms, tmp_path):
    import argparse

    state = torch.load(forms["bin"], weights_only=True)
    with_args = tmp_path / "with_args.pt"
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=1.0)}, with_args)
    with pytest.raises(ValueError) as err:
        load_clip(TINY, with_args)
    one_line(err, "with_args.pt", "pickle", "argparse.Namespace", "weights_only=True")

    with torch.random.fork_rng(devices=[]):
        model, _, _ = load_clip(TINY)
    whole = tmp_path / "whole_model.pt"
    torch.save(model, whole)  # a pickled nn.Module, not a state dict
    with pytest.raises(ValueError) as err:
        load_clip(TINY, whole)
    one_line(err, "whole_model.pt", "pickle")

    marker = tmp_path / "unpickled"
    hostile = tmp_path / "hostile.bin"
    torch.save({"state_dict": state, "x": _Payload(marker)}, hostile)
    with pytest.raises(ValueError):
        load_clip(TINY, hostile)
    assert not marker.exists()


def test_files_that_are_not_state_dicts(forms, tmp_path):
    wrong = tmp_path / "counts.pt"
    torch.save({"epoch": 3, "step": 10}, wrong)
    with pytest.raises(ValueError) as err:
        load_clip(TINY, wrong)
    one_line(err, "counts.pt", "expected a state dict")
    garbage = tmp_path / "notes.safetensors"
    garbage.write_text("not weights")
    with pytest.raises(ValueError) as err:
        load_clip(TINY, garbage)
    one_line(err, "notes.safetensors", "safetensors")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(forms["epoch"].read_bytes()[:1000])
    with pytest.raises(ValueError) as err:
        load_clip(TINY, truncated)
    one_line(err, "truncated.pt", "not a readable torch checkpoint")
    # Told apart by content: a safetensors file under a .bin name still loads.
    renamed = tmp_path / "renamed.bin"
    shutil.copy(forms["safetensors"], renamed)
    load_clip(TINY, renamed)


def test_the_paper_model_dir_is_clip_vit_b_16_with_the_papers_parameter_count():
    """resources/models/vit-b-16: 149.6M parameters (the released models' count), 224 px input."""
    model, preprocess, _ = load_clip("resources/models/vit-b-16")
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 149.6
    assert model.visual.image_size == (224, 224)


def test_the_small_tier_model_dir_is_clip_vit_b_32():
    """resources/models/vit-b-32: OpenAI's ViT-B/32 shape, 151.3M parameters, 224 px input."""
    model, _, _ = load_clip("resources/models/vit-b-32")
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 151.3
    assert model.visual.image_size == (224, 224)
