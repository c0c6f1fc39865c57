"""Prompt + target -> token ids, shifted labels, loss mask, placeholder positions; truncation.

Following `reference-architecture.md` §3.2: the prompt and the target are tokenised separately (no BPE merge
across the boundary), BOS (`<|im_start|>`) opens the prompt, EOS (`<|im_end|>`) closes the target, and only
the target (answer + ``###`` + EOS) is supervised. Placeholder runs are inserted as ids, never produced by
the text tokenizer, so their positions are known without searching.

Output of `tokenize_prompt` (one sample, n = sequence length <= max_length):
  input_ids  int32 [n]
  labels     int32 [n]   already shifted: labels[t] = input_ids[t+1] (pad_id at t = n-1)
  loss_mask  int32 [n]   1 exactly where labels[t] is a target token (answer + ``###`` + EOS)
  {frame,face,audio,multi}_pos    int32 []  start of that placeholder run, -1 when absent
  {frame,face,audio,multi}_count  int32 []  its length (the configured count), 0 when absent
  length int32 [], task_id int32 []

Truncation (when n > max_length) shortens, in order: the subtitle (tail cut), the dialogue history (oldest
turns cut), the current utterance, the question text, the answer's tail (``###`` and EOS always kept; at
least one word of the answer). Cuts fall on whitespace. Placeholder runs are never touched; if the sample
still does not fit, `TruncationError` is raised so the pipeline skips and counts it.
The reference caps prompt+target at 1024 and adds BOS/EOS on top (1026); here ``max_length`` counts every
token, so a sample always fits the largest length bucket.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Protocol

import numpy as np

from data_pipelines import prompts

PLACEHOLDER_TOKENS = {"frame": "<FrameHere>", "face": "<FaceHere>", "audio": "<AudioHere>",
                      "multi": "<MultiHere>"}
IGNORE_POS = -1


class Tokenizer(Protocol):
    """What we need from `emox_jax.tokenizer` (Qwen BPE or the tiny sentencepiece model)."""

    placeholder_ids: dict[str, int]

    def encode(self, text: str) -> list[int]: ...


class TruncationError(ValueError):
    """The sample cannot fit max_length without cutting a placeholder run or the whole answer."""


@dataclasses.dataclass(frozen=True)
class TokenizeConfig:
    max_length: int = 1024
    frame_tokens: int = 32
    face_tokens: int = 4
    audio_tokens: int = 32
    multi_tokens: int = 1

    def counts(self) -> dict[str, int]:
        return {"frame": self.frame_tokens, "face": self.face_tokens, "audio": self.audio_tokens,
                "multi": self.multi_tokens}

    def validate(self) -> None:
        if self.max_length < 8:
            raise ValueError(f"max_length must be >= 8, got {self.max_length}")
        for k, v in self.counts().items():
            if v < 1:
                raise ValueError(f"{k}_tokens must be >= 1, got {v}")


def special_id(tokenizer: Any, name: str) -> int:
    """``tokenizer.bos_id`` etc., whether an attribute, a property or a method."""
    value = getattr(tokenizer, name)
    return int(value() if callable(value) else value)


class _Encoder:
    """Encodes rendered segments, caching text pieces (truncation re-renders mostly unchanged text)."""

    def __init__(self, tokenizer: Any, counts: dict[str, int]):
        self.tok = tokenizer
        self.counts = counts
        self.special = {"bos": special_id(tokenizer, "bos_id"), "eos": special_id(tokenizer, "eos_id")}
        ph = tokenizer.placeholder_ids
        missing = [t for t in PLACEHOLDER_TOKENS.values() if t not in ph]
        if missing:
            raise ValueError(f"tokenizer.placeholder_ids lacks {missing}; has {sorted(ph)}")
        self.ph = {m: int(ph[t]) for m, t in PLACEHOLDER_TOKENS.items()}
        self.cache: dict[str, list[int]] = {}

    def text(self, s: str) -> list[int]:
        ids = self.cache.get(s)
        if ids is None:
            ids = list(self.tok.encode(s))
            if len(self.cache) > 64:   # only the pieces of the current sample matter
                self.cache.clear()
            self.cache[s] = ids
        return ids

    def encode(self, segs: list[prompts.Segment], offset: int = 0) -> tuple[list[int], dict[str, int]]:
        ids: list[int] = []
        pos: dict[str, int] = {}
        for kind, value in segs:
            if kind == "text":
                ids += self.text(value)
            elif kind == "ph":
                if value in pos:
                    raise ValueError(f"modality {value!r} appears twice in one prompt")
                pos[value] = offset + len(ids)
                ids += [self.ph[value]] * self.counts[value]
            else:
                ids.append(self.special[value])
        return ids, pos

    def sample(self, spec: prompts.PromptSpec) -> tuple[list[int], list[int], dict[str, int]]:
        prompt_segs, target_segs = prompts.render(spec)
        p_ids, pos = self.encode(prompt_segs)
        t_ids, _ = self.encode(target_segs)
        return p_ids, t_ids, pos


# (field, which end to keep): history keeps the most recent turns, the rest keep their beginning.
_TRUNCATION_ORDER = (("subtitle", "head"), ("history", "tail"), ("utterance", "head"), ("question", "head"),
                     ("answer", "head"))


def _shorter_versions(text: str, keep: str, allow_empty: bool) -> list[str]:
    """Versions of ``text`` cut at whitespace, longest first (``text`` itself first)."""
    if keep == "head":
        cuts = [text[:m.start()] for m in re.finditer(r"\s+", text)][::-1]
    else:
        cuts = [text[m.end():] for m in re.finditer(r"\s+", text)]
    out = [text] + [c for c in cuts if c.strip()]
    if allow_empty:
        out.append("")
    return out


def _truncate(enc: _Encoder, spec: prompts.PromptSpec, max_length: int):
    p_ids, t_ids, pos = enc.sample(spec)
    if len(p_ids) + len(t_ids) <= max_length:
        return spec, p_ids, t_ids, pos
    for field, keep in _TRUNCATION_ORDER:
        text = spec.fields.get(field, "")
        if not text:
            continue
        versions = _shorter_versions(text, keep, allow_empty=(field != "answer"))
        # Binary search for the longest version that fits; lengths are monotone in the cut (up to BPE noise,
        # which the final check below absorbs by continuing with the next field).
        lo, hi, best = 1, len(versions) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            cand = spec.replace_fields(**{field: versions[mid]})
            c_p, c_t, c_pos = enc.sample(cand)
            if len(c_p) + len(c_t) <= max_length:
                best, hi = (cand, c_p, c_t, c_pos), mid - 1
            else:
                lo = mid + 1
        if best is not None:
            return best
        spec = spec.replace_fields(**{field: versions[-1]})
    p_ids, t_ids, pos = enc.sample(spec)
    raise TruncationError(
        f"sample needs {len(p_ids) + len(t_ids)} tokens > max_length={max_length} even with subtitle, "
        f"history, utterance and question removed and the answer cut to one word (placeholder runs "
        f"{ {m: enc.counts[m] for m in pos} } are never cut); label_type={spec.label_type}, mode={spec.mode}")


def tokenize_prompt(spec: prompts.PromptSpec, tokenizer: Any, config: TokenizeConfig = TokenizeConfig(),
                    encoder: _Encoder | None = None) -> dict[str, np.ndarray]:
    """One sample's arrays (see the module docstring). Raises TruncationError when it cannot fit."""
    enc = encoder or _Encoder(tokenizer, config.counts())
    spec, p_ids, t_ids, pos = _truncate(enc, spec, config.max_length)
    ids = np.asarray(p_ids + t_ids, dtype=np.int32)
    n = ids.shape[0]
    pad = special_id(tokenizer, "pad_id")
    labels = np.full((n,), pad, dtype=np.int32)
    labels[:-1] = ids[1:]
    loss_mask = np.zeros((n,), dtype=np.int32)
    loss_mask[len(p_ids) - 1:n - 1] = 1   # position t predicts token t+1, the target occupies [P, n)
    out = {"input_ids": ids, "labels": labels, "loss_mask": loss_mask,
           "length": np.int32(n), "task_id": np.int32(spec.task_id)}
    counts = enc.counts
    for m in prompts.PLACEHOLDER_MODALITIES:
        out[f"{m}_pos"] = np.int32(pos.get(m, IGNORE_POS))
        out[f"{m}_count"] = np.int32(counts[m] if m in pos else 0)
    return out


def make_encoder(tokenizer: Any, config: TokenizeConfig) -> _Encoder:
    """A reusable encoder (one per worker) so text pieces are cached across truncation retries."""
    return _Encoder(tokenizer, config.counts())
