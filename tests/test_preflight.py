"""The check the workflow runs before its first job: damaged inputs are named, healthy ones pass
(salmu.preflight). tests/test_pipeline_e2e.py runs it inside Snakemake on a finished run."""

import json
from types import SimpleNamespace

import polars as pl
import pytest
import torch
from safetensors.torch import save_file

from salmu.io import write_parquet
from salmu.preflight import check_inputs, existing_inputs, problem
from salmu.shards import write_shards

from conftest import solid_jpeg


def healthy_files(root):
    frame = pl.DataFrame(
        {
            "file_name": [f"i{i}.jpg" for i in range(30)],
            "text": ["t"] * 30,
            "image": [solid_jpeg(i) for i in range(30)],
        }
    )
    write_parquet(frame, root / "split.parquet")
    write_shards([str(root / "split.parquet")], root / "shards", 10, seed=0)
    (root / "meta.json").write_text(json.dumps({"a": 1}))
    (root / "tier.yaml").write_text("unlearn:\n  budgets: [5]\n")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, root / "model.pt")
    save_file({"w": torch.zeros(2)}, str(root / "model.safetensors"))
    (root / "model_dir").mkdir()
    (root / "model_dir" / "open_clip_config.json").write_text("{}")
    return {
        "parquet file": root / "split.parquet",
        "shard directory": root / "shards",
        "JSON file": root / "meta.json",
        "YAML file": root / "tier.yaml",
        "torch checkpoint": root / "model.pt",
        "safetensors file": root / "model.safetensors",
        "model folder": root / "model_dir",
    }


def damage(kind, path):
    """Random bytes over a file; for a shard directory, a truncated tar."""
    if kind == "shard directory":
        tar = path / "00001.tar"
        tar.write_bytes(tar.read_bytes()[:3000])
    elif kind == "model folder":
        (path / "open_clip_config.json").write_text('{"model_cfg": ')
    else:
        path.write_bytes(bytes(range(256)) * 20)


KINDS = [
    "parquet file",
    "shard directory",
    "JSON file",
    "YAML file",
    "torch checkpoint",
    "safetensors file",
    "model folder",
]


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_input_is_named_in_one_line_and_a_healthy_one_passes(tmp_path, kind):
    files = healthy_files(tmp_path)
    assert problem(files[kind]) is None
    damage(kind, files[kind])
    found = problem(files[kind])
    assert found is not None and str(files[kind]) in found and "\n" not in found
    with pytest.raises(ValueError, match="nothing was run or removed") as raised:
        check_inputs(files.values())
    assert str(raised.value).count("unreadable") == 1


def test_only_inputs_that_exist_and_no_planned_job_rewrites_are_checked(tmp_path):
    files = healthy_files(tmp_path)
    split, shards = str(files["parquet file"]), str(files["shard directory"])
    jobs = [
        SimpleNamespace(input=[split], output=[shards]),
        SimpleNamespace(input=[shards, str(tmp_path / "not-yet.json")], output=["model.pt"]),
    ]
    assert existing_inputs(jobs) == {split}
