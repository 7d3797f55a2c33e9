"""``salmu calibrate``: config overrides for a sweep (its run on trained models is in the e2e)."""

import pytest

from salmu.calibrate import apply_overrides, merged_config, pick_lr

UNLEARN = {"batch_size": 32, "methods": {"neg_grad": {"lr": 1e-4, "params": {"w": 0.0}}}}


def test_overrides_reach_lr_params_and_driver_settings_of_a_copy():
    out = apply_overrides(
        UNLEARN, ["neg_grad.lr=3e-5", "neg_grad.params.w=0.5", "unlearn.batch_size=64"]
    )
    assert out["methods"]["neg_grad"] == {"lr": 3e-5, "params": {"w": 0.5}}
    assert out["batch_size"] == 64
    assert UNLEARN["methods"]["neg_grad"]["lr"] == 1e-4  # the config itself is untouched
    # A method the config does not list gets its settings from the overrides.
    assert apply_overrides(UNLEARN, ["mine.lr=1"])["methods"]["mine"] == {"params": {}, "lr": 1}
    with pytest.raises(ValueError, match="expected METHOD.lr=X"):
        apply_overrides(UNLEARN, ["neg_grad"])


def test_config_files_merge_in_order(tmp_path):
    base, overlay = tmp_path / "base.yaml", tmp_path / "overlay.yaml"
    base.write_text("unlearn: {batch_size: 32, seeds: [0]}\nrun: a\n")
    overlay.write_text("unlearn: {seeds: [0, 1]}\n")
    assert merged_config([str(base), str(overlay)]) == {
        "unlearn": {"batch_size": 32, "seeds": [0, 1]},
        "run": "a",
    }


def grid(*entries):
    return [{"lr": lr, "gap_closed": closed, "label": label} for lr, closed, label in entries]


def test_pick_lr_takes_the_smallest_lr_that_forgets():
    entries = grid(
        (1e-5, 0.4, "ineffective forgetting"),
        (3e-5, 0.93, "catastrophic damage"),
        (1e-4, 0.99, "catastrophic damage"),
    )
    assert pick_lr(entries) == 3e-5


def test_pick_lr_without_forgetting_takes_the_largest_lr_that_keeps_the_model():
    entries = grid(
        (1e-5, 0.06, "ineffective forgetting"),
        (3e-5, 0.19, "ineffective forgetting"),
        (1e-4, 0.33, "catastrophic damage"),
        (3e-4, 0.39, "catastrophic damage"),
    )
    assert pick_lr(entries) == 3e-5
    damaged = grid((1e-5, 0.5, "catastrophic damage"), (3e-5, 0.6, "catastrophic damage"))
    assert pick_lr(damaged) == 1e-5
