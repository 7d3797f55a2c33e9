"""The unlearning driver: registry, budget accounting, data, checkpoint, precision."""

import json

import numpy as np
import polars as pl
import pytest
import torch

from salmu.cli import main
from salmu.clip_model import load_clip, save_checkpoint
from salmu.io import decode_image, jpeg_bytes, read_json, write_json, write_parquet
from salmu.unlearn.base import Session, UnlearningMethod
from salmu.unlearn.budget import budget_steps
from salmu.unlearn.data import SampleBank, decode_pool, read_samples
from salmu.unlearn.methods.finetune import Finetune
from salmu.unlearn.methods.neg_grad import NegativeGradient
from salmu.unlearn.registry import build, builtin_methods, resolve
from salmu.unlearn.run import parse_hyperparameters
from salmu.unlearn.split_transform import SplitTransform

from conftest import solid_jpeg
from helpers import ROOT

MODEL_DIR = "resources/models/tiny-clip"
FORGET, RETAIN = 20, 30


class TakesOneStepTooFew(UnlearningMethod):
    """A broken custom method: it stops before its budget is spent."""

    name = "lazy"

    def unlearn(self, session: Session) -> None:
        for _ in zip(range(session.budget - 1), session.steps()):
            pass


def test_budget_unit():
    assert budget_steps(1, 100, 32) == 4
    assert budget_steps(5, 100, 32) == 20
    assert budget_steps(0.5, 100, 32) == 2
    with pytest.raises(ValueError, match="budget"):
        budget_steps(0, 100, 32)


def test_registry_resolves_builtin_and_import_paths():
    assert resolve("neg_grad") is NegativeGradient
    assert resolve("mine", "salmu.unlearn.methods.finetune:Finetune") is Finetune
    with pytest.raises(ValueError, match="unknown unlearning method 'nope'"):
        resolve("nope")
    with pytest.raises(ValueError, match="not an UnlearningMethod"):
        resolve("bad", "salmu.unlearn.run:budget_steps")
    with pytest.raises(ValueError, match="cannot import"):
        resolve("bad", "salmu.nowhere:Thing")
    assert parse_hyperparameters(["retain_weight=0.5", "name=x", "flag=true"]) == {
        "retain_weight": 0.5,
        "name": "x",
        "flag": True,
    }


def test_a_wrong_hyperparameter_names_the_config_key_and_the_accepted_ones():
    with pytest.raises(ValueError, match=r"unlearn\.methods\.salun\.params.*sparsity"):
        build("salun", resolve("salun"), {"sparsty": 0.1})
    with pytest.raises(ValueError, match="finetune.*no hyperparameters"):
        build("finetune", resolve("finetune"), {"alpha": 1})


def test_adding_a_method_module_registers_it(tmp_path, monkeypatch):
    """A built-in method is one module: drop it into the methods package and it is found."""
    import salmu.unlearn.methods as package

    extra = tmp_path / "methods"
    extra.mkdir()
    (extra / "forget_twice.py").write_text(
        "from salmu.unlearn.base import UnlearningMethod\n"
        "from salmu.unlearn.losses import clip_loss\n\n\n"
        "class ForgetTwice(UnlearningMethod):\n"
        "    name = 'forget_twice'\n\n"
        "    def loss(self, model, step, reference=None):\n"
        "        return -2 * clip_loss(model, step.forget)\n"
    )
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(extra)])
    assert "forget_twice" in builtin_methods()
    assert resolve("forget_twice").__name__ == "ForgetTwice"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A random-init 'Compromised' checkpoint and forget (with generic captions) / retain shards."""
    root = tmp_path_factory.mktemp("unlearn")
    torch.manual_seed(0)
    model, _, _ = load_clip(MODEL_DIR)
    save_checkpoint(model, root / "compromised.pt", "compromised")
    for name, n, offset in (("forget", FORGET, 0), ("retain", RETAIN, 1000)):
        frame = pl.DataFrame(
            {
                "file_name": [f"{name}{i:03d}.jpg" for i in range(n)],
                "text": [f"{name} caption {i}" for i in range(n)],
                "image": [solid_jpeg(offset + i) for i in range(n)],
            }
        )
        write_parquet(frame, root / f"{name}.parquet")
    write_json(
        {f"forget{i:03d}.jpg": f"a person, photo {i}" for i in range(FORGET)}, root / "g.json"
    )
    for name, generic in (("forget", ["--generic-captions", str(root / "g.json")]), ("retain", [])):
        args = ["shards", "--inputs", str(root / f"{name}.parquet"), "--out-dir", str(root / name)]
        assert main([*args, "--samples-per-shard", "8", "--seed", "0", *generic]) == 0
    return root, model


def unlearn_cli(root, method, *extra, budget="2", out="unlearned.pt", lr="1e-3"):
    return main(
        [
            "unlearn",
            "--method",
            method,
            "--budget",
            budget,
            "--seed",
            "0",
            "--model-dir",
            MODEL_DIR,
            "--checkpoint",
            str(root / "compromised.pt"),
            "--forget-shards",
            str(root / "forget"),
            "--retain-shards",
            str(root / "retain"),
            "--batch-size",
            "8",
            *(["--lr", lr] if lr else []),
            "--device",
            "cpu",
            "--out",
            str(root / out),
            "--report",
            str(root / (out + ".json")),
            *extra,
        ]
    )


def test_forget_shards_carry_generic_captions_and_retain_can_be_subset(shards):
    root, _ = shards
    forget = read_samples(root / "forget")
    assert len(forget) == FORGET
    assert {s.generic_text for s in forget} == {f"a person, photo {i}" for i in range(FORGET)}
    assert all(s.generic_text is None for s in read_samples(root / "retain"))
    assert len(read_samples([root / "retain", root / "forget"])) == RETAIN + FORGET
    subset = read_samples(root / "retain", limit=10, seed=3)
    assert len(subset) == 10 and len({s.image_bytes() for s in subset}) == 10
    # Images stay in their tars until a batch reads them.
    assert all(s.image is None and s.location[0].endswith(".tar") for s in subset)
    assert [s.text for s in subset] == [s.text for s in read_samples(root / "retain", 10, 3)]


def test_shards_refuse_generic_captions_that_miss_samples(shards, tmp_path):
    root, _ = shards
    write_json({"forget000.jpg": "only one"}, tmp_path / "g.json")
    args = ["shards", "--inputs", str(root / "forget.parquet"), "--out-dir", str(tmp_path / "s")]
    assert main([*args, "--seed", "0", "--generic-captions", str(tmp_path / "g.json")]) == 2
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("method", builtin_methods())
def test_every_method_takes_exactly_its_budget(shards, method):
    """2x budget = 2 * ceil(20 / 8) = 6 steps of one forget + one retain batch, for every method;
    methods that step an optimizer step it once per budgeted step (SalUn after its mask step)."""
    root, model = shards
    assert unlearn_cli(root, method, out=f"{method}.pt") == 0
    report = read_json(root / f"{method}.pt.json")
    assert report["budget_unit_steps"] == 3 and report["steps"] == 6
    expected_optimizer_steps = {"ssd": 0, "slug": 0, "salun": 5}.get(method, 6)
    assert report["optimizer_steps"] == expected_optimizer_steps
    # The checkpoint is in open_clip_train's layout, loads back, and differs from the start.
    unlearned, _, _ = load_clip(MODEL_DIR, root / f"{method}.pt")
    assert torch.load(root / f"{method}.pt", weights_only=True)["epoch"] == 6
    assert any(
        not torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), unlearned.state_dict().values())
    )
    json.dumps(report)


def test_hyperparameters_bf16_and_a_retain_subset_reach_the_run(shards):
    root, _ = shards
    extra = ["--param", "retain_weight=0.5", "--precision", "amp_bf16", "--retain-samples", "12"]
    assert unlearn_cli(root, "neg_grad", *extra, out="bf16.pt") == 0
    report = read_json(root / "bf16.pt.json")
    assert report["hyperparameters"] == {"retain_weight": 0.5}
    assert report["precision"] == "amp_bf16" and report["retain_samples"] == 12
    state = torch.load(root / "bf16.pt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_only_a_method_that_steps_an_optimizer_needs_lr(shards, capsys):
    root, _ = shards
    assert unlearn_cli(root, "ssd", out="ssd-no-lr.pt", lr=None) == 0
    assert unlearn_cli(root, "neg_grad", out="ng-no-lr.pt", lr=None) == 2
    assert "--lr: method 'neg_grad' takes optimizer steps" in capsys.readouterr().err
    assert not (root / "ng-no-lr.pt").exists()


def test_a_method_that_skips_budget_fails_and_writes_nothing(shards):
    root, _ = shards
    code = unlearn_cli(
        root, "lazy", "--import-path", "test_unlearn:TakesOneStepTooFew", out="lazy.pt"
    )
    assert code == 2
    assert not (root / "lazy.pt").exists()


def test_the_readme_example_method_runs(shards, tmp_path, monkeypatch):
    """The README's 'adding a method' example is real code that the driver accepts."""
    import re

    readme = (ROOT / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "class " in b)
    (tmp_path / "readme_method.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    root, _ = shards
    extra = ["--import-path", "readme_method:ForgetHarder", "--param", "weight=3"]
    assert unlearn_cli(root, "forget_harder", *extra, out="readme.pt") == 0
    assert read_json(root / "readme.pt.json")["hyperparameters"] == {"weight": 3}


def noise_samples(n: int) -> list:
    """Noise JPEGs of many sizes and aspects, so that every crop and resize shows."""
    from PIL import Image

    from salmu.unlearn.data import Sample

    rng = np.random.default_rng(5)
    samples = []
    for i in range(n):
        width, height = (int(v) for v in rng.integers(20, 90, size=2))
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        samples.append(Sample(jpeg_bytes(Image.fromarray(pixels)), f"caption {i}", key=f"s{i}"))
    return samples


def test_the_split_transform_is_the_training_transform_bit_for_bit():
    """The crop's parameters drawn on one thread, the rest done on another: the same tensor, and
    the same draws from torch's RNG, as open_clip's training transform in one call."""
    _, preprocess, _ = load_clip(MODEL_DIR, train_transform=True)
    split = SplitTransform(preprocess)
    assert split.parallel and split.crop is not None
    for sample in noise_samples(12):
        image = decode_image(sample.image)
        torch.manual_seed(7)
        whole = preprocess(image)
        after_whole = torch.rand(1)
        torch.manual_seed(7)
        drawn = split.draw(image)
        after_draw = torch.rand(1)
        assert torch.equal(split.finish(image, drawn), whole) and torch.equal(
            after_draw, after_whole
        )
    # A transform it cannot cut runs whole on the calling thread.
    opaque = SplitTransform(lambda image: torch.zeros(1))
    assert not opaque.parallel and torch.equal(
        opaque.finish(None, opaque.draw(None)), torch.zeros(1)
    )


def reference_batches(samples, preprocess, seed, size, count):
    """The batches as the bank drew them before it had workers: one image at a time, each
    decoded and transformed in turn on this thread."""
    rng, order, corrupt, out = np.random.default_rng(seed), [], set(), []
    for _ in range(count):
        chosen = []
        while len(chosen) < min(size, len(samples) - len(corrupt)):
            if not order:
                order = rng.permutation(len(samples)).tolist()
            index = order.pop()
            if index in corrupt:
                continue
            image = decode_image(samples[index].image_bytes())
            if image is None:
                corrupt.add(index)
                continue
            chosen.append((preprocess(image), samples[index].text))
        out.append(chosen)
        torch.rand(3)  # a method's own draw between steps (shuffled captions, SalUn, ...)
    return out


@pytest.mark.parametrize("workers", [0, 3])
def test_workers_give_the_same_batches_in_the_same_order(workers):
    """For a seed, the same images, crops and captions in the same order with or without decode
    workers, a method's draws from torch's RNG in between and a corrupt image skipped at the same
    place, as the bank drew them one image at a time."""
    from dataclasses import replace

    _, preprocess, tokenizer = load_clip(MODEL_DIR, train_transform=True)
    samples = noise_samples(13)
    samples[4] = replace(samples[4], image=b"not a jpeg")
    torch.manual_seed(1)
    expected = reference_batches(samples, preprocess, seed=3, size=5, count=9)
    torch.manual_seed(1)
    pool = decode_pool(workers)
    bank = SampleBank(samples, preprocess, tokenizer, seed=3, pool=pool)
    for batch_expected in expected:
        batch = bank.next_batch(5)
        assert torch.equal(batch.images, torch.stack([image for image, _ in batch_expected]))
        assert torch.equal(batch.texts, tokenizer([text for _, text in batch_expected]))
        torch.rand(3)
    if pool is not None:
        pool.shutdown()
    assert bank.corrupt == {4}


def test_decode_workers_change_no_byte_of_an_unlearned_checkpoint(shards):
    """Shuffled captions draws from torch's RNG at every step: with 2 workers the checkpoint is
    the one the main thread alone makes."""
    root, _ = shards
    for workers in ("0", "2"):
        out = f"shuffled-workers{workers}.pt"
        assert unlearn_cli(root, "shuffled_captions", "--workers", workers, out=out) == 0
    one, two = (root / f"shuffled-workers{w}.pt" for w in ("0", "2"))
    assert one.read_bytes() == two.read_bytes()


def test_a_truncated_shard_is_refused_when_read_not_when_a_batch_needs_it(shards, tmp_path):
    """Images are read by offset when a batch needs them: a tar cut inside an image must fail
    when the samples are read, naming the shard, not later as a 'corrupt image'."""
    import shutil
    import tarfile

    root, _ = shards
    copy = tmp_path / "retain"
    shutil.copytree(root / "retain", copy)
    tar_path = copy / "00000.tar"
    with tarfile.open(tar_path) as tar:
        last_jpg = [m for m in tar.getmembers() if m.name.endswith(".jpg")][-1]
    with tar_path.open("r+b") as handle:
        handle.truncate(last_jpg.offset_data + 10)
    with pytest.raises(ValueError, match="00000.tar: unreadable webdataset shard"):
        read_samples(copy)
