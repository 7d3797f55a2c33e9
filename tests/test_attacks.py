"""Attacks on forgetting (issue 17): precision round trips, the attackers' data and its audit,
the forget-row probe against the evaluator, and the recovered share of the gap."""

import json

import numpy as np
import polars as pl
import pytest
import torch

from salmu.attacks import data as attack_data
from salmu.attacks.gap import position, recovered
from salmu.attacks.precision import int8_round_trip, round_trip
from salmu.unlearn.data import Sample

from conftest import solid_jpeg


def test_half_precision_round_trips_are_idempotent_and_leave_integers_alone():
    state = {"w": torch.randn(6, 5), "b": torch.randn(5), "steps": torch.tensor([3, 4])}
    for kind in ("fp16", "bf16"):
        once = round_trip(state, kind)
        assert all(once[k].dtype == state[k].dtype for k in state)
        assert torch.equal(round_trip(once, kind)["w"], once["w"])
        assert not torch.equal(once["w"], state["w"])  # the format did round something
        assert torch.equal(once["steps"], state["steps"])
    with pytest.raises(ValueError, match="unknown precision attack 'int4'"):
        round_trip(state, "int4")


def test_int8_rounds_each_weight_to_its_rows_grid_and_keeps_vectors():
    weight = torch.randn(8, 16)
    step = weight.abs().amax(dim=1, keepdim=True) / 127
    quantized = int8_round_trip(weight)
    assert torch.all((quantized - weight).abs() <= step / 2 + 1e-6)
    assert torch.allclose(torch.round(quantized / step) * step, quantized, atol=1e-6)
    state = round_trip({"w": weight, "bias": torch.randn(16)}, "int8")
    assert torch.equal(state["w"], quantized) and not torch.equal(state["bias"], torch.zeros(16))


def test_int8_undoes_an_update_smaller_than_its_step():
    """The attack's point: an edit below the quantization step (here, of every weight but each
    row's largest ones) vanishes, and int8 gives back the weights from before the edit."""
    torch.manual_seed(0)
    for _ in range(20):
        before = int8_round_trip(torch.randn(8, 16))  # on the grid
        largest = before.abs() == before.abs().amax(dim=1, keepdim=True)
        step = before.abs().amax(dim=1, keepdim=True) / 127
        edit = (torch.rand_like(before) - 0.5) * 0.9 * step  # |edit| < step / 2
        edited = before + edit.masked_fill(largest, 0)  # the rows' scales stay
        assert not torch.equal(edited, before)
        assert torch.equal(int8_round_trip(edited), int8_round_trip(before))
        torch.testing.assert_close(int8_round_trip(edited), before, rtol=0, atol=1e-6)


def test_the_partial_attacker_holds_a_seeded_share_of_the_forget_rows():
    names = [f"{i:08d}_000_ar-1.00.jpg" for i in range(50)]
    held = attack_data.partial_rows(names, 0.1, seed=3)
    assert len(held) == 5 and set(held) <= set(names)
    assert held == attack_data.partial_rows(list(reversed(names)), 0.1, seed=3)
    assert held != attack_data.partial_rows(names, 0.1, seed=4)
    assert len(attack_data.partial_rows(names[:3], 0.1, seed=3)) == 1  # at least one
    with pytest.raises(ValueError, match="strictly in"):
        attack_data.partial_rows(names, 1.0, seed=3)


def test_the_audit_refuses_attack_data_holding_a_measured_row_by_key_or_image():
    import hashlib

    measured = {f"f{i}.jpg": (f"f{i}", hashlib.sha256(solid_jpeg(i)).hexdigest()) for i in range(4)}
    clean = attack_data.AttackData("related", [Sample(solid_jpeg(10), "t", key="h10.jpg")])
    assert attack_data.check_disjoint(clean, measured)["overlap"] == 0
    by_key = attack_data.AttackData("partial", [Sample(solid_jpeg(11), "t", key="f2.jpg")])
    with pytest.raises(ValueError, match="f2.jpg, a forget row the attack is measured on"):
        attack_data.check_disjoint(by_key, measured)
    renamed = attack_data.AttackData("benign", [Sample(solid_jpeg(1), "t", key="x.tar:other")])
    with pytest.raises(ValueError, match="x.tar:other"):
        attack_data.check_disjoint(renamed, measured)


def test_recovered_is_the_climb_between_the_same_attacked_references():
    # Before: halfway forgotten to 0.1 of the gap; after the attack (references moved too): 0.6.
    assert position(0.1, 0.0, 1.0, 0.01) == pytest.approx(0.1)
    assert recovered((0.1, 0.0, 1.0), (0.7, 0.1, 1.1), 0.01) == pytest.approx(0.6 - 0.1)
    # The references themselves recover nothing, whatever the attack does to them.
    assert recovered((0.0, 0.0, 1.0), (0.3, 0.3, 1.2), 0.01) == 0
    assert recovered((1.0, 0.0, 1.0), (1.2, 0.3, 1.2), 0.01) == 0
    # No gap to measure against: undefined.
    assert recovered((0.1, 0.0, 1.0), (0.5, 0.5, 0.505), 0.01) is None


def test_the_probe_scores_the_forget_rows_as_the_evaluator_does(tmp_path):
    """Same pools, seed and tie rule: the probe's MRR and AssocStr over every forget row are the
    evaluation JSON's RetFail MRR and AssocStr."""
    from test_evaluate_run import TINY, build_benchmark, evaluate_args

    from salmu.attacks.probe import ForgetProbe
    from salmu.attacks.run import eval_transform
    from salmu.cli import main
    from salmu.clip_model import load_clip, save_checkpoint

    build_benchmark(tmp_path / "bench")
    torch.manual_seed(0)
    model, _, tokenizer = load_clip(TINY, None)
    save_checkpoint(model, tmp_path / "tiny.pt", name="tiny")
    assert main(evaluate_args(tmp_path, "eval.json")) == 0
    official = json.loads((tmp_path / "eval.json").read_text())["efficacy"]
    probe = ForgetProbe(tmp_path / "bench", distractors=100, seed=42, tie_tol=1e-6)
    scores = probe.scores(model, eval_transform(model), tokenizer, "cpu", 8, 1)
    means = scores.means()
    assert means["RetFail_MRR"] == pytest.approx(official["1.1_RetFail"]["MRR"], abs=1e-6)
    assert means["AssocStr"] == pytest.approx(official["1.2_AssocStr"]["mean"], abs=1e-6)
    half = np.arange(len(scores.rr)) % 2 == 0
    assert scores.means(half)["RetFail_MRR"] == pytest.approx(scores.rr[half].mean())


def attack_frame(recovered: dict[str, dict[str, float]]) -> pl.DataFrame:
    """A salmu attack-table frame: state -> attack -> recovered RetFail share."""
    from salmu.attacks.table import label

    rows = [
        {"state": s, "attack": a, "family": "relearn", "RetFail_MRR_recovered": v}
        for s, by_attack in recovered.items()
        for a, v in by_attack.items()
    ]
    table = pl.DataFrame(rows)
    return table.join(label(table, 0.5), on="state", how="left")


def test_each_attacked_model_gets_its_worst_attack_and_the_superficial_label(tmp_path):
    from salmu.attacks.plot import recovered_plot
    from salmu.attacks.table import per_state
    from salmu.fidelity import attack_entry
    from salmu.table import attack_markdown

    frame = attack_frame(
        {
            "clean": {"related": 0.0, "int8": 0.0},
            "compromised": {"related": 0.0, "int8": 0.0},
            "unlearned/neg_grad/x5/seed0": {"related": 0.7, "int8": 0.1},
            "unlearned/neg_grad/x5/seed1": {"related": 0.3, "int8": 0.2},
            "unlearned/ssd/x5/seed0": {"related": 0.6, "int8": None},
        }
    )
    wide = per_state(frame)
    assert set(wide.columns) >= {"recovered_related", "recovered_int8", "attack_diagnosis"}
    row = wide.filter(pl.col("state") == "unlearned/neg_grad/x5/seed0").row(0, named=True)
    assert (row["worst_attack"], row["max_recovered"]) == ("related", 0.7)
    assert row["attack_diagnosis"] == "superficial forgetting"
    results = pl.DataFrame({"state": wide["state"]}).join(wide, on="state", how="left")
    # A method is superficial when every attacked seed is (seed 1 of neg_grad is not).
    assert attack_entry(results, "unlearned/neg_grad/x5")["attack_diagnosis"] == ""
    assert attack_entry(results, "unlearned/neg_grad/x5")["attack_max_recovered"] == 0.7
    assert attack_entry(results, "unlearned/ssd/x5")["attack_diagnosis"] == "superficial forgetting"
    assert attack_entry(results, "unlearned/slug/x5") == {}
    lines = "\n".join(attack_markdown(results))
    assert "| unlearned/ssd/x5/seed0 |" in lines and "superficial forgetting" in lines
    files = recovered_plot(frame, tmp_path, 0.5)
    assert sorted(p.rsplit(".", 1)[1] for p in files) == ["png", "svg"]
    assert all((tmp_path / f"recovered_gap.{fmt}").stat().st_size > 0 for fmt in ("png", "svg"))


def test_auc_and_tpr_at_low_fpr():
    from salmu.attacks.inference import auc, tpr_at_fpr

    rng = np.random.default_rng(0)
    same = rng.normal(size=2000)
    assert auc(same, rng.normal(size=2000)) == pytest.approx(0.5, abs=0.03)
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5  # a tie counts half
    negatives = np.arange(1000.0)
    # The threshold flags at most 1 % of the negatives themselves.
    assert 0.005 < tpr_at_fpr(negatives, negatives) <= 0.01
    assert tpr_at_fpr(np.array([995.0, 1000.0, 5.0, 2000.0, 500.0]), negatives) == 0.6


def test_the_inference_attack_tells_members_from_an_independent_never_trained_model():
    """Synthetic per-pair scores: members sit 0.2 above the pair's never-trained level. A model
    still holding the pairs is found (AUC ~ 1); a fresh never-trained one is not (~ 0.5)."""
    from salmu.attacks.inference import association_inference

    rng = np.random.default_rng(1)
    level = rng.uniform(0.1, 0.3, size=500)  # each pair's own similarity without training

    def model(shift):
        return level + shift + rng.normal(0, 0.03, size=level.size)

    members, outsiders = [model(0.2), model(0.2)], [model(0.0)]
    targets = {"kept": model(0.2), "forgot": model(0.0), "half": model(0.1)}
    found = association_inference(members, outsiders, model(0.0), targets)
    assert found["kept"]["auc"] > 0.99 and found["kept"]["tpr_at_1pct_fpr"] > 0.9
    assert found["forgot"]["auc"] == pytest.approx(0.5, abs=0.06)
    assert found["forgot"]["tpr_at_1pct_fpr"] < 0.05
    assert 0.6 < found["half"]["auc"] < found["kept"]["auc"]
    # The fallback (one reference a side, the out reference's own scores as negatives).
    fallback = association_inference([members[0]], [outsiders[0]], outsiders[0], targets)
    assert fallback["kept"]["auc"] > 0.99 and fallback["forgot"]["auc"] < fallback["kept"]["auc"]


def test_shadow_references_come_in_complete_pairs():
    from salmu.attacks.table import shadow_pairs

    assert shadow_pairs({"shadow2/clean": {}, "shadow2/compromised": {}}) == [2]
    assert shadow_pairs({}) == []
    with pytest.raises(ValueError, match=r"shadow pair\(s\) \[1\] lack"):
        shadow_pairs({"shadow1/clean": {}})
    with pytest.raises(ValueError, match="not a shadow Clean or Compromised"):
        shadow_pairs({"unlearned/x/x5/seed0": {}})


def test_shadow_pairs_are_refused_when_a_reference_model_comes_from_outside():
    from salmu.config_checks import check_shadows

    config = {
        "attacks": {"shadow_pairs": 1},
        "artifacts": {"benchmark": None, "clean": None, "compromised": {"model": "ViT-B-16"}},
    }
    with pytest.raises(ValueError, match="attacks.shadow_pairs: 1 shadow pairs need this run"):
        check_shadows(config)
    config["artifacts"]["compromised"] = None
    check_shadows(config)  # both trained here: shadows are fine
    config["attacks"]["shadow_pairs"] = 0
    config["artifacts"]["compromised"] = {"model": "ViT-B-16"}
    check_shadows(config)  # no shadows asked for
