"""EmoSynth prompts as plain text: what the `tiny` tokenizer trains on besides the shipped corpus.

A tokenizer should be trained on text like the text it will encode. The tiny preset's prompts are the
reference's long instruction templates around EmoSynth's transcripts and answers; a 1024-piece BPE trained only
on ``emox_jax/assets/tiny_corpus.txt`` split them into ~2.5 characters per token, so an ERG prompt took ~570
tokens and the tiny preset's 320-token limit cut the subtitle and dialogue out of most main-mode samples (the
words, the strongest cue, were gone). Adding these lines halves the lengths (ERG ~330, MER ~160).

The clips come from their own seed (``TOKENIZER_SEED``), not the quickstart's train/test seed: the tokenizer
sees the templates and the word lists, never the held-out clips themselves.
"""

from __future__ import annotations

import functools

import numpy as np

from data_pipelines import prompts, schema
from data_pipelines.emosynth.clips import ALL_LABEL_TYPES, iter_examples

TOKENIZER_SEED = 20260
TOKENIZER_CLIPS = 200


@functools.lru_cache(maxsize=2)   # every tiny_tokenizer() call hashes these lines to find its cached model
def prompt_lines(clips: int = TOKENIZER_CLIPS, seed: int = TOKENIZER_SEED) -> tuple[str, ...]:
    """Rendered prompt and answer texts (one line each; newlines become spaces) of ``clips`` clips, every label
    type, the modality modes cycling from clip to clip. Deterministic for ``(clips, seed)``."""
    rng = np.random.default_rng(seed)
    modes = schema.MODALITY_MODES
    lines: list[str] = []
    for i, record in enumerate(iter_examples(clips, seed, media=False)):
        for j, label_type in enumerate(ALL_LABEL_TYPES):
            spec = prompts.build_prompt(record, label_type, modes[(i + j) % len(modes)], prompts.PromptConfig(), rng)
            lines.extend(text.replace("\n", " ") for text in prompts.render_text(spec, bos="", eos=""))
    return tuple(lines)
