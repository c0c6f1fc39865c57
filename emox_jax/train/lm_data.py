"""Packed next-token data for the LM job: lines → ``[bos] + ids + [eos]`` → fixed windows → Grain batches.

Every line becomes one segment. Lines are concatenated and cut into windows of ``seq_len + 1`` tokens with
stride ``seq_len`` (so each token is a target exactly once). Per window: ``input_ids = w[:-1]``,
``targets = w[1:]``, ``segment_ids`` numbers the lines inside the window from 1 (the model then masks attention
across lines and restarts RoPE positions per line), and ``loss_mask`` drops the targets that cross a line
boundary (predicting the next line's ``bos`` from the previous line is not learnable).

The Grain pipeline (``MapDataset.source → repeat → shuffle → batch → to_iter_dataset``) is deterministic for a
seed and its iterator state is checkpointable (``Checkpointer.save(..., data_iter=it)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emox_jax.tokenizer import Tokenizer


def pack_lines(lines: Sequence[str | Sequence[int]], tokenizer: Tokenizer, seq_len: int, *,
               whole: bool = False) -> dict[str, np.ndarray]:
    """Windows ``[N, seq_len]`` of ``input_ids``, ``targets``, ``segment_ids`` (int32) and ``loss_mask`` (f32).

    A line is text (becomes ``[bos] + encode(line) + [eos]``) or an already tokenised segment (a sequence of
    ids, used as is: e.g. a prompt tokenised by ``data_pipelines.tokenize`` exactly as the trainer will see it).
    ``whole=True`` never splits a line across windows (a window is closed and padded, segment 0, when the next
    line does not fit; a longer line keeps its first ``seq_len + 1`` tokens): for prompt + answer segments,
    whose answer must be learned in the context of the whole prompt at the positions inference will use.
    """
    segs = [[tokenizer.bos_id, *tokenizer.encode(line), tokenizer.eos_id] if isinstance(line, str)
            else [int(t) for t in line] for line in lines]
    if whole:
        return _pack_whole(segs, seq_len, pad_id=int(getattr(tokenizer, "pad_id", 0) or 0))
    ids: list[int] = []
    seg: list[int] = []
    for i, toks in enumerate(segs):
        ids.extend(toks)
        seg.extend([i] * len(toks))
    ids_a, seg_a = np.asarray(ids, np.int32), np.asarray(seg, np.int64)
    n = (len(ids_a) - 1) // seq_len
    if n < 1:
        raise ValueError(f"corpus of {len(ids_a)} tokens is too short for one window of seq_len={seq_len}")
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
    win, wseg = ids_a[idx], seg_a[idx]
    wseg = (wseg - wseg[:, :1] + 1).astype(np.int32)  # lines numbered from 1 inside each window (0 = padding)
    return _arrays(win, wseg)


def _pack_whole(segs: list[list[int]], seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    width = seq_len + 1
    wins, wsegs = [], []
    cur: list[int] = []
    cur_seg: list[int] = []

    def flush():
        if cur:
            wins.append(cur + [pad_id] * (width - len(cur)))
            wsegs.append(cur_seg + [0] * (width - len(cur_seg)))

    for toks in segs:
        toks = toks[:width]
        if len(cur) + len(toks) > width:
            flush()
            cur, cur_seg = [], []
        k = (cur_seg[-1] + 1) if cur_seg else 1
        cur += toks
        cur_seg += [k] * len(toks)
    flush()
    if not wins:
        raise ValueError("no lines to pack")
    return _arrays(np.asarray(wins, np.int32), np.asarray(wsegs, np.int32))


def _arrays(win: np.ndarray, wseg: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "input_ids": win[:, :-1],
        "targets": win[:, 1:],
        "segment_ids": wseg[:, :-1],
        # Targets inside one line only: not the next line's bos, not padding.
        "loss_mask": ((wseg[:, 1:] == wseg[:, :-1]) & (wseg[:, 1:] > 0)).astype(np.float32),
    }


class _Windows:
    """Random-access source over the packed arrays (one example = one window, a dict of ``[seq_len]`` rows)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.n = len(next(iter(arrays.values())))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[i] for k, v in self.arrays.items()}


def lm_batches(arrays: dict[str, np.ndarray], batch_size: int, *, seed: int = 0, num_epochs: int | None = None):
    """A Grain ``IterDataset`` of batches ``{key: [batch_size, seq_len]}`` (this process's share of the global
    batch is taken by the caller on multi-host runs). ``num_epochs=None`` repeats forever."""
    import grain

    src = _Windows(arrays)
    if len(src) < batch_size:
        raise ValueError(f"only {len(src)} windows for a batch of {batch_size}; use a shorter seq_len or batch")
    ds = grain.MapDataset.source(src)
    # Finite: shuffle across all epochs (a new order each epoch). Infinite: one shuffled order, repeated.
    ds = ds.repeat(num_epochs).shuffle(seed=seed) if num_epochs else ds.shuffle(seed=seed).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2))
