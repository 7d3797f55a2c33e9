"""Precision attacks: the model's weights as a lower-precision deployment would hold them.

An unlearning update smaller than the rounding step of a low-precision format can vanish when
the weights are cast or quantized, and what was forgotten comes back (for LLMs, quantization to
4 bits took retained forgotten knowledge from 21 % to 83 %, ICLR 2025). Each attack maps a
state dict to the same dict after a round trip through the format:

- ``fp16`` / ``bf16``: every floating tensor cast to half precision and back;
- ``int8``: every floating weight matrix (2 dimensions or more: linear, attention, patch
  embedding, token embedding, projections) through torch's own per-channel int8 quantize and
  dequantize (``torch.fake_quantize_per_channel_affine``, the op of quantization-aware training;
  symmetric, one scale per row of the stored matrix, which is the output channel of a linear
  layer and the input channel of open_clip's ``x @ P`` projections; levels -128..127); vectors
  (biases, norms, the logit scale) stay, as in weight-only int8 deployments.

The evaluator then scores the round-tripped weights in full precision, so the attack measures
what the format removed from the weights, not the arithmetic of a low-precision forward pass.
"""

from __future__ import annotations

from salmu.sections.attacks import PRECISION_KINDS as KINDS


def round_trip(state: dict, kind: str) -> dict:
    """``state`` after a round trip through ``kind`` (a new dict; the input is not changed)."""
    import torch

    if kind not in KINDS:
        raise ValueError(f"unknown precision attack {kind!r}: expected one of {list(KINDS)}")
    if kind in ("fp16", "bf16"):
        dtype = torch.float16 if kind == "fp16" else torch.bfloat16
        return {
            name: t.to(dtype).to(t.dtype) if t.is_floating_point() else t.clone()
            for name, t in state.items()
        }
    return {
        name: int8_round_trip(t) if t.is_floating_point() and t.dim() >= 2 else t.clone()
        for name, t in state.items()
    }


def int8_round_trip(weight):
    """Symmetric per-output-channel int8 quantization of ``weight`` and back (torch's own op)."""
    import torch

    rows = weight.detach().reshape(weight.shape[0], -1).to(torch.float32)
    scales = (rows.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
    zero_points = torch.zeros(rows.shape[0], dtype=torch.int32, device=rows.device)
    levels = torch.fake_quantize_per_channel_affine(rows, scales, zero_points, 0, -128, 127)
    return levels.reshape(weight.shape).to(weight.dtype)
