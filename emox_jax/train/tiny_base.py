"""The tiny preset's phase-0 base, shipped with the package (``emox_jax/assets/tiny_base/``).

Phase 0 stands in for the pretrained weights the real model starts from (Qwen2.5, CLIP, FaceXFormer): it
trains the random-init tiny decoder on EmoSynth text and the tiny CLIP / face encoder on drawn faces. That
costs ~390 of the main job's ~930 s on 2 CPU cores, and its result depends only on the configuration, the
phase-0 code and data the repository generates, so it is built once (``python -m launch.build_tiny_base``) and
shipped, as a real run would download pretrained weights. The curriculum uses it only when its **fingerprint**
matches the run; otherwise phase 0 runs and the message names what differs. The fingerprint's parts:

* ``code``: ``PHASE0_VERSION``, bumped by hand whenever phase-0 code changes what it trains (its recipe,
  packing, the tiny architectures, the expression probe);
* ``models``: the decoder / CLIP / face-encoder configs, without what phase 0 does not use (LoRA, remat,
  compute dtype and attention implementation of the decoder, remat of the towers);
* ``settings``: the ``pretrain_lm`` / ``pretrain_vision`` sections, the seed, frames per clip and image size;
* ``lm_text``: the phase-0 text exactly as tokenised here (another tokenizer build or EmoSynth corpus differs);
* ``faces``: the first drawn faces as the painter renders them (before the codec, which is not bit-exact
  across machines).

Files: ``params.npz`` (float32 arrays keyed by param path: ``decoder/...`` without LoRA, ``clip/...``,
``face_encoder/...``) and ``meta.json`` (fingerprint and its parts, the npz's sha256, the phase-0 LM losses,
the towers' expression accuracies, how it was built). ``meta.json`` is written last: a build that stops half
way leaves no meta, which reads as "no shipped base". A test fails when the shipped base is stale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from flax import traverse_util

ASSET_DIR = pathlib.Path(__file__).resolve().parents[1] / "assets" / "tiny_base"
PARAMS_FILE, META_FILE = "params.npz", "meta.json"
FACES_IN_FINGERPRINT = 4
# Bump when phase-0 code changes what it trains (emox_jax/train/phase0.py, phase0_vision.py, the tiny models).
PHASE0_VERSION = 1


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint_parts(config, job, lm_lines: Sequence) -> dict[str, str]:
    """The hashed parts of the fingerprint (module docstring). ``config``: ``configs/p2e.py:all``; ``job``: its
    first phase's PhaseJob; ``lm_lines``: the phase-0 LM text (token id lists and/or strings)."""
    from emox_jax.train.phase0_vision import drawn_faces

    m, d = job.model, job.data
    unused = ("lora_rank", "lora_alpha", "lora_dropout", "lora_targets", "dtype", "remat_policy", "attention_impl")
    llm = {k: v for k, v in dataclasses.asdict(m.llm).items() if k not in unused}   # pretrain_lm: no LoRA, fp32
    clip = {k: v for k, v in dataclasses.asdict(m.clip).items() if k not in ("remat_policy", "attention_impl")}
    face = dataclasses.asdict(m.face)
    face["swin"].pop("remat", None)
    pv = config.get("pretrain_vision")
    faces, labels = drawn_faces(FACES_IN_FINGERPRINT, int(pv.seed) if pv is not None else 0)
    return {
        "code": str(PHASE0_VERSION),
        "models": _sha([llm, clip, face]),
        "settings": _sha([config.pretrain_lm.to_dict(), pv.to_dict() if pv is not None else None,
                          job.loop.seed, d.num_frames, d.image_size]),
        "lm_text": _sha([list(map(int, x)) if not isinstance(x, str) else x for x in lm_lines]),
        "faces": hashlib.sha256(b"".join(np.ascontiguousarray(f).tobytes() for f in faces)
                                + labels.tobytes()).hexdigest(),
    }


def fingerprint(parts: dict[str, str]) -> str:
    return _sha(parts)


def save(directory: str | pathlib.Path, decoder: dict, vision: dict | None, parts: dict[str, str],
         meta: dict) -> None:
    """Write ``params.npz`` then ``meta.json`` (each under a temporary name first, then renamed)."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / META_FILE).unlink(missing_ok=True)   # from here until the end: "no shipped base"
    trees = {"decoder": decoder, **(vision or {})}
    flat = {"/".join(k): np.asarray(v, np.float32) for k, v in traverse_util.flatten_dict(trees).items()}
    tmp = directory / (PARAMS_FILE + ".tmp.npz")
    np.savez_compressed(tmp, **flat)
    tmp.replace(directory / PARAMS_FILE)
    meta = dict(meta, fingerprint=fingerprint(parts), fingerprint_parts=parts,
                params_sha256=_file_sha(directory / PARAMS_FILE))
    tmp = directory / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    tmp.replace(directory / META_FILE)


def load(parts: dict[str, str], say: Callable[[str], None] = print, directory: str | pathlib.Path = ASSET_DIR
         ) -> tuple[dict, dict | None, list[float], dict] | None:
    """(decoder params, vision params or None, phase-0 LM losses, meta) when the shipped base matches
    ``parts``, else None after saying why (a missing, stale, unreadable or altered base never raises)."""
    directory = pathlib.Path(directory)
    if not (directory / META_FILE).exists() or not (directory / PARAMS_FILE).exists():
        say(f"[phase0] no shipped base in {directory}: training phase 0")
        return None
    try:
        meta = json.loads((directory / META_FILE).read_text())
    except (OSError, ValueError) as e:
        say(f"[phase0] the shipped base's {directory / META_FILE} is unreadable ({e}): training phase 0")
        return None
    if meta.get("fingerprint") != fingerprint(parts):
        old = meta.get("fingerprint_parts", {})
        differ = sorted(k for k in parts if old.get(k) != parts[k]) or ["fingerprint"]
        say(f"[phase0] the shipped base ({directory}) was built for another phase 0 (differs in: "
            f"{', '.join(differ)}): training phase 0 (rebuild it with `python -m launch.build_tiny_base`)")
        return None
    if meta.get("params_sha256") != _file_sha(directory / PARAMS_FILE):
        say(f"[phase0] the shipped base's {directory / PARAMS_FILE} is not the file its meta.json describes "
            "(altered or half-written): training phase 0")
        return None
    with np.load(directory / PARAMS_FILE) as z:
        tree = traverse_util.unflatten_dict({tuple(k.split("/")): np.asarray(z[k]) for k in z.files})
    decoder = tree.pop("decoder", None)
    if decoder is None:
        say(f"[phase0] the shipped base's {directory / PARAMS_FILE} holds no decoder: training phase 0")
        return None
    return decoder, (tree or None), [float(x) for x in meta.get("lm_losses", [])], meta


def mismatched_shapes(decoder: dict, vision: dict | None, abstract: dict) -> list[str]:
    """Param paths of the shipped trees that the model (``abstract``: unboxed NanoEmoX params) does not have
    with the same shape; empty when every one fits."""
    ref = {"/".join(k): tuple(v.shape) for k, v in traverse_util.flatten_dict(abstract).items()}
    got = traverse_util.flatten_dict({"decoder": decoder, **(vision or {})})
    return sorted("/".join(k) for k, v in got.items() if ref.get("/".join(k)) != tuple(np.shape(v)))


__all__ = ["ASSET_DIR", "PHASE0_VERSION", "fingerprint", "fingerprint_parts", "load", "mismatched_shapes", "save"]
