"""Metric modes. `clean` (default) follows the intended definitions; `parity` reproduces the reference code's
quirks that change numbers (evaluation-and-data.md §1.8-§1.11). Each quirk has a name; metric modules list the
ones they apply in their `PARITY_QUIRKS` dict, and scoring reports the names applied."""

MODES = ("clean", "parity")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown metric mode {mode!r}; expected one of {MODES}")
    return mode


def nan_to_zero(x: float, mode: str) -> float:
    """Clean mode reports an undefined ratio (0/0, mean of nothing) as 0.0; parity keeps the reference's NaN."""
    return 0.0 if (mode == "clean" and x != x) else x


def mean_or_nan(values) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else float("nan")
