"""Convert weights between public PyTorch checkpoints and EmoX-JAX.

    python -m launch.convert --kind qwen2 --direction to-jax --src HF_DIR --dst OUR_DIR
    python -m launch.convert --kind qwen2 --direction to-hf  --src OUR_DIR --dst HF_DIR

Each kind is a module ``emox_jax/convert/<kind>.py`` defining ``convert_cli(args) -> dict``; adding a kind is
adding that function. Prints one JSON line describing what was written.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m launch.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", required=True, help="converter module under emox_jax/convert/, e.g. qwen2")
    p.add_argument("--direction", required=True, choices=["to-jax", "to-hf"])
    p.add_argument("--src", required=True, help="source checkpoint (file or directory)")
    p.add_argument("--dst", required=True, help="output directory")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="storage dtype of the written weights (default: float32)")
    return p


def get_converter(kind: str):
    try:
        mod = importlib.import_module(f"emox_jax.convert.{kind}")
    except ModuleNotFoundError as e:
        if e.name == f"emox_jax.convert.{kind}":
            raise SystemExit(f"launch.convert: unknown --kind {kind!r} (no module emox_jax/convert/{kind}.py)")
        raise
    if not hasattr(mod, "convert_cli"):
        raise SystemExit(f"launch.convert: emox_jax/convert/{kind}.py has no convert_cli(args)")
    return mod.convert_cli


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    result = get_converter(args.kind)(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
