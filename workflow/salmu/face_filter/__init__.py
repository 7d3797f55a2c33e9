"""Curate the faces table: ``salmu face-filter`` (the command: ``salmu.face_filter.cli``).

The paper generates ~100 identity-preserving images for each of 1,000 candidate identities and keeps
774 "coherent" ones after "CLIP zero-shot annotation plus consistency/demographic checks (FairFace +
CLIP)" (docs/protocol.md §1.1). Its exact rules are unknown; this stage is our interpretation, in three steps:

1. **Identity consistency.** Every image is embedded and compared (cosine) with its person's
   *reference image*: the person's first image, i.e. the lowest ``image_idx`` of kind ``sensitive``
   for a persona (``image_idx`` 0 in any table ``salmu faces`` writes) and of kind ``anonymous``
   for an anonymous person, whose identity is the 8-digit number that starts the file name. An
   image below ``--identity-threshold`` is dropped (reason ``identity``); the reference itself is
   always kept by this check. With the ``diffusers`` backend the anchor portrait is conditioning
   only and is not in the table, so the reference is the first IP-Adapter variant of it.
2. **Demographic agreement** (``clip`` embedder only; FairFace is replaced by CLIP zero-shot).
   Each attribute of ``--demographics`` (``gender``, ``age_band``) is read zero-shot: a class's text
   embedding is the mean of its prompts' normalised embeddings (``DEFAULT_PROMPTS``, replaceable
   with ``--prompts``). An image is dropped (reason = the attribute) when some other class scores
   more than ``--demographic-margin`` (cosine units) above the expected class, i.e. plain argmax
   disagreement at the default margin 0 (exact ties are kept). The expected class is the persona's
   (``personas.parquet``) for sensitive and generic images, and the ``look`` JSON's for anonymous
   images.
3. **Minimum size.** A persona left with fewer than ``--min-images`` sensitive images is dropped
   whole (reason ``min_images``): all its rows go, sensitive and generic. Anonymous people have no
   sensitive images; this step does not apply to them.

Embedders. ``clip``: open_clip image embeddings from a model directory (``salmu.clip_model``'s
``local-dir`` convention, optional ``--clip-checkpoint``) or an ``hf-hub:`` id already in the local
cache. ``pixels``: a cheap, non-learned descriptor made for the procedural renderer (see
``pixel_embedding``); plain standardised pixels do not separate identities there (same-identity
cosines go below 0 under the renderer's pose, framing and background changes while look-alike
identities reach 0.9), so the descriptor is dominated by the colour signature of the face region.

Outputs: the kept rows, with the input's columns, column order and row order, and a JSON report
(counts before/after, drops per reason, dropped identities, per-identity kept counts, the similarity
distribution, demographic confusion counts, every dropped image with its reasons, the settings).
"""
