"""Orbax ``CheckpointManager`` wrapper: named pytree items + data-iterator state + JSON metadata.

One step directory ``<dir>/<step>/`` holds any pytree items the caller names (the LM job saves ``params`` and
``opt_state``; the P2E trainer may save only trainable params), an optional Grain iterator state (``data_iter``)
and ``meta`` (JSON: the caller's metadata plus ``step`` and package versions). Saves are async; ``max_to_keep``
keeps the last N.

* Only finalised checkpoints count: Orbax writes into a temporary directory and renames it when the save
  commits; ``steps()``/``latest_step()`` list only steps that ``ocp.path.step.is_checkpoint_finalized`` accepts,
  so a crash mid-save never yields a half-written "latest" checkpoint.
* Restoring onto another mesh: pass targets whose leaves are ``jax.ShapeDtypeStruct``s carrying the new
  ``NamedSharding``s (``lm_step.abstract_train_state``); Orbax reshards on read.
* ``expect=`` compares saved metadata with what the caller expects (e.g. phase, preset, model config) and raises
  ``CheckpointMismatchError`` naming every differing key with both values.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp

META = "meta"
DATA_ITER = "data_iter"


class CheckpointMismatchError(ValueError):
    """The checkpoint's metadata disagrees with what the caller expects (or a requested item is missing)."""


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "emox-jax"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _jsonable(x: Any) -> Any:
    """Round-trip through JSON so tuples become lists on both sides of a comparison."""
    return json.loads(json.dumps(x, default=str))


def _diff(saved: Any, expected: Any, where: str, out: list[str]) -> None:
    if isinstance(saved, Mapping) and isinstance(expected, Mapping):
        for k in expected:
            if k not in saved:
                out.append(f"{where}{k}: missing in checkpoint (expected {expected[k]!r})")
            else:
                _diff(saved[k], expected[k], f"{where}{k}.", out)
    elif saved != expected:
        out.append(f"{where.rstrip('.')}: checkpoint has {saved!r}, expected {expected!r}")


class Checkpointer:
    """A thin, generic layer over ``ocp.CheckpointManager``. Use as a context manager or call ``close()``.

    ``Checkpointer(directory, max_to_keep=2, async_save=True)``;
    ``save(step, {"params": p, "opt_state": o}, metadata={...}, data_iter=it)``;
    ``restore(step | None, {"params": abstract_p, ...}, data_iter=it, expect={...}) -> (items, metadata)``.
    """

    def __init__(self, directory: str | pathlib.Path, *, max_to_keep: int = 2, async_save: bool = True):
        self.directory = pathlib.Path(directory).absolute()
        opts = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                            enable_async_checkpointing=async_save)
        self._mngr = ocp.CheckpointManager(self.directory, options=opts)

    # -- saving ----------------------------------------------------------------------------------------------
    def save(self, step: int, items: Mapping[str, Any], *, metadata: Mapping[str, Any] | None = None,
             data_iter: Any = None, force: bool = True) -> bool:
        """Start an (async) save of ``items`` at ``step``; returns whether a save was started."""
        bad = [k for k in items if k in (META, DATA_ITER)]
        if bad:
            raise ValueError(f"item names {bad} are reserved")
        meta = dict(metadata or {}, step=int(step), versions=package_versions())
        args = {k: ocp.args.StandardSave(v) for k, v in items.items()}
        args[META] = ocp.args.JsonSave(_jsonable(meta))
        if data_iter is not None:
            import grain

            args[DATA_ITER] = grain.checkpoint.CheckpointSave(data_iter)
        return self._mngr.save(int(step), args=ocp.args.Composite(**args), force=force)

    def wait(self) -> None:
        """Block until pending async saves are committed."""
        self._mngr.wait_until_finished()

    # -- listing ---------------------------------------------------------------------------------------------
    def steps(self) -> list[int]:
        """Finalised checkpoint steps, ascending (temporary / uncommitted directories are ignored)."""
        self._mngr.reload()
        good = []
        for s in self._mngr.all_steps():
            path = self.directory / str(s)
            if path.is_dir() and ocp.path.step.is_checkpoint_finalized(path) and (path / META).exists():
                good.append(int(s))
        return sorted(good)

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    # -- restoring -------------------------------------------------------------------------------------------
    def metadata(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata of ``step`` (default: latest) without reading any arrays."""
        step = self._resolve(step)
        return self._mngr.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))[META]

    def restore(self, step: int | None, targets: Mapping[str, Any], *, data_iter: Any = None,
                expect: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restore the named items of ``step`` (default: latest) into ``targets``' shapes/dtypes/shardings.

        ``targets`` maps item names to abstract pytrees (``ShapeDtypeStruct`` with ``sharding``) or concrete
        arrays; a subset of the saved items may be asked for. ``data_iter`` (a Grain iterator) is restored in
        place when given. Metadata is checked against ``expect`` before any array is read.
        """
        step = self._resolve(step)
        meta = self.metadata(step)
        if expect:
            problems: list[str] = []
            _diff(meta, _jsonable(dict(expect)), "", problems)
            if problems:
                raise CheckpointMismatchError(f"checkpoint {self.directory / str(step)} does not match: "
                                              + "; ".join(problems))
        saved_items = {p.name for p in (self.directory / str(step)).iterdir() if p.is_dir()}
        missing = [k for k in targets if k not in saved_items]
        if missing:
            raise CheckpointMismatchError(f"checkpoint {self.directory / str(step)} has no item(s) {missing}; "
                                          f"it holds {sorted(saved_items - {META})}")
        args = {k: ocp.args.StandardRestore(v) for k, v in targets.items()}
        if data_iter is not None:
            import grain

            if DATA_ITER not in saved_items:
                raise CheckpointMismatchError(f"checkpoint {self.directory / str(step)} has no data iterator state")
            args[DATA_ITER] = grain.checkpoint.CheckpointRestore(data_iter)
        restored = self._mngr.restore(step, args=ocp.args.Composite(**args))
        return {k: restored[k] for k in targets}, meta

    def _resolve(self, step: int | None) -> int:
        steps = self.steps()
        if step is None:
            if not steps:
                raise FileNotFoundError(f"no finalised checkpoint in {self.directory}")
            return steps[-1]
        if int(step) not in steps:
            raise FileNotFoundError(f"no finalised checkpoint for step {step} in {self.directory} (have {steps})")
        return int(step)

    # -- lifetime --------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._mngr.wait_until_finished()
        self._mngr.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def restore_params_only(directory: str | pathlib.Path, target: Any, item: str = "params",
                        expect: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """Latest finalised ``item`` of ``directory`` (e.g. a previous phase's params) into ``target``."""
    with Checkpointer(directory, async_save=False) as ck:
        items, meta = ck.restore(None, {item: target}, expect=expect)
    return items[item], meta


def abstract_like(tree: Any) -> Any:
    """``ShapeDtypeStruct``s (with the arrays' current shardings) for a concrete pytree."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=getattr(a, "sharding", None)),
                        tree)
