"""Grain pipelines for P2E training and evaluation.

    per-dataset source (random access) -> [reference subsample] -> per-process slice -> shuffle(seed)
    -> repeat -> tag with dataset index -> mix(weights) -> random_map(SampleProcessor: label type, prompt,
    tokenize, decode the media the mode needs) -> to_iter_dataset(threads) -> SkippingBatchIterDataset
    (length buckets, fixed shapes) -> [mp_prefetch(workers)] -> DataIterator (counts + logs skipped samples)

With ``mix_unit="batch"`` the mixture moves after batching: each dataset is processed and batched on its own
and the weights pick which dataset supplies each whole batch (``grain.IterDataset.mix``, a deterministic
interleave, so every process picks the same dataset for the same step and the global batch is one dataset).

Batch (train; B = batch_size, L = a length bucket, T/S from the config):
  input_ids, labels, loss_mask, attention_mask, positions  [B, L] int32  (labels already shifted: position t
      is scored against labels[t] where loss_mask[t] == 1; see data_pipelines.tokenize)
  frames [B, T, S, S, 3] uint8 (zeros where the mode has no frames), audio [B, C, N] float32 (C clips of N
      samples, per-clip normalised; zeros where absent)
  frame_pos, face_pos, audio_pos, multi_pos [B] int32 (start of the placeholder run; -1 when absent)
  frame_count, face_count, audio_count, multi_count [B] int32, task_id [B] (index into schema.TASKS),
  dataset [B] (index into config.datasets), length [B], valid [B] (1 = real row)
Eval batches add id / target / label_type / dataset_name as [B] str arrays; filler rows have valid == 0.

Bad samples (media that fail to decode, missing media, prompts that cannot fit, unlabelled records) are
skipped; each is logged with its dataset, id and file, and counted in `DataIterator.skipped`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
from typing import Any, Sequence

import grain
import numpy as np

from data_pipelines import batching, mixture, prompts, schema
from data_pipelines import tokenize as tok_lib
from emox_jax.config_utils import ConfigError, from_config

log = logging.getLogger(__name__)

_FRAME_MODALITIES = {"frame", "face", "multi"}   # the facial and fusion branches read the raw frames too
_AUDIO_MODALITIES = {"audio", "multi"}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str                                  # reader name for data_source(), e.g. "mintrec"
    split: str = "train"
    weight: float = 1.0                        # P2E ratio: a sampling weight over datasets
    modality_mode: str = "multiface_audio_face_frame_text"
    label_type: str = "hybird"                 # a schema.LABEL_TYPES key, or "hybird" (drawn per sample)
    label_type_candidates: tuple[str, ...] = ()  # hybird pool; default: the record's own label_types
    valence_range: tuple[float, float] = (-3.0, 3.0)

    def validate(self) -> None:
        if self.modality_mode not in schema.MODALITY_MODES:
            raise ValueError(f"dataset {self.name!r}: unknown modality_mode {self.modality_mode!r}; "
                             f"known: {schema.MODALITY_MODES}")
        if self.label_type not in schema.LABEL_TYPES and self.label_type not in prompts.HYBRID:
            raise ValueError(f"dataset {self.name!r}: unknown label_type {self.label_type!r}; known: "
                             f"{sorted(schema.LABEL_TYPES)} or 'hybird'")
        unknown = [c for c in self.label_type_candidates if c not in schema.LABEL_TYPES]
        if unknown:
            raise ValueError(f"dataset {self.name!r}: unknown label_type_candidates {unknown}")
        if not (self.weight > 0 and math.isfinite(self.weight)):
            raise ValueError(f"dataset {self.name!r}: weight must be > 0, got {self.weight}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    datasets: tuple[DatasetSpec, ...]
    data_dir: str = ""
    batch_size: int = 3
    max_length: int = 1024
    length_buckets: tuple[int, ...] = (256, 512, 768, 1024)
    num_frames: int = 8
    image_size: int = 224
    num_audio_clips: int = 8
    clip_seconds: float = 2.0
    sample_rate: int = 16000
    frame_tokens: int = 32
    face_tokens: int = 4
    audio_tokens: int = 32
    multi_tokens: int = 1
    template: str = "vicuna"                   # or "qwen_chat"
    parity_prompts: bool = False               # reproduce the reference's missing "###Human: " (defect)
    mixture: str = "weights"                   # or "reference_subsample" (the reference's defect)
    mix_unit: str = "example"                  # or "batch": every train batch from one dataset (mixture.py)
    seed: int = 42
    shuffle: bool = True
    num_threads: int = 2                       # decode threads per process (or per mp worker)
    prefetch_buffer_size: int = 4
    mp_workers: int = 0                        # > 0: grain mp_prefetch with this many worker processes
    max_consecutive_skips: int = 1000

    def validate(self) -> None:
        if not self.datasets:
            raise ValueError("data.datasets is empty")
        if self.mixture not in mixture.MIXTURES:
            raise ValueError(f"mixture must be one of {mixture.MIXTURES}, got {self.mixture!r}")
        if self.mix_unit not in mixture.MIX_UNITS:
            raise ValueError(f"mix_unit must be one of {mixture.MIX_UNITS}, got {self.mix_unit!r}")
        if self.batch_size < 1 or self.num_frames < 1 or self.image_size < 1 or self.num_audio_clips < 1:
            raise ValueError("batch_size, num_frames, image_size and num_audio_clips must be >= 1")
        prompts.PromptConfig(template=self.template).validate()
        self.tokenize_config().validate()

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def frame_shape(self) -> tuple[int, int, int, int]:
        return (self.num_frames, self.image_size, self.image_size, 3)

    @property
    def audio_shape(self) -> tuple[int, int]:
        return (self.num_audio_clips, self.clip_samples)

    def buckets(self) -> tuple[int, ...]:
        return batching.bucket_lengths(self.length_buckets, self.max_length)

    def tokenize_config(self) -> tok_lib.TokenizeConfig:
        return tok_lib.TokenizeConfig(max_length=self.max_length, frame_tokens=self.frame_tokens,
                                      face_tokens=self.face_tokens, audio_tokens=self.audio_tokens,
                                      multi_tokens=self.multi_tokens)

    def prompt_config(self) -> prompts.PromptConfig:
        return prompts.PromptConfig(template=self.template, parity=self.parity_prompts)


def data_config(cfg: Any, where: str = "data") -> DataConfig:
    """A validated DataConfig from a DataConfig, a dict or a ConfigDict (the ``data`` section or a whole
    config holding one). ``datasets`` is a list of dicts with DatasetSpec keys."""
    if isinstance(cfg, DataConfig):
        return cfg
    d = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
    if "datasets" not in d and "data" in d:
        return data_config(d["data"], where)
    raw = d.pop("datasets", None)
    if not raw:
        raise ConfigError(f"{where}.datasets is missing or empty")
    specs = tuple(s if isinstance(s, DatasetSpec) else from_config(DatasetSpec, s, f"{where}.datasets[{i}]")
                  for i, s in enumerate(raw))
    return from_config(DataConfig, {**d, "datasets": specs}, where)


# ------------------------------------------------------------------------------------------------ records
def normalize_record(raw: Any) -> dict[str, Any]:
    """A schema record from a reader's (TFDS: bytes text, numpy values) or an in-memory example."""
    if not hasattr(raw, "get"):
        raise TypeError(f"a data source returned {type(raw).__name__}, expected a schema record dict")
    out = schema.empty_example()
    for name, (typ, _) in schema.EXAMPLE_FIELDS.items():
        if name not in raw:
            continue
        v = raw[name]
        if type(v) is typ and typ is not list:   # in-memory records are already in schema types
            out[name] = v
        elif typ is str:
            out[name] = v.decode("utf-8") if isinstance(v, (bytes, np.bytes_)) else str(v)
        elif typ is bytes:
            out[name] = v if isinstance(v, bytes) else (v.item() if hasattr(v, "item") else bytes(v))
        elif typ is float:
            out[name] = float(v)
        else:
            out[name] = [x.decode("utf-8") if isinstance(x, (bytes, np.bytes_)) else str(x) for x in v]
    return out


class _Skip(Exception):
    def __init__(self, kind: str, file: str, reason: str):
        super().__init__(reason)
        self.kind, self.file, self.reason = kind, file, reason


class _Tag:
    """Pairs each record with its dataset index (a class, not a lambda: mp_prefetch pickles the pipeline)."""

    def __init__(self, index: int):
        self.index = index

    def __call__(self, record: Any) -> tuple[int, Any]:
        return self.index, record


class SampleProcessor:
    """(dataset index, record), rng -> one sample dict, or a skip marker naming what went wrong."""

    def __init__(self, config: DataConfig, tokenizer: Any, keep_text: bool = False):
        self.config = config
        self.tokenizer = tokenizer
        self.keep_text = keep_text
        self._encoder = None

    def __getstate__(self):
        return {**self.__dict__, "_encoder": None}   # the text cache is per process

    def __call__(self, item: tuple[int, Any], rng: np.random.Generator | None) -> dict[str, Any]:
        ds_index, raw = item
        spec = self.config.datasets[ds_index]
        record = normalize_record(raw)
        try:
            return self.process(record, ds_index, rng)
        except _Skip as e:
            msg = f"{e.kind}: dataset={spec.name} id={record['id']} file={e.file or '-'}: {e.reason}"
            return {batching.SKIP_KEY: msg}

    def process(self, record: dict[str, Any], ds_index: int, rng: np.random.Generator | None) -> dict:
        cfg, spec = self.config, self.config.datasets[ds_index]
        if self._encoder is None:
            self._encoder = tok_lib.make_encoder(self.tokenizer, cfg.tokenize_config())
        try:
            label_type = prompts.choose_label_type(record, spec.label_type, rng, spec.label_type_candidates)
            pspec = prompts.build_prompt(record, label_type, spec.modality_mode, cfg.prompt_config(), rng,
                                         spec.valence_range)
            sample = tok_lib.tokenize_prompt(pspec, self.tokenizer, cfg.tokenize_config(), self._encoder)
        except prompts.PromptError as e:
            raise _Skip("prompt", "", str(e)) from None
        except tok_lib.TruncationError as e:
            raise _Skip("truncation", "", str(e)) from None
        mods = set(pspec.modalities)
        sample["frames"] = sample["audio"] = None
        if mods & (_FRAME_MODALITIES | _AUDIO_MODALITIES):
            from data_pipelines import media   # PyAV is only needed where media are decoded
        if mods & _FRAME_MODALITIES:
            data = self._media(record, "video")
            try:
                sample["frames"] = np.asarray(media.decode_frames(
                    data, num_frames=cfg.num_frames, size=cfg.image_size, name=record["video_path"]), np.uint8)
            except media.MediaDecodeError as e:
                raise _Skip("media_decode", record["video_path"], str(e)) from None
            if sample["frames"].shape != cfg.frame_shape:
                raise _Skip("media_decode", record["video_path"],
                            f"frames {sample['frames'].shape}, expected {cfg.frame_shape}")
        if mods & _AUDIO_MODALITIES:
            data = self._media(record, "audio")
            try:
                sample["audio"] = np.asarray(media.decode_audio_clips(
                    data, num_clips=cfg.num_audio_clips, seconds=cfg.clip_seconds, sample_rate=cfg.sample_rate,
                    name=record["audio_path"]), np.float32)
            except media.MediaDecodeError as e:
                raise _Skip("media_decode", record["audio_path"], str(e)) from None
            if sample["audio"].shape != cfg.audio_shape:
                raise _Skip("media_decode", record["audio_path"],
                            f"audio {sample['audio'].shape}, expected {cfg.audio_shape}")
        sample["dataset"] = np.int32(ds_index)
        if self.keep_text:
            sample.update(id=record["id"], target=pspec.fields["answer"], label_type=label_type,
                          dataset_name=spec.name)
        return sample

    @staticmethod
    def _media(record: dict[str, Any], key: str) -> bytes:
        data = record[key]
        if not data:
            raise _Skip("missing_media", record[f"{key}_path"],
                        f"no {key} bytes (the file was missing when the dataset was prepared)")
        return data


class _WithoutRng:
    def __init__(self, processor: SampleProcessor):
        self.processor = processor

    def __call__(self, item: tuple[int, Any]) -> dict[str, Any]:
        return self.processor(item, None)


# ---------------------------------------------------------------------------------------------- iterator
class DataIterator(grain.DatasetIterator):
    """The iterator the trainer holds: yields batches, counts and logs skipped samples.

    ``skipped`` (total), ``skip_counts`` (by kind: media_decode / missing_media / truncation / prompt) and
    ``recent_skips`` (the last 100 messages, each naming dataset, id and file) are part of the state, which
    is JSON (`get_state`/`set_state`), so `grain.checkpoint.CheckpointSave/Restore` store it with Orbax.
    """

    def __init__(self, parent: grain.DatasetIterator, config: DataConfig):
        super().__init__(parent)
        self.config = config
        self.skipped = 0
        self.skip_counts: collections.Counter[str] = collections.Counter()
        self.recent_skips: collections.deque[str] = collections.deque(maxlen=100)

    def __next__(self) -> dict[str, np.ndarray]:
        while True:
            batch = next(self._parent)
            events = batch.pop(batching.SKIPPED_KEY)
            for msg in events:
                msg = str(msg)
                self.skipped += 1
                self.skip_counts[msg.split(":", 1)[0]] += 1
                self.recent_skips.append(msg)
                log.warning("skipped sample #%d: %s", self.skipped, msg)
            if batch["valid"].any():
                return batch

    def get_state(self) -> dict[str, Any]:
        return {"pipeline": self._parent.get_state(), "skipped": self.skipped,
                "skip_counts": dict(self.skip_counts), "recent_skips": list(self.recent_skips)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["pipeline"])
        self.skipped = int(state.get("skipped", 0))
        self.skip_counts = collections.Counter(state.get("skip_counts", {}))
        self.recent_skips = collections.deque(state.get("recent_skips", []), maxlen=100)


# ----------------------------------------------------------------------------------------------- builders
def _process_slice(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    if process_index is None or process_count is None:
        import jax
        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    return process_index, process_count


def _sources(config: DataConfig, sources: dict[str, Sequence[Any]] | Sequence[Sequence[Any]] | None):
    """One random-access source per DatasetSpec: given (by name or position) or from the TFDS readers."""
    out = []
    for i, spec in enumerate(config.datasets):
        if sources is None:
            from data_pipelines.sources import data_source
            src = data_source(spec.name, spec.split, config.data_dir)
        elif isinstance(sources, dict):
            if spec.name not in sources:
                raise KeyError(f"no source given for dataset {spec.name!r}; given: {sorted(sources)}")
            src = sources[spec.name]
        else:
            src = sources[i]
        if len(src) == 0:
            raise ValueError(f"dataset {spec.name!r} split {spec.split!r} is empty")
        out.append(src)
    return out


def build_dataset(config: Any, tokenizer: Any, *, train: bool,
                  sources: dict[str, Sequence[Any]] | Sequence[Sequence[Any]] | None = None,
                  process_index: int | None = None, process_count: int | None = None) -> grain.IterDataset:
    """The batched IterDataset (before DataIterator); see the module docstring for the stages."""
    cfg = data_config(config)
    pi, pc = _process_slice(process_index, process_count)
    parts, names = [], []
    for i, (spec, src) in enumerate(zip(cfg.datasets, _sources(cfg, sources))):
        if train and cfg.mixture == "reference_subsample":
            src = mixture.reference_subsample(src, spec.weight, cfg.seed + 7919 * i, spec.name)
        ds = grain.MapDataset.source(src)
        if len(ds) < pc:
            raise ValueError(f"dataset {spec.name!r} has {len(ds)} records, fewer than {pc} processes")
        ds = ds[pi::pc]   # disjoint per-process shards, before shuffling (same shuffle seed on every host)
        if train:   # infinite, reshuffled every epoch
            ds = mixture.EpochShuffleMapDataset(ds, seed=cfg.seed + i, shuffle=cfg.shuffle)
        parts.append(ds.map(_Tag(i)))
        names.append(spec.name)
    processor = SampleProcessor(cfg, tokenizer, keep_text=not train)
    read = grain.ReadOptions(num_threads=cfg.num_threads, prefetch_buffer_size=cfg.prefetch_buffer_size)
    collate_kwargs = dict(buckets=cfg.buckets(), pad_id=tok_lib.special_id(tokenizer, "pad_id"),
                          frame_shape=cfg.frame_shape, audio_shape=cfg.audio_shape, keep_text=not train)

    def process_and_batch(ds: grain.MapDataset, seed: int) -> grain.IterDataset:
        # Train: per-element rng (seeded by seed and element index) draws label types and paraphrases.
        # Eval: no rng, so the first paraphrase (and, for "hybird", the first candidate label type) is used.
        ds = ds.random_map(processor, seed=seed) if train else ds.map(_WithoutRng(processor))
        return batching.SkippingBatchIterDataset(ds.to_iter_dataset(read), cfg.batch_size, collate_kwargs,
                                                 drop_remainder=train,
                                                 max_consecutive_skips=cfg.max_consecutive_skips)

    weights = [s.weight for s in cfg.datasets]
    if train and cfg.mix_unit == "batch":
        # Each part's own processing seed: the same seed would give element k of every dataset the same
        # label-type / paraphrase draw. (One dataset: the same stream as the per-example path.)
        batched = [process_and_batch(p, cfg.seed + 104729 * i) for i, p in enumerate(parts)]
        it_ds = mixture.mix_batches(batched, weights, names, cfg.mixture)
    else:
        if train:
            ds = mixture.mix(parts, weights, names, cfg.mixture)
        else:
            ds = grain.MapDataset.concatenate(parts) if len(parts) > 1 else parts[0]
        it_ds = process_and_batch(ds, cfg.seed)
    if cfg.mp_workers > 0:
        from absl import flags
        if not flags.FLAGS.is_parsed():   # grain's mp_prefetch reads absl flags (environment.md §4)
            flags.FLAGS.mark_as_parsed()
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=cfg.mp_workers))
    return it_ds


def make_train_iterator(config: Any, tokenizer: Any, *, sources=None, process_index: int | None = None,
                        process_count: int | None = None) -> DataIterator:
    """Infinite, shuffled, mixed training batches for this process (see the module docstring)."""
    cfg = data_config(config)
    ds = build_dataset(cfg, tokenizer, train=True, sources=sources, process_index=process_index,
                       process_count=process_count)
    return DataIterator(iter(ds), cfg)


def make_eval_iterator(config: Any, tokenizer: Any, *, sources=None, process_index: int | None = None,
                       process_count: int | None = None) -> DataIterator:
    """One deterministic pass over this process's shard: no shuffle, no repeat, the first question
    paraphrase, and for "hybird" the first candidate label type (configure a label_type for eval). The last
    batch is filled with valid == 0 rows; batches carry id / target / label_type / dataset_name [B] str
    arrays for scoring."""
    cfg = data_config(config)
    ds = build_dataset(cfg, tokenizer, train=False, sources=sources, process_index=process_index,
                       process_count=process_count)
    return DataIterator(iter(ds), cfg)


def describe_batch(batch: dict[str, np.ndarray]) -> dict[str, tuple[tuple[int, ...], str]]:
    """{key: (shape, dtype)}, for logs and the trainer's shape checks."""
    return {k: (tuple(v.shape), str(v.dtype)) for k, v in batch.items()}

