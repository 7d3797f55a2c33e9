"""Stage settings: one default per key, and the schema, config.yaml and docs in step with it."""

import argparse
import dataclasses
import shlex
from dataclasses import dataclass

import jsonschema
import pytest
import yaml

from salmu import settings_doc
from salmu.sections import SECTIONS, from_config, section_mapping
from salmu.settings import Settings, setting

from helpers import ROOT

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


@dataclass(frozen=True, kw_only=True)
class Toy(Settings):
    section = "toy"

    size: int = setting(3, "how many")
    name: str = setting("a b", "a name with a space")
    path: str | None = setting(None, "optional path")
    fast: bool = setting(False, "a switch")
    words: list[str] = setting(["x", "y z"], "a list")
    mode: str = setting("cpu", "one of two", choices=("cpu", "cuda"))


def parse(flags: str) -> Toy:
    parser = argparse.ArgumentParser()
    Toy.add_arguments(parser)
    return Toy(**Toy.values_from_args(parser.parse_args(shlex.split(flags))))


def test_a_sections_flags_parse_back_to_the_same_settings():
    section = {"size": 7, "path": "a dir/x", "fast": True, "words": ["one", "two three"]}
    assert parse(Toy.from_mapping(section).to_flags()) == Toy.from_mapping(section)
    assert parse("") == Toy()  # the flags' defaults are the class's own
    assert Toy.from_mapping(section).name == "a b"  # a key left out takes its default


def test_flags_leave_out_unset_and_excluded_settings():
    flags = Toy(size=2).to_flags(exclude=("mode",))
    assert "--path" not in flags and "--mode" not in flags
    assert "--no-fast" in flags and "--size 2" in flags


def test_an_unknown_key_names_the_section_and_the_key():
    with pytest.raises(ValueError, match=r"config key toy\.sise: unknown setting"):
        Toy.from_mapping({"sise": 2})


def test_workflow_keys_of_a_section_never_reach_the_stage():
    @dataclass(frozen=True, kw_only=True)
    class Fanned(Settings):
        section = "fanned"
        workflow_keys = ("seeds",)
        size: int = setting(1, "how many")

    assert Fanned.from_mapping({"seeds": [0, 1], "size": 2}) == Fanned(size=2)


def test_lists_are_not_shared_between_instances():
    assert Toy().words is not Toy().words


def test_a_bad_choice_is_an_argument_error():
    parser = argparse.ArgumentParser()
    Toy.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "tpu"])


def schema_properties(section: str) -> dict:
    found = SCHEMA
    for part in section.split("."):
        found = found["properties"][part]
    return found["properties"]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.section)
def test_the_schema_names_the_same_keys_and_accepts_every_default(section):
    properties = schema_properties(section.section)
    names = [f.name for f in section.fields()]
    assert sorted(properties) == sorted([*names, *section.workflow_keys])
    for name in names:
        rule = {"$defs": SCHEMA["$defs"], **properties[name]}
        jsonschema.validate(section.default(name), rule)  # raises on a default the schema refuses


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.section)
def test_config_yaml_documents_every_setting_at_its_default(section):
    documented = {
        k: v
        for k, v in section_mapping(CONFIG, section.section).items()
        if k not in section.workflow_keys
    }
    assert documented == dataclasses.asdict(section())


def test_docs_settings_md_is_generated_from_the_classes():
    assert (ROOT / "docs/settings.md").read_text() == settings_doc.markdown(), (
        "docs/settings.md is stale: run `salmu settings --out docs/settings.md`"
    )


def test_every_config_section_with_settings_has_a_class():
    """A section of config.yaml is either a settings class's or the workflow's (run, external,
    export, artifacts)."""
    nested = {s.section for s in SECTIONS}
    top = {name.split(".")[0] for name in nested}
    assert set(CONFIG) - top == {"run", "seed", "external", "export", "artifacts"}
    for section in SECTIONS:  # every mapping-valued key of a section is a nested section
        for key, value in section_mapping(CONFIG, section.section).items():
            if isinstance(value, dict) and key != "methods":
                assert f"{section.section}.{key}" in nested


def test_a_nested_section_is_read_from_its_dotted_path():
    settings = from_config({"faces": {"filter": {"min_images": 3}, "size": 32}})
    assert settings["faces.filter"].min_images == 3
    assert settings["faces"].size == 32
    assert settings["retain.commonpool"].processes == 16  # absent: the defaults
    with pytest.raises(ValueError, match=r"config key faces\.filter\.min_image: unknown"):
        from_config({"faces": {"filter": {"min_image": 3}}})


def test_a_prefixed_section_parses_its_own_flags_back():
    from salmu.sections.faces import FaceDiffusersSettings

    parser = argparse.ArgumentParser()
    FaceDiffusersSettings.add_arguments(parser)
    given = FaceDiffusersSettings(model="a/b", steps=3)
    args = parser.parse_args(shlex.split(given.to_flags()))
    assert "--diffusers-steps 3" in given.to_flags()
    assert FaceDiffusersSettings.from_args(args) == given


def test_an_empty_list_is_passed_as_a_flag_alone():
    assert parse(Toy(words=[]).to_flags()).words == []


def test_null_where_a_setting_has_no_unset_state_is_an_error():
    with pytest.raises(ValueError, match=r"config key toy\.size: null"):
        Toy(size=None).to_flags()


def test_a_methods_flags_carry_its_lr_params_and_import_path():
    from salmu.sections.unlearn import method_flags

    words = shlex.split(method_flags({"lr": 3e-5, "params": {"retain_weight": 0.5, "name": "a b"}}))
    assert words == ["--lr", "3e-05", "--param", "retain_weight=0.5", "--param", 'name="a b"']
    assert method_flags({"params": {"alpha": 10.0}}) == "--param alpha=10.0"  # ssd: no lr
    custom = method_flags({"lr": 1e-4, "import_path": "pkg.mod:Method"})
    assert custom.endswith("--import-path pkg.mod:Method")
