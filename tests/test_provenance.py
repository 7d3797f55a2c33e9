"""`salmu record` writes what Snakemake does not keep; `salmu audit` walks it and flags staleness."""

import json
import re

import pytest

from salmu.audit import find_record
from salmu.cli import main
from salmu.provenance import code_state, record_path, store_resolved_config

from helpers import ROOT

LOCALES = str(ROOT / "resources/locales.yaml")
PERSONAS = "results/t/data/personas.parquet"
METADATA = "results/t/data/identities_metadata.json"
FACES = "results/t/data/faces.parquet"


def personas_command(n=4):
    return [
        *("salmu", "personas", "--n-identities", str(n), "--locales", "en_US", "fr_FR"),
        *("--locales-table", LOCALES, "--seed", "7"),
        *("--out-parquet", PERSONAS, "--out-metadata", METADATA),
    ]


def faces_command():
    return [
        *("salmu", "faces", "--personas", PERSONAS, "--images-per-identity", "2"),
        *("--size", "32", "--seed", "7", "--out", FACES),
    ]


def record(rule, inputs, outputs, command):
    return main(
        ["record", f"--rule={rule}", "--inputs", *inputs, "--outputs", *outputs, "--", *command]
    )


@pytest.fixture
def recorded_run(tmp_path, monkeypatch):
    """personas -> faces, both recorded, in a results/ tree of their own."""
    monkeypatch.chdir(tmp_path)
    config = store_resolved_config({"seed": 7, "run": "t"}, tmp_path / "configs")
    monkeypatch.setenv("SALMU_CONFIG_FILE", config)
    assert record("personas", [], [PERSONAS, METADATA], personas_command()) == 0
    assert record("faces", [PERSONAS], [FACES], faces_command()) == 0
    return tmp_path


def test_a_record_holds_hashes_code_environment_config_and_seeds(recorded_run):
    path = record_path(FACES)
    assert path.as_posix() == "results/t/provenance/data/faces.parquet.json"
    data = json.loads(path.read_text())
    assert data["rule"] == "faces" and data["command"] == faces_command()
    assert (
        data["inputs"][PERSONAS]["sha256"]
        == json.loads(record_path(PERSONAS).read_text())["outputs"][PERSONAS]["sha256"]
    )
    assert data["outputs"][FACES]["kind"] == "file" and len(data["outputs"][FACES]["sha256"]) == 64
    assert data["seeds"] == {"config.seed": 7, "--seed": "7"}
    assert data["code"] == code_state() and data["code"]["lockfile_sha256"]
    assert data["environment"]["packages"]["torch"] and data["environment"]["packages"]["snakemake"]
    config = json.loads((recorded_run / data["config_file"]).read_text())
    assert config == {"seed": 7, "run": "t"}
    assert data["host"] and data["start"] <= data["end"]
    assert data["memory"]["peak_rss_mb"] > 50  # python, polars and the stage, in this process
    # Both outputs of the personas job carry the same record.
    assert record_path(METADATA).read_text() == record_path(PERSONAS).read_text()


def test_a_failed_job_leaves_no_record_and_drops_the_old_one(recorded_run):
    assert record_path(FACES).exists()
    failing = faces_command()
    failing[failing.index("--images-per-identity") + 1] = "0"  # rejected by the stage
    with pytest.raises(SystemExit) as exit_info:
        record("faces", [PERSONAS], [FACES], failing)
    assert exit_info.value.code == 2  # the stage's own status
    assert not record_path(FACES).exists()


def audit(*args):
    return main(["audit", *args])


def lineage(capsys, path):
    capsys.readouterr()
    assert audit(path, "--json") == 0
    return json.loads(capsys.readouterr().out)


def flags(node):
    found = list(node["flags"])
    for child in node["inputs"]:
        found += flags(child)
    return found


def test_audit_walks_down_to_the_persona_seed(recorded_run, capsys):
    tree = lineage(capsys, FACES)
    assert tree["rule"] == "faces" and tree["inputs"][0]["rule"] == "personas"
    assert not [f for f in flags(tree) if f != "dirty tree"]
    capsys.readouterr()
    audit(FACES)
    text = capsys.readouterr().out
    assert "personas" in text and "--seed=7" in text
    assert audit(str(recorded_run / FACES)) == 0  # an absolute path finds the same record
    assert f"source: --locales-table {LOCALES}" in text


def test_audit_flags_a_changed_input_and_a_modified_output(recorded_run, capsys):
    # Regenerate personas with another size, without rerunning faces.
    assert record("personas", [], [PERSONAS, METADATA], personas_command(n=5)) == 0
    tree = lineage(capsys, FACES)
    assert f"input changed since: {PERSONAS}" in tree["flags"]
    # A hand-edited output no longer matches its own record.
    with open(FACES, "ab") as handle:
        handle.write(b"tampered")
    tree = lineage(capsys, FACES)
    assert "modified since recorded" in tree["flags"]
    with pytest.raises(SystemExit) as exit_info:
        audit(FACES, "--check")
    assert exit_info.value.code == 1


def test_a_file_inside_a_directory_output_finds_the_directory_record(recorded_run):
    shards = recorded_run / "results/t/shards/retain"
    shards.mkdir(parents=True)
    (shards / "00000.tar").write_bytes(b"x")
    record_file = record_path("results/t/shards/retain")
    record_file.parent.mkdir(parents=True, exist_ok=True)
    record_file.write_text(json.dumps({"rule": "shards"}))
    owner, found = find_record(shards.relative_to(recorded_run) / "00000.tar")
    assert owner.as_posix() == "results/t/shards/retain" and found["rule"] == "shards"


def test_audit_of_an_unrecorded_file_names_where_the_record_should_be(recorded_run, capsys):
    (recorded_run / "loose.txt").write_text("hand made")
    assert audit("loose.txt") == 2
    assert ".provenance/loose.txt.json" in capsys.readouterr().err


def test_every_recorded_job_carries_its_own_rules_name():
    """recorded() is handed the rule's name (Snakemake's {rule} trips `snakemake --lint`): each
    rule that records names itself, so a record's ``rule`` is the rule that ran."""
    checked = 0
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            rule = block.split(":", 1)[0]
            named = re.search(r'recorded\(\s*"([^"]+)"', block)
            if named:
                assert named.group(1) == rule, f"{smk.name}: rule {rule} records {named.group(1)}"
                checked += 1
    assert checked >= 20


def test_peak_memory_is_the_high_water_mark():
    """The record's peak is the kernel's high-water mark: memory freed before the job ends
    still counts."""
    from salmu.provenance import peak_memory

    before = peak_memory()["peak_rss_mb"]
    size_mb = int(before) + 300  # more than this process has ever held
    block = bytearray(size_mb * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    del block
    assert peak_memory()["peak_rss_mb"] >= size_mb * 0.9
