"""Parity checks behind `python -m launch.check_parity --kind KIND`.

Each kind is a module here named after it (``qwen2.py``, ``clip.py``, ...) that defines
``run(args: argparse.Namespace) -> dict``: it loads the PyTorch model from ``args.hf_dir`` (or
``args.checkpoint``), loads the same weights into ours, feeds both the same random inputs and returns at least
``{"kind", "max_abs_diff", "tolerance"}``. A module may define ``DEFAULT_TOLERANCE``.
"""

import importlib
import pkgutil


def available_kinds() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get_kind(kind: str):
    kinds = available_kinds()
    if kind not in kinds:
        raise SystemExit(f"check_parity: unknown --kind {kind!r}; available: {', '.join(kinds)}")
    return importlib.import_module(f"{__name__}.{kind}")
