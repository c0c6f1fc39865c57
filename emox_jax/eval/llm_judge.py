"""Optional LLM judge: label extraction (free text -> emotion list) and ERI scoring (1-10), run locally.

The reference sends these to hosted LLMs (evaluation-and-data.md §1.1, §1.6: Qwen2.5-7B under vLLM, sampled,
for "reason -> open set"; GPT-3.5 for ERI "clue overlap" and "label overlap"). Here a user-supplied local
Qwen2.5-Instruct ``save_pretrained`` directory (``config.json`` + safetensors + ``tokenizer.json``) runs through
our own decoder (``emox_jax.convert.qwen2.load_hf`` -> ``emox_jax.infer.generate``) with **greedy** decoding,
so the judge is deterministic; scores from it are a different metric variant from the published ones (§1.9)
and are named ``llm_*``. No external API, nothing downloaded.

Prompts are our own English wording of the reference's tasks, wrapped in Qwen's ChatML turns
(``<|im_start|>{role}\\n{text}<|im_end|>\\n``; the role markers are the tokenizer.json's special tokens, inserted
as ids, never produced by BPE). Replies are parsed by ``parse_score`` / ``parse_label_list``; a reply they cannot
read is counted (``n_unparsable_*``) and left out of the mean, never mapped to a default score.

    judge = LLMJudge.load("/models/Qwen2.5-7B-Instruct")
    judge.extract_labels(["She smiles, so she seems happy and relieved."])   -> [["happy", "relieved"]]
    judge.score_eri(gt_reasons, predictions)   -> {"llm_clue_overlap", "llm_label_overlap", "llm_overall", ...}
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

SYSTEM = "You are a careful annotator of emotions in text. Follow the requested output format exactly."

EXTRACT_PROMPT = (
    "Read the description below and identify the emotional states of the main character. Answer with a "
    "list of emotion words in square brackets, for example [happy, relieved]. Answer [] if no emotion is "
    "described.\n\nExample description: He frowns and raises his voice while complaining about the delay, "
    "which suggests he is angry and impatient.\nExample answer: [angry, impatient]\n\n"
    "Description: {text}\nAnswer:")

CLUE_PROMPT = (
    "Below are a reference description and a predicted description of a character's emotional state and of "
    "the clues (facial expression, voice, words, scene) that reveal it. First summarise the emotional clues "
    "in each, then rate how much the predicted clues overlap with the reference clues on a scale from 1 (no "
    "overlap) to 10 (complete overlap). End your reply with a line 'Score: N'.\n\n"
    "Reference: {gt}\n\nPrediction: {pred}")

LABEL_PROMPT = (
    "Here are two lists of emotion words describing the same character: a reference list and a predicted "
    "list. Rate how much the predicted emotions overlap with the reference emotions on a scale from 1 (no "
    "overlap) to 10 (identical meaning). Reply with a line 'Score: N'.\n\n"
    "Reference: [{gt}]\nPrediction: [{pred}]")

_SCORE_LABELLED = re.compile(r"score\s*[:=]?\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")   # the reference takes the first "digits, optional dot and digits"
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


# ------------------------------------------------------------------------------------------- parsing
def parse_score(reply: str, lo: float = 1.0, hi: float = 10.0) -> float | None:
    """A 1-10 rating from a judge reply, or None when there is none or it is out of range.

    Takes the last ``Score: N`` when present (the format we ask for; a model may restate a score while
    summarising), else the first number in the reply (the reference's rule). "7/10" reads as 7.
    """
    if not isinstance(reply, str) or not reply.strip():
        return None
    labelled = _SCORE_LABELLED.findall(reply)
    if labelled:
        value = float(labelled[-1])
    else:
        m = _NUMBER.search(reply)
        if m is None:
            return None
        value = float(m.group(0))
    return value if lo <= value <= hi and math.isfinite(value) else None


def parse_label_list(reply: str) -> list[str] | None:
    """Emotion words from a judge reply: the last ``[...]`` list (quotes stripped, lower-cased, de-duplicated
    in order); ``[]`` -> []. Without brackets: a reply that is only a comma list of words (no sentence
    punctuation) is read as one; anything else is unparsable (None)."""
    if not isinstance(reply, str):
        return None
    lists = _BRACKETS.findall(reply)
    if lists:
        body = lists[-1]
    else:
        body = reply.strip().rstrip(".")
        too_long = len(body) > 200 or len(body.split()) > 3 * (body.count(",") + 1)
        if not body or too_long or any(c in body for c in ":;!?\n"):
            return None
    words = []
    for part in body.split(","):
        w = part.strip().strip("'\"`").strip().lower()
        if w and w not in words:
            if len(w.split()) > 3:   # a clause, not an emotion word
                return None
            words.append(w)
    return words


# ------------------------------------------------------------------------------------------- chat + model
@dataclasses.dataclass
class LLMJudge:
    """A local Qwen2/Qwen2.5-Instruct model and its tokenizer, with greedy batched generation."""

    config: Any          # Qwen2Config
    params: Any          # numpy / jax param tree (scanned layout)
    tokenizer: Any       # emox_jax.tokenizer.HFTokenizer
    max_new_tokens: int = 128
    batch_size: int = 8
    system: str = SYSTEM

    @classmethod
    def load(cls, hf_dir: str | os.PathLike, **kw) -> "LLMJudge":
        """From a ``save_pretrained`` directory holding ``config.json``, the weights and ``tokenizer.json``."""
        import pathlib

        from emox_jax.convert.qwen2 import load_hf
        from emox_jax.tokenizer import HFTokenizer

        d = pathlib.Path(hf_dir)
        if not (d / "tokenizer.json").is_file():
            raise FileNotFoundError(f"LLM judge: {d} has no tokenizer.json (expected a Qwen2.5-Instruct "
                                    "save_pretrained directory)")
        config, params = load_hf(d)
        tokenizer = HFTokenizer(d)
        if tokenizer.vocab_size > config.vocab_size:
            raise ValueError(f"LLM judge: {d}/tokenizer.json has {tokenizer.vocab_size} tokens but config.json's "
                             f"vocab_size is {config.vocab_size}")
        return cls(config, params, tokenizer, **kw)

    def chat_ids(self, user: str) -> list[int]:
        """ChatML prompt ids: system turn, user turn, then the opened assistant turn."""
        t = self.tokenizer
        start, end = t.bos_id, t.eos_id  # <|im_start|>, <|im_end|>
        nl = t.encode("\n")
        return ([start, *t.encode("system\n" + self.system), end, *nl, start, *t.encode("user\n" + user), end,
                 *nl, start, *t.encode("assistant\n")])

    def generate(self, user_prompts: Sequence[str]) -> list[str]:
        """Greedy replies (text up to ``<|im_end|>``) for each user prompt, in batches of ``batch_size``."""
        import jax

        from emox_jax.infer.generate import GenerateConfig, generate, pad_prompts
        from emox_jax.infer.sampling import SamplingConfig

        gen = GenerateConfig(max_new_tokens=self.max_new_tokens, sampling=SamplingConfig(greedy=True),
                             stop_token_ids=(self.tokenizer.eos_id,), pad_id=self.tokenizer.eos_id)
        replies: list[str] = []
        prompts = [self.chat_ids(p) for p in user_prompts]
        for i in range(0, len(prompts), self.batch_size):
            chunk = prompts[i:i + self.batch_size]
            n = len(chunk)
            chunk = chunk + [chunk[0]] * (self.batch_size - n)   # fixed batch shape: one compile
            length = int(math.ceil(max(len(p) for p in chunk) / 64) * 64)
            ids, lengths = pad_prompts(chunk, pad_id=self.tokenizer.eos_id, length=length)
            out = generate(self.params, ids, lengths, jax.random.key(0), model_config=self.config, gen_config=gen)
            tokens, lens = np.asarray(out.tokens), np.asarray(out.lengths)
            for r in range(n):
                row = [int(x) for x in tokens[r, :lens[r]] if int(x) != self.tokenizer.eos_id]
                replies.append(self.tokenizer.decode(row).strip())
        return replies

    # ---------------------------------------------------------------------------------------- tasks
    def extract_labels(self, texts: Sequence[str]) -> list[list[str] | None]:
        """Free text -> emotion word list per text (None where the reply is unparsable)."""
        return [parse_label_list(r) for r in self.generate([EXTRACT_PROMPT.format(text=t) for t in texts])]

    def score_eri(self, gt_reasons: Sequence[str], predictions: Sequence[str]) -> dict[str, Any]:
        """ERI judged like the reference's two GPT scores (§1.6): clue overlap (one call per sample) and
        label overlap (extract both sides' emotions, then one rating call). Means over parsable replies;
        ``llm_overall`` = mean of the two means."""
        if len(gt_reasons) != len(predictions):
            raise ValueError(f"{len(gt_reasons)} GT reasons but {len(predictions)} predictions")
        clue = [parse_score(r) for r in self.generate([CLUE_PROMPT.format(gt=g, pred=p)
                                                       for g, p in zip(gt_reasons, predictions)])]
        gt_labels = self.extract_labels(gt_reasons)
        pred_labels = self.extract_labels(predictions)
        pairs = [(g, p) for g, p in zip(gt_labels, pred_labels)]
        ok = [i for i, (g, p) in enumerate(pairs) if g is not None and p is not None]
        label_replies = self.generate([LABEL_PROMPT.format(gt=", ".join(pairs[i][0]), pred=", ".join(pairs[i][1]))
                                       for i in ok]) if ok else []
        label = [parse_score(r) for r in label_replies]

        def mean(xs):
            xs = [x for x in xs if x is not None]
            return float(np.mean(xs)) if xs else float("nan")

        c, lab = mean(clue), mean(label)
        return {"llm_clue_overlap": c, "llm_label_overlap": lab,
                "llm_overall": float(np.nanmean([c, lab])) if not (math.isnan(c) and math.isnan(lab)) else float("nan"),
                "n_scored": len(predictions), "n_unparsable_clue": sum(x is None for x in clue),
                "n_unparsable_labels": len(pairs) - len(ok) + sum(x is None for x in label)}


__all__ = ("CLUE_PROMPT", "EXTRACT_PROMPT", "LABEL_PROMPT", "LLMJudge", "SYSTEM", "parse_label_list", "parse_score")
