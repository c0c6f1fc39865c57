"""ERG on AvaMERG: emotion accuracy, emotion hit rate, Dist-1 / Dist-2 (evaluation-and-data.md §1.8).

- Emotion accuracy: the predicted speaker emotion equals the GT emotion (the GT as projected by the dataset
  reader). Clean: case-insensitive; the emotion comes from the parser ("the emotion of the speaker is X",
  inside <think> first); no phrase -> unparsable -> miss.
- Hit rate: equality after mapping both through the 8-class table `COARSE8` (below); a label missing from the
  table makes that sample a miss and is counted in `n_hit_unmapped` (the reference raises KeyError there).
- Dist-n: text outside <think>...</think>, lower-cased, split on whitespace. Reported twice, named:
  `distN_per_response` = mean over responses of distinct/total n-grams (the reference's number, 95-99 typical;
  responses without n-grams skipped) and `distN_corpus` = distinct/total n-grams pooled over all responses
  (the usual Dist-n of dialogue papers, e.g. Empatheia's). Values x100.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from emox_jax.eval.modes import check_mode
from emox_jax.eval.parsers import parse_erg

PARITY_QUIRKS = {
    "keyword_substring_fallback": "without the CoE phrase inside <think>, the emotion is the first key of a "
                                  "23-entry keyword table whose words occur as *substrings* of the answer "
                                  "('mad' in 'made', 'joy' in 'enjoy'), else 'unknown' (clean: unparsable)",
    "embarrassed_to_disgusted": "the 8-class table lists 'embarrassed' twice; the later entry (disgusted) wins "
                                "(clean: sad, the entry in its intended group)",
    "dist_over_all_predictions": "Dist-n is computed over every prediction, including ids without GT "
                                 "(clean: over the scored ids only)",
}

# 8-class projection used for the hit rate. Source: Nano-EmoX `evaluation/eval_merg_exp.py`,
# `emotion_projection_map_empathe_mead` (the MEAD 8 classes; EmpatheticDialogues' 32 labels grouped under them).
COARSE8 = {
    "neutral": "neutral", "happy": "happy", "surprised": "surprised", "angry": "angry", "fear": "fear",
    "sad": "sad", "disgusted": "disgusted", "contempt": "contempt",
    # -> happy
    "joyful": "happy", "prepared": "happy", "content": "happy", "caring": "happy", "trusting": "happy",
    "faithful": "happy", "confident": "happy", "hopeful": "happy", "grateful": "happy", "proud": "happy",
    "excited": "happy", "anticipating": "happy",
    # -> sad
    "lonely": "sad", "guilty": "sad", "anxious": "sad", "nostalgic": "sad", "embarrassed": "sad",
    "disappointed": "sad", "sentimental": "sad", "ashamed": "sad", "devastated": "sad",
    # -> surprised / angry / fear / contempt
    "impressed": "surprised", "furious": "angry", "annoyed": "angry",
    "afraid": "fear", "terrified": "fear", "apprehensive": "fear", "jealous": "contempt",
}
COARSE8_PARITY = COARSE8 | {"embarrassed": "disgusted"}

# Keyword fallback of the reference extractor (parity only): key returned when any listed word occurs as a
# substring of the lower-cased answer; keys tried in this order. Same source file as COARSE8.
_PARITY_KEYWORDS = (
    ("angry", ("angry", "anger", "furious", "mad", "irate", "enraged")),
    ("annoyed", ("annoyed", "annoyance", "irritated", "irritation", "vexed", "bothered")),
    ("caring", ("caring", "compassionate", "empathetic", "kind", "sympathetic", "concern")),
    ("content", ("content", "contentment", "satisfied", "pleased", "peaceful", "fulfilled")),
    ("disappointed", ("disappointed", "disappointment", "letdown", "discouraged", "disheartened")),
    ("excited", ("excited", "excitement", "enthusiastic", "thrilled", "eager", "animated")),
    ("faithful", ("faithful", "loyal", "devoted", "dedicated", "steadfast", "fidelity")),
    ("frustrated", ("frustrated", "frustration", "exasperated", "aggravated", "irked")),
    ("grateful", ("grateful", "gratitude", "thankful", "appreciative", "obliged")),
    ("guilty", ("guilty", "guilt", "remorseful", "ashamed", "contrite", "regretful")),
    ("hopeful", ("hopeful", "hope", "optimistic", "encouraged", "buoyant", "expectant", "anticipating")),
    ("joyful", ("joyful", "joy", "happy", "delighted", "cheerful", "gleeful")),
    ("lonely", ("lonely", "loneliness", "lonesome", "isolated", "forlorn", "desolate")),
    ("loneliness", ("lonely", "loneliness", "lonesome", "isolated", "forlorn", "desolate")),
    ("nostalgic", ("nostalgic", "nostalgia", "sentimental", "wistful", "yearning")),
    ("overwhelmed", ("overwhelmed", "overwhelm", "swamped", "burdened", "overloaded")),
    ("sad", ("sad", "sadness", "sorrowful", "melancholy", "grief", "depressed")),
    ("sadness", ("sad", "sadness", "sorrowful", "melancholy", "grief", "depressed")),
    ("surprised", ("surprised", "surprise", "amazed", "astonished", "shocked", "stunned")),
    ("terrified", ("terrified", "terror", "frightened", "afraid", "scared", "petrified")),
    ("trusting", ("trusting", "trust", "confident", "relying", "believing", "assured", "prepared")),
    ("worried", ("worried", "worry", "anxious", "nervous", "concerned", "uneasy", "apprehensive")),
    ("anxious", ("anxious", "anxiety", "worried", "nervous", "concerned", "uneasy")),
)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def parity_extract_emotion(text: str) -> str:
    """The reference extractor: regex inside a closed <think> block, else substring keywords, else 'unknown'."""
    if not text:
        return "unknown"
    if "<think>" in text and "</think>" in text:
        inner = text[text.find("<think>") + 7:text.find("</think>")].lower()
        m = re.search(r"the emotion of the speaker is\s+(\w+)", inner)
        if m:
            return m.group(1).strip()
    low = text.lower()
    for key, words in _PARITY_KEYWORDS:
        if any(w in low for w in words):
            return key
    return "unknown"


def strip_think(text: str) -> str:
    """The reply part of an answer: <think>...</think> removed, stripped."""
    return _THINK.sub("", text or "").strip()


def distinct_n(responses: Sequence[str], n: int) -> tuple[float, float]:
    """(per-response mean, corpus-level) distinct-n ratios x100 over lower-cased whitespace tokens.

    Per response: |distinct n-grams| / |n-grams|, responses with no n-gram skipped, mean (0 when none).
    Corpus: |distinct n-grams over all responses| / |all n-grams| (0 when none).
    """
    per, pooled, total = [], Counter(), 0
    for r in responses:
        toks = r.strip().lower().split()
        grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
        if not grams:
            continue
        c = Counter(grams)
        per.append(len(c) / len(grams))
        pooled.update(c)
        total += len(grams)
    return (100 * sum(per) / len(per) if per else 0.0), (100 * len(pooled) / total if total else 0.0)


def erg_scores(gt_emotions: Sequence[str], answers: Sequence[str], *, mode: str = "clean",
               extra_answers: Sequence[str] = ()) -> dict:
    """gt_emotions[i] / answers[i]: aligned GT emotion and raw model answer ("" for a missing answer).

    extra_answers: answers whose id has no GT; only parity includes them in Dist-n.
    Returns emotion_accuracy, hit_rate, dist{1,2}_{per_response,corpus}, n_scored, n_unparsable,
    n_hit_unmapped.
    """
    check_mode(mode)
    if len(gt_emotions) != len(answers):
        raise ValueError(f"{len(gt_emotions)} GT emotions but {len(answers)} answers")
    table = COARSE8_PARITY if mode == "parity" else COARSE8
    correct = hits = unparsable = unmapped = 0
    replies = []
    for g, a in zip(gt_emotions, answers):
        g = g.strip().lower()
        if mode == "parity":
            p = parity_extract_emotion(a)
            replies.append(strip_think(a))
        else:
            parsed = parse_erg(a)
            p = parsed.value.emotion if parsed.parsed else None
            replies.append(parsed.value.response)
        if p is None:
            unparsable += 1
            continue
        correct += p == g
        if g in table and p in table:
            hits += table[g] == table[p]
        else:
            unmapped += 1
    n = len(gt_emotions)
    if mode == "parity":
        replies += [strip_think(a) for a in extra_answers]
        replies = [r for r in replies if r]
    out = {"emotion_accuracy": 100 * correct / n if n else 0.0, "hit_rate": 100 * hits / n if n else 0.0}
    for k in (1, 2):
        out[f"dist{k}_per_response"], out[f"dist{k}_corpus"] = distinct_n(replies, k)
    return out | {"n_scored": n, "n_unparsable": unparsable, "n_hit_unmapped": unmapped}
