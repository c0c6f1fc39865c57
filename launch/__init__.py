"""Entry points: `python -m launch.<name>` (train, eval, predict, score, convert, check_parity, ...)."""
