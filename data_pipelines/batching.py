"""Fixed-shape batches with length buckets, and a batcher that skips (and reports) bad samples.

A batch is padded to the smallest length bucket that holds its longest sample, so a training run compiles
at most ``len(buckets)`` step shapes. Samples that failed upstream arrive as skip markers
(``{"_skip": message}``); the batcher drops them, keeps pulling until the batch is full, and hands the
messages on in the batch (``"_skipped"``: a str array) so that the main-process iterator can count and log
them even when the batching ran in a `mp_prefetch` worker process.
"""

from __future__ import annotations

from typing import Any, Sequence

import grain
import numpy as np

SKIP_KEY = "_skip"
SKIPPED_KEY = "_skipped"
SEQ_KEYS = ("input_ids", "labels", "loss_mask")
SCALAR_KEYS = ("frame_pos", "face_pos", "audio_pos", "multi_pos", "frame_count", "face_count", "audio_count",
               "multi_count", "task_id", "dataset", "length")
TEXT_KEYS = ("id", "target", "label_type", "dataset_name")


class TooManySkipsError(RuntimeError):
    """Every one of the last N samples was bad: a configuration or data problem, not bad luck."""


def bucket_lengths(buckets: Sequence[int], max_length: int) -> tuple[int, ...]:
    """Sorted buckets below ``max_length`` plus ``max_length`` itself (so every sample fits one)."""
    return tuple(sorted({b for b in buckets if 0 < b < max_length} | {max_length}))


def pick_bucket(length: int, buckets: Sequence[int]) -> int:
    for b in buckets:
        if length <= b:
            return b
    raise ValueError(f"sample length {length} exceeds the largest bucket {buckets[-1]}")


def collate(samples: Sequence[dict[str, Any]], *, buckets: Sequence[int], pad_id: int, batch_size: int,
            frame_shape: tuple[int, ...], audio_shape: tuple[int, ...],
            keep_text: bool = False) -> dict[str, np.ndarray]:
    """Stack ``samples`` (len <= batch_size) into one fixed-shape batch.

    Shapes (B = batch_size, L = chosen bucket): input_ids / labels / loss_mask / attention_mask / positions
    [B, L] int32; frames [B, *frame_shape] uint8 (zeros where a sample has none); audio [B, *audio_shape]
    float32; every key of SCALAR_KEYS [B] int32; ``valid`` [B] int32 (0 for the filler rows of a short last
    eval batch, whose *_pos are -1 and loss_mask 0). With ``keep_text``: TEXT_KEYS as [B] str arrays.
    """
    n = len(samples)
    seq_len = pick_bucket(max((int(s["length"]) for s in samples), default=1), buckets)
    out = {
        "input_ids": np.full((batch_size, seq_len), pad_id, np.int32),
        "labels": np.full((batch_size, seq_len), pad_id, np.int32),
        "loss_mask": np.zeros((batch_size, seq_len), np.int32),
        "attention_mask": np.zeros((batch_size, seq_len), np.int32),
        # Right padding: positions are 0..L-1 for every row (as the reference's default position ids).
        "positions": np.broadcast_to(np.arange(seq_len, dtype=np.int32), (batch_size, seq_len)).copy(),
        "frames": np.zeros((batch_size, *frame_shape), np.uint8),
        "audio": np.zeros((batch_size, *audio_shape), np.float32),
        "valid": np.zeros((batch_size,), np.int32),
    }
    for k in SCALAR_KEYS:
        out[k] = np.full((batch_size,), -1 if k.endswith("_pos") else 0, np.int32)
    for i, s in enumerate(samples):
        length = int(s["length"])
        for k in SEQ_KEYS:
            out[k][i, :length] = s[k]
        out["attention_mask"][i, :length] = 1
        if s.get("frames") is not None:
            out["frames"][i] = s["frames"]
        if s.get("audio") is not None:
            out["audio"][i] = s["audio"]
        for k in SCALAR_KEYS:
            out[k][i] = s[k]
        out["valid"][i] = 1
    if keep_text:
        for k in TEXT_KEYS:
            out[k] = np.array([str(s.get(k, "")) for s in samples] + [""] * (batch_size - n))
    return out


class SkippingBatchIterDataset(grain.IterDataset):
    """Batches an IterDataset of samples and skip markers into fixed-shape batches (see module doc)."""

    def __init__(self, parent: grain.IterDataset, batch_size: int, collate_kwargs: dict[str, Any],
                 drop_remainder: bool, max_consecutive_skips: int = 1000):
        super().__init__(parent)
        self.batch_size = batch_size
        self.collate_kwargs = collate_kwargs
        self.drop_remainder = drop_remainder
        self.max_consecutive_skips = max_consecutive_skips

    def __iter__(self) -> grain.DatasetIterator:
        return _SkippingBatchIterator(self._parent.__iter__(), self)

    def __str__(self) -> str:
        return f"SkippingBatchIterDataset(batch_size={self.batch_size})"


class _SkippingBatchIterator(grain.DatasetIterator):
    # The batch is complete before next() returns, so the parent's state alone is this iterator's state.

    def __init__(self, parent: grain.DatasetIterator, ds: SkippingBatchIterDataset):
        super().__init__(parent)
        self._ds = ds

    def __next__(self) -> dict[str, np.ndarray]:
        samples: list[dict[str, Any]] = []
        skipped: list[str] = []
        consecutive = 0
        while len(samples) < self._ds.batch_size:
            try:
                item = next(self._parent)
            except StopIteration:
                break
            if SKIP_KEY in item:
                skipped.append(str(item[SKIP_KEY]))
                consecutive += 1
                if consecutive >= self._ds.max_consecutive_skips:
                    raise TooManySkipsError(
                        f"{consecutive} consecutive samples were bad; last ones: {skipped[-5:]}")
                continue
            consecutive = 0
            samples.append(item)
        if self._ds.drop_remainder and len(samples) < self._ds.batch_size:
            raise StopIteration   # only finite (non-repeated) training data ends here
        if not samples and not skipped:
            raise StopIteration
        # An eval pass whose tail held only bad samples still emits one all-filler batch (valid == 0) so the
        # skip messages reach the main-process iterator instead of vanishing with the StopIteration.
        batch = collate(samples, batch_size=self._ds.batch_size, **self._ds.collate_kwargs)
        batch[SKIPPED_KEY] = np.array(skipped, dtype=str) if skipped else np.zeros((0,), dtype="<U1")
        return batch

    def get_state(self) -> dict[str, Any]:
        return self._parent.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state)
