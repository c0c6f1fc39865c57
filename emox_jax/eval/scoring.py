"""Task -> parser + metrics dispatch, and the prediction / ground-truth file readers used by `launch.score`.

File formats:
- Predictions: CSV (header with `id`, `answer`) or JSONL (one object per line with `id`, `answer`); raw text.
- Ground truth: CSV with `id` and `label`, where `label` is
    mer    one emotion word (e.g. "happy"; "neutral" rows are kept and skipped by the metric as defined)
    ovmer  a comma-separated emotion list ("happy, grateful"; empty = neutral)
    msa    a signed score (valence/sentiment; rows with 0 are skipped by the metric as defined)
    mir    the intent label as annotated ("Ask for help")
    erg    the GT speaker emotion (already projected by the dataset reader), plus an optional `response`
           column holding the reference reply (adds rougeL_response_f)
    eri    the GT reasoning text, plus an optional `emotion` column with the discrete label (adds hit_rate)
Ids present on one side only are counted (`n_missing_pred`, `n_missing_gt`). Clean mode scores a GT id with no
prediction as an unparsable answer (a miss); parity scores the intersection only (the reference's behaviour).
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
from collections.abc import Mapping

import numpy as np

from emox_jax.eval import metrics_erg, metrics_eri, metrics_mer, metrics_mir, metrics_msa
from emox_jax.eval.emotion_wheel import load_wheels
from emox_jax.eval.modes import check_mode
from emox_jax.eval.parsers import (MINTREC2_INTENTS, parse_emotion_list, parse_intent, parse_sentiment,
                                   split_emotion_list)

TASKS = ("mer", "msa", "ovmer", "eri", "mir", "erg")
COMMON_QUIRKS = {
    "score_intersection_only": "ids with GT but no prediction are dropped instead of scored as misses",
}
_QUIRKS = {"mer": metrics_mer.PARITY_QUIRKS, "ovmer": metrics_mer.PARITY_QUIRKS, "msa": metrics_msa.PARITY_QUIRKS,
           "mir": metrics_mir.PARITY_QUIRKS, "erg": metrics_erg.PARITY_QUIRKS, "eri": metrics_eri.PARITY_QUIRKS}


class ScoringInputError(ValueError):
    """Bad scoring input (unreadable file, missing column, malformed value); the message names file and field."""


def parity_quirks(task: str) -> dict[str, str]:
    """Name -> description of every quirk parity mode applies for `task`."""
    _check_task(task)
    return COMMON_QUIRKS | _QUIRKS[task]


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ScoringInputError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def _read_csv_rows(path: pathlib.Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            missing = [c for c in required if c not in fields]
            if missing:
                raise ScoringInputError(f"{path}: missing column(s) {missing}; found columns {fields}")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ScoringInputError(f"cannot read {path}: {e}") from e


def _read_jsonl_rows(path: pathlib.Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ScoringInputError(f"cannot read {path}: {e}") from e
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ScoringInputError(f"{path} line {i}: not valid JSON ({e.msg})") from e
        if not isinstance(obj, dict):
            raise ScoringInputError(f"{path} line {i}: expected a JSON object, got {type(obj).__name__}")
        missing = [c for c in required if c not in obj]
        if missing:
            raise ScoringInputError(f"{path} line {i}: missing field(s) {missing}; found {sorted(obj)}")
        rows.append({k: "" if v is None else str(v) for k, v in obj.items()})
    return rows


def _index(rows: list[dict[str, str]], path: pathlib.Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for i, row in enumerate(rows):
        key = (row.get("id") or "").strip()
        if not key:
            raise ScoringInputError(f"{path}: record {i + 1} has an empty id")
        if key in out:
            raise ScoringInputError(f"{path}: duplicate id {key!r}")
        out[key] = row
    return out


def read_predictions(path: str | pathlib.Path) -> dict[str, str]:
    """PRED file (.csv, or .jsonl/.json with one object per line) -> {id: raw answer}."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ScoringInputError(f"prediction file not found: {path}")
    reader = _read_jsonl_rows if path.suffix.lower() in (".jsonl", ".json", ".ndjson") else _read_csv_rows
    return {k: r.get("answer") or "" for k, r in _index(reader(path, ("id", "answer")), path).items()}


def read_ground_truth(path: str | pathlib.Path, task: str) -> dict[str, dict[str, str]]:
    """GT CSV -> {id: row}; checks the columns and, for msa, that every label is a number."""
    _check_task(task)
    path = pathlib.Path(path)
    if not path.is_file():
        raise ScoringInputError(f"ground-truth file not found: {path}")
    rows = _index(_read_csv_rows(path, ("id", "label")), path)
    if task == "msa":
        for k, r in rows.items():
            try:
                v = float(r["label"])
            except ValueError:
                raise ScoringInputError(f"{path}: id {k!r} column 'label' must be a signed number for msa, "
                                        f"got {r['label']!r}") from None
            if math.isnan(v):
                raise ScoringInputError(f"{path}: id {k!r} column 'label' is NaN")
    if task in ("mer", "mir", "erg"):
        for k, r in rows.items():
            if not r["label"].strip():
                raise ScoringInputError(f"{path}: id {k!r} has an empty 'label'")
    return rows


EXTRACTORS = ("template", "lexicon", "llm")
LLM_TASKS = ("mer", "ovmer", "eri")


def score(task: str, preds: Mapping[str, str], gt: Mapping[str, Mapping[str, str]], *, mode: str = "clean",
          extractor: str = "template", judge=None) -> dict:
    """Score raw answers `preds` ({id: text}) against `gt` ({id: row with 'label' (+ 'response'/'emotion')}).

    extractor: how mer/ovmer/msa answers without a template are read: "template" (default: not at all),
    "lexicon" (a scan for emotion-wheel words), or "llm" (mer/ovmer: the answers the templates cannot read are
    sent to ``judge.extract_labels``, the reference's "reason -> open set" step, run locally; eri: adds the
    judge's ``llm_*`` scores). ``judge``: an ``emox_jax.eval.llm_judge.LLMJudge`` (required for "llm").
    Returns a flat-ish dict: task, mode, counts (n_gt, n_pred, n_scored, n_unparsable, n_missing_pred,
    n_missing_gt), the task's metrics, and `parity_quirks` (names) in parity mode.
    """
    _check_task(task)
    check_mode(mode)
    if extractor not in EXTRACTORS:
        raise ScoringInputError(f"unknown extractor {extractor!r}; expected one of {EXTRACTORS}")
    if extractor == "llm":
        if task not in LLM_TASKS:
            raise ScoringInputError(f"extractor 'llm' applies to {LLM_TASKS}, not {task!r} (its answers are "
                                    "read by templates: use 'template' or 'lexicon')")
        if judge is None:
            raise ScoringInputError("extractor 'llm' needs a judge model (launch.score --judge DIR)")
    missing_pred = [k for k in gt if k not in preds]
    extra = [k for k in preds if k not in gt]
    ids = [k for k in gt if k in preds] if mode == "parity" else list(gt)
    answers = [preds.get(k, "") for k in ids]
    labels = [gt[k]["label"] for k in ids]
    wheels = load_wheels()
    n_unparsable: int
    if task in ("mer", "ovmer"):
        parsed = [parse_emotion_list(a, extractor="template" if extractor == "llm" else extractor, wheels=wheels)
                  for a in answers]
        n_llm = 0
        if extractor == "llm":
            parsed, n_llm = _llm_fallback(parsed, answers, judge)
        words = [p.value if p.parsed else [] for p in parsed]
        n_unparsable = sum(not p.parsed for p in parsed)
        if task == "mer":
            m = metrics_mer.wheel_hit_rate([lab.strip().lower() for lab in labels], words, mode=mode, wheels=wheels)
        else:
            m = metrics_mer.wheel_set_prf([split_emotion_list(lab) for lab in labels], words, mode=mode,
                                          wheels=wheels)
        if extractor == "llm":
            m["n_llm_extracted"] = n_llm
    elif task == "msa":
        parsed = [parse_sentiment(a, extractor=extractor, wheels=wheels) for a in answers]
        n_unparsable = sum(not p.parsed for p in parsed)
        m = metrics_msa.msa_scores([float(lab) for lab in labels], [p.value if p.parsed else None for p in parsed],
                                   mode=mode)
    elif task == "mir":
        candidates = tuple(dict.fromkeys([lab.strip() for lab in labels] + list(MINTREC2_INTENTS)))
        parsed = [parse_intent(a, candidates) for a in answers]
        n_unparsable = sum(not p.parsed for p in parsed)
        pred = answers if mode == "parity" else [p.value if p.parsed else None for p in parsed]
        m = metrics_mir.mir_scores([lab.strip() for lab in labels], pred, mode=mode)
    elif task == "erg":
        m = metrics_erg.erg_scores(labels, answers, mode=mode, extra_answers=[preds[k] for k in extra])
        n_unparsable = m.pop("n_unparsable")
        refs = [gt[k].get("response") for k in ids]
        if all(r is not None for r in refs) and ids:
            replies = [metrics_erg.strip_think(a) for a in answers]
            m["rougeL_response_f"] = 100 * float(np.mean([metrics_eri.rouge_l(p, r)[2] for p, r in zip(replies, refs)]))
    else:  # eri
        emos = [gt[k].get("emotion") for k in ids]
        emos = emos if ids and all(e is not None and e.strip() for e in emos) else None
        m = metrics_eri.eri_scores(labels, answers, emos, mode=mode, wheels=wheels)
        n_unparsable = m.pop("n_unparsable")
        if extractor == "llm":
            llm = judge.score_eri(labels, answers)
            llm.pop("n_scored", None)
            m |= llm
    m.pop("n_scored", None)
    # A missing answer is scored as "" (unparsable) in clean mode but reported under n_missing_pred only.
    n_unparsable -= sum(k not in preds for k in ids)
    out = {"task": task, "mode": mode, "n_gt": len(gt), "n_pred": len(preds), "n_scored": len(ids),
           "n_unparsable": n_unparsable, "n_missing_pred": len(missing_pred), "n_missing_gt": len(extra)}
    if task in ("mer", "ovmer", "msa") or extractor == "llm":
        out["extractor"] = extractor
    out |= m
    if mode == "parity":
        out["parity_quirks"] = sorted(parity_quirks(task))
    return out


def _llm_fallback(parsed: list, answers: list[str], judge) -> tuple[list, int]:
    """Send the answers no template could read to the judge's label extraction; (parsed, how many it read)."""
    from emox_jax.eval.parsers import ParsedAnswer

    todo = [i for i, p in enumerate(parsed) if not p.parsed and answers[i].strip()]
    if not todo:
        return parsed, 0
    lists = judge.extract_labels([answers[i] for i in todo])
    out, n = list(parsed), 0
    for i, words in zip(todo, lists):
        words = [w.strip().lower() for w in (words or []) if w.strip()]
        if words:   # an unreadable or empty judge reply leaves the answer unparsable (counted)
            out[i] = ParsedAnswer("parsed", words, "llm", answers[i])
            n += 1
    return out, n


def score_files(task: str, pred_path: str | pathlib.Path, gt_path: str | pathlib.Path, *, mode: str = "clean",
                extractor: str = "template", judge=None) -> dict:
    """`score` on files (see the module docstring for their formats)."""
    _check_task(task)
    return score(task, read_predictions(pred_path), read_ground_truth(gt_path, task), mode=mode, extractor=extractor,
                 judge=judge)


def to_json(result: dict) -> str:
    """One JSON line; NaN (parity's undefined values) becomes null so the output is valid JSON."""
    def fix(x):
        if isinstance(x, float) and math.isnan(x):
            return None
        if isinstance(x, dict):
            return {k: fix(v) for k, v in x.items()}
        if isinstance(x, list):
            return [fix(v) for v in x]
        return x
    return json.dumps(fix(result), allow_nan=False, sort_keys=False)
