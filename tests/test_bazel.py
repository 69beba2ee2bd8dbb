"""Bazel works offline with the venv's Python: the build graph loads, a py_test passes and a
py_binary runs. Run by `make test` (pytest); tagged manual in tests/BUILD so that
`bazel test //...` does not run Bazel inside Bazel."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("bazel") is None,
                                reason="bazel not installed (scripts/setup.sh installs it)")


def _bazel(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return subprocess.run(["bazel", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_build_graph_loads_offline():
    r = _bazel("build", "--nobuild", "//...")
    assert r.returncode == 0, r.stderr[-3000:]


def test_py_binary_runs_with_venv_python(shared_dir, tmp_path):
    config = shared_dir / "mcunet_configs" / "mcunet-10fps_imagenet.json"
    r = _bazel("run", "//mcunet_tf:profile", "--", f"--config={config}")
    assert r.returncode == 0, r.stderr[-3000:]
    figures = json.loads(r.stdout)
    # MCUNet publishes 6.4M MACs for mcunet-10fps (in0).
    assert round(figures["macs"] / 1e6, 1) == 6.4
    assert figures["peak_activation_bytes"] == 45 * 1024


def test_py_test_passes_under_bazel():
    r = _bazel("test", "//tests:test_arch")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
