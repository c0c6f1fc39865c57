"""Test setup: 8 fake CPU devices (must be set before jax is imported), offline HF, shared data path."""

import os
import pathlib

# Fewer LLVM optimisations: the suite is compile-bound (tiny models, few steps), and this level roughly halves
# CPU compile time; results differ from the default level by an ulp or so (parity tolerances are far wider).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
                           " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One persistent XLA compilation cache for the whole run: pytest-xdist workers and the subprocesses the
# end-to-end tests start (quickstart, notebook kernel, multi-process workers) compile many identical programs
# (the tiny model's init and per-phase steps); on 2 CPU cores compiling, not running, is what CI pays for.
# Only compilations over 1 s are stored. Point EMOX_TEST_COMPILE_CACHE at "" to disable it.
_CACHE = os.environ.get("EMOX_TEST_COMPILE_CACHE",
                        str(pathlib.Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax_compile"))
if _CACHE:
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """``../shared/data`` beside the checkout (real fixtures: emotion wheels, MIntRec, EMER, MERR)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"expected the shared data folder at {SHARED_DATA}")
    return SHARED_DATA


# Long end-to-end files first: with --dist loadfile --no-loadscope-reorder, pytest-xdist hands files to workers
# in collection order (its default reorders by test count, which put the 2-test quickstart file last), so
# starting these early keeps CI's wall time near (total work) / (workers) instead of ending on one long file.
_FIRST = ("test_quickstart.py", "test_p2e_step.py", "test_p2e_processes.py", "test_sweep.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(_FIRST)))   # stable: the rest keep their order
