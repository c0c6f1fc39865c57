"""Reading PyTorch-side checkpoints into numpy, and the checks every converter shares.

Supported sources (``load_state_dict``):
- a ``save_pretrained`` directory: ``model.safetensors``, sharded ``model-0000x-of-0000y.safetensors`` with
  ``model.safetensors.index.json``, or ``pytorch_model.bin`` (sharded with ``pytorch_model.bin.index.json``);
- a single ``.safetensors`` file, or a torch pickle (``.pt``, ``.pth``, ``.bin``) — torch is only imported
  for the latter, and loaded with ``weights_only=True``.
Nested checkpoints (``{"model": ...}``, ``{"state_dict": ...}``, FaceXFormer's ``{"state_dict_backbone": ...}``)
are unwrapped with ``unwrap=``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np


class TensorMismatchError(ValueError):
    """A checkpoint tensor is missing, unexpected, or has the wrong shape (the message names it)."""


class CheckpointFormatError(ValueError):
    """A path is not a checkpoint we can read, or is a checkpoint of another architecture."""


def _to_numpy(t) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t
    # torch tensor: bf16 has no numpy dtype, so go through fp32 (exact).
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.to(torch.float32)
    return t.numpy()


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    out = {}
    try:
        # framework="np" cannot represent bf16 in old versions; "pt" would need torch. Try numpy first.
        with safe_open(str(path), framework="np") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    except (TypeError, ValueError):
        with safe_open(str(path), framework="pt") as f:
            for k in f.keys():
                out[k] = _to_numpy(f.get_tensor(k))
    return out


def _load_torch(path: Path, trust_pickle: bool = False) -> dict:
    """Load a torch pickle on CPU. ``weights_only=True`` (safe) unless ``trust_pickle`` is set.

    Reference training checkpoints (``{"model", "optimizer", "config", "scaler", "epoch"}``) may pickle a config
    object that the safe loader refuses; the error then says to pass ``trust_pickle=True`` (CLI:
    ``--trust-pickle``) for a file you trust.
    """
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a test extra
        raise CheckpointFormatError(f"{path}: reading a torch-format checkpoint needs torch installed") from e
    try:
        return torch.load(str(path), map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:
        hint = ("; if you trust this file, load it with trust_pickle=True (--trust-pickle): it pickles "
                "non-tensor objects") if not trust_pickle and "weights_only" in str(e) else ""
        raise CheckpointFormatError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: "
                                    f"{str(e).splitlines()[0] if str(e) else ''}){hint}") from e


def _flatten(obj, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts of tensors -> ``{"a.b.c": array}``; non-tensor leaves (ints, strings) are dropped."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif hasattr(obj, "shape") and hasattr(obj, "dtype"):
        out[prefix[:-1]] = _to_numpy(obj)
    return out


def load_state_dict(path: str | os.PathLike, unwrap: str | Sequence[str] | None = None, *,
                    trust_pickle: bool = False) -> dict[str, np.ndarray]:
    """Load every tensor of a checkpoint (file or save_pretrained dir) as ``{name: np.ndarray}``.

    ``unwrap``: key(s) to descend into first (e.g. ``"state_dict_backbone"``, ``("model",)``); when None, a
    single top-level ``model``/``state_dict`` entry holding a dict is unwrapped automatically.
    ``trust_pickle``: allow arbitrary pickled objects in torch files (only for files you trust).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointFormatError(f"checkpoint path does not exist: {path}")
    if path.is_dir():
        return _load_dir(path)
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        obj = _load_torch(path, trust_pickle)
        if unwrap is not None:
            for key in ([unwrap] if isinstance(unwrap, str) else unwrap):
                if not isinstance(obj, dict) or key not in obj:
                    have = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
                    raise CheckpointFormatError(f"{path}: expected top-level key {key!r}; found {have}")
                obj = obj[key]
        elif isinstance(obj, dict):
            for key in ("model", "state_dict"):
                if key in obj and isinstance(obj[key], dict):
                    obj = obj[key]
                    break
        if not isinstance(obj, dict):
            raise CheckpointFormatError(f"{path}: expected a state dict, got {type(obj).__name__}")
        return _flatten(obj)
    raise CheckpointFormatError(f"{path}: unknown checkpoint file type {path.suffix!r} "
                                "(expected .safetensors, .pt, .pth, .bin or a save_pretrained directory)")


def _load_dir(d: Path) -> dict[str, np.ndarray]:
    for index_name, loader in (("model.safetensors.index.json", _load_safetensors),
                               ("pytorch_model.bin.index.json", lambda p: _flatten(_load_torch(p)))):
        index = d / index_name
        if index.exists():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            out = {}
            for shard in shards:
                out.update(loader(d / shard))
            return out
    if (d / "model.safetensors").exists():
        return _load_safetensors(d / "model.safetensors")
    if (d / "pytorch_model.bin").exists():
        return _flatten(_load_torch(d / "pytorch_model.bin"))
    found = sorted(p.name for p in d.iterdir())[:20]
    raise CheckpointFormatError(f"{d}: no model.safetensors, sharded safetensors index or pytorch_model.bin "
                                f"found (directory holds {found})")


def load_hf_config(d: str | os.PathLike) -> dict:
    """``config.json`` of a save_pretrained directory as a dict (clear error when absent)."""
    p = Path(d) / "config.json"
    if not p.exists():
        raise CheckpointFormatError(f"{d}: no config.json (is this a save_pretrained directory?)")
    return json.loads(p.read_text())


def take(state_dict: dict[str, np.ndarray], name: str, expected_shape: Sequence[int] | None = None, *,
         where: str = "checkpoint", used: set[str] | None = None) -> np.ndarray:
    """``state_dict[name]``, checked against ``expected_shape``; records ``name`` in ``used``.

    Raises TensorMismatchError naming the tensor and both shapes, or listing close names when missing.
    """
    if name not in state_dict:
        import difflib

        close = difflib.get_close_matches(name, list(state_dict), n=3)
        raise TensorMismatchError(f"{where}: missing tensor {name!r}"
                                  + (f" (similar names present: {close})" if close else ""))
    arr = state_dict[name]
    if expected_shape is not None and tuple(arr.shape) != tuple(expected_shape):
        raise TensorMismatchError(f"{where}: tensor {name!r} has shape {tuple(arr.shape)} but the model "
                                  f"expects {tuple(expected_shape)}")
    if used is not None:
        used.add(name)
    return arr


def check_all_used(state_dict: dict[str, np.ndarray], used: Iterable[str], ignore_regexes: Sequence[str] = (),
                   *, where: str = "checkpoint") -> None:
    """Raise TensorMismatchError if tensors other than ``used`` (and ignored ones) remain unconsumed."""
    used = set(used)
    pats = [re.compile(r) for r in ignore_regexes]
    left = sorted(k for k in state_dict if k not in used and not any(p.search(k) for p in pats))
    if left:
        more = f" (+{len(left) - 8} more)" if len(left) > 8 else ""
        raise TensorMismatchError(f"{where}: {len(left)} unexpected tensor(s) not used by the model: "
                                  f"{left[:8]}{more}")


def stack_layers(state_dict: dict[str, np.ndarray], template: str, num_layers: int,
                 expected_shape: Sequence[int] | None = None, *, where: str = "checkpoint",
                 used: set[str] | None = None, transform=None) -> np.ndarray:
    """Stack ``template.format(i)`` for ``i < num_layers`` on a new leading axis (the scanned layout).

    ``transform`` is applied to each tensor first (e.g. a transpose from torch's ``[out, in]``).
    """
    arrs = []
    for i in range(num_layers):
        a = take(state_dict, template.format(i), expected_shape, where=where, used=used)
        arrs.append(transform(a) if transform else a)
    return np.stack(arrs, axis=0)
