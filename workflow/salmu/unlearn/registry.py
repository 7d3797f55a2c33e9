"""Method names → classes. A method is built in (short name) or user-supplied ("pkg.module:Class")."""

from __future__ import annotations

import importlib

BUILTIN = {
    "finetune": "salmu.unlearn.methods.finetune:Finetune",
    "neg_grad": "salmu.unlearn.methods.neg_grad:NegativeGradient",
}


def resolve(name: str, import_path: str | None = None):
    """Return the method class for ``name`` (or an explicit ``module:Class`` import path)."""
    # Imported here so that checking names (e.g. while Snakemake builds the DAG) needs no torch.
    from salmu.unlearn.base import UnlearningMethod

    target = import_path or BUILTIN.get(name)
    if target is None:
        raise ValueError(
            f"unknown unlearning method '{name}': built-in methods are {sorted(BUILTIN)}; "
            "a custom one needs an import path 'package.module:Class'"
        )
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"method '{name}': cannot import '{target}' ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, UnlearningMethod)):
        raise ValueError(f"method '{name}': '{target}' is not an UnlearningMethod subclass")
    return cls
