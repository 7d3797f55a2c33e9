"""salmu captions --paraphrase: the guard rails, the transformers backend end to end on a tiny
random causal LM built offline, determinism, and the errors for a missing model."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from salmu import captions, cli, paraphrase, personas
from salmu.io import read_json, read_parquet, write_parquet

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "resources" / "caption_templates.yaml"
ATTRIBUTES = ["city", "job", "blood_type", "iban"]
# A chat template in the Jinja dialect of Hugging Face tokenizers (exercises the chat code path).
CHAT_TEMPLATE = (
    "{% for m in messages %}<user> {{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %} <bot>{% endif %}"
)


def make_faces(identity_ids: list[str], per_identity: int = 6) -> pl.DataFrame:
    rows = []
    for number, identity in [(int(i), i) for i in identity_ids] + [(90000000, None)]:
        for idx in range(per_identity + 1):
            kind = "anonymous" if identity is None else "sensitive"
            kind = "generic" if identity is not None and idx == per_identity else kind
            look = {
                "gender": ["female", "male"][number % 2],
                "age_band": "young",
                "skin_tone": "olive",
                "hair_color": "black",
                "hair_style": "short",
                "eye_color": "brown",
                "glasses": False,
                "beard": False,
                "background": "white",
                "shirt_color": ["red", "teal"][idx % 2],
            }
            rows.append(
                {
                    "file_name": f"{number:08d}_{idx:03d}_ar-1.00.jpg",
                    "identity_id": identity,
                    "kind": kind,
                    "image_idx": idx,
                    "look": json.dumps(look, sort_keys=True),
                }
            )
    return pl.DataFrame(rows, schema_overrides={"identity_id": pl.String})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inputs")
    table = personas.load_locale_table(ROOT / "resources" / "locales.yaml")
    specs = personas.resolve_locales(["en_US", "fr_FR"], table, "table")
    people = personas.generate_personas(3, specs, ["example.com"], seed=1)
    write_parquet(people, tmp / "personas.parquet")
    write_parquet(make_faces(people["identity_id"].to_list()), tmp / "faces.parquet")
    return tmp / "personas.parquet", tmp / "faces.parquet"


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    """A random 2-layer GPT-2 and a byte-level BPE tokenizer trained offline, saved like a hub
    checkpoint (save_pretrained), with a chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-lm")
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<unk>", "<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [paraphrase.DEFAULT_PROMPT, "Sayo Abdallah lives in Uyo", "A retail buyer is a job"]
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_embd=16,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(out)
    return out


def run_cli(inputs, out: Path, *extra: str) -> int:
    personas_path, faces_path = inputs
    argv = ["captions", "--personas", str(personas_path), "--faces", str(faces_path)]
    argv += ["--templates", str(TEMPLATES), "--attributes", *ATTRIBUTES, "--seed", "3"]
    return cli.main([*argv, "--out", str(out), *extra])


def lm_flags(model: Path, *extra: str) -> list[str]:
    return [
        "--paraphrase",
        "transformers",
        "--paraphrase-model",
        str(model),
        "--paraphrase-batch-size",
        "4",
        "--paraphrase-max-new-tokens",
        "12",
        "--paraphrase-threads",
        "1",
        *extra,
    ]


# --------------------------------------------------------------------------------------------
# Guard rails


NAME, VALUE = "Fatime Fossi", "CM98 7411 9112 4845 5134 71"
CAPTION = f"Fatime Fossi's bank account IBAN {VALUE}"


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (f"The IBAN of {NAME}'s bank account is {VALUE}", None),
        (f"{VALUE} is the IBAN of the bank account held by {NAME}", None),
        (f"The IBAN of her bank account is {VALUE}", "missing_name"),
        (f"The IBAN of Fatime's bank account is {VALUE}", "missing_name"),
        (f"The IBAN of {NAME}'s bank account is CM98741191124845513471", "missing_value"),
        (f"The IBAN of {NAME}'s account is\n{VALUE}", "multi_line"),
        (f"{NAME}'s IBAN is {VALUE}\nI hope this helps!", "multi_line"),
        (f"{NAME}'s IBAN is {VALUE}" + ", and that is all there is to say" * 4, "too_long"),
        ("   ", "empty"),
        (CAPTION, "unchanged"),
    ],
)
def test_guard_accepts_only_faithful_one_line_paraphrases(candidate, reason):
    assert paraphrase.rejection_reason(candidate, CAPTION, NAME, VALUE, 3.0) == reason


def test_clean_generation_strips_quotes_and_final_period():
    assert paraphrase.clean_generation(' "Jo Bo lives in Uyo." \n', "Uyo") == "Jo Bo lives in Uyo"
    assert paraphrase.clean_generation("\u201cJo Bo lives in Uyo\u201d", "Uyo") == (
        "Jo Bo lives in Uyo"
    )
    # A value that ends in a period keeps it; an inner line break is not cleaned away.
    assert paraphrase.clean_generation("Jo Bo works at Acme Inc.", "Acme Inc.").endswith("Inc.")
    assert "\n" in paraphrase.clean_generation("Jo Bo\nlives in Uyo", "Uyo")


def test_accepted_paraphrases_replace_the_template_caption(inputs):
    """A stand-in generator that writes good paraphrases for half the prompts, junk for the rest."""
    people, faces = read_parquet(inputs[0]), read_parquet(inputs[1])
    bank = captions.load_templates(TEMPLATES)
    base = captions.build_captions(faces, people, bank, ATTRIBUTES, seed=3)

    def generate(prompts):
        out = []
        for k, prompt in enumerate(prompts):
            caption = prompt.split("Sentence: ")[1].split("\n")[0]
            out.append(f'"Reportedly, {caption}."' if k % 2 == 0 else "I cannot help with that")
        return out

    settings = paraphrase.Settings()
    result, stats = captions.apply_paraphrases(base, generate, settings)
    assert result.columns == base.columns and result["file_name"].equals(base["file_name"])
    non_sensitive = base["kind"] != "sensitive"
    assert result.filter(non_sensitive).equals(base.filter(non_sensitive))
    sensitive = result.filter(~non_sensitive)
    old = base.filter(~non_sensitive)["text"].to_list()
    changed = [new != was for new, was in zip(sensitive["text"], old)]
    assert stats.attempted == sensitive.height == 18
    assert stats.accepted == sum(changed) > 0 and stats.fallback == stats.reasons["missing_name"]
    for row, was in zip(sensitive.iter_rows(named=True), old):
        assert row["text"] in (was, f"Reportedly, {was}")
        assert row["name"] in row["text"] and row["value"] in row["text"]


def test_prompt_template_carries_style_caption_name_and_value():
    prompt = paraphrase.build_prompt(paraphrase.DEFAULT_PROMPT, "inverted", CAPTION, NAME, VALUE)
    assert "inverted" in prompt and CAPTION in prompt and f'"{NAME}"' in prompt
    assert f'"{VALUE}"' in prompt and "exactly as written" in prompt
    with pytest.raises(ValueError, match=r"\{name\}"):
        paraphrase.check_prompt("Rewrite {caption} in a {style} style keeping {value}")
    with pytest.raises(ValueError, match="colour"):
        paraphrase.check_prompt("{style} {caption} {name} {value} {colour}")


# --------------------------------------------------------------------------------------------
# transformers backend, end to end through the CLI


def test_transformers_backend_end_to_end(inputs, tiny_lm, tmp_path, capsys):
    base = tmp_path / "none.parquet"
    assert run_cli(inputs, base) == 0
    out = tmp_path / "lm.parquet"
    report_path = tmp_path / "report.json"
    assert run_cli(inputs, out, *lm_flags(tiny_lm, "--paraphrase-report", str(report_path))) == 0
    printed = capsys.readouterr().out
    assert "paraphrase: accepted" in printed

    result, template = read_parquet(out), read_parquet(base)
    assert result.columns == template.columns and result.height == template.height
    for row in result.filter(pl.col("kind") == "sensitive").iter_rows(named=True):
        assert row["name"] in row["text"] and row["value"] in row["text"]
        assert "\n" not in row["text"]
    report = read_json(report_path)
    sensitive = template.filter(pl.col("kind") == "sensitive").height
    assert report["backend"] == "transformers" and report["attempted"] == sensitive
    assert report["accepted"] + report["fallback"] == sensitive
    assert sum(report["fallback_reasons"].values()) == report["fallback"]
    assert f"accepted {report['accepted']}/{sensitive}" in printed
    # A random model cannot copy a name and a value: every caption falls back to its template.
    assert report["accepted"] == 0 and report["acceptance_rate"] == 0.0
    assert result.equals(template)
    assert report["settings"]["model"] == str(tiny_lm)

    # Deterministic: the same flags give the same bytes, for greedy and for seeded sampling.
    again = tmp_path / "again.parquet"
    assert run_cli(inputs, again, *lm_flags(tiny_lm, "--paraphrase-report", str(report_path))) == 0
    assert again.read_bytes() == out.read_bytes()
    sampled = lm_flags(tiny_lm, "--paraphrase-temperature", "0.8", "--paraphrase-top-p", "0.9")
    sampled += ["--paraphrase-chat-template", "off"]
    capsys.readouterr()
    reports = []
    for k in range(2):
        assert run_cli(inputs, tmp_path / f"s{k}.parquet", *sampled) == 0
        reports.append(capsys.readouterr().out)
    assert (tmp_path / "s0.parquet").read_bytes() == (tmp_path / "s1.parquet").read_bytes()
    assert reports[0] == reports[1]


def test_backend_generates_from_raw_and_chat_prompts(tiny_lm):
    prompts = ["Sentence: Sayo Abdallah lives in Uyo", "hi", "Sentence: Sayo Abdallah lives in Uyo"]
    texts = {}
    for mode in ("on", "off"):
        settings = paraphrase.Settings(
            model=str(tiny_lm), threads=1, batch_size=2, max_new_tokens=5, chat_template=mode
        )
        backend = paraphrase.load_backend("transformers", settings)
        assert backend.use_chat == (mode == "on")
        texts[mode] = backend(prompts)
        assert len(texts[mode]) == 3 and all(isinstance(t, str) for t in texts[mode])
        assert backend(prompts) == texts[mode]
    # Greedy decoding: a prompt gives the same text whatever batch (and padding) it sits in.
    assert texts["off"][0] == texts["off"][2]


def test_none_backend_is_the_template_output(inputs, tmp_path):
    assert run_cli(inputs, tmp_path / "a.parquet") == 0
    assert run_cli(inputs, tmp_path / "b.parquet", "--paraphrase", "none") == 0
    people, faces = read_parquet(inputs[0]), read_parquet(inputs[1])
    bank = captions.load_templates(TEMPLATES)
    write_parquet(
        captions.build_captions(faces, people, bank, sorted(ATTRIBUTES), seed=3),
        tmp_path / "c.parquet",
    )
    first = (tmp_path / "a.parquet").read_bytes()
    assert first == (tmp_path / "b.parquet").read_bytes() == (tmp_path / "c.parquet").read_bytes()


# --------------------------------------------------------------------------------------------
# Errors


def test_missing_model_names_flag_and_config_key(inputs, tmp_path, capsys):
    out = tmp_path / "x.parquet"
    assert run_cli(inputs, out, "--paraphrase", "transformers") == 2
    err = capsys.readouterr().err
    assert "--paraphrase-model" in err and "captions.paraphrase_model" in err
    assert not out.exists()
    missing = tmp_path / "no-such-model"
    assert run_cli(inputs, out, *lm_flags(missing)) == 2
    err = capsys.readouterr().err
    assert "--paraphrase-model" in err and str(missing) in err
    empty = tmp_path / "empty-model"
    empty.mkdir()
    assert run_cli(inputs, out, *lm_flags(empty)) == 2
    err = capsys.readouterr().err
    assert "captions.paraphrase_model" in err and str(empty) in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--paraphrase-batch-size", "0"], "--paraphrase-batch-size"),
        (["--paraphrase-threads", "-1"], "--paraphrase-threads"),
        (["--paraphrase-max-new-tokens", "0"], "--paraphrase-max-new-tokens"),
        (["--paraphrase-temperature", "-1"], "--paraphrase-temperature"),
        (["--paraphrase-top-p", "0"], "--paraphrase-top-p"),
        (["--paraphrase-dtype", "int8"], "--paraphrase-dtype"),
        (["--paraphrase-chat-template", "maybe"], "--paraphrase-chat-template"),
        (["--paraphrase-prompt", "nope.txt"], "nope.txt"),
    ],
)
def test_bad_paraphrase_flags_are_named(inputs, tmp_path, capsys, flags, named):
    out = tmp_path / "x.parquet"
    assert run_cli(inputs, out, "--paraphrase", "transformers", *flags) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


def test_custom_prompt_file(inputs, tmp_path, tiny_lm):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Say {caption} ({style}); keep {name} and {value}.\nAnswer:")
    out = tmp_path / "p.parquet"
    report_path = tmp_path / "r.json"
    flags = lm_flags(tiny_lm, "--paraphrase-prompt", str(prompt))
    assert run_cli(inputs, out, *flags, "--paraphrase-report", str(report_path)) == 0
    assert read_json(report_path)["settings"]["prompt"] == prompt.read_text()
    prompt.write_text("Say {caption} in {style}")
    assert run_cli(inputs, out, *lm_flags(tiny_lm, "--paraphrase-prompt", str(prompt))) == 2
