"""``configs/p2e.py:all``: the whole P2E curriculum in one work dir.

    WORKDIR/base/        base model params (tiny: written by phase 0 = the LM pretrained on text, the vision
                         towers on drawn faces' expressions; taken from the shipped base ``tiny_base`` when
                         it was built for exactly this phase 0, see ``emox_jax/train/tiny_base.py``)
    WORKDIR/phase1a/     phase dirs (layout in ``p2e_job``): 1a and 1b start from the base,
    WORKDIR/phase1b/     phase 2 from 1a's trainable params then 1b's (1b loaded second, as the reference),
    WORKDIR/phase2/      phase 3 from phase 2 (LoRA fresh: it was frozen at its zero-B init until then)
    WORKDIR/phase3/
    WORKDIR/eval/<phase>.json, WORKDIR/report.md, WORKDIR/loss_curves.png   (tiny runs: task scores per phase)

Rerunning resumes: finished phases (final step reached) are skipped, an interrupted one resumes.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from collections.abc import Callable

import jax

from emox_jax.train import checkpoint as ckpt_lib
from emox_jax.train.p2e_job import CKPT_DIR, build_job


def _finished(phase_dir: pathlib.Path, steps: int) -> bool:
    d = phase_dir / CKPT_DIR
    if not d.exists():
        return False
    with ckpt_lib.Checkpointer(d, async_save=False) as ck:
        return (ck.latest_step() or 0) >= steps


def _pretrain_vision(config, job, say) -> tuple[dict | None, dict]:
    """Phase 0, vision (``emox_jax/train/phase0_vision.py``): the tiny CLIP tower and face encoder trained to read
    facial expressions on a corpus of drawn faces of their own; (None, {}) when ``pretrain_vision.steps`` is 0.
    Returns (``{"clip", "face_encoder"}`` params, expression accuracies on other drawn faces)."""
    p = config.get("pretrain_vision")
    if p is None or int(p.steps) <= 0:
        return None, {}
    from emox_jax.train.phase0_vision import expression_accuracy, face_corpus, pretrain_vision

    d = job.data
    frames, labels = face_corpus(int(p.faces), int(p.seed), num_frames=d.num_frames, size=d.image_size)
    say(f"[phase0] pretraining the tiny CLIP and face encoder on {len(frames)} drawn faces for {p.steps} steps")
    params, _ = pretrain_vision(job.model, frames, labels, steps=int(p.steps), lr=float(p.lr),
                                batch_size=int(p.batch_size), seed=job.loop.seed, log=say)
    held = face_corpus(int(p.held_out_faces), int(p.seed) + 1, num_frames=d.num_frames, size=d.image_size)
    acc = expression_accuracy(job.model, params, *held)
    say(f"[phase0] expression accuracy on {len(held[0])} other drawn faces (7 classes, per frame): CLIP "
        f"{100 * acc['clip']:.1f} %, face encoder {100 * acc['face']:.1f} %")
    return {"clip": params["clip"], "face_encoder": params["face_encoder"]}, {k: float(v) for k, v in acc.items()}


def phase0_text(config, job, tok) -> list:
    """The phase-0 LM's text: the train split's prompts + answers tokenised as the pipeline does, plus corpus lines."""
    from configs.p2e import TINY_TASKS
    from emox_jax.assets.corpus import CORPUS_FILE
    from emox_jax.train.phase0 import text_sequences
    from launch.train import emosynth_records

    recs = emosynth_records(job.emosynth["clips"], job.emosynth["seed"], "train")
    tcfg = dataclasses.replace(job.data.tokenize_config(), max_length=int(config.pretrain_lm.seq_len))
    lines = text_sequences(recs, list(TINY_TASKS.values()), tok, tcfg, modes=tuple(config.pretrain_lm.modes))
    if CORPUS_FILE.exists():
        lines += CORPUS_FILE.read_text().splitlines()[:int(config.pretrain_lm.corpus_lines)]
    return lines


def pretrain_base(config, job, tok, lines, say) -> tuple[dict, dict | None, list[float], dict]:
    """Phase 0 proper: (decoder params, vision params, LM losses, expression accuracies)."""
    from emox_jax.train.phase0 import pretrain_lm

    p = config.pretrain_lm
    say(f"[phase0] pretraining the tiny LM on {len(lines)} text lines for {p.steps} steps")
    dec, losses = pretrain_lm(job.model, lines, tok, steps=int(p.steps), lr=float(p.lr),
                              batch_size=int(p.batch_size), seq_len=int(p.seq_len), seed=job.loop.seed, log=say)
    vision, acc = _pretrain_vision(config, job, say)
    return dec, vision, losses, acc


def _phase0(config, job, tok, base_dir: pathlib.Path, say) -> list[float]:
    """Write the base params dir: from the shipped base when it matches this run (``tiny_base``), else trained."""
    from flax import linen as nn

    from emox_jax.train import tiny_base
    from emox_jax.train.p2e_job import abstract_boxed
    from emox_jax.train.phase0 import write_base

    lines = phase0_text(config, job, tok)
    shipped = None
    if bool(config.get("shipped_base", False)):
        shipped = tiny_base.load(tiny_base.fingerprint_parts(config, job, lines), say)
    if shipped is not None:
        bad = tiny_base.mismatched_shapes(shipped[0], shipped[1], nn.meta.unbox(abstract_boxed(job.model)))
        if bad:
            say(f"[phase0] the shipped base does not fit this model ({bad[:3]} of {len(bad)}): training phase 0")
            shipped = None
    if shipped is not None:
        dec, vision, losses, meta = shipped
        acc = meta.get("expression_accuracy", {})
        fell = f"LM loss {losses[0]:.2f} -> {losses[-1]:.2f}, " if losses else ""
        say(f"[phase0] using the shipped base (emox_jax/assets/tiny_base: this configuration's phase 0, built by "
            f"`python -m launch.build_tiny_base`; {fell}expression accuracy CLIP {100 * acc.get('clip', 0):.1f} %, "
            f"face encoder {100 * acc.get('face', 0):.1f} %); `--pretrain` trains it here instead")
    else:
        dec, vision, losses, _ = pretrain_base(config, job, tok, lines, say)
    write_base(job.model, dec, base_dir, job.preset, seed=job.loop.seed, extra=vision)
    return losses


def run_all(config, workdir: str | pathlib.Path, *, log: Callable[[str], None] | None = None,
            evaluate: bool = True, per_task: int | None = None) -> list:
    """Run phase 0 (tiny), 1a, 1b, 2, 3; evaluate the six tasks after each phase (EmoSynth runs); report."""
    from configs.p2e import INIT_FROM, PHASES
    from emox_jax.train import report as report_lib
    from launch.train import emosynth_records, phase_inputs, run_phase

    root = pathlib.Path(workdir).absolute()
    root.mkdir(parents=True, exist_ok=True)
    main = jax.process_index() == 0
    say = log or (lambda s: print(s, flush=True) if main else None)
    base = str(config.base)
    first = build_job(config.phases[PHASES[0]])
    tok, _ = phase_inputs(first)
    phase0_losses: list[float] = []
    if not base and config.pretrain_lm.steps > 0:
        base_dir = root / "base"
        done = (base_dir / "0").exists() and ckpt_lib.Checkpointer(base_dir, async_save=False).latest_step() == 0
        if not done:
            t0 = time.perf_counter()
            phase0_losses = _phase0(config, first, tok, base_dir, say)
            say(f"[phase0] done in {time.perf_counter() - t0:.0f} s")
            (root / "phase0_losses.json").write_text(json.dumps(phase0_losses))
        elif (root / "phase0_losses.json").exists():
            phase0_losses = json.loads((root / "phase0_losses.json").read_text())
        base = str(base_dir)

    results, evals, modes = [], {}, {}
    batches: dict[str, dict] = {}   # eval mode -> prepared task batches
    test = None
    eg = config.eval_generate
    for phase in PHASES:
        pc = config.phases[phase]
        pc.base = base
        pc.init_from = tuple(str(root / q) for q in INIT_FROM[phase])
        pdir = root / phase
        job = build_job(pc)
        if _finished(pdir, job.loop.steps):
            say(f"[{phase}] already finished in {pdir}; skipping")
            res = None
        else:
            t0 = time.perf_counter()
            res = run_phase(pc, str(pdir))
            results.append(res)
            say(f"[{phase}] trained in {time.perf_counter() - t0:.0f} s (compiling included)")
            if res.stopped:
                say(f"[{phase}] stopped at step {res.final_step}; rerun the same command to resume")
                return results
        if evaluate and job.emosynth.get("clips") and main:
            from emox_jax.train.gen_eval import eval_mode, evaluate_tasks, prepare
            from emox_jax.train.p2e_job import load_for_inference

            mode = eval_mode(job.modalities)   # what this phase has trained (+ the words)
            if test is None:
                test = emosynth_records(job.emosynth["clips"], job.emosynth["seed"], "test")
            if mode not in batches:
                batches[mode] = prepare(test, job.data, tok, per_task=per_task or int(eg.per_task), mode=mode)
            t0 = time.perf_counter()
            cfg, params, _ = load_for_inference(str(pdir))
            evals[phase] = evaluate_tasks(cfg, params, batches[mode], tok, int(eg.max_new_tokens))
            say(f"[{phase}] generated and scored {sum(e['n'] for e in evals[phase].values())} held-out answers in "
                f"{time.perf_counter() - t0:.0f} s")
            modes[phase] = mode
            (root / "eval").mkdir(exist_ok=True)
            (root / "eval" / f"{phase}.json").write_text(json.dumps(evals[phase], indent=1))
            say(report_lib.format_table(phase, evals[phase], modes[phase]))
    if main:
        report_lib.write_report(root, evals, phase0_losses, modes)
        say(f"report: {root / 'report.md'}")
    return results
