"""Evaluation sweeps: checkpoints x datasets x splits, data-parallel generation, resumable, with model selection.

A *cell* is (checkpoint dir, step, dataset, split). For each cell the dataset split is read through the same
Grain eval pipeline as training (``data_pipelines.pipeline.make_eval_iterator``: this process's shard, the
task's prompt, media decoded as the mode needs), each batch is generated on device with
``emox_jax.infer.predict.Predictor.generate_batch`` (batch sharded over the mesh's ``(data, fsdp)`` axes; every
process feeds its slice), the answers of all processes are gathered, and process 0 scores them with
``emox_jax.eval.scoring.score`` and writes ``<workdir>/cells/<key>.json`` (+ ``<key>.predictions.jsonl``)
atomically. A rerun skips every cell whose file exists, so an interrupted sweep finishes only what is missing.
At the end ``results.csv`` / ``results.json`` (one row per cell, scalar metrics), ``selection.json`` and one PNG
per (dataset, metric) against training step (``emox_jax.eval.plots``) are (re)written from the cell files.

Model selection: per dataset, the checkpoint with the best primary metric on the **validation** split; its
test numbers are reported beside it. The reference instead picks the best epoch on the test set
(evaluation-and-data.md §1.1); with ``report_best_on_test`` that choice is reported too, under the key
``best_on_test_REFERENCE_DEFECT``, never used as the selection.

Datasets are named ``<source>:<task>``. ``emosynth`` is generated in memory (``iter_examples``): its
"validation" split is the held-out part of a corpus drawn with ``emosynth_seed + 1`` (fresh clips from the same
distribution, disjoint from training), "test" the held-out part of the ``emosynth_seed`` corpus. Any other source
is a prepared TFDS reader (``data_pipelines.sources.data_source``); its splits are named in
``val_split``/``test_split`` and a missing validation split is an error, never a silent fall-back to test.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from emox_jax.eval.scoring import score, to_json

PRIMARY_METRIC = {"mer": "hit_rate", "ovmer": "f", "msa": "weighted_f1", "mir": "accuracy", "erg": "emotion_accuracy",
                  "eri": "wheel_f"}
SPLITS = ("validation", "test")


class SweepError(ValueError):
    """Bad sweep configuration or inputs; the message names the key / path."""


@dataclasses.dataclass(frozen=True)
class DatasetRef:
    source: str  # "emosynth" or a reader name
    task: str

    @property
    def name(self) -> str:
        return f"{self.source}:{self.task}"


@dataclasses.dataclass(frozen=True)
class Cell:
    checkpoint: str  # checkpoint directory (absolute)
    step: int
    dataset: DatasetRef
    split: str

    @property
    def key(self) -> str:
        h = hashlib.sha1(f"{self.checkpoint}|{self.step}|{self.dataset.name}|{self.split}".encode()).hexdigest()[:10]
        return f"{run_label(self.checkpoint)}_s{self.step}_{self.dataset.source}_{self.dataset.task}_{self.split}_{h}"


def run_label(checkpoint_dir: str) -> str:
    """A short name for a checkpoint dir: the phase folder of ``<phase>/checkpoints``, else the dir's name."""
    p = pathlib.Path(checkpoint_dir)
    return (p.parent.name if p.name == "checkpoints" else p.name) or "ckpt"


def parse_datasets(spec: str | Sequence[str]) -> list[DatasetRef]:
    """``"emosynth:mer,emosynth:msa,mintrec:mir"`` -> DatasetRefs; a bare source means its every EmoSynth task."""
    from emox_jax.infer.predict import TASKS

    items = [x.strip() for x in (spec.split(",") if isinstance(spec, str) else spec) if x.strip()]
    if not items:
        raise SweepError("config.datasets is empty; e.g. --config.datasets=emosynth:mer,emosynth:msa")
    out = []
    for item in items:
        source, _, task = item.partition(":")
        tasks = TASKS if (not task and source == "emosynth") else (task,)
        for t in tasks:
            if t not in TASKS:
                raise SweepError(f"config.datasets: {item!r} names task {t!r}; expected <source>:<task> with task "
                                 f"one of {', '.join(TASKS)}")
            if source != "emosynth":
                from data_pipelines.readers import READERS
                if source not in READERS:
                    raise SweepError(f"config.datasets: unknown source {source!r} in {item!r}; known: emosynth, "
                                     f"{', '.join(sorted(READERS))}")
            out.append(DatasetRef(source, t))
    return out


def list_checkpoints(spec: str | Sequence[str], steps: str = "") -> list[tuple[str, int]]:
    """(checkpoint dir, step) for every finalised step of every checkpoint dir at or under each entry of
    ``spec`` (comma-separated); ``steps`` (comma-separated ints) keeps only those steps."""
    from emox_jax.infer.predict import PredictError, checkpoint_dirs
    from emox_jax.train.checkpoint import Checkpointer

    roots = [x.strip() for x in (spec.split(",") if isinstance(spec, str) else spec) if x.strip()]
    if not roots:
        raise SweepError("config.checkpoints is empty; pass a P2E work dir or checkpoint dir(s)")
    keep = {int(s) for s in steps.split(",") if s.strip()} if steps else None
    out = []
    for root in roots:
        try:
            dirs = checkpoint_dirs(root)
        except PredictError as e:
            raise SweepError(f"config.checkpoints: {e}") from None
        for d in dirs:
            with Checkpointer(d, async_save=False) as ck:
                out += [(str(pathlib.Path(d).absolute()), s) for s in ck.steps() if keep is None or s in keep]
    if not out:
        raise SweepError(f"config.checkpoints {roots}: no finalised checkpoint" + (f" with steps {sorted(keep)}"
                                                                                   if keep else ""))
    return out


# ------------------------------------------------------------------------------------------------- data
def _emosynth_records(split: str, clips: int, seed: int, max_samples: int, media: bool) -> list[dict]:
    from data_pipelines.emosynth import iter_examples

    corpus_seed = seed + 1 if split == "validation" else seed
    out = []
    for ex in iter_examples(clips, corpus_seed, split="test", media=media):
        out.append(dict(ex, split=split))
        if max_samples and len(out) >= max_samples:
            break
    return out


def load_records(ds: DatasetRef, split: str, cfg: Mapping[str, Any]) -> list[dict]:
    """Schema records of a dataset split (at most ``cfg['max_samples']`` when > 0)."""
    if split not in SPLITS:
        raise SweepError(f"split {split!r} is not one of {SPLITS}")
    n = int(cfg.get("max_samples", 0))
    if ds.source == "emosynth":
        from data_pipelines.prompts import MODE_MODALITIES
        media = any(m != "text" for m in MODE_MODALITIES[str(cfg.get("mode", "text"))])
        return _emosynth_records(split, int(cfg["emosynth_clips"]), int(cfg["emosynth_seed"]), n, media)
    from data_pipelines.pipeline import normalize_record
    from data_pipelines.sources import data_source

    name = cfg["val_split"] if split == "validation" else cfg["test_split"]
    if not name:
        raise SweepError(f"dataset {ds.name}: no {split} split configured (config.eval.val_split); the best "
                         "checkpoint is never chosen on test")
    try:
        src = data_source(ds.source, name, cfg["data_dir"])
    except (KeyError, FileNotFoundError) as e:
        raise SweepError(f"dataset {ds.name} split {name!r}: {e}") from None
    count = len(src) if not n else min(n, len(src))
    return [normalize_record(src[i]) for i in range(count)]


def ground_truth(task: str, records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """{id: GT row} in the format ``emox_jax.eval.scoring.score`` reads (see its module docstring)."""
    gt = {}
    for r in records:
        if task == "mer":
            row = {"label": r["emotion"]}
        elif task == "ovmer":
            row = {"label": ", ".join(r["emotions"])}
        elif task == "msa":
            row = {"label": repr(float(r["sentiment"]))}
        elif task == "mir":
            row = {"label": r["intent"]}
        elif task == "erg":
            coe = list(r.get("coe") or [])
            row = {"label": (coe[1] if len(coe) == 4 and coe[1] else r["emotion"]), "response": r["response"]}
        else:
            row = {"label": r["reason"], "emotion": r["emotion"]}
        gt[r["id"]] = row
    return gt


# ----------------------------------------------------------------------------------------------- gather
def allgather_json(obj: Any) -> list[Any]:
    """Every process's ``obj`` (JSON-able), in process order; one process: ``[obj]``."""
    import jax

    if jax.process_count() == 1:
        return [obj]
    from jax.experimental import multihost_utils

    data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([data.size], np.int32))).reshape(-1)
    buf = np.zeros((int(sizes.max()),), np.uint8)
    buf[:data.size] = data
    allbuf = np.asarray(multihost_utils.process_allgather(buf)).reshape(len(sizes), -1)
    return [json.loads(allbuf[i, :sizes[i]].tobytes().decode()) for i in range(len(sizes))]


# ------------------------------------------------------------------------------------------------- cells
def generate_cell(predictor, cell: Cell, records: Sequence[dict], cfg: Mapping[str, Any],
                  tokenizer) -> tuple[dict[str, str], int, list[str]]:
    """({id: answer} for every record of ``cell``'s split, all processes' rows gathered; how many samples the
    pipeline skipped (undecodable media, prompts that cannot fit) and the first messages naming them). Skipped
    samples have no answer: clean scoring counts them as misses (``n_missing_pred``)."""
    import jax

    from data_pipelines.pipeline import DataConfig, DatasetSpec, make_eval_iterator
    from emox_jax.infer.predict import TASK_LABEL_TYPES

    m = predictor.media
    spec = DatasetSpec(name=cell.dataset.source, split=cell.split, modality_mode=predictor.mode,
                       label_type=TASK_LABEL_TYPES[cell.dataset.task])
    counts = predictor.config.token_counts
    data = DataConfig(datasets=(spec,), batch_size=predictor.batch_size, max_length=m.max_length,
                      length_buckets=(m.max_length,), num_frames=m.num_frames, image_size=m.image_size,
                      num_audio_clips=m.num_audio_clips, clip_seconds=m.clip_seconds, sample_rate=m.sample_rate,
                      frame_tokens=counts["frame"], face_tokens=counts["face"], audio_tokens=counts["audio"],
                      multi_tokens=counts["multi"], template=m.template, shuffle=False,
                      num_threads=int(cfg.get("num_threads", 2)))
    it = make_eval_iterator(data, tokenizer, sources={spec.name: list(records)},
                            process_index=jax.process_index(), process_count=jax.process_count())
    local: dict[str, str] = {}
    while True:
        # Every process runs the same number of device calls (a process out of data feeds filler rows).
        try:
            batch = next(it)
        except StopIteration:
            batch = None
        more = allgather_json(batch is not None)
        if not any(more):
            break
        if batch is None:
            continue_rows = _filler_batch(predictor)
            predictor.generate_batch(cell.dataset.task, **continue_rows)
            continue
        valid = np.asarray(batch["valid"]).astype(bool)
        mask = np.asarray(batch["loss_mask"])
        lengths = np.where(mask.any(axis=1), mask.argmax(axis=1) + 1, np.asarray(batch["length"]))
        starts = {mod: np.asarray(batch[f"{mod}_pos"]) for mod in predictor.modalities}
        answers = predictor.generate_batch(
            cell.dataset.task, np.asarray(batch["input_ids"]), lengths, starts,
            np.asarray(batch["frames"]) if predictor.needs_frames else None,
            np.asarray(batch["audio"]) if predictor.needs_audio else None)
        for i, ans in enumerate(answers):
            if valid[i]:
                local[str(batch["id"][i])] = ans
    merged: dict[str, str] = {}
    n_skipped, skips = 0, []
    for part, n, sk in allgather_json([local, it.skipped, list(it.recent_skips)[:5]]):
        merged.update(part)
        n_skipped += n
        skips += sk
    return merged, n_skipped, skips


def _filler_batch(predictor) -> dict[str, Any]:
    m, b = predictor.media, predictor.batch_size
    out = {"input_ids": np.full((b, 8), predictor.tokenizer.bos_id, np.int32), "lengths": np.ones((b,), np.int32),
           "starts": {mod: np.full((b,), -1, np.int32) for mod in predictor.modalities}}
    if predictor.needs_frames:
        out["frames"] = np.zeros((b, m.num_frames, m.image_size, m.image_size, 3), np.uint8)
    if predictor.needs_audio:
        out["audio"] = np.zeros((b, m.num_audio_clips, int(round(m.clip_seconds * m.sample_rate))), np.float32)
    return out


def _write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def scalar_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The numeric top-level entries of a ``score`` result (per-wheel breakdowns and counts' lists dropped)."""
    return {k: float(v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# ------------------------------------------------------------------------------------------------- sweep
def run_sweep(cfg: Mapping[str, Any], *, mesh=None, predictor_factory: Callable | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or finish) the sweep described by ``cfg`` (the ``configs/eval.py`` dict); returns the summary
    ``{"rows": [...], "selection": {...}, "computed": [cell keys computed this run], "skipped": [...]}``."""
    import jax

    from emox_jax.infer.predict import load_predictor

    workdir = pathlib.Path(cfg["workdir"]).absolute()
    cells_dir = workdir / "cells"
    if jax.process_index() == 0:
        cells_dir.mkdir(parents=True, exist_ok=True)
    datasets = parse_datasets(cfg["datasets"])
    ckpts = list_checkpoints(cfg["checkpoints"], str(cfg.get("steps", "") or ""))
    splits = [s.strip() for s in str(cfg.get("splits", "validation,test")).split(",") if s.strip()]
    for s in splits:
        if s not in SPLITS:
            raise SweepError(f"config.eval.splits: {s!r} is not one of {SPLITS}")
    factory = predictor_factory or (lambda d, s: load_predictor(
        d, s, mesh=mesh, batch_size=int(cfg["batch_size"]), mode=str(cfg["mode"]),
        max_new_tokens=int(cfg["max_new_tokens"]) or None, length_multiple=int(cfg.get("length_multiple", 64))))
    records_cache: dict[tuple[str, str], list[dict]] = {}
    from emox_jax.infer.predict import PredictError

    computed, skipped, errors = [], [], {}
    for ckpt, step in ckpts:
        todo = [Cell(ckpt, step, ds, sp) for ds in datasets for sp in splits]
        todo = [c for c in todo if not (cells_dir / f"{c.key}.json").exists() or skipped.append(c.key)]
        if not todo:
            continue
        try:
            predictor = factory(ckpt, step)
        except PredictError as e:   # e.g. a phase-1a checkpoint asked for the all-branch mode: say so, go on
            errors[f"{ckpt}@{step}"] = str(e)
            log(f"checkpoint {ckpt} step {step}: not evaluated: {e}")
            continue
        for cell in todo:
            key = (cell.dataset.source, cell.split)
            if key not in records_cache:
                records_cache[key] = load_records(cell.dataset, cell.split, cfg)
            records = records_cache[key]
            answers, n_skipped, skips = generate_cell(predictor, cell, records, cfg, predictor.tokenizer)
            for msg in skips:
                log(f"cell {cell.key}: skipped sample: {msg}")
            if jax.process_index() == 0:
                result = score(cell.dataset.task, answers, ground_truth(cell.dataset.task, records),
                               mode=str(cfg.get("score_mode", "clean")))
                row = {"checkpoint": ckpt, "run": run_label(ckpt), "step": step,
                       "dataset": cell.dataset.name, "task": cell.dataset.task, "split": cell.split,
                       "primary_metric": PRIMARY_METRIC[cell.dataset.task], "n_pipeline_skipped": n_skipped,
                       **scalar_metrics(result)}
                preds = "".join(json.dumps({"id": k, "answer": v}) + "\n" for k, v in sorted(answers.items()))
                _write_atomic(cells_dir / f"{cell.key}.predictions.jsonl", preds)
                _write_atomic(cells_dir / f"{cell.key}.json", to_json({"row": row, "score": result}))
            computed.append(cell.key)
            log(f"cell {cell.key}: done ({len(answers)} answers)")
    summary = {"computed": computed, "skipped": skipped, "errors": errors}
    if jax.process_index() == 0:
        summary |= write_tables(workdir, [Cell(c, s, ds, sp) for c, s in ckpts for ds in datasets for sp in splits],
                                report_best_on_test=bool(cfg.get("report_best_on_test", False)),
                                plots=bool(cfg.get("plots", True)))
    if jax.process_count() > 1:
        # Process 0 writes the tables and plots while the others would already be leaving; a process that
        # exits early waits alone at jax.distributed's shutdown barrier and can time out there.
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("emox_jax.eval.sweep: tables written")
    return summary


def write_tables(workdir: pathlib.Path, cells: Sequence[Cell], *, report_best_on_test: bool = False,
                 plots: bool = True) -> dict[str, Any]:
    """results.csv / results.json / selection.json (+ PNG plots) from the cell files of ``cells``."""
    rows = []
    for c in cells:
        path = workdir / "cells" / f"{c.key}.json"
        if path.exists():
            rows.append(json.loads(path.read_text())["row"])
    rows.sort(key=lambda r: (r["dataset"], r["split"], r["run"], r["step"]))
    selection = select_best(rows, report_best_on_test)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with (workdir / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    _write_atomic(workdir / "results.json", json.dumps(rows, indent=1, sort_keys=True) + "\n")
    _write_atomic(workdir / "selection.json", json.dumps(selection, indent=1, sort_keys=True) + "\n")
    out = {"rows": rows, "selection": selection}
    if plots and rows:
        from emox_jax.eval.plots import plot_metrics
        out["plots"] = [str(p) for p in plot_metrics(rows, workdir / "plots")]
    return out


def select_best(rows: Sequence[Mapping[str, Any]], report_best_on_test: bool = False) -> dict[str, Any]:
    """Per dataset: the (checkpoint, step) with the best primary metric on validation (ties: the earlier
    step) and that checkpoint's test numbers; optionally the reference's test-set pick, named as a defect."""
    out: dict[str, Any] = {}
    for ds in sorted({r["dataset"] for r in rows}):
        metric = next(r["primary_metric"] for r in rows if r["dataset"] == ds)

        def best(split):
            cands = [r for r in rows if r["dataset"] == ds and r["split"] == split
                     and not math.isnan(r.get(metric, math.nan))]
            return max(cands, key=lambda r: (r[metric], -r["step"])) if cands else None

        def test_of(r):
            t = [x for x in rows if x["dataset"] == ds and x["split"] == "test" and x["checkpoint"] == r["checkpoint"]
                 and x["step"] == r["step"]]
            return t[0].get(metric) if t else None

        v = best("validation")
        entry: dict[str, Any] = {"metric": metric}
        entry["best_on_validation"] = None if v is None else {
            "checkpoint": v["checkpoint"], "step": v["step"], "validation": v[metric], "test": test_of(v)}
        if report_best_on_test:
            t = best("test")
            entry["best_on_test_REFERENCE_DEFECT"] = None if t is None else {
                "checkpoint": t["checkpoint"], "step": t["step"], "test": t[metric],
                "note": "chosen on the test set as the reference does (evaluation-and-data.md §1.1); optimistic"}
        out[ds] = entry
    return out
