"""`generate(out_dir, clips, seed, layouts)`: write an EmoSynth corpus in the requested real-dataset layouts."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import multiprocessing
import os
import pathlib
import time
from typing import Any, Iterable

from data_pipelines.emosynth import clips as clips_lib
from data_pipelines.emosynth import labels, layouts as layouts_lib

VERSION = 1


def resolve_layouts(layouts: str | Iterable[str]) -> tuple[str, ...]:
    """'all', one name, a comma-separated string or an iterable of names -> validated tuple of layout names."""
    if isinstance(layouts, str):
        layouts = [x.strip() for x in layouts.split(",") if x.strip()]
    names: list[str] = []
    for name in layouts:
        for n in (layouts_lib.LAYOUTS if name == "all" else (name,)):
            if n not in layouts_lib.LAYOUTS:
                raise ValueError(f"unknown EmoSynth layout {n!r}; expected one of {layouts_lib.LAYOUTS} or 'all'")
            if n not in names:
                names.append(n)
    if not names:
        raise ValueError("no EmoSynth layout requested")
    return tuple(names)


def _encode(args: tuple[labels.ClipSpec, clips_lib.SynthConfig]) -> tuple[int, bytes, bytes]:
    spec, cfg = args
    mp4, wav = clips_lib.encode_media(spec, cfg)
    return spec.index, mp4, wav


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def generate(out_dir: str | os.PathLike, clips: int, seed: int, layouts: str | Iterable[str] = "all",
             cfg: clips_lib.SynthConfig = clips_lib.SynthConfig(), workers: int = 1) -> dict[str, Any]:
    """Write `clips` clips (train + held-out test) under `out_dir/<layout root>/` for each layout.

    Returns the manifest (also written to `out_dir/manifest.json`, byte-identical for a seed): seed, sizes,
    label distribution, and per layout its root, label files (with sha256) and media counts. The returned
    dict additionally has `seconds` and `clips_per_second` (not written, so the file stays deterministic).
    `workers > 1` encodes media in that many spawned processes (same bytes as one worker).
    """
    cfg.validate()
    names = resolve_layouts(layouts)
    t0 = time.perf_counter()
    out = pathlib.Path(out_dir)
    specs = labels.sample_clips(clips, seed, cfg.test_fraction)
    pairs = [(s, clips_lib.clip_text(s)) for s in specs]
    plans = {n: layouts_lib.plan(n, pairs) for n in names}
    manifest: dict[str, Any] = {
        "generator": "emosynth", "version": VERSION, "seed": int(seed), "clips": int(clips),
        "config": dataclasses.asdict(cfg), "splits": labels.split_sizes(clips, cfg.test_fraction),
        "label_distribution": labels.label_distribution(specs), "layouts": {},
    }
    for n, p in plans.items():
        root = out / p.root
        for rel, content in p.label_files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        for v, a in p.media.values():
            (root / v).parent.mkdir(parents=True, exist_ok=True)
            (root / a).parent.mkdir(parents=True, exist_ok=True)
        manifest["layouts"][n] = {
            "root": p.root,
            "label_files": {rel: _sha(c) for rel, c in sorted(p.label_files.items())},
            "num_videos": len(p.media), "num_audios": len(p.media),
        }

    def write(index: int, mp4: bytes, wav: bytes) -> None:
        # the first layout gets the bytes; the others hard-link to them (one copy on disk, when possible)
        first: list[pathlib.Path] = []
        for p in plans.values():
            if index in p.media:
                targets = [out / p.root / rel for rel in p.media[index]]
                if not first:
                    targets[0].write_bytes(mp4)
                    targets[1].write_bytes(wav)
                    first = targets
                    continue
                for src, dst, content in zip(first, targets, (mp4, wav)):
                    dst.unlink(missing_ok=True)
                    try:
                        os.link(src, dst)
                    except OSError:  # other filesystem / no hard links: plain copy
                        dst.write_bytes(content)

    jobs = [(s, cfg) for s in specs]
    if workers > 1:
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe once jax/threads are loaded
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            for index, mp4, wav in pool.map(_encode, jobs, chunksize=max(1, len(jobs) // (4 * workers))):
                write(index, mp4, wav)
    else:
        for job in jobs:
            write(*_encode(job))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    seconds = time.perf_counter() - t0
    return {**manifest, "seconds": seconds, "clips_per_second": clips / seconds}
