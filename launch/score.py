"""Score raw model answers against ground truth, the same way for our model and any peer's.

    python -m launch.score --task mer|msa|ovmer|eri|mir|erg --pred PRED --gt GT [--mode clean|parity]
                           [--extractor template|lexicon]

PRED: CSV or JSONL with `id` and `answer` (raw text). GT: CSV with `id` and `label` (+ `response` for erg,
optional `emotion` for eri); see `emox_jax/eval/scoring.py` for each task's label. Prints one JSON object:
the metrics (percentages), the number of unparsable answers and of ids missing on either side. Bad input
(unknown task, missing column, unreadable file) -> a message naming it on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from emox_jax.eval.modes import MODES
from emox_jax.eval.scoring import TASKS, ScoringInputError, score_files, to_json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m launch.score", description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True, choices=TASKS)
    ap.add_argument("--pred", required=True, help="predictions: CSV or JSONL with id, answer")
    ap.add_argument("--gt", required=True, help="ground truth: CSV with id, label (+ response / emotion)")
    ap.add_argument("--mode", default="clean", choices=MODES,
                    help="clean (default): intended definitions; parity: the reference's named quirks")
    ap.add_argument("--extractor", default="template", choices=("template", "lexicon"),
                    help="mer/ovmer/msa: read only answer templates (default), or fall back to a lexicon scan")
    args = ap.parse_args(argv)  # argparse exits 2 with a message naming a bad --task / --mode
    try:
        result = score_files(args.task, args.pred, args.gt, mode=args.mode, extractor=args.extractor)
    except ScoringInputError as e:
        print(f"launch.score: error: {e}", file=sys.stderr)
        return 2
    print(to_json(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
