"""P2E curriculum configs (spec §8): ``--config=configs/p2e.py:PHASE[,tiny]``.

PHASE: ``phase1a`` (audio adapter), ``phase1b`` (visual + facial adapters), ``phase2`` (fusion + all adapters),
``phase3`` (adapters + LoRA on the multi-task mixture) or ``all`` (the phases in order; each starts from the
previous phase's final checkpoint: 1a and 1b from the base model, phase 2 from 1a's audio adapters + 1b's
visual/facial adapters, phase 3 from phase 2; LoRA starts fresh). ``tiny`` = the tiny preset on EmoSynth
(in-memory, generated at start-up), 32x32 frames and short audio clips, so CPU training is quick; the tiny
``all`` run first pretrains the (random-init) tiny LM on text and the tiny CLIP / face encoder on drawn faces'
expressions ("phase 0"), since no pretrained weights exist offline.

Sections: ``model`` (NanoEmoXConfig), ``optim`` (OptimConfig; ``trainable_regexes`` = the phase's groups),
``data`` (DataConfig: datasets with mixture weights = P2E ratios used as SAMPLING WEIGHTS), ``loop``
(P2ELoop), ``mesh``, ``init_from`` (previous phases' checkpoint dirs), ``base`` (full-model params dir written
by ``launch.convert``; empty = random init from ``loop.seed``), ``tokenizer``, ``emosynth`` (tiny only).
"""

from __future__ import annotations

import ml_collections

from configs import common
from configs import nano_emox as model_presets

PHASES = ("phase1a", "phase1b", "phase2", "phase3")
KINDS = PHASES + ("all",)

# Trainable groups per phase (spec §8.1). The facial pooling is NOT trainable in 1a: the reference marks it
# trainable but phase 1a runs audio-only prompts, so it never receives a gradient there (spec §6 counts
# 20,905,472 for 1a = audio Q-Former + audio_proj); putting it in 1a would only add dead optimizer state.
AUDIO = (r"audio_qformer/.*", r"audio_proj/.*")
VISUAL = (r"video_qformer/.*", r"video_proj/.*", r"face_pooling/.*")
FUSION = (r"fusion/.*",)
LORA = (r"decoder/.*/lora_[ab]",)
TRAINABLE = {"phase1a": AUDIO, "phase1b": VISUAL, "phase2": AUDIO + VISUAL + FUSION,
             "phase3": AUDIO + VISUAL + FUSION + LORA}
# Which earlier phases a phase starts from, in load order (later overrides earlier; spec §8.2).
INIT_FROM = {"phase1a": (), "phase1b": (), "phase2": ("phase1a", "phase1b"), "phase3": ("phase2",)}
MAIN = "multiface_audio_face_frame_text"


def _ds(name, weight=1.0, mode=MAIN, label_type="hybird", split="train"):
    return dict(name=name, split=split, weight=float(weight), modality_mode=mode, label_type=label_type,
                label_type_candidates=(), valence_range=(-3.0, 3.0))


def real_datasets(phase: str) -> list[dict]:
    """Spec §8.2 (reader names of ``data_pipelines.readers``); ratios are sampling weights."""
    if phase == "phase1a":
        return [_ds("m3ed", 1, "audio_text", "emotion_recognition"), _ds("crema_d", 1, "audio_text",
                                                                          "emotion_recognition")]
    if phase == "phase1b":
        return [_ds("caer_ferv39k", 1, "face_frame", "emotion_recognition")]
    if phase == "phase2":
        # Natural sizes 1779 / 5644 (paper: 24 % / 76 %).
        return [_ds("mintrec", 0.24, label_type="intent_recognition"),
                _ds("mintrec2", 0.76, label_type="intent_recognition")]
    return [_ds("mer_caption_plus", 0.55), _ds("merr_fine", 0.05, label_type="description"),
            _ds("mintrec", 0.02, label_type="intent_recognition"),
            _ds("mintrec2", 0.03, label_type="intent_recognition"), _ds("avamerg", 0.35)]


# EmoSynth "datasets": one per task, all over the same in-memory records, each with a fixed label type.
TINY_TASKS = {"msa": "sentiment", "mer": "onehot_w_candidates", "ovmer": "ovlabel", "eri": "description",
              "mir": "intent_recognition", "erg": "empathic_response_with_coe"}


def tiny_datasets(phase: str) -> list[dict]:
    if phase == "phase1a":
        return [_ds("emosynth_mer", 1, "audio_text", TINY_TASKS["mer"]),
                _ds("emosynth_msa", 1, "audio_text", TINY_TASKS["msa"])]
    if phase == "phase1b":
        return [_ds("emosynth_mer", 1, "face_frame", TINY_TASKS["mer"])]
    if phase == "phase2":
        return [_ds("emosynth_mir", 1, label_type=TINY_TASKS["mir"]),
                _ds("emosynth_mer", 1, label_type=TINY_TASKS["mer"])]
    # Shares of phase 3's batches (tiny: mix_unit="batch", one task per batch). MSA and MER are learned in the
    # earlier phases already; the open-ended answers (OV-MER, ERI, ERG) and MIR get the most updates.
    weights = {"msa": 0.05, "mer": 0.15, "ovmer": 0.2, "eri": 0.2, "mir": 0.15, "erg": 0.25}
    return [_ds(f"emosynth_{t}", weights[t], label_type=lt) for t, lt in TINY_TASKS.items()]


def data_section(preset: str, phase: str) -> ml_collections.ConfigDict:
    tiny = preset == "tiny"
    d = dict(
        datasets=tiny_datasets(phase) if tiny else real_datasets(phase), data_dir="",
        batch_size=8 if tiny else 24, max_length=384 if tiny else 1024,
        # tiny: every main-mode EmoSynth prompt fits 384 tiny-tokenizer tokens (ERG ~340 at most); phases 1-2's
        # MER/MSA/MIR prompts fit 192. Tiny batches hold one task each (mix_unit="batch", data_pipelines/mixture.py):
        # with per-sample mixing a phase-3 batch nearly always held an ERI or ERG prompt (384 tokens) and those
        # ~100-token answers were ~85 % of the supervised tokens, so MIR's one-word answers got ~2 % of the
        # gradient. Measured on the quickstart's phase 3 from the same phase 0-2 checkpoints (48 held-out clips
        # per task; batch mixing and the phase-3 weights changed together): MIR 16.7 -> 35.4, OV-MER 26.9 -> 38.9,
        # ERI 27.3 -> 33.5, ERG 43.8 -> 31.2; 1.2 -> 0.85 s per step.
        length_buckets=(192, 384) if tiny else (256, 512, 768, 1024),
        num_frames=8, image_size=32 if tiny else 224, num_audio_clips=4 if tiny else 8,
        clip_seconds=0.25 if tiny else 2.0, sample_rate=16000,
        frame_tokens=8 if tiny else 32, face_tokens=4, audio_tokens=8 if tiny else 32, multi_tokens=1,
        template="vicuna", parity_prompts=False, mixture="weights", mix_unit="batch" if tiny else "example",
        seed=42, shuffle=True,
        num_threads=2 if tiny else 8, prefetch_buffer_size=4, mp_workers=0, max_consecutive_skips=1000)
    c = ml_collections.ConfigDict(d)
    c.datasets = [ml_collections.ConfigDict(x) for x in d["datasets"]]
    return c


# (lr, min_lr, warmup_lr, warmup_steps, steps) per phase; the real ones are the reference's (spec §8.2), with
# the warmup that actually warms up (the reference's never runs) and the cosine ending at the last step.
REAL_SCHEDULE = {"phase1a": (3e-4, 1e-4, 1e-6, 5000, 15000), "phase1b": (3e-4, 1e-4, 1e-6, 5000, 25000),
                 "phase2": (1e-5, 1e-5, 5e-7, 2500, 5000), "phase3": (8e-6, 8e-6, 5e-7, 5000, 300000)}
# Tiny phase 3: 240 steps. 320 (from the same phase 0-2 checkpoints, 48 held-out clips per task) traded MSA
# 73.0 -> 67.8 and ERI 35.4 -> 31.4 for OV-MER 40.0 -> 43.8 and MIR 33.3 -> 43.8, for ~1.5 minutes more.
TINY_SCHEDULE = {"phase1a": (2e-3, 2e-4, 1e-5, 10, 60), "phase1b": (2e-3, 2e-4, 1e-5, 10, 60),
                 "phase2": (1e-3, 1e-4, 1e-5, 10, 60), "phase3": (1.5e-3, 1e-4, 1e-5, 20, 240)}


def loop_section(preset: str, phase: str, steps: int) -> ml_collections.ConfigDict:
    tiny = preset == "tiny"
    return ml_collections.ConfigDict(dict(
        batch_size=8 if tiny else 24, steps=steps, grad_accum=1, log_every=10 if tiny else 50,
        eval_every=0 if tiny else 5000, eval_batches=4 if tiny else 50, ckpt_every=50 if tiny else 1000,
        keep_ckpts=2, async_ckpt=True, seed=0, max_consecutive_nan=5 if tiny else 20,
        dtype="float32" if tiny else "bfloat16", backbone_param_dtype="" if tiny else "bfloat16",
        remat="none" if tiny else "dots_no_batch", peak_flops_per_device=0.0, progress=True,
        # tiny: 240 clips x ~11 KB of features; real: ~0.4 MB per clip, off unless a phase's clips fit in memory.
        frozen_feature_cache_mb=256.0 if tiny else 0.0))


def phase_config(phase: str, preset: str) -> ml_collections.ConfigDict:
    lr, min_lr, warmup_lr, warmup, steps = (TINY_SCHEDULE if preset == "tiny" else REAL_SCHEDULE)[phase]
    c = ml_collections.ConfigDict()
    c.phase = phase
    c.preset = preset
    c.model = model_presets.model_section(preset)
    c.optim = common.optim_section(lr=lr, min_lr=min_lr, warmup_init_lr=warmup_lr, warmup_steps=warmup,
                                   total_steps=steps, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.05,
                                   grad_clip_norm=1.0 if preset == "tiny" else 0.0,
                                   trainable_regexes=TRAINABLE[phase])
    c.data = data_section(preset, phase)
    c.loop = loop_section(preset, phase, steps)
    c.mesh = common.mesh_section((1, -1, 1))  # FSDP over every device
    c.init_from = tuple()   # checkpoint dirs of earlier phases, in load order (set by `all` or by hand)
    c.base = ""             # full-model params dir (launch.convert); "" = random init from loop.seed
    c.tokenizer = "tiny" if preset == "tiny" else ""
    c.emosynth = ml_collections.ConfigDict(dict(clips=240 if preset == "tiny" else 0, seed=7, eval_per_task=24))
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    words = common.parse_arg(arg, {"phase": KINDS, "preset": model_presets.PRESETS},
                             {"phase": "phase3", "preset": "nano_emox"})
    phase, preset = words["phase"], words["preset"]
    if phase != "all":
        return common.lock(phase_config(phase, preset))
    c = ml_collections.ConfigDict()
    c.phase = "all"
    c.preset = preset
    c.phases = ml_collections.ConfigDict({p: phase_config(p, preset) for p in PHASES})
    # Phase 0 (tiny only): pretrain the random-init tiny LM on text so the LM frozen in phases 1-2 is a
    # language model; steps=0 skips it (users with real weights give `base` from launch.convert instead).
    # Windows of 384 tokens hold one to three whole prompts + answers (packed without splitting); the prompts
    # alternate between the main (all-branch) layout and the text-only one (see emox_jax/train/phase0.py).
    c.pretrain_lm = ml_collections.ConfigDict(dict(steps=300 if preset == "tiny" else 0, lr=3e-3, batch_size=8,
                                                   seq_len=384, corpus_lines=200,
                                                   modes=(MAIN, "text")))
    # Phase 0, vision (tiny only): the random tiny CLIP / face encoder carry no usable expression information, so
    # they are first trained to read expressions on drawn faces of their own (emox_jax/train/phase0_vision.py).
    # 600 steps at lr 5e-3 on 1200 faces: 71 % / 44 % per-frame expression accuracy (CLIP / face encoder, 7 classes)
    # on other drawn faces; 300 steps at 2e-3 reached 46 % / 28 %.
    c.pretrain_vision = ml_collections.ConfigDict(dict(steps=600 if preset == "tiny" else 0, lr=5e-3, batch_size=16,
                                                       faces=1200, held_out_faces=200, seed=11))
    c.base = ""
    # Tiny: use the phase-0 base shipped in emox_jax/assets/tiny_base when it was built for exactly this phase-0
    # configuration and text (emox_jax/train/tiny_base.py; ~390 s saved on 2 cores); False trains phase 0.
    c.shipped_base = preset == "tiny"
    # 48 = every held-out clip of the tiny corpus (240 clips, 20 % test): with 24 a task's score moved by ~10
    # points between runs of the same config.
    # 144 new tokens: the longest answers (ERG's chain of empathy + reply, 102-137 tiny-tokenizer tokens; ERI's
    # description, 80-102) end before it, so the conclusion / reply is scored rather than cut off (at 96 every
    # ERG reply and ~10 % of ERI conclusions were); generation stops once every answer has ended.
    c.eval_generate = ml_collections.ConfigDict(dict(max_new_tokens=144, per_task=48))
    return common.lock(c)
