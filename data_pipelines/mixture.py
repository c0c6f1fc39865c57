"""The P2E phase mixture: how per-dataset ratios become a stream of samples.

Ours (default, ``mixture="weights"``): each dataset is kept whole, shuffled and repeated, and the phase's
ratios are *sampling weights* over datasets (`grain.MapDataset.mix`), matching the paper's mixture
proportions (phase 3: MER-Caption+ 55 %, AvaMERG 35 %, MERR-Fine 5 %, MIntRec2 3 %, MIntRec 2 %).

REFERENCE DEFECT (`reference-architecture.md` §8.2, §12.10): the reference uses ``ratio`` to randomly
*subsample* each dataset once (keep ``int(N * ratio)`` items) and then draws datasets *uniformly*, so every
dataset supplies 1/K of the samples and small datasets are revisited thousands of times.
``mixture="reference_subsample"`` reproduces that for comparison runs.

The unit that is mixed (``mix_unit``): ``"example"`` (default, as the reference: a batch holds samples of
several datasets) or ``"batch"`` (each batch comes whole from one dataset, drawn by the same weights). Batch
mixing has two effects worth knowing. (1) Length buckets work: a batch of short intent prompts is padded to
its own bucket instead of to the longest description in a mixed batch. (2) The loss is the token mean over a
batch, so with example mixing a dataset's share of the gradient is its share of the *supervised tokens*: one
answer of ~100 tokens (a description, an empathic response) outweighs ten 3-token intent answers. With batch
mixing each dataset's share of the updates is its weight. Measured on the tiny quickstart: see configs/p2e.py.
"""

from __future__ import annotations

from typing import Sequence

import grain
import numpy as np

MIXTURES = ("weights", "reference_subsample")
MIX_UNITS = ("example", "batch")


def normalized_weights(weights: Sequence[float], names: Sequence[str]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    bad = [f"{n}={x}" for n, x in zip(names, w) if not np.isfinite(x) or x <= 0]
    if bad:
        raise ValueError(f"mixture weights must be positive and finite; got {bad}")
    return w / w.sum()


class Subset:
    """Random-access view of ``source`` at fixed ``indices`` (picklable, for mp_prefetch workers)."""

    def __init__(self, source, indices: np.ndarray):
        self.source, self.indices = source, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.source[int(self.indices[i])]


def reference_subsample(source, ratio: float, seed: int, name: str) -> Subset:
    """A random subset of ``int(len(source) * ratio)`` records (the reference's construction-time subsample),
    drawn once: a grain ``shuffle`` here would be reseeded every epoch by the downstream ``repeat``."""
    keep = int(len(source) * ratio)
    if keep < 1:
        raise ValueError(f"dataset {name!r}: ratio {ratio} keeps int({len(source)} * {ratio}) = 0 records")
    return Subset(source, np.sort(np.random.default_rng(seed).permutation(len(source))[:keep]))


def mix_proportions(weights: Sequence[float], names: Sequence[str], mode: str = "weights") -> list[float]:
    """The per-dataset proportions a mixture draws with: the normalised weights, or uniform in
    ``reference_subsample`` mode (the datasets are subsampled already)."""
    if mode not in MIXTURES:
        raise ValueError(f"mixture must be one of {MIXTURES}, got {mode!r}")
    w = normalized_weights(weights, names) if mode == "weights" else np.full(len(weights), 1 / len(weights))
    return [float(x) for x in w]


def mix(datasets: Sequence[grain.MapDataset], weights: Sequence[float], names: Sequence[str],
        mode: str = "weights") -> grain.MapDataset:
    """Mix infinite (repeated) per-dataset MapDatasets sample by sample (``mix_unit="example"``)."""
    w = mix_proportions(weights, names, mode)
    return datasets[0] if len(datasets) == 1 else grain.MapDataset.mix(list(datasets), weights=w)


def mix_batches(batched: Sequence[grain.IterDataset], weights: Sequence[float], names: Sequence[str],
                mode: str = "weights") -> grain.IterDataset:
    """Interleave per-dataset *batch* streams by the mixture weights (``mix_unit="batch"``).
    ``grain.IterDataset.mix`` interleaves deterministically (no rng: step k takes its batch from the same
    dataset on every process), and its iterator state holds each stream's state, so resume is exact."""
    w = mix_proportions(weights, names, mode)
    return batched[0] if len(batched) == 1 else grain.IterDataset.mix(list(batched), weights=w)


class EpochShuffleMapDataset(grain.MapDataset):
    """Infinite repeat of ``parent`` with a fresh deterministic permutation per epoch.

    Replaces ``parent.shuffle(seed).repeat()``: grain's index_shuffle costs ~2.5 ms per element on datasets
    of a few dozen records (cycle-walking over a much larger domain), which dominated small-dataset
    pipelines. A numpy permutation per epoch (seeded by (seed, epoch), the last two epochs cached) is O(1)
    per element and gives the same guarantees: every epoch visits each record once, in an order that
    depends only on the seed and the epoch.
    """

    def __init__(self, parent: grain.MapDataset, seed: int, shuffle: bool = True):
        super().__init__(parent)
        self._seed, self._shuffle = int(seed), shuffle
        self._n = len(parent)
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        import sys
        return sys.maxsize

    def __str__(self) -> str:
        return f"EpochShuffleMapDataset(seed={self._seed})"

    def __getstate__(self):
        return {**self.__dict__, "_perms": {}}

    def _perm(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self._seed, epoch]).permutation(self._n)
            if len(self._perms) >= 2:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = perm
        return perm

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        epoch, i = divmod(int(index), self._n)
        return self._parent[int(self._perm(epoch)[i]) if self._shuffle else i]
