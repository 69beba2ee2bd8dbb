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
