"""Per-clip cache of the frozen backbones' outputs, so each clip's CLIP / face-encoder / HuBERT pass runs once.

CLIP, the face encoder and HuBERT are frozen in every P2E phase, and without augmentation a clip's decoded media
are the same every epoch, so their forward pass only has to run the first time a clip is seen. The trainer
(``loop.frozen_feature_cache_mb`` > 0) puts this cache between the data pipeline and the train / eval steps:
each host batch's ``frames`` / ``audio`` are replaced by the backbone features the phase's branches read
(``NanoEmoX.backbone_features``: ``clip_cls``, ``face_feat``, ``hubert_mean``), and the compiled steps contain
only the adapters, the fusion encoder and the decoder.

Exact by construction: a row is keyed by a hash of its media bytes (frames for the visual features, audio for
HuBERT's), not by its id, so another dataset's clip with the same id or an augmented copy is a miss, never a
wrong hit. A batch with any miss runs the backbones once on the whole batch (one compiled shape); rows already
cached keep their cached values. Rows beyond the memory cap are computed every time and counted
(``stats()``). Each process caches its own rows and runs the backbones on its first local device, with a local
copy of the backbone params (gathered once), so no cross-process program depends on which rows hit.

Measured (tiny preset, 2-core CPU, batch 8, ``benchmarks/p2e_step.py --seq 192 [--cached-features]`` back to
back): 585 -> 384 ms per phase-3 step, 4.30 -> 2.68 GFLOP, compilation 45 -> 43 s. Memory per clip: tiny ~4 KB per
backbone; ``nano_emox`` (8 frames, 8 audio clips, fp32) ~0.4 MB, so the real configs leave the cache off (0)
unless the phase's clips fit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from emox_jax.models.nano_emox import FEATURE_SOURCE, NanoEmoX, NanoEmoXConfig, feature_keys

BACKBONE_OF = {"clip_cls": "clip", "face_feat": "face_encoder", "hubert_mean": "hubert"}


def _local_copy(tree):
    """Host numpy copy of (possibly multi-process sharded) params."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def _row_key(x: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).digest()


class FrozenFeatureCache:
    """``cache(host_batch) -> host_batch`` with ``frames``/``audio`` replaced by the features ``modalities`` read.

    ``frozen_params``: a param tree holding (at least) the backbones ``clip`` / ``face_encoder`` / ``hubert``
    that the modalities use. ``max_mb``: memory cap of the stored features (rows past it are recomputed).
    """

    def __init__(self, model_cfg: NanoEmoXConfig, frozen_params: Mapping, modalities: Sequence[str],
                 max_mb: float = 512.0):
        self.modalities = tuple(modalities)
        self.keys = feature_keys(self.modalities)
        missing = sorted({BACKBONE_OF[k] for k in self.keys} - set(frozen_params))
        if missing:
            raise ValueError(f"FrozenFeatureCache: modalities {self.modalities} need the frozen backbones {missing}, "
                             f"absent from the params (have {sorted(frozen_params)})")
        self.device = jax.local_devices()[0]
        params = {BACKBONE_OF[k]: frozen_params[BACKBONE_OF[k]] for k in self.keys}
        self.params = jax.device_put(_local_copy(params), self.device)
        model = NanoEmoX(model_cfg)
        mods = self.modalities
        self._fn = jax.jit(lambda p, frames, audio: model.apply(
            {"params": p}, frames, audio, mods, method=NanoEmoX.backbone_features))
        self.max_bytes = int(max_mb * 2**20)
        self._store: dict[tuple[str, bytes], np.ndarray] = {}
        self._bytes = 0
        self.hits = self.misses = self.uncached = 0

    @property
    def sources(self) -> tuple[str, ...]:
        """The raw inputs the cached features replace (``frames`` and/or ``audio``)."""
        return tuple(s for s in ("frames", "audio") if any(FEATURE_SOURCE[k] == s for k in self.keys))

    def __call__(self, host: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for s in self.sources:
            if s not in host:
                raise KeyError(f"FrozenFeatureCache: the batch has no {s!r} (modalities {self.modalities}; "
                               f"keys {sorted(host)})")
        # One hash per row and raw input (CLIP and the face encoder both read the frames).
        digests = {s: [_row_key(row) for row in np.asarray(host[s])] for s in self.sources}
        row_keys = {k: [(k, d) for d in digests[FEATURE_SOURCE[k]]] for k in self.keys}
        todo = any(rk not in self._store for k in self.keys for rk in row_keys[k])
        fresh = None
        if todo:
            with jax.default_device(self.device):
                args = [jax.device_put(np.asarray(host[s]), self.device) if s in self.sources else None
                        for s in ("frames", "audio")]
                fresh = jax.device_get(self._fn(self.params, *args))
        out = {k: v for k, v in host.items() if k not in self.sources}
        for k in self.keys:
            rows = []
            for i, rk in enumerate(row_keys[k]):
                row = self._store.get(rk)
                if row is None:
                    row = np.asarray(fresh[k][i])
                    if self._bytes + row.nbytes <= self.max_bytes:
                        self._store[rk] = row
                        self._bytes += row.nbytes
                        self.misses += 1
                    else:
                        self.uncached += 1
                else:
                    self.hits += 1
                rows.append(row)
            out[k] = np.stack(rows)
        return out

    def stats(self) -> dict[str, float]:
        """Row lookups per feature: hits, misses (computed and stored), uncached (computed, over the cap), MB."""
        return {"hits": self.hits, "misses": self.misses, "uncached": self.uncached, "mb": self._bytes / 2**20}
