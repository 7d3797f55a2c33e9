"""Method names → classes.

A built-in method is a module of ``salmu.unlearn.methods`` named after the method, holding one
``UnlearningMethod`` subclass with that ``name``: adding a method is adding that module. A custom
method anywhere on the Python path is named by an import path ``package.module:Class``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

METHODS_PACKAGE = "salmu.unlearn.methods"


def builtin_methods() -> list[str]:
    """Names of the built-in methods: the package's module names (none is imported, so no torch)."""
    package = importlib.import_module(METHODS_PACKAGE)
    return sorted(
        module.name
        for module in pkgutil.iter_modules(package.__path__)
        if not module.name.startswith("_")
    )


def _builtin_class(name: str):
    from salmu.unlearn.base import UnlearningMethod

    module = importlib.import_module(f"{METHODS_PACKAGE}.{name}")
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, UnlearningMethod)
            and value.__module__ == module.__name__
            and value.name == name
        ):
            return value
    raise ValueError(f"{module.__file__}: no UnlearningMethod subclass with name = '{name}'")


def resolve(name: str, import_path: str | None = None):
    """Return the method class for ``name`` (or an explicit ``module:Class`` import path)."""
    # Imported here so that checking names (e.g. while Snakemake builds the DAG) needs no torch.
    from salmu.unlearn.base import UnlearningMethod

    if import_path is None:
        if name not in builtin_methods():
            raise ValueError(
                f"unknown unlearning method '{name}': built-in methods are {builtin_methods()}; "
                "a custom one needs an import path 'package.module:Class'"
            )
        return _builtin_class(name)
    module_name, _, class_name = import_path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"method '{name}': cannot import '{import_path}' ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, UnlearningMethod)):
        raise ValueError(f"method '{name}': '{import_path}' is not an UnlearningMethod subclass")
    return cls


def build(name: str, cls, hyperparameters: dict):
    """Instantiate a method; a wrong hyperparameter is a ValueError naming the config key."""
    try:
        return cls(**hyperparameters)
    except TypeError as err:
        accepted = [
            p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")
        ]
        raise ValueError(
            f"config key unlearn.methods.{name}.params: {hyperparameters} rejected ({err}); "
            f"'{name}' takes {accepted or 'no hyperparameters'}"
        ) from None
