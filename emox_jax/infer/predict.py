"""Batched on-device prediction for clips: media decode -> task prompt -> splice -> generate -> parse.

    predictor = Predictor(model_config, params, tokenizer, MediaConfig(...))      # or load_predictor(ckpt_dir)
    preds = predictor.predict([Clip(id="c1", video="c1.mp4", audio="c1.wav", subtitle="...")], tasks=["mer"])
    preds[0].answer, preds[0].parsed.value

Per clip and task: frames ``uint8 [T, S, S, 3]`` and audio clips ``float32 [C, N]`` are decoded once
(``data_pipelines.media``), the task's prompt is rendered by ``data_pipelines.prompts`` with no answer (the
same template, clauses and placeholder runs the model was trained on) and tokenized by
``data_pipelines.tokenize``'s encoder, which reports each placeholder run's start. Rows are right-padded into
``[B, L]`` with ``B`` = ``batch_size`` (short batches are filled with copies of the first row, dropped after)
and ``L`` rounded up to a multiple of ``length_multiple`` so a few shapes cover every prompt (one compile
each). On device, ``NanoEmoX.embed_inputs`` encodes the media and splices the modality tokens into the prompt
embeddings ``[B, L, D]``; ``emox_jax.infer.generate.generate_from_embeds`` runs the decoder (greedy by
default: the same inputs give the same answer). Answers are cut at ``###`` / EOS and parsed with
``emox_jax.eval.parsers.parse_answer``.

Sharding: with ``mesh=`` the batch is placed over the mesh's ``(data, fsdp)`` axes (``batch_size`` must be a
multiple of their product) and params are replicated; every process feeds its own rows
(``jax.make_array_from_process_local_data``) and reads back its own rows. ``emox_jax.eval.sweep`` gathers the
rows of all processes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines import prompts
from data_pipelines import tokenize as tok_lib
from data_pipelines import vocab
from emox_jax.eval.parsers import MINTREC_INTENTS, ParsedAnswer, parse_answer
from emox_jax.infer.generate import GenerateConfig, generate_from_embeds
from emox_jax.infer.sampling import SamplingConfig
from emox_jax.infer.stopping import stop_sequences_for_strings, truncate_at_stop_strings
from emox_jax.models.nano_emox import MODALITIES, NanoEmoX, NanoEmoXConfig

TASKS = ("mer", "msa", "ovmer", "eri", "mir", "erg")
# The label type whose prompt asks each task's question (reference-architecture.md §7.1).
TASK_LABEL_TYPES = {"mer": "onehot_w_candidates", "msa": "sentiment", "ovmer": "ovlabel", "eri": "description",
                    "mir": "intent_recognition", "erg": "empathic_response_with_coe"}
# New-token budgets per task (answers are one short sentence except ERI / ERG).
DEFAULT_MAX_NEW_TOKENS = {"mer": 24, "msa": 24, "ovmer": 32, "eri": 160, "mir": 16, "erg": 192}
DEFAULT_MODE = "multiface_audio_face_frame_text"
STOP_STRINGS = ("###",)
# Which model branches (top-level param names) each modality needs.
MODALITY_MODULES = {"frame": ("clip", "video_qformer", "video_proj"),
                    "audio": ("hubert", "audio_qformer", "audio_proj"),
                    "face": ("face_encoder", "face_pooling"), "multi": ("clip", "hubert", "fusion")}


class PredictError(ValueError):
    """Bad prediction input (unknown task, unreadable media, checkpoint without a needed module); the message
    names what and where."""


@dataclasses.dataclass(frozen=True)
class MediaConfig:
    """How clips are decoded and prompts rendered; must match what the checkpoint was trained with."""

    num_frames: int = 8
    image_size: int = 224
    num_audio_clips: int = 8
    clip_seconds: float = 2.0
    sample_rate: int = 16000
    max_length: int = 1024
    template: str = "vicuna"

    @classmethod
    def for_model(cls, config: NanoEmoXConfig, **overrides) -> "MediaConfig":
        """Defaults that fit ``config`` (frame size = CLIP's image size; clip length >= HuBERT's minimum)."""
        seconds = max(2.0 if config.hubert.min_samples >= 32000 else 0.1, config.hubert.min_samples / 16000)
        base = dict(image_size=config.clip.image_size, clip_seconds=seconds)
        return cls(**{**base, **overrides})

    @classmethod
    def from_data_config(cls, data: Mapping[str, Any]) -> "MediaConfig":
        """From a pipeline ``data`` section (``data_pipelines.pipeline.DataConfig`` fields; extras ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names})


@dataclasses.dataclass
class Clip:
    """One input: a video (path or encoded bytes), an optional separate audio file (else the video's own
    audio track is used), an optional transcript and dialogue history."""

    id: str
    video: str | os.PathLike | bytes
    audio: str | os.PathLike | bytes | None = None
    subtitle: str = ""
    history: str = ""


@dataclasses.dataclass
class Prediction:
    id: str
    task: str
    answer: str
    parsed: ParsedAnswer

    def to_json(self) -> dict[str, Any]:
        value = self.parsed.value
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        return {"id": self.id, "task": self.task, "answer": self.answer, "status": self.parsed.status,
                "parsed": value, "how": self.parsed.how}


@dataclasses.dataclass
class ClipFailure:
    id: str
    task: str
    error: str


def check_task(task: str) -> str:
    if task not in TASKS:
        raise PredictError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return task


def mode_modalities(mode: str) -> tuple[str, ...]:
    if mode not in prompts.MODE_MODALITIES:
        raise PredictError(f"unknown modality mode {mode!r}; known: {list(prompts.MODE_MODALITIES)}")
    return tuple(m for m in MODALITIES if m in prompts.MODE_MODALITIES[mode])


def missing_modules(params: Mapping[str, Any], modalities: Sequence[str]) -> list[str]:
    """Top-level modules ``modalities`` need (plus the decoder) that ``params`` lacks."""
    need = ["decoder"] + [m for mod in modalities for m in MODALITY_MODULES[mod]]
    return sorted({m for m in need if m not in params})


def prompt_record(clip: Clip, task: str) -> dict[str, Any]:
    """A schema-like record carrying what a prompt needs (no labels: predict renders prompts only)."""
    return {"id": clip.id, "dataset": "predict", "subtitle": clip.subtitle, "history": clip.history,
            "candidates": list(vocab.EMOTIONS) if task == "mer" else
            (list(MINTREC_INTENTS) if task == "mir" else [])}


def prompt_spec(record: Mapping[str, Any], task: str, mode: str,
                config: prompts.PromptConfig = prompts.PromptConfig(),
                valence_range: tuple[float, float] = (-3.0, 3.0)) -> prompts.PromptSpec:
    """The task's prompt for ``record`` with an empty answer (the first question paraphrase, as in eval)."""
    label_type = TASK_LABEL_TYPES[check_task(task)]
    record = dict(record)
    question = prompts.build_question(record, label_type, None, valence_range)
    has_text = "text" in prompts.MODE_MODALITIES[mode]
    uses_history = has_text and bool(record.get("history"))
    utterance_line = prompts.tt.UTTERANCE_LINES.get(label_type, "")
    fields = {"subtitle": "" if uses_history else str(record.get("subtitle") or ""),
              "history": str(record.get("history") or "") if uses_history else "",
              "utterance": str(record.get("subtitle") or "") if utterance_line else "",
              "question": question, "answer": ""}
    return prompts.PromptSpec(label_type=label_type, mode=mode, fields=fields, uses_history=uses_history,
                              config=config, utterance_line=utterance_line, task=prompts.schema.LABEL_TYPES[label_type])


def _round_up(n: int, m: int) -> int:
    return int(math.ceil(n / m) * m)


@functools.partial(jax.jit, static_argnames=("config", "modalities", "gen_config"))
def _generate(params, input_ids, frames, audio, starts, lengths, rng, *, config: NanoEmoXConfig,
              modalities: tuple[str, ...], gen_config: GenerateConfig):
    """Encode media, splice, generate: ``tokens [B, max_new_tokens]``, ``lengths [B]``."""
    model = NanoEmoX(config)
    embeds = model.apply({"params": params}, input_ids, frames=frames, audio=audio, starts=starts,
                         modalities=modalities, method=NanoEmoX.embed_inputs)
    out = generate_from_embeds(params["decoder"], embeds, lengths, rng, model_config=config.llm,
                               gen_config=gen_config)
    return out.tokens, out.lengths


class Predictor:
    """A model ready to answer: config, (unboxed) params, tokenizer, media settings.

    ``batch_size``: rows per device call (short batches are padded). ``mode``: the modality mode of the
    prompts (default: all branches + subtitle, the phase-3 mode). ``sampling``: greedy by default.
    """

    def __init__(self, config: NanoEmoXConfig, params: Mapping[str, Any], tokenizer: Any,
                 media: MediaConfig | None = None, *, batch_size: int = 8, mode: str = DEFAULT_MODE,
                 max_new_tokens: Mapping[str, int] | int | None = None, sampling: SamplingConfig | None = None,
                 length_multiple: int = 64, mesh: jax.sharding.Mesh | None = None, seed: int = 0,
                 source: str = "<params>"):
        self.config = config
        self.params = params
        self.tokenizer = tokenizer
        self.media = media or MediaConfig.for_model(config)
        self.mode = mode
        self.modalities = mode_modalities(mode)
        self.source = source
        missing = missing_modules(params, self.modalities)
        if missing:
            raise PredictError(f"{source}: the checkpoint has no {missing} module(s), needed for modality mode "
                               f"{mode!r} (it holds {sorted(params)}); pick a mode whose branches it has "
                               f"(e.g. 'text' or 'audio_text') or a later-phase checkpoint")
        if media is not None and media.image_size != config.clip.image_size:
            raise PredictError(f"media.image_size {media.image_size} != the model's clip.image_size "
                               f"{config.clip.image_size}")
        self.batch_size = batch_size
        self.length_multiple = length_multiple
        self.mesh = mesh
        if mesh is not None:
            n = mesh.shape["data"] * mesh.shape["fsdp"]
            if (batch_size * jax.process_count()) % n:
                raise PredictError(f"batch_size {batch_size} (rows per process) x {jax.process_count()} "
                                   f"process(es) must be a multiple of the mesh's data*fsdp = {n}")
        if isinstance(max_new_tokens, int):
            self.max_new_tokens = {t: max_new_tokens for t in TASKS}
        else:
            self.max_new_tokens = {**DEFAULT_MAX_NEW_TOKENS, **(max_new_tokens or {})}
        self.sampling = sampling or SamplingConfig(greedy=True)
        self.rng = jax.random.key(seed)
        self._encoder = tok_lib.make_encoder(tokenizer, tok_lib.TokenizeConfig(
            max_length=self.media.max_length, **{f"{m}_tokens": n for m, n in config.token_counts.items()}))
        self._prompt_config = prompts.PromptConfig(template=self.media.template)
        pieces = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
        self._stop_seqs = stop_sequences_for_strings(STOP_STRINGS, pieces)
        self._placed_params = None

    # ------------------------------------------------------------------------------------------ host side
    def decode_media(self, clip: Clip) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(frames uint8 [T, S, S, 3] or None, audio float32 [C, N] or None) as the mode needs them."""
        from data_pipelines import media

        m = self.media
        frames = audio = None
        name = clip.id if isinstance(clip.video, (bytes, bytearray)) else None
        if self.needs_frames:
            try:
                frames = media.decode_frames(clip.video, num_frames=m.num_frames, size=m.image_size, name=name)
            except media.MediaDecodeError as e:
                raise PredictError(f"clip {clip.id!r}: unreadable video {e}") from None
        if self.needs_audio:
            src = clip.audio if clip.audio is not None else clip.video
            which = "audio file" if clip.audio is not None else "audio track of the video"
            try:
                audio = media.decode_audio_clips(src, num_clips=m.num_audio_clips, seconds=m.clip_seconds,
                                                 sample_rate=m.sample_rate, name=name)
            except media.MediaDecodeError as e:
                raise PredictError(f"clip {clip.id!r}: unreadable {which} {e} (pass a wav, or a mode without "
                                   f"audio such as 'face_frame_text')") from None
        return frames, audio

    def encode_prompt(self, record: Mapping[str, Any], task: str) -> tuple[list[int], dict[str, int]]:
        """(prompt ids, {modality: placeholder start}) for ``task``."""
        spec = prompt_spec(record, task, self.mode, self._prompt_config)
        segs, _ = prompts.render(spec)
        ids, pos = self._encoder.encode(segs)
        if len(ids) + self.max_new_tokens[task] > self.config.llm.max_position_embeddings:
            raise PredictError(f"clip {record.get('id')!r}: prompt of {len(ids)} tokens + "
                               f"{self.max_new_tokens[task]} new ones exceeds the model's "
                               f"{self.config.llm.max_position_embeddings} positions")
        return ids, pos

    # ---------------------------------------------------------------------------------------- device side
    def _params_on_device(self):
        if self._placed_params is None:
            if self.mesh is None:
                self._placed_params = jax.device_put(self.params)
            else:
                rep = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
                self._placed_params = jax.device_put(self.params, rep)
        return self._placed_params

    def _place(self, x: np.ndarray):
        if self.mesh is None:
            return jnp.asarray(x)
        from emox_jax.sharding import batch_sharding
        # Each process feeds its own rows; the global batch is every process's rows stacked.
        return jax.make_array_from_process_local_data(batch_sharding(self.mesh, x.ndim), x,
                                                      (x.shape[0] * jax.process_count(),) + x.shape[1:])

    def generate_rows(self, task: str, ids: Sequence[Sequence[int]], starts: Sequence[Mapping[str, int]],
                      frames: Sequence[np.ndarray | None], audio: Sequence[np.ndarray | None]) -> list[str]:
        """Answers for up to ``batch_size`` prepared rows of one task (this process's rows)."""
        n = len(ids)
        arr = np.full((n, max(len(x) for x in ids)), self.tokenizer.pad_id, np.int32)
        for r, row in enumerate(ids):
            arr[r, :len(row)] = row
        lengths = np.asarray([len(x) for x in ids], np.int32)
        st = {mod: np.asarray([s.get(mod, -1) for s in starts], np.int32) for mod in self.modalities}
        m = self.media
        fr = au = None
        if self.needs_frames:
            fr = np.zeros((n, m.num_frames, m.image_size, m.image_size, 3), np.uint8)
            for r, f in enumerate(frames):
                fr[r] = f
        if self.needs_audio:
            au = np.zeros((n, m.num_audio_clips, int(round(m.clip_seconds * m.sample_rate))), np.float32)
            for r, a in enumerate(audio):
                au[r] = a
        return self.generate_batch(task, arr, lengths, st, fr, au)

    @property
    def needs_frames(self) -> bool:
        return bool({"frame", "face", "multi"} & set(self.modalities))

    @property
    def needs_audio(self) -> bool:
        return bool({"audio", "multi"} & set(self.modalities))

    def generate_batch(self, task: str, input_ids: np.ndarray, lengths: np.ndarray, starts: Mapping[str, np.ndarray],
                       frames: np.ndarray | None = None, audio: np.ndarray | None = None) -> list[str]:
        """Answers for ``n <= batch_size`` rows: ``input_ids [n, L]`` right-padded prompts (anything after
        ``lengths[i]``, e.g. a pipeline batch's target, is ignored), ``starts {modality: [n]}`` placeholder
        starts (-1 = none), ``frames [n, T, S, S, 3]`` / ``audio [n, C, N]`` when the mode reads them."""
        n = int(input_ids.shape[0])
        if not 0 < n <= self.batch_size:
            raise ValueError(f"generate_batch: {n} rows, expected 1..{self.batch_size}")
        lengths = np.asarray(lengths, np.int32)
        length = min(_round_up(int(lengths.max()), self.length_multiple), int(input_ids.shape[1]))
        fill = np.asarray(list(range(n)) + [0] * (self.batch_size - n))  # pad with copies of row 0 (dropped)
        ids = np.full((self.batch_size, _round_up(length, self.length_multiple)), self.tokenizer.pad_id, np.int32)
        ids[:, :length] = np.asarray(input_ids, np.int32)[fill, :length]
        ids[ids < 0] = self.tokenizer.pad_id
        missing = [mod for mod in self.modalities if mod not in starts]
        if missing:
            raise ValueError(f"generate_batch: no placeholder starts for {missing}")
        st = {mod: np.asarray(starts[mod], np.int32)[fill] for mod in self.modalities}
        for name, x, need in (("frames", frames, self.needs_frames), ("audio", audio, self.needs_audio)):
            if need and x is None:
                raise ValueError(f"generate_batch: mode {self.mode!r} needs {name}")
        fr = self._place(np.asarray(frames)[fill]) if self.needs_frames else None
        au = self._place(np.asarray(audio, np.float32)[fill]) if self.needs_audio else None
        gen = GenerateConfig(max_new_tokens=self.max_new_tokens[task], sampling=self.sampling,
                             stop_token_ids=(self.tokenizer.eos_id,), stop_sequences=self._stop_seqs,
                             pad_id=self.tokenizer.pad_id)
        tokens, out_len = _generate(self._params_on_device(), self._place(ids), fr, au,
                                    {k: self._place(v) for k, v in st.items()}, self._place(lengths[fill]),
                                    self.rng, config=self.config, modalities=self.modalities, gen_config=gen)
        tokens, out_len = self._local(tokens), self._local(out_len)
        answers = []
        for r in range(n):
            row = [int(t) for t in tokens[r, :int(out_len[r])] if int(t) != self.tokenizer.eos_id]
            answers.append(truncate_at_stop_strings(self.tokenizer.decode(row), STOP_STRINGS).strip())
        return answers

    def _local(self, x: jax.Array) -> np.ndarray:
        """This process's rows of a batch-sharded output, in the order it fed them."""
        if self.mesh is None or jax.process_count() == 1:
            return np.asarray(jax.device_get(x))
        from jax.experimental import multihost_utils
        spec = jax.sharding.PartitionSpec(("data", "fsdp"), *([None] * (x.ndim - 1)))
        return np.asarray(multihost_utils.global_array_to_host_local_array(x, self.mesh, spec))

    # --------------------------------------------------------------------------------------------- public
    def predict(self, clips: Sequence[Clip], tasks: Sequence[str], *,
                failures: list[ClipFailure] | None = None) -> list[Prediction]:
        """Answers for every clip x task (clip-major order). A clip whose media cannot be read raises
        PredictError, unless ``failures`` is given: then it is recorded there and the others still run."""
        tasks = [check_task(t) for t in tasks]
        prepared = []  # (clip, frames, audio)
        for clip in clips:
            try:
                frames, audio = self.decode_media(clip)
            except PredictError as e:
                if failures is None:
                    raise
                failures.extend(ClipFailure(clip.id, t, str(e)) for t in tasks)
                continue
            prepared.append((clip, frames, audio))
        results: dict[tuple[str, str], Prediction] = {}
        for task in tasks:
            rows = []
            for clip, frames, audio in prepared:
                try:
                    ids, pos = self.encode_prompt(prompt_record(clip, task), task)
                except (PredictError, tok_lib.TruncationError) as e:
                    if failures is None:
                        raise PredictError(str(e)) from None
                    failures.append(ClipFailure(clip.id, task, str(e)))
                    continue
                rows.append((clip, ids, pos, frames, audio))
            for i in range(0, len(rows), self.batch_size):
                chunk = rows[i:i + self.batch_size]
                answers = self.generate_rows(task, [r[1] for r in chunk], [r[2] for r in chunk],
                                             [r[3] for r in chunk], [r[4] for r in chunk])
                for (clip, *_), ans in zip(chunk, answers):
                    results[(clip.id, task)] = Prediction(clip.id, task, ans, parse_answer(task, ans))
        return [results[(c.id, t)] for c, _, _ in prepared for t in tasks if (c.id, t) in results]



# ------------------------------------------------------------------------------------------ checkpoints
PARAM_ITEMS = ("params", "trainable_params", "frozen_params", "backbones")   # items merged into one tree


def checkpoint_dirs(path: str | os.PathLike) -> list[str]:
    """Orbax checkpoint directories at or under ``path`` (a Checkpointer dir, a job workdir holding
    ``checkpoints/`` or per-phase ``<phase>/checkpoints/``), in name order. Raises PredictError if none."""
    import pathlib

    root = pathlib.Path(path)
    if not root.is_dir():
        raise PredictError(f"checkpoint {root}: no such directory")

    def is_ckpt_dir(p: pathlib.Path) -> bool:
        return any(c.is_dir() and c.name.isdigit() and (c / "meta").exists() for c in p.iterdir())

    if is_ckpt_dir(root):
        return [str(root)]
    found = sorted(str(p) for p in root.rglob("*") if p.is_dir() and not p.name.isdigit() and is_ckpt_dir(p))
    if not found:
        raise PredictError(f"checkpoint {root}: no Orbax checkpoint (a folder of <step>/ directories with "
                           f"'meta') at or under it")
    return found


def _latest_dir(path: str | os.PathLike) -> str:
    """Of several checkpoint dirs under a workdir, the one whose latest step was written last (the last
    phase of a P2E run)."""
    import pathlib

    from emox_jax.train.checkpoint import Checkpointer

    dirs = checkpoint_dirs(path)
    if len(dirs) == 1:
        return dirs[0]

    def mtime(d):
        with Checkpointer(d, async_save=False) as ck:
            s = ck.latest_step()
        return (pathlib.Path(d) / str(s)).stat().st_mtime if s is not None else -1.0

    return max(dirs, key=mtime)


def model_config_from_meta(meta: Mapping[str, Any], where: str) -> NanoEmoXConfig:
    """``meta["model"]`` (a NanoEmoXConfig dict) or ``meta["preset"]`` -> NanoEmoXConfig."""
    from emox_jax.config_utils import ConfigError, from_config

    model = meta.get("model")
    if isinstance(model, Mapping) and "llm" in model:
        try:
            return from_config(NanoEmoXConfig, dict(model), where=f"{where}: meta.model")
        except ConfigError as e:
            raise PredictError(str(e)) from None
    preset = meta.get("preset")
    if preset:
        from configs import nano_emox as presets
        return presets.preset(str(preset))
    raise PredictError(f"{where}: metadata has neither a 'model' config nor a 'preset' "
                       f"(keys: {sorted(meta)}); not a Nano-EmoX checkpoint?")


def load_checkpoint(path: str | os.PathLike, step: int | None = None) -> tuple[NanoEmoXConfig, dict, dict, str]:
    """(model config, params {module: tree}, metadata, the checkpoint dir used).

    A P2E phase checkpoint (metadata with ``trainable_paths``; ``<phase workdir>/checkpoints``) is loaded with
    ``emox_jax.train.p2e_job.load_for_inference`` (base model + init_from chain + this phase's trainable params).
    Any other ``Checkpointer`` dir: the param items of ``PARAM_ITEMS`` the step holds are restored as saved and
    merged by top-level module name (metadata ``model`` = a NanoEmoXConfig dict, or ``preset``)."""
    import pathlib

    import orbax.checkpoint as ocp

    from emox_jax.train.checkpoint import Checkpointer

    d = _latest_dir(path)
    with Checkpointer(d, async_save=False) as ck:
        try:
            meta = ck.metadata(step)
        except FileNotFoundError as e:
            raise PredictError(f"checkpoint {d}: {e}") from None
    s = int(meta["step"])
    if "trainable_paths" in meta and "config" in meta:
        # A P2E phase checkpoint (emox_jax.train.p2e_job): only the phase's trainable params are saved; the
        # rest come from the job's base model and init_from chain, which load_for_inference rebuilds.
        from emox_jax.train.p2e_job import load_for_inference

        config, params, meta = load_for_inference(str(pathlib.Path(d).parent), s)
        return config, dict(params), dict(meta), d
    with Checkpointer(d, async_save=False) as ck:
        items = [p.name for p in (pathlib.Path(d) / str(s)).iterdir() if p.is_dir() and p.name in PARAM_ITEMS]
        if not items:
            raise PredictError(f"checkpoint {d}/{s}: holds no param item (looked for {PARAM_ITEMS})")
        # Restore onto this run's devices (replicated: the predictor replicates params anyway), never "as
        # saved": a checkpoint written by another topology (1 process, 8 devices) would not load on 2 hosts.
        import jax

        from emox_jax.sharding import make_mesh

        rep = jax.sharding.NamedSharding(make_mesh((1, -1, 1)), jax.sharding.PartitionSpec())
        targets = {}
        for k in items:
            saved = ocp.StandardCheckpointHandler().metadata(pathlib.Path(d) / str(s) / k)
            targets[k] = jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=rep),
                                      getattr(saved, "tree", saved))
        restored = ck._mngr.restore(s, args=ocp.args.Composite(
            **{k: ocp.args.StandardRestore(targets[k]) for k in items}))
    params: dict[str, Any] = {}
    for k in items:
        tree = restored[k]
        tree = tree.get("params", tree) if isinstance(tree, Mapping) and set(tree) == {"params"} else tree
        params.update(tree)
    config = model_config_from_meta(meta, f"checkpoint {d}/{s}")
    return config, params, dict(meta), d


def load_predictor(path: str | os.PathLike, step: int | None = None, *, tokenizer: Any = None,
                   **predictor_kw) -> Predictor:
    """A Predictor for a P2E checkpoint: tokenizer from ``meta["tokenizer"]`` (default "tiny"), media
    settings from ``meta["data"]`` when present (else fitted to the model config)."""
    from emox_jax.tokenizer import load_tokenizer

    config, params, meta, d = load_checkpoint(path, step)
    job_cfg = meta.get("config") if isinstance(meta.get("config"), Mapping) else {}
    if tokenizer is None:
        tokenizer = load_tokenizer(str(meta.get("tokenizer") or job_cfg.get("tokenizer") or "tiny"))
    if tokenizer.vocab_size > config.llm.vocab_size:
        raise PredictError(f"checkpoint {d}: tokenizer has {tokenizer.vocab_size} tokens but the decoder's "
                           f"vocab_size is {config.llm.vocab_size}")
    data = meta.get("data") or job_cfg.get("data")
    media = predictor_kw.pop("media", None)
    if media is None:
        media = (MediaConfig.from_data_config(data) if isinstance(data, Mapping)
                 else MediaConfig.for_model(config))
    source = f"checkpoint {d} step {meta['step']}"
    trained = meta.get("modalities")
    mode = predictor_kw.get("mode", DEFAULT_MODE)
    if trained is not None:
        untrained = [m for m in mode_modalities(mode) if m not in trained]
        if untrained:
            modules = sorted({x for m in untrained for x in MODALITY_MODULES[m]} - {
                x for m in trained for x in MODALITY_MODULES[m]})
            raise PredictError(f"{source} ({meta.get('phase', '?')}) trained only the {list(trained)} branch(es); "
                               f"modality mode {mode!r} also needs {untrained}, whose module(s) {modules} this "
                               f"checkpoint has never trained; pick a mode it covers or a later-phase checkpoint")
    return Predictor(config, params, tokenizer, media, source=source, **predictor_kw)


__all__ = ("Clip", "ClipFailure", "DEFAULT_MODE", "MediaConfig", "PredictError", "Prediction", "Predictor",
           "TASKS", "TASK_LABEL_TYPES", "checkpoint_dirs", "check_task", "load_checkpoint", "load_predictor",
           "missing_modules", "prompt_record", "prompt_spec")
