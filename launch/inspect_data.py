"""See what the model is fed: decoded prompts/targets, a contact sheet of frames, a waveform plot.

    python -m launch.inspect_data --data-dir DIR --dataset mintrec [--split train] [--n 4] --out OUT
        [--mode multiface_audio_face_frame_text] [--label-type hybird] [--image-size 224]
    python -m launch.inspect_data --emosynth 16 --dataset emosynth --out OUT      # in-memory EmoSynth

``--data-dir`` is either a TFDS data dir where the dataset is prepared, or a folder holding the dataset's
published layout (e.g. an EmoSynth output directory: ``DIR/MIntRec``, ``DIR/AvaMERG``...), which is then
prepared under ``OUT/tfds`` first. Samples go through the real evaluation pipeline (prompt, tokenizer,
media decoding), so what is printed is exactly what a batch holds. Writes ``OUT/frames.png`` (one row per
sample, one column per frame) and ``OUT/audio.png`` (the 8 per-clip-normalised audio clips per sample).
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import re
import sys
from typing import Any, Sequence

import numpy as np

from data_pipelines import pipeline, schema

# Reader name -> EmoSynth layout folder (a layout root inside an EmoSynth output directory).
_EMOSYNTH_ROOTS = {"mer2023": "mer2023-dataset-process", "mer_caption_plus": "MER2025", "mintrec": "MIntRec",
                   "avamerg": "AvaMERG", "cmu_mosi": "cmumosi-process"}


def _source(args: argparse.Namespace) -> Sequence[Any]:
    if args.emosynth:
        from data_pipelines.emosynth import iter_examples
        return list(iter_examples(args.emosynth, args.seed, split=None))
    from data_pipelines import sources
    data_dir = pathlib.Path(args.data_dir)
    if (data_dir / f"emox_{args.dataset}").is_dir():   # already a prepared TFDS data dir
        return sources.data_source(args.dataset, args.split, data_dir)
    manual = pathlib.Path(args.manual_dir) if args.manual_dir else None
    if manual is None:
        root = _EMOSYNTH_ROOTS.get(args.dataset)
        manual = data_dir / root if root and (data_dir / root).is_dir() else data_dir
    tfds_dir = pathlib.Path(args.out) / "tfds"
    print(f"preparing {args.dataset} from {manual} under {tfds_dir}", file=sys.stderr)
    sources.prepare(args.dataset, manual, tfds_dir)
    return sources.data_source(args.dataset, args.split, tfds_dir)


def _collapse(text: str) -> str:
    """'<FrameHere>' * 32 -> '<FrameHere>x32' so prompts stay readable."""
    return re.sub(r"((<\w+Here>)\2+)", lambda m: f"{m.group(2)}x{len(m.group(1)) // len(m.group(2))}", text)


def _contact_sheet(frames: np.ndarray, labels: list[str], path: pathlib.Path) -> None:
    from PIL import Image, ImageDraw

    n, t, h, w, _ = frames.shape
    pad, label_w = 4, 160
    sheet = Image.new("RGB", (label_w + t * (w + pad), n * (h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        draw.text((4, i * (h + pad) + 4), labels[i][:24], fill="black")
        for j in range(t):
            sheet.paste(Image.fromarray(frames[i, j]), (label_w + j * (w + pad), i * (h + pad)))
    sheet.save(path)


def _waveforms(audio: np.ndarray, labels: list[str], sample_rate: int, path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, clips, samples = audio.shape
    fig, axes = plt.subplots(n, 1, figsize=(12, 1.8 * n), squeeze=False)
    for i in range(n):
        ax = axes[i, 0]
        t = np.arange(clips * samples) / sample_rate
        ax.plot(t, audio[i].reshape(-1), lw=0.3)
        for c in range(1, clips):
            ax.axvline(c * samples / sample_rate, color="r", lw=0.5)
        ax.set_title(labels[i], fontsize=8, loc="left")
        ax.set_ylabel("z")
    axes[-1, 0].set_xlabel(f"seconds (clips of {samples / sample_rate:.1f} s, concatenated; red = clip edge)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def inspect(args: argparse.Namespace) -> dict[str, Any]:
    from emox_jax.tokenizer import load_tokenizer, tiny_tokenizer

    tok = load_tokenizer(args.tokenizer) if args.tokenizer else tiny_tokenizer()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    src = _source(args)
    cfg = pipeline.data_config(dict(
        datasets=[dict(name=args.dataset, split=args.split, modality_mode=args.mode, label_type=args.label_type)],
        batch_size=args.n, max_length=args.max_length, image_size=args.image_size, num_threads=1))
    it_src = _Head(src, args.n * 4)
    it = pipeline.make_eval_iterator(cfg, tok, sources=[it_src], process_index=0,
                                     process_count=1)
    try:
        batch = next(it)
    except StopIteration:
        raise SystemExit(f"no usable sample among the first {len(it_src)} records of {args.dataset}; skipped "
                         f"{it.skipped}: {it.skip_counts}; e.g. {list(it.recent_skips)[:3]}") from None
    rows = [i for i in range(args.n) if batch["valid"][i]]
    labels = []
    for i in rows:
        n = int(batch["length"][i])
        ids, mask = batch["input_ids"][i, :n], batch["loss_mask"][i, :n]
        first = int(np.flatnonzero(mask)[0]) + 1
        print(f"=== {batch['id'][i]}  ({batch['dataset_name'][i]}, {batch['label_type'][i]}, "
              f"task {schema.TASKS[batch['task_id'][i]]}, {n} tokens; placeholders at frame "
              f"{batch['frame_pos'][i]} face {batch['face_pos'][i]} audio {batch['audio_pos'][i]} "
              f"multi {batch['multi_pos'][i]})")
        print("PROMPT:", _collapse(tok.decode(ids[:first])))
        print("TARGET:", tok.decode(ids[first:]))
        labels.append(f"{batch['id'][i]} {batch['label_type'][i]}")
    files = {}
    if (batch["frame_pos"][rows] >= 0).any() or (batch["face_pos"][rows] >= 0).any():
        files["frames"] = str(out / "frames.png")
        _contact_sheet(batch["frames"][rows], labels, out / "frames.png")
    if (batch["audio_pos"][rows] >= 0).any():
        files["audio"] = str(out / "audio.png")
        _waveforms(batch["audio"][rows], labels, cfg.sample_rate, out / "audio.png")
    if it.skipped:
        print(f"skipped {it.skipped} bad samples: {it.skip_counts}; e.g. {list(it.recent_skips)[:3]}")
    for k, v in files.items():
        print(f"wrote {k}: {v}")
    return {"samples": len(rows), "skipped": it.skipped, "files": files}


class _Head:
    """The first ``n`` records of a source (so inspecting a big dataset reads only a few)."""

    def __init__(self, src: Sequence[Any], n: int):
        self.src, self.n = src, min(n, len(src))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return self.src[i]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="prepared TFDS data dir, or a folder with the dataset's layout")
    p.add_argument("--manual-dir", help="the dataset's layout folder, if not DIR or DIR/<EmoSynth root>")
    p.add_argument("--emosynth", type=int, default=0, help="use N in-memory EmoSynth clips instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", required=True, help="reader name, e.g. mintrec, avamerg, mer2023")
    p.add_argument("--split", default="train")
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--out", required=True)
    p.add_argument("--mode", default="multiface_audio_face_frame_text", choices=schema.MODALITY_MODES)
    p.add_argument("--label-type", default="hybird")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--tokenizer", default="", help="tokenizer spec for emox_jax.tokenizer.load_tokenizer "
                                                    "(default: the tiny sentencepiece model)")
    args = p.parse_args(argv)
    if not args.emosynth and not args.data_dir:
        p.error("give --data-dir or --emosynth N")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    inspect(parse_args(argv))


if __name__ == "__main__":
    main()
