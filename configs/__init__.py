"""ml_collections config files: `get_config(arg)` per job (lm.py now, P2E phases later) + shared helpers."""
