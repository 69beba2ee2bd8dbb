"""Shared pytest configuration: where ../shared is, and the `slow` marker."""
from __future__ import annotations

import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running (deselect with -m 'not slow')")


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    """../shared beside the repository; tests that need it skip when it is absent."""
    if not (SHARED_DIR / "models").is_dir():
        pytest.skip(f"../shared not found at {SHARED_DIR}: real models and data sets unavailable")
    return SHARED_DIR


@pytest.fixture(scope="session")
def shared_models(shared_dir) -> pathlib.Path:
    return shared_dir / "models"


def mcunet_reference_model(name: str) -> pathlib.Path:
    """The int8 .tflite export of a published MCUNet network (mcunet_tf.export), made once and
    cached. The export runs in a child process so that this test process never imports
    TensorFlow (the converter and engine tests must run without it); skips when TensorFlow is
    not installed."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip(f"TensorFlow not installed: cannot export {name}")
    code = "import sys; from mcunet_tf.export import reference_model_path; print(reference_model_path(sys.argv[1]))"
    r = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, cwd=REPO_ROOT, timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(f"exporting {name} failed:\n{r.stderr[-3000:]}")
    return pathlib.Path(r.stdout.strip().splitlines()[-1])
