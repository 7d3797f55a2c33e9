"""The checks the workflow runs on its config while it builds the DAG (salmu.config_checks)."""

import inspect
import sys

import pytest
import yaml

from salmu.config_checks import check_methods, check_overlays_remove_nothing, coerce_command_line
from salmu.unlearn.registry import (
    accepted_hyperparameters,
    builtin_methods,
    resolve,
    takes_optimizer_steps,
)

from helpers import ROOT


@pytest.mark.parametrize("name", builtin_methods())
def test_hyperparameters_read_from_source_match_the_constructor(name):
    """The static reader (no torch import at DAG time) agrees with Python's own signature."""
    init = resolve(name).__init__
    expected = [] if init is object.__init__ else list(inspect.signature(init).parameters)[1:]
    assert accepted_hyperparameters(name) == expected


@pytest.mark.parametrize("name", builtin_methods())
def test_whether_a_method_steps_an_optimizer_is_read_from_its_source(name):
    assert takes_optimizer_steps(name) == resolve(name).takes_optimizer_steps


def test_only_a_method_that_steps_an_optimizer_needs_an_lr():
    unlearn = {"methods": {"ssd": {"params": {}}, "slug": {}}, "only": None}
    check_methods(unlearn)  # they edit weights directly: no lr
    unlearn["methods"]["neg_grad"] = {"params": {}}
    with pytest.raises(ValueError, match=r"config key unlearn\.methods\.neg_grad\.lr: required"):
        check_methods(unlearn)


def test_hyperparameters_of_a_custom_method_follow_imports_or_give_up(tmp_path, monkeypatch):
    (tmp_path / "my_methods.py").write_text(
        "from salmu.unlearn.regularised import RetainRegularised\n"
        "from salmu.unlearn.base import UnlearningMethod\n"
        "class Inherits(RetainRegularised):\n    name = 'inherits'\n"
        "class Own(Inherits):\n    def __init__(self, strength=1.0, *, steps=2):\n        pass\n"
        "class Open(UnlearningMethod):\n    def __init__(self, **anything):\n        pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert accepted_hyperparameters("x", "my_methods:Inherits") == ["retain_weight"]
    assert accepted_hyperparameters("x", "my_methods:Own") == ["strength", "steps"]
    assert accepted_hyperparameters("x", "my_methods:Open") is None  # cannot tell: not checked
    assert accepted_hyperparameters("x", "no_such_module:Thing") is None


def test_an_overlay_emptying_a_default_mapping_is_refused(tmp_path):
    defaults = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = tmp_path / "o.yaml"
    overlay.write_text("unlearn:\n  methods: {}\n")
    with pytest.raises(ValueError, match=r"unlearn\.methods in .*o\.yaml.*unlearn\.only"):
        check_overlays_remove_nothing([overlay], defaults)
    # An empty mapping where the default is empty too changes nothing: allowed.
    overlay.write_text("external:\n  models: {}\nunlearn:\n  methods:\n    ssd: {lr: 0.1}\n")
    check_overlays_remove_nothing([overlay], defaults)


def test_nested_command_line_strings_become_the_numbers_the_schema_wants():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    command_line = {
        "unlearn": {
            "budgets": ["5", "0.5"],
            "seeds": ["0", "2"],
            "only": ["neg_grad"],
            "retain_samples": "null",
        },
        "faces": {"filter": {"demographics": ["gender"]}},
        "run": "x",
    }
    config = yaml.safe_load(yaml.safe_dump(command_line))
    coerce_command_line(config, command_line, schema)
    assert config["unlearn"] == {
        "budgets": [5, 0.5],
        "seeds": [0, 2],
        "only": ["neg_grad"],
        "retain_samples": None,
    }
    assert config["faces"]["filter"]["demographics"] == ["gender"] and config["run"] == "x"


def test_checking_the_methods_imports_no_torch():
    """The Snakefile runs these checks on every invocation (every job under SLURM)."""
    import subprocess

    code = (
        "import sys, yaml; from salmu.config_checks import check_methods; "
        "check_methods(yaml.safe_load(open('config.yaml'))['unlearn']); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
