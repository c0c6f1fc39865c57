#!/usr/bin/env bash
# Set up EmoX-JAX in ./.venv (Python 3.11+): pinned requirements, the package itself (editable), and the tiny
# tokenizer trained from text the repository ships. Idempotent: a second run only checks.
#   bash launch/setup.sh          runtime requirements
#   bash launch/setup.sh --test   + the test extra (torch==2.13.0 CPU, transformers, pytest)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
want=requirements.txt
[ "${1:-}" = "--test" ] && want=requirements-test.txt
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat "$want" requirements.txt pyproject.toml | sha1sum | cut -c1-12)-$(basename "$want")"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$want"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  touch "$stamp"
fi
# The tiny preset's sentencepiece model is trained here, at build time, from the repository's own corpus.
.venv/bin/python -m emox_jax.tokenizer --build >/dev/null
