"""MER hit rate and OV-MER set precision / recall / F over the five emotion wheels (MER-UniBench).

Definitions (evaluation-and-data.md §1.3, §1.5), per wheel at level 1 (level 2 on request):
- Hit rate: map the GT label(s) and the predicted words to wheel clusters; skip the sample when the GT maps to
  nothing (all `neutral` samples, and labels a wheel does not cover, so denominators differ per wheel);
  score = 1 if the clusters intersect else 0; mean over kept samples. Reported = mean over the 5 wheels.
  The secondary "mscore" = |pred ∩ gt| / |pred ∩ C| (C = mapped set of all GT labels; 0 when empty).
- Set P/R/F: skip samples whose GT maps to nothing; an empty predicted set gives P = R = 0; otherwise
  P = |g∩p|/|p|, R = |g∩p|/|g|. P and R are averaged over samples and F = 2PR/(P+R) is taken from the
  averages (not per sample). Reported [F, P, R] = mean over the 5 wheels.
An unparsable answer is an empty word list: a miss, never a class. All values are percentages (x100).
"""

from __future__ import annotations

from collections.abc import Sequence

from emox_jax.eval.emotion_wheel import WHEELS, EmotionWheels, load_wheels
from emox_jax.eval.modes import check_mode, mean_or_nan, nan_to_zero

PARITY_QUIRKS = {
    "nan_f_score": "a wheel with P = R = 0 (or no kept sample) yields F = NaN, which then poisons the "
                   "5-wheel mean (clean: 0)",
    "hit_counts_intersection_size": "the per-sample hit is |pred ∩ gt| rather than 1[pred ∩ gt ≠ ∅]; differs "
                                    "only when the GT has several labels mapping to different clusters",
}


def _as_list(x: str | Sequence[str]) -> list[str]:
    return [x] if isinstance(x, str) else list(x)


def wheel_hit_rate(gt: Sequence[str | Sequence[str]], pred: Sequence[Sequence[str]], *, mode: str = "clean",
                   level: str = "level1", wheels: EmotionWheels | None = None) -> dict:
    """Hit rate of N samples. gt[i]: the GT label (or labels); pred[i]: predicted words ([] = unparsable).

    Returns {"hit_rate", "mscore", "per_wheel": {wheel: {"hit_rate", "mscore", "n_scored"}}}.
    """
    check_mode(mode)
    if len(gt) != len(pred):
        raise ValueError(f"{len(gt)} GT labels but {len(pred)} predictions")
    wheels = wheels or load_wheels()
    per_wheel = {}
    for wheel in WHEELS:
        cand = set()
        for g in gt:
            cand |= wheels.map_words(_as_list(g), wheel, level)
        hits, mscores = [], []
        for g, p in zip(gt, pred):
            gs = wheels.map_words(_as_list(g), wheel, level)
            if not gs:
                continue  # "only calculate non-neutral label hit rate": unmappable GT is skipped
            ps = wheels.map_words(p, wheel, level)
            inter = len(gs & ps)
            hits.append(inter if mode == "parity" else float(inter > 0))
            in_cand = len(ps & cand)
            mscores.append(inter / in_cand if in_cand else 0.0)
        per_wheel[wheel] = {
            "hit_rate": 100 * nan_to_zero(mean_or_nan(hits), mode),
            "mscore": 100 * nan_to_zero(mean_or_nan(mscores), mode),
            "n_scored": len(hits),
        }
    return {
        "hit_rate": nan_to_zero(mean_or_nan(v["hit_rate"] for v in per_wheel.values()), mode),
        "mscore": nan_to_zero(mean_or_nan(v["mscore"] for v in per_wheel.values()), mode),
        "per_wheel": per_wheel,
    }


def wheel_set_prf(gt: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], *, mode: str = "clean",
                  level: str = "level1", wheels: EmotionWheels | None = None) -> dict:
    """OV-MER set metric of N samples: gt[i] / pred[i] are word lists ([] = unparsable prediction).

    Returns {"f", "precision", "recall", "per_wheel": {wheel: {"f", "precision", "recall", "n_scored"}}}.
    """
    check_mode(mode)
    if len(gt) != len(pred):
        raise ValueError(f"{len(gt)} GT lists but {len(pred)} predictions")
    wheels = wheels or load_wheels()
    per_wheel = {}
    for wheel in WHEELS:
        ps_all, rs_all = [], []
        for g, p in zip(gt, pred):
            gs = wheels.map_words(_as_list(g), wheel, level)
            if not gs:
                continue
            ps = wheels.map_words(p, wheel, level)
            inter = len(gs & ps)
            ps_all.append(inter / len(ps) if ps else 0.0)
            rs_all.append(inter / len(gs) if ps else 0.0)
        prec, rec = mean_or_nan(ps_all), mean_or_nan(rs_all)
        f = 2 * prec * rec / (prec + rec) if (prec + rec) > 0 else float("nan")
        per_wheel[wheel] = {"f": 100 * nan_to_zero(f, mode), "precision": 100 * nan_to_zero(prec, mode),
                            "recall": 100 * nan_to_zero(rec, mode), "n_scored": len(ps_all)}
    return {k: nan_to_zero(mean_or_nan(v[k] for v in per_wheel.values()), mode) for k in ("f", "precision", "recall")} | {
        "per_wheel": per_wheel}
