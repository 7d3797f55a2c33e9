"""Method names → classes.

A built-in method is a module of ``salmu.unlearn.methods`` named after the method, holding one
``UnlearningMethod`` subclass with that ``name``: adding a method is adding that module. A custom
method anywhere on the Python path is named by an import path ``package.module:Class``.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
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


def _method_class(name: str, import_path: str | None) -> tuple[str, str] | None:
    """(module, class name) of a method, found in its source without importing it."""
    if import_path is not None:
        module, _, class_name = import_path.partition(":")
        return module, class_name
    module = f"{METHODS_PACKAGE}.{name}"
    tree = _module_tree(module)
    declared = [node for node in tree.body if _declares_name(node, name)] if tree else []
    return (module, declared[0].name) if declared else None


def accepted_hyperparameters(name: str, import_path: str | None = None) -> list[str] | None:
    """The keyword arguments a method's constructor takes, read from its source without importing
    it (checking a config must not cost an import of torch). None when the source cannot tell:
    ``**kwargs``, or a base class that cannot be followed statically."""
    found = _method_class(name, import_path)
    return _constructor_parameters(*found) if found else None


@functools.cache  # the methods' shared bases are read once, not once per method
def _module_tree(module: str) -> ast.Module | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    with open(spec.origin, encoding="utf-8") as source:
        return ast.parse(source.read())


def takes_optimizer_steps(name: str, import_path: str | None = None) -> bool:
    """Whether a method steps an optimizer (and so needs an ``lr``), read from its source
    without importing it: False only where its class says ``takes_optimizer_steps = False``."""
    found = _method_class(name, import_path)
    tree = _module_tree(found[0]) if found else None
    for node in tree.body if tree else []:
        if not (isinstance(node, ast.ClassDef) and node.name == found[1]):
            continue
        for item in node.body:
            targets = getattr(item, "targets", [])
            named = any(
                isinstance(t, ast.Name) and t.id == "takes_optimizer_steps" for t in targets
            )
            if named and isinstance(item.value, ast.Constant):
                return bool(item.value.value)
    return True


def _declares_name(node: ast.stmt, name: str) -> bool:
    """``class X(...): name = "<name>"``"""
    return isinstance(node, ast.ClassDef) and any(
        isinstance(item, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "name" for t in item.targets)
        and isinstance(item.value, ast.Constant)
        and item.value.value == name
        for item in node.body
    )


_NO_INIT = "no __init__"  # the class and its bases leave construction to object()


def _constructor_parameters(module: str, class_name: str) -> list[str] | None:
    found = _first_init(module, class_name, depth=0)
    return [] if found == _NO_INIT else found


def _first_init(module: str, class_name: str, depth: int):
    """Parameters of the first ``__init__`` on the class and its bases, depth-first (the MRO of
    the single-inheritance chains methods use), ``_NO_INIT`` if there is none, None if unknown."""
    tree = _module_tree(module)
    if tree is None or depth > 10:
        return None
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    node = classes.get(class_name)
    if node is None:
        return None
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            args = item.args
            if args.vararg or args.kwarg:
                return None
            return [a.arg for a in [*args.posonlyargs, *args.args][1:] + args.kwonlyargs]
    imported = {
        alias.asname or alias.name: (stmt.module, alias.name)
        for stmt in tree.body
        if isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module
        for alias in stmt.names
    }
    for base in node.bases:
        if not isinstance(base, ast.Name):
            return None
        if base.id in classes:
            found = _first_init(module, base.id, depth + 1)
        elif base.id in imported:
            found = _first_init(*imported[base.id], depth + 1)
        else:
            return None
        if found != _NO_INIT:
            return found
    return _NO_INIT


def build(name: str, cls, hyperparameters: dict):
    """Instantiate a method; a wrong hyperparameter is a ValueError naming the config key."""
    try:
        return cls(**hyperparameters)
    except TypeError as err:
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        init = cls.__init__
        parameters = [] if init is object.__init__ else inspect.signature(init).parameters.values()
        accepted = [p.name for p in parameters if p.kind in keyword][1:]
        raise ValueError(
            f"config key unlearn.methods.{name}.params: {hyperparameters} rejected ({err}); "
            f"'{name}' takes {accepted or 'no hyperparameters'}"
        ) from None
