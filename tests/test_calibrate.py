"""``salmu calibrate``: config overrides for a sweep (its run on trained models is in the e2e)."""

import pytest

from salmu.calibrate import apply_overrides, merged_config

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
