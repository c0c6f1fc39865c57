"""ERI (EMER) deterministic proxies for the reference's GPT-3.5 judge (evaluation-and-data.md §1.6, §1.9).

- Label overlap proxy: emotion words are extracted from the prediction and from the GT reasoning
  (`parsers.parse_eri`: the concluding "emotional state is ..." clause, else a lexicon scan), then scored with
  the OV-MER wheel set P/R/F (5 wheels, level 1). When the GT's discrete label is given, the MER wheel hit rate
  of the predicted words against it is reported too.
- Clue overlap proxy: ROUGE-L (LCS over lower-cased word tokens) between prediction and GT reasoning, F1 with
  beta = 1, averaged over samples. A weak stand-in: it rewards wording, not agreement on cues.
Neither reproduces the GPT scores (1-10); they are named differently on purpose. Values x100.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from emox_jax.eval.emotion_wheel import EmotionWheels, load_wheels
from emox_jax.eval.metrics_mer import wheel_hit_rate, wheel_set_prf
from emox_jax.eval.parsers import parse_eri

PARITY_QUIRKS: dict[str, str] = {}  # the reference has no deterministic ERI metric to mimic
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (letters/digits, with an optional 's-style suffix)."""
    return _TOKEN.findall((text or "").lower().replace("’", "'"))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (O(len(a) * len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    prev = np.zeros(len(b) + 1, dtype=np.int64)
    bb = np.array(b, dtype=object)
    for x in a:
        match = bb == x
        cur = np.zeros_like(prev)
        # DP row: cur[j+1] = prev[j] + 1 on a match, else max(prev[j+1], cur[j]). On a match prev[j] + 1 >=
        # prev[j+1] (rows grow by at most 1 per step), so cur[1:] is the running max of `cand` (cur[0] = 0).
        cand = np.where(match, prev[:-1] + 1, prev[1:])
        cur[1:] = np.maximum.accumulate(cand)
        prev = cur
    return int(prev[-1])


def rouge_l(pred: str, ref: str) -> tuple[float, float, float]:
    """(precision, recall, F1) of ROUGE-L in [0, 1]; all 0 when either side has no token."""
    p, r = tokenize(pred), tokenize(ref)
    lcs = lcs_length(p, r)
    if lcs == 0:
        return 0.0, 0.0, 0.0
    prec, rec = lcs / len(p), lcs / len(r)
    return prec, rec, 2 * prec * rec / (prec + rec)


def eri_scores(gt_reasons: Sequence[str], preds: Sequence[str], gt_emotions: Sequence[str] | None = None, *,
               mode: str = "clean", wheels: EmotionWheels | None = None) -> dict:
    """gt_reasons[i]: GT reasoning text; preds[i]: predicted reasoning ("" for missing); gt_emotions: optional
    discrete labels. Returns wheel_f/precision/recall (+ per_wheel), [hit_rate], rougeL_{f,precision,recall},
    n_scored, n_unparsable (predictions with no emotion word), n_gt_without_emotion."""
    if len(gt_reasons) != len(preds):
        raise ValueError(f"{len(gt_reasons)} GT reasons but {len(preds)} predictions")
    wheels = wheels or load_wheels()
    gt_words, pred_words, unparsable, gt_empty = [], [], 0, 0
    for g, p in zip(gt_reasons, preds):
        gp, pp = parse_eri(g, wheels), parse_eri(p, wheels)
        gt_empty += not gp.parsed
        unparsable += not pp.parsed
        gt_words.append(gp.value or [])
        pred_words.append(pp.value or [])
    prf = wheel_set_prf(gt_words, pred_words, mode=mode, wheels=wheels)
    out = {"wheel_f": prf["f"], "wheel_precision": prf["precision"], "wheel_recall": prf["recall"],
           "per_wheel": prf["per_wheel"]}
    if gt_emotions is not None:
        out["hit_rate"] = wheel_hit_rate(list(gt_emotions), pred_words, mode=mode, wheels=wheels)["hit_rate"]
    rl = np.array([rouge_l(p, g) for g, p in zip(gt_reasons, preds)]).reshape(-1, 3)
    mean = rl.mean(axis=0) if len(rl) else np.zeros(3)
    out |= {"rougeL_precision": 100 * float(mean[0]), "rougeL_recall": 100 * float(mean[1]),
            "rougeL_f": 100 * float(mean[2])}
    return out | {"n_scored": len(preds), "n_unparsable": unparsable, "n_gt_without_emotion": gt_empty}
