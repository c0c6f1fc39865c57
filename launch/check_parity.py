"""Compare an EmoX-JAX module with its PyTorch reference on the same weights and the same random inputs.

    python -m launch.check_parity --kind qwen2 --hf-dir DIR [--seq-len N]

Prints one JSON line (``max_abs_diff`` and more) and exits 1 when the difference exceeds the tolerance.
Kinds live in ``emox_jax/convert/parity/`` (one module each).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    from emox_jax.convert.parity import available_kinds

    p = argparse.ArgumentParser(prog="python -m launch.check_parity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", required=True, help=f"one of: {', '.join(available_kinds())}")
    p.add_argument("--hf-dir", help="a save_pretrained directory (HF kinds)")
    p.add_argument("--checkpoint", help="a .pt/.pth/.safetensors file (torchvision / FaceXFormer / reference kinds)")
    p.add_argument("--seq-len", type=int, default=64, help="sequence length (tokens, frames or samples)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=None, help="override the kind's tolerance")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    from emox_jax.convert.parity import get_kind

    mod = get_kind(args.kind)
    result = mod.run(args)
    tol = args.tol if args.tol is not None else result.get("tolerance", getattr(mod, "DEFAULT_TOLERANCE", 1e-4))
    result["tolerance"] = tol
    result["ok"] = bool(result["max_abs_diff"] <= tol)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
