"""Paraphrase backends for the sensitive captions (docs/protocol.md §1.1 step 5: Gemma3-12B rewrote the template
captions into 5 linguistic variants).

Backends:
- ``none``: the template captions as they are (the default; no model, no torch import).
- ``transformers``: any causal text-generation model from a hub id or a local directory
  (``AutoModelForCausalLM`` + ``AutoTokenizer``), e.g. ``google/gemma-3-12b-it``. Each sensitive
  caption is rewritten in its own style (the five styles of the template bank) by a prompt that gives
  the style name and a hint, the template sentence, and the instruction to keep the persona's name
  and the attribute value verbatim. Prompts go through the tokenizer's chat template when it has one.

Guard rails (our interpretation; the paper's filtering is not public): a generated paraphrase is
accepted only if, after light clean-up (surrounding whitespace and quotes, one trailing period), it
is non-empty, one line, contains the name and the value verbatim (case-sensitive), is at most
``max_length_ratio`` times as long as the template caption, and differs from it. Otherwise the
template caption is kept. Every outcome is counted; the acceptance rate is printed and reported.

Determinism: greedy decoding by default (temperature 0), so the output depends only on the prompts
(identical prompts are generated once). With temperature > 0, sampling is seeded per batch from the
pipeline seed (``derive_seed(seed, "captions", "paraphrase", batch_index)``) in a forked torch RNG, so
a run is reproducible for a fixed batch size, device and library versions.
"""

from __future__ import annotations

import copy
import string
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from salmu.sections.captions import CHAT_TEMPLATE_MODES
from salmu.sections.captions import PARAPHRASE_BACKENDS as BACKENDS
from salmu.sections.captions import PARAPHRASE_DTYPES as DTYPES
from salmu.seeding import derive_seed

# One hint per linguistic style of the template bank (resources/caption_templates.yaml).
STYLE_HINTS = {
    "plain": "short and plain, a simple statement of fact",
    "formal": "formal, as in an official letter",
    "records": "as if quoted from an official record or registry",
    "conversational": "casual and conversational, as in everyday speech",
    "inverted": "starting with the value rather than with the name",
}
DEFAULT_PROMPT = (
    "Rewrite the sentence below in a {style} style ({style_hint}). "
    'Keep the name "{name}" and the value "{value}" exactly as written, character for character. '
    "Do not add any other fact. Answer with the rewritten sentence only, on a single line.\n"
    "Sentence: {caption}\n"
    "Rewritten sentence:"
)
PROMPT_FIELDS = frozenset(("style", "style_hint", "caption", "name", "value"))
PROMPT_REQUIRED = ("style", "caption", "name", "value")
REASONS = ("empty", "multi_line", "missing_name", "missing_value", "too_long", "unchanged")
QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "`": "`"}
MODEL_FLAG = "--paraphrase-model (config key captions.paraphrase_model)"
DEVICE_FLAG = "--paraphrase-device (config key captions.paraphrase_device)"


# --------------------------------------------------------------------------------------------
# Settings and prompts


@dataclass(frozen=True)
class Settings:
    """Everything the transformers backend needs; mirrors the ``--paraphrase-*`` flags."""

    model: str | None = None
    device: str = "cpu"
    threads: int = 0
    batch_size: int = 8
    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    dtype: str = "auto"
    chat_template: str = "auto"
    prompt: str = DEFAULT_PROMPT
    max_length_ratio: float = 3.0
    seed: int = 0


def check_prompt(template: str, where: str = "--paraphrase-prompt") -> str:
    """Validate a prompt template: str.format placeholders from PROMPT_FIELDS, with the required
    ones (style, caption, name, value) present."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as err:
        raise ValueError(f"{where}: malformed prompt template ({err})") from None
    unknown = sorted(fields - PROMPT_FIELDS)
    if unknown:
        raise ValueError(
            f"{where}: unknown placeholder(s) {unknown}; allowed: {sorted(PROMPT_FIELDS)}"
        )
    missing = [f"{{{f}}}" for f in PROMPT_REQUIRED if f not in fields]
    if missing:
        raise ValueError(f"{where}: the prompt template needs {', '.join(missing)}")
    return template


def load_prompt(path: str | Path | None) -> str:
    if path is None:
        return DEFAULT_PROMPT
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--paraphrase-prompt: {path}: file not found")
    return check_prompt(path.read_text(), f"--paraphrase-prompt {path}")


def build_prompt(template: str, style: str, caption: str, name: str, value: str) -> str:
    hint = STYLE_HINTS.get(style, style)
    return template.format(style=style, style_hint=hint, caption=caption, name=name, value=value)


def check_settings(backend: str, settings: Settings) -> None:
    """Validate the flags before any input is read or any model is loaded."""
    if backend not in BACKENDS:
        raise ValueError(f"--paraphrase: unknown backend {backend!r}; available: {BACKENDS}")
    if settings.threads < 0:
        raise ValueError(f"--paraphrase-threads must be >= 0, got {settings.threads}")
    if settings.batch_size < 1:
        raise ValueError(f"--paraphrase-batch-size must be >= 1, got {settings.batch_size}")
    if settings.max_new_tokens < 1:
        raise ValueError(f"--paraphrase-max-new-tokens must be >= 1, got {settings.max_new_tokens}")
    if settings.temperature < 0:
        raise ValueError(f"--paraphrase-temperature must be >= 0, got {settings.temperature}")
    if not 0 < settings.top_p <= 1:
        raise ValueError(f"--paraphrase-top-p must be within (0, 1], got {settings.top_p}")
    if settings.max_length_ratio <= 0:
        raise ValueError(
            f"--paraphrase-max-length-ratio must be > 0, got {settings.max_length_ratio}"
        )
    if settings.dtype not in DTYPES:
        raise ValueError(f"--paraphrase-dtype: {settings.dtype!r} is not one of {DTYPES}")
    if settings.chat_template not in CHAT_TEMPLATE_MODES:
        raise ValueError(
            f"--paraphrase-chat-template: {settings.chat_template!r} is not one of "
            f"{CHAT_TEMPLATE_MODES}"
        )
    check_prompt(settings.prompt)
    # "None"/"null": what a rule renders for an unset config value.
    if backend == "transformers" and (settings.model or "").strip() in ("", "None", "null"):
        raise ValueError(
            f"--paraphrase transformers needs a model: set {MODEL_FLAG} to a hub id "
            "(e.g. google/gemma-3-12b-it) or a local model directory"
        )


# --------------------------------------------------------------------------------------------
# Guard rails


def clean_generation(raw: str, value: str) -> str:
    """Light, deterministic clean-up of a generation: surrounding whitespace, one pair of
    surrounding quotes, and one trailing period (the released captions have none) unless the text
    ends with the value itself ("... works at Acme Inc.")."""
    text = raw.strip()
    if len(text) >= 2 and QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    if text.endswith(".") and not text.endswith(value):
        text = text[:-1].rstrip()
    return text


def rejection_reason(
    candidate: str, caption: str, name: str, value: str, max_length_ratio: float = 3.0
) -> str | None:
    """Why a (cleaned) candidate paraphrase is rejected, or None if it is accepted."""
    if not candidate.strip():
        return "empty"
    if "\n" in candidate or "\r" in candidate:
        return "multi_line"
    if name not in candidate:
        return "missing_name"
    if value not in candidate:
        return "missing_value"
    if len(candidate) > max_length_ratio * len(caption):
        return "too_long"
    if candidate == caption:
        return "unchanged"
    return None


# --------------------------------------------------------------------------------------------
# Applying a backend to the captions


@dataclass
class Stats:
    attempted: int = 0
    accepted: int = 0
    unique_prompts: int = 0
    reasons: Counter = field(default_factory=Counter)
    by_style: dict = field(default_factory=dict)
    by_data_field: dict = field(default_factory=dict)

    @property
    def fallback(self) -> int:
        return self.attempted - self.accepted

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.attempted if self.attempted else 0.0

    def add(self, style: str, data_field: str, reason: str | None) -> None:
        self.attempted += 1
        self.accepted += reason is None
        if reason is not None:
            self.reasons[reason] += 1
        for table, key in ((self.by_style, style), (self.by_data_field, data_field)):
            entry = table.setdefault(key, {"attempted": 0, "accepted": 0})
            entry["attempted"] += 1
            entry["accepted"] += reason is None

    def as_dict(self) -> dict:
        return {
            "attempted": self.attempted,
            "accepted": self.accepted,
            "fallback": self.fallback,
            "acceptance_rate": round(self.acceptance_rate, 6),
            "unique_prompts": self.unique_prompts,
            "fallback_reasons": {r: self.reasons.get(r, 0) for r in REASONS},
            "by_style": dict(sorted(self.by_style.items())),
            "by_data_field": dict(sorted(self.by_data_field.items())),
        }

    def summary(self) -> str:
        reasons = {r: n for r, n in sorted(self.reasons.items())}
        return (
            f"paraphrase: accepted {self.accepted}/{self.attempted} "
            f"({100 * self.acceptance_rate:.1f}%), fell back to the template caption "
            f"{self.fallback} times {reasons}"
        )


Generate = Callable[[Sequence[str]], list[str]]


def paraphrase_rows(
    rows: Sequence[dict], generate: Generate, prompt: str, max_length_ratio: float, dedupe: bool
) -> tuple[list[str], Stats]:
    """Paraphrase sensitive caption rows (dicts with text, name, value, style, data_field).

    Returns the new text of every row (the paraphrase if the guard accepts it, the template
    caption otherwise) and the counts. With ``dedupe`` (greedy decoding), identical prompts are
    generated once.
    """
    prompts = [build_prompt(prompt, r["style"], r["text"], r["name"], r["value"]) for r in rows]
    unique = list(dict.fromkeys(prompts)) if dedupe else prompts
    generated = generate(unique)
    if len(generated) != len(unique):
        raise RuntimeError(f"paraphrase backend returned {len(generated)} texts for {len(unique)}")
    if dedupe:
        by_prompt = dict(zip(unique, generated))
        generated = [by_prompt[p] for p in prompts]
    stats = Stats(unique_prompts=len(unique))
    texts = []
    for row, raw in zip(rows, generated):
        candidate = clean_generation(raw, row["value"])
        reason = rejection_reason(
            candidate, row["text"], row["name"], row["value"], max_length_ratio
        )
        stats.add(row["style"], row["data_field"], reason)
        texts.append(row["text"] if reason else candidate)
    return texts, stats


# --------------------------------------------------------------------------------------------
# transformers backend


class TransformersBackend:
    """A causal LM from a hub id or local path; ``generate(prompts)`` returns one text per prompt."""

    def __init__(self, settings: Settings):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.settings = settings
        self.torch = torch
        try:
            self.device = torch.device(settings.device)
        except RuntimeError as err:
            raise ValueError(
                f"{DEVICE_FLAG}: {settings.device!r} is not a device ({err})"
            ) from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"{DEVICE_FLAG}: {settings.device!r} requested but CUDA is unavailable"
            )
        if settings.threads > 0:  # stay inside the scheduler's allotment
            torch.set_num_threads(settings.threads)
        dtype = settings.dtype if settings.dtype == "auto" else getattr(torch, settings.dtype)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(settings.model)
            self.model = AutoModelForCausalLM.from_pretrained(settings.model, dtype=dtype)
        except (OSError, ValueError, KeyError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(
                f"{MODEL_FLAG}: cannot load a text-generation model from {settings.model!r} "
                f"({first}); without internet, point it at a local model directory"
            ) from None
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"  # decoder-only batches are padded on the left
        if self.tokenizer.pad_token is None:
            if self.tokenizer.eos_token is None:
                raise ValueError(
                    f"{MODEL_FLAG}: {settings.model!r}: tokenizer has no pad/eos token"
                )
            self.tokenizer.pad_token = self.tokenizer.eos_token
        has_chat = bool(getattr(self.tokenizer, "chat_template", None))
        if settings.chat_template == "on" and not has_chat:
            raise ValueError(
                f"--paraphrase-chat-template on: {settings.model!r} has no chat template"
            )
        self.use_chat = has_chat and settings.chat_template != "off"
        self.generation_config = self._generation_config()

    def _generation_config(self):
        s = self.settings
        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = s.max_new_tokens
        config.max_length = None
        config.num_beams = 1
        config.do_sample = s.temperature > 0
        config.temperature = s.temperature if config.do_sample else None
        config.top_p = s.top_p if config.do_sample else None
        config.top_k = None
        if config.pad_token_id is None:
            config.pad_token_id = self.tokenizer.pad_token_id
        return config

    def _encode(self, prompts: Sequence[str]):
        if self.use_chat:
            texts = [
                self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
                )
                for p in prompts
            ]
            # The chat template already writes the BOS token.
            return self.tokenizer(
                texts, return_tensors="pt", padding=True, add_special_tokens=False
            )
        return self.tokenizer(list(prompts), return_tensors="pt", padding=True)

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        torch, s = self.torch, self.settings
        out: list[str] = []
        n_batches = (len(prompts) + s.batch_size - 1) // s.batch_size
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        for b in range(n_batches):
            batch = prompts[b * s.batch_size : (b + 1) * s.batch_size]
            enc = self._encode(batch).to(self.device)
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(derive_seed(s.seed, "captions", "paraphrase", b) % 2**63)
                ids = self.model.generate(**enc, generation_config=self.generation_config)
            new = ids[:, enc["input_ids"].shape[1] :].cpu()
            out.extend(self.tokenizer.batch_decode(new, skip_special_tokens=True))
            if (b + 1) % 50 == 0 or b + 1 == n_batches:
                print(f"paraphrase: batch {b + 1}/{n_batches}", file=sys.stderr, flush=True)
        return out


def load_backend(backend: str, settings: Settings) -> Generate | None:
    """The generate function of a backend (None for ``none``); raises ValueError on a bad model."""
    check_settings(backend, settings)
    if backend == "none":
        return None
    model = str(settings.model)
    path = Path(model).expanduser()
    looks_local = model.startswith((".", "/", "~")) or path.exists()
    if looks_local and not path.is_dir():
        raise ValueError(f"{MODEL_FLAG}: {model}: local model directory not found")
    return TransformersBackend(settings)


def report(backend: str, settings: Settings, stats: Stats | None) -> dict:
    """The paraphrase report (deterministic: settings and counts, no timestamps)."""
    body: dict = {"backend": backend}
    if backend != "none":
        body["settings"] = {
            "model": settings.model,
            "device": settings.device,
            "threads": settings.threads,
            "batch_size": settings.batch_size,
            "max_new_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "dtype": settings.dtype,
            "chat_template": settings.chat_template,
            "max_length_ratio": settings.max_length_ratio,
            "prompt": settings.prompt,
            "seed": settings.seed,
        }
    body.update((stats or Stats()).as_dict())
    return body
