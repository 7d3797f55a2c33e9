import json

import polars as pl
import pytest
import torch

from salmu.cli import main
from salmu.clip_model import load_clip, save_checkpoint
from salmu.io import read_json, write_parquet
from salmu.shards import load_sources, write_shards
from salmu.unlearn.base import Batch, Step, UnlearningMethod, clip_loss
from salmu.unlearn.methods.finetune import Finetune
from salmu.unlearn.methods.neg_grad import NegativeGradient
from salmu.unlearn.registry import resolve
from salmu.unlearn.run import budget_steps, parse_hyperparameters

from conftest import solid_jpeg

MODEL_DIR = "resources/models/tiny-clip"


def random_batch(tokenizer, n=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 32, 32, generator=generator)
    texts = tokenizer([f"person {seed} number {i} lives in city {i}" for i in range(n)])
    return Batch(images, texts)


def one_step(method, model, step, lr=1e-2):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    loss = method.loss(model, step)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model, preprocess, tokenizer = load_clip(MODEL_DIR)
    step = Step(random_batch(tokenizer, seed=1), random_batch(tokenizer, seed=2))
    return model, tokenizer, step


def test_negative_gradient_raises_the_forget_loss(tiny):
    model, _, step = tiny
    model = __import__("copy").deepcopy(model)
    with torch.no_grad():
        before = clip_loss(model.eval(), step.forget).item()
    one_step(NegativeGradient(), model, step)
    with torch.no_grad():
        after = clip_loss(model.eval(), step.forget).item()
    assert after > before


def test_finetune_lowers_the_retain_loss_and_ignores_forget(tiny):
    model, _, step = tiny
    model = __import__("copy").deepcopy(model)
    with torch.no_grad():
        before = clip_loss(model.eval(), step.retain).item()
    one_step(Finetune(), model, step)
    with torch.no_grad():
        after = clip_loss(model.eval(), step.retain).item()
    assert after < before
    # Finetuning's loss does not depend on the forget batch at all.
    other = Step(Batch(torch.zeros_like(step.forget.images), step.forget.texts), step.retain)
    with torch.no_grad():
        model.eval()
        assert Finetune().loss(model, step).item() == Finetune().loss(model, other).item()


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
    with pytest.raises(ValueError, match="takes no hyperparameters"):
        UnlearningMethod(alpha=1)
    assert parse_hyperparameters(["retain_weight=0.5", "name=x"]) == {
        "retain_weight": 0.5,
        "name": "x",
    }


def test_cli_takes_exactly_the_budgeted_steps(tmp_path):
    torch.manual_seed(0)
    model, _, _ = load_clip(MODEL_DIR)
    save_checkpoint(model, tmp_path / "compromised.pt", "compromised")
    for name, n, offset in (("forget", 20, 0), ("retain", 30, 1000)):
        frame = pl.DataFrame(
            {
                "file_name": [f"{name}{i:03d}.jpg" for i in range(n)],
                "text": [f"{name} caption {i}" for i in range(n)],
                "image": [solid_jpeg(offset + i) for i in range(n)],
            }
        )
        write_parquet(frame, tmp_path / f"{name}.parquet")
        write_shards(load_sources([str(tmp_path / f"{name}.parquet")]), tmp_path / name, 8, seed=0)
    out = tmp_path / "unlearned.pt"
    code = main(
        [
            "unlearn",
            "--method",
            "neg_grad",
            "--budget",
            "2",
            "--seed",
            "0",
            "--model-dir",
            MODEL_DIR,
            "--checkpoint",
            str(tmp_path / "compromised.pt"),
            "--forget-shards",
            str(tmp_path / "forget"),
            "--retain-shards",
            str(tmp_path / "retain"),
            "--batch-size",
            "8",
            "--lr",
            "1e-3",
            "--param",
            "retain_weight=0.5",
            "--out",
            str(out),
            "--report",
            str(tmp_path / "report.json"),
        ]
    )
    assert code == 0
    report = read_json(tmp_path / "report.json")
    assert report["budget_unit_steps"] == 3 and report["steps"] == 6
    assert report["hyperparameters"] == {"retain_weight": 0.5}
    # The checkpoint is in open_clip_train's layout and loads back; weights changed.
    unlearned, _, _ = load_clip(MODEL_DIR, out)
    assert torch.load(out, weights_only=True)["epoch"] == 6
    changed = [
        not torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), unlearned.state_dict().values())
    ]
    assert any(changed)
    json.dumps(report)
