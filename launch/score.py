"""Score raw model answers against ground truth, the same way for our model and any peer's.

    python -m launch.score --task mer|msa|ovmer|eri|mir|erg --pred PRED --gt GT [--mode clean|parity]
                           [--extractor template|lexicon|llm --judge QWEN_INSTRUCT_DIR]

PRED: CSV or JSONL with `id` and `answer` (raw text). GT: CSV with `id` and `label` (+ `response` for erg,
optional `emotion` for eri); see `emox_jax/eval/scoring.py` for each task's label. Prints one JSON object:
the metrics (percentages), the number of unparsable answers and of ids missing on either side. Bad input
(unknown task, missing column, unreadable file) -> a message naming it on stderr and exit code 2.

``--extractor llm`` (mer, ovmer, eri) runs a local Qwen2.5-Instruct ``save_pretrained`` directory given by
``--judge`` through our own decoder (``emox_jax.eval.llm_judge``; greedy, deterministic, nothing downloaded):
for mer/ovmer it reads the emotion list out of answers no template matches (``n_llm_extracted`` counts them);
for eri it adds the judge's ``llm_clue_overlap`` / ``llm_label_overlap`` / ``llm_overall`` scores.
"""

from __future__ import annotations

import argparse
import sys

from emox_jax.eval.modes import MODES
from emox_jax.eval.scoring import EXTRACTORS, TASKS, ScoringInputError, score_files, to_json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m launch.score", description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True, choices=TASKS)
    ap.add_argument("--pred", required=True, help="predictions: CSV or JSONL with id, answer")
    ap.add_argument("--gt", required=True, help="ground truth: CSV with id, label (+ response / emotion)")
    ap.add_argument("--mode", default="clean", choices=MODES,
                    help="clean (default): intended definitions; parity: the reference's named quirks")
    ap.add_argument("--extractor", default="template", choices=EXTRACTORS,
                    help="mer/ovmer/msa: read only answer templates (default), or fall back to a lexicon scan; "
                         "llm (mer/ovmer/eri): fall back to / add a local LLM judge (--judge)")
    ap.add_argument("--judge", default="", help="--extractor llm: a local Qwen2.5-Instruct save_pretrained dir")
    ap.add_argument("--judge-max-new-tokens", type=int, default=128)
    ap.add_argument("--judge-batch-size", type=int, default=8)
    args = ap.parse_args(argv)  # argparse exits 2 with a message naming a bad --task / --mode
    judge = None
    try:
        if args.judge and args.extractor != "llm":
            raise ScoringInputError("--judge is only used with --extractor llm")
        if args.extractor == "llm":
            if not args.judge:
                raise ScoringInputError("--extractor llm needs --judge DIR (a local Qwen2.5-Instruct "
                                        "save_pretrained directory)")
            from emox_jax.eval.scoring import LLM_TASKS

            if args.task not in LLM_TASKS:   # before loading a multi-GB judge for nothing
                raise ScoringInputError(f"--extractor llm applies to {LLM_TASKS}, not {args.task!r}")
            from emox_jax.eval.llm_judge import LLMJudge

            try:
                judge = LLMJudge.load(args.judge, max_new_tokens=args.judge_max_new_tokens,
                                      batch_size=args.judge_batch_size)
            except (OSError, ValueError, KeyError) as e:
                raise ScoringInputError(f"--judge {args.judge}: {e}") from None
        result = score_files(args.task, args.pred, args.gt, mode=args.mode, extractor=args.extractor, judge=judge)
    except ScoringInputError as e:
        print(f"launch.score: error: {e}", file=sys.stderr)
        return 2
    print(to_json(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
