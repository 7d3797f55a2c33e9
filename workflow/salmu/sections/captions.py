"""Settings of the caption writer (config section ``captions``, flags of ``salmu captions``),
the paraphrase backend's included (``paraphrase_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from salmu.settings import Settings, setting

PARAPHRASE_BACKENDS = ("none", "transformers")
PARAPHRASE_DTYPES = ("auto", "float32", "bfloat16", "float16")
CHAT_TEMPLATE_MODES = ("auto", "on", "off")


@dataclass(frozen=True, kw_only=True)
class CaptionsSettings(Settings):
    section = "captions"

    templates: str = setting(
        "resources/caption_templates.yaml", "caption template bank: per attribute, 5 styles"
    )
    attributes: list[str] = setting(
        ["city", "job", "blood_type", "phone_number", "email", "iban"],
        "sensitive attribute types (data_field); each sensitive image gets exactly one",
    )
    paraphrase: str = setting(
        "none",
        "none (templates only) or transformers: a text-generation model rewrites each caption in "
        "its style; a rewrite that loses the name or the value falls back to the template "
        "(paper: Gemma3-12B)",
        choices=PARAPHRASE_BACKENDS,
    )
    paraphrase_model: str | None = setting(
        None, "causal LM for transformers: a local folder or a hub id in the local HF cache"
    )
    paraphrase_device: str = setting("cpu", "torch device of the paraphrase model")
    paraphrase_batch_size: int = setting(8, "prompts per generation batch")
    paraphrase_max_new_tokens: int = setting(64, "generated tokens per caption")
    paraphrase_temperature: float = setting(
        0.0, "0: greedy decoding (deterministic); > 0: sampling seeded from the run's seed"
    )
    paraphrase_top_p: float = setting(1.0, "nucleus sampling (temperature > 0)")
    paraphrase_dtype: str = setting(
        "auto", "model dtype (auto: the checkpoint's)", choices=PARAPHRASE_DTYPES
    )
    paraphrase_chat_template: str = setting(
        "auto", "wrap prompts in the tokenizer's chat template", choices=CHAT_TEMPLATE_MODES
    )
    paraphrase_prompt: str | None = setting(
        None,
        "prompt template file with {style}, {style_hint}, {caption}, {name}, {value} "
        "(null: the built-in prompt)",
    )
    paraphrase_max_length_ratio: float = setting(
        3.0, "reject a paraphrase longer than this times its template caption"
    )
