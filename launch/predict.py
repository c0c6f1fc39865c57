"""Answer one of the six task questions about a clip (or a folder of clips) with a trained checkpoint.

    python -m launch.predict --checkpoint DIR --video clip.mp4 [--wav clip.wav] [--subtitle TEXT|FILE]
                             --task mer|msa|ovmer|eri|mir|erg [--task ...] [--json]
    python -m launch.predict --checkpoint DIR --input-dir CLIPS/ --task mer [--json]

``--checkpoint`` is a P2E job's work dir (its latest phase is used) or one Orbax checkpoint folder.
``--task`` may repeat, or be ``all``. Folder mode: every ``*.mp4`` in the folder, with ``<stem>.wav`` beside it
as its audio (else the mp4's own audio track) and ``<stem>.txt`` as its subtitle. Clips are batched on device
(``--batch-size``). Output: one line per clip x task, ``[id] task: answer``; with ``--json`` one JSON object per
line (id, task, answer, status, parsed value, how it was parsed).

Bad input: an unknown task, a missing/unreadable video, or a checkpoint that lacks a module the chosen
``--mode`` needs, each gives a message naming it. In folder mode a clip that fails is skipped, the others still
run, and the failures are listed on stderr at the end. Exit status: 0 when at least one answer was produced,
1 when every clip failed (or a single clip failed), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

TASK_CHOICES = ("mer", "msa", "ovmer", "eri", "mir", "erg")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m launch.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="P2E work dir or Orbax checkpoint dir")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", help="one clip (mp4 or any container FFmpeg reads)")
    src.add_argument("--input-dir", help="a folder of *.mp4 (with same-named .wav/.txt beside them)")
    p.add_argument("--wav", help="audio for --video (default: the video's own audio track)")
    p.add_argument("--subtitle", default="", help="transcript text, or a path to a .txt file holding it")
    p.add_argument("--history", default="", help="dialogue history (ERG prompts)")
    p.add_argument("--task", action="append", required=True,
                   help=f"one of {', '.join(TASK_CHOICES)} or 'all'; may repeat")
    p.add_argument("--mode", default=None, help="modality mode (default: all branches + subtitle)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=None, help="override every task's new-token budget")
    p.add_argument("--json", action="store_true", help="JSON lines output")
    return p.parse_args(argv)


def _tasks(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        for t in (TASK_CHOICES if v == "all" else [x.strip() for x in v.split(",") if x.strip()]):
            if t not in TASK_CHOICES:
                raise SystemExit(f"error: unknown task {t!r}; expected one of {', '.join(TASK_CHOICES)} or 'all'")
            if t not in out:
                out.append(t)
    return out


def _text_arg(value: str) -> str:
    p = pathlib.Path(value)
    if value and len(value) < 4096 and p.suffix == ".txt" and p.is_file():
        return p.read_text(encoding="utf-8").strip()
    return value


def collect_clips(args: argparse.Namespace):
    from emox_jax.infer.predict import Clip

    if args.video:
        video = pathlib.Path(args.video)
        if not video.is_file():
            raise SystemExit(f"error: video {video}: no such file")
        if args.wav and not pathlib.Path(args.wav).is_file():
            raise SystemExit(f"error: wav {args.wav}: no such file")
        return [Clip(id=video.stem, video=str(video), audio=args.wav, subtitle=_text_arg(args.subtitle),
                     history=args.history)]
    folder = pathlib.Path(args.input_dir)
    if not folder.is_dir():
        raise SystemExit(f"error: --input-dir {folder}: not a directory")
    videos = sorted(folder.glob("*.mp4"))
    if not videos:
        raise SystemExit(f"error: --input-dir {folder}: no *.mp4 files")
    clips = []
    for v in videos:
        wav, txt = v.with_suffix(".wav"), v.with_suffix(".txt")
        clips.append(Clip(id=v.stem, video=str(v), audio=str(wav) if wav.is_file() else None,
                          subtitle=txt.read_text(encoding="utf-8").strip() if txt.is_file() else ""))
    return clips


def main(argv=None) -> int:
    args = parse_args(argv)
    tasks = _tasks(args.task)
    clips = collect_clips(args)

    from emox_jax.infer.predict import DEFAULT_MODE, PredictError, load_predictor

    kw = dict(batch_size=args.batch_size, mode=args.mode or DEFAULT_MODE)
    if args.max_new_tokens:
        kw["max_new_tokens"] = args.max_new_tokens
    try:
        predictor = load_predictor(args.checkpoint, args.step, **kw)
    except PredictError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    failures: list = []
    try:
        preds = predictor.predict(clips, tasks, failures=failures)
    except PredictError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for p in preds:
        if args.json:
            print(json.dumps(p.to_json(), default=str))
        else:
            print(f"[{p.id}] {p.task}: {p.answer}")
    if failures:
        failed_clips = sorted({f.id for f in failures})
        print(f"{len(failed_clips)} of {len(clips)} clip(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f.id} ({f.task}): {f.error}", file=sys.stderr)
    return 0 if preds else 1


if __name__ == "__main__":
    sys.exit(main())
