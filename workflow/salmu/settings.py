"""Typed settings of a stage: the one place where each setting's default and meaning are written.

A stage's settings are a frozen dataclass whose fields are made with :func:`setting`. From it come

- the stage's CLI flags (``add_arguments``: ``batch_size`` -> ``--batch-size``, with the default
  and the doc as help) and the values read back from them (``values_from_args``);
- the settings read from its config section (``from_mapping``: an unknown key is an error that
  names it; a key the section leaves out takes the default);
- the flags a rule passes for a whole config section (``to_flags``): the rule hands the section
  over as one value instead of one ``params`` entry and one shell word per key;
- the table of defaults in ``docs/settings.md`` (``markdown``), which a test keeps current, as it
  keeps ``workflow/schemas/config.schema.yaml`` naming the same keys.

Only light imports here: the Snakefile imports the settings classes at every parse.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar


def setting(default: Any, doc: str, *, choices: tuple | None = None) -> Any:
    """A dataclass field with its one default and its doc (lists get a fresh copy each time)."""
    metadata = {"doc": doc, "choices": choices}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _kind(annotation: Any) -> tuple[type, bool, bool]:
    """(element type, optional, list) of a field annotation such as ``int``, ``str | None`` or
    ``list[str]``."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _kind(inner[0])[0], True, False
    if typing.get_origin(annotation) is list:
        return args[0], False, True
    return annotation, False, False


class Settings:
    """Base of every stage's settings dataclass; ``section`` names its config section."""

    section: ClassVar[str] = ""
    # Keys of the section that the workflow itself reads (fan-out, per-method tables), not the
    # stage: the schema lists them beside the settings, and the stage never sees them.
    workflow_keys: ClassVar[tuple[str, ...]] = ()
    # Prefix of the section's flags where they share a command with another section's
    # (faces.diffusers.model -> --diffusers-model beside the faces flags).
    flag_prefix: ClassVar[str] = ""

    @classmethod
    def dest(cls, name: str) -> str:
        return cls.flag_prefix.replace("-", "_") + name

    @classmethod
    def flag(cls, name: str) -> str:
        return "--" + cls.dest(name).replace("_", "-")

    @classmethod
    def fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if "doc" in f.metadata]

    @classmethod
    def _types(cls) -> dict[str, Any]:
        return typing.get_type_hints(cls)

    @classmethod
    def default(cls, name: str) -> Any:
        field = next(f for f in cls.fields() if f.name == name)
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        return field.default

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        hints = cls._types()
        for field in cls.fields():
            kind, _, many = _kind(hints[field.name])
            default = cls.default(field.name)
            help_text = f"{field.metadata['doc']} (default: {default})"
            options: dict[str, Any] = {
                "default": default,
                "help": help_text,
                "dest": cls.dest(field.name),
            }
            if field.metadata["choices"]:
                options["choices"] = field.metadata["choices"]
            if kind is bool:
                options["action"] = argparse.BooleanOptionalAction
            else:
                options["type"] = kind
                if many:
                    options["nargs"] = "*"  # a list may be empty: the flag alone
            parser.add_argument(cls.flag(field.name), **options)

    @classmethod
    def values_from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {f.name: getattr(args, cls.dest(f.name)) for f in cls.fields()}

    @classmethod
    def from_args(cls, args: argparse.Namespace):
        """The settings a stage's command line gave."""
        return cls(**cls.values_from_args(args))

    @classmethod
    def from_mapping(cls, mapping: Mapping | None, where: str | None = None):
        """The settings of a config section; keys it leaves out take their defaults."""
        where = where or cls.section
        known = {f.name for f in cls.fields()}
        given = {k: v for k, v in (mapping or {}).items() if k not in cls.workflow_keys}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(
                f"config key {where}.{unknown[0]}: unknown setting; expected one of {sorted(known)}"
            )
        return cls(**given)

    def to_argv(self, exclude: tuple[str, ...] = ()) -> list[str]:
        """The stage's command-line words for these settings (unset ones left out)."""
        argv: list[str] = []
        for field in self.fields():
            value = getattr(self, field.name)
            if field.name in exclude:
                continue
            if value is None:
                if self.default(field.name) is not None:
                    # Left out, the flag would take its default: not what the config said.
                    raise ValueError(
                        f"config key {self.section}.{field.name}: null, but this setting has no "
                        f"unset state; expected a value (default {self.default(field.name)!r})"
                    )
                continue
            if isinstance(value, bool):
                flag = self.flag(field.name)
                argv.append(flag if value else "--no-" + flag[2:])
                continue
            argv += [
                self.flag(field.name),
                *map(str, value if isinstance(value, list) else [value]),
            ]
        return argv

    def to_flags(self, exclude: tuple[str, ...] = ()) -> str:
        """``to_argv`` quoted for a shell command, as a rule passes them."""
        return " ".join(shlex.quote(word) for word in self.to_argv(exclude))

    @classmethod
    def markdown(cls) -> str:
        """The section's table of settings: key, default, meaning."""
        rows = [f"### `{cls.section}`\n", "| key | default | meaning |", "|---|---|---|"]
        for field in cls.fields():
            default = cls.default(field.name)
            shown = "null" if default is None else repr(default).replace("|", "\\|")
            rows.append(f"| `{field.name}` | `{shown}` | {field.metadata['doc']} |")
        if cls.workflow_keys:
            keys = ", ".join(f"`{k}`" for k in cls.workflow_keys)
            rows.append(
                f"\nAlso in `{cls.section}`, read by the workflow itself: {keys} (config.yaml)."
            )
        return "\n".join(rows) + "\n"
