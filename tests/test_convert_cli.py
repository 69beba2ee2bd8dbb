"""The `convert` command line: plan.json and table, refusals with exit status 2, user paths."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
MODELS = REPO.parent / "shared" / "models"


def _run(*args: str, cwd: pathlib.Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.pop("BUILD_WORKING_DIRECTORY", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tflite_converter.convert", *args],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=120,
    )


def _model(name: str) -> pathlib.Path:
    path = MODELS / f"{name}.tflite"
    if not path.is_file():
        pytest.skip(f"shared model {path} not found")
    return path


def test_plan_only_writes_plan_and_prints_table(tmp_path):
    model = _model("mlperf_tiny_vww_96_int8")
    r = _run(f"--model={model}", f"--output_dir={tmp_path / 'out'}", "--plan_only")
    assert r.returncode == 0, r.stderr
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    # overlap is the default: below the layer-by-layer bound; --nooverlap reaches the bound
    assert plan["arena_bytes"] <= 0.85 * plan["lower_bound_bytes"] <= 103680 / 1.8
    assert any(o.get("overlap_bytes") for o in plan["ops"])
    r2 = _run(f"--model={model}", f"--output_dir={tmp_path / 'plain'}", "--plan_only", "--nooverlap")
    plain = json.loads((tmp_path / "plain" / "plan.json").read_text())
    assert r2.returncode == 0 and plain["arena_bytes"] == plain["lower_bound_bytes"] == plan["lower_bound_bytes"]
    assert {"offset", "bytes", "first_op", "last_op"} <= set(plan["tensors"][0])
    assert len(plan["ops"]) == len(plan["order"]) and all("live_bytes" in o and "macs" in o for o in plan["ops"])
    assert f"arena {plan['arena_bytes']:,} B" in r.stdout
    assert "DEPTHWISE_CONV_2D" in r.stdout and "1x96x96x3" in r.stdout and "in place" in r.stdout
    assert "C emission" not in r.stdout and not list((tmp_path / "out").glob("*.c"))


def test_refused_model_exits_2_with_one_line_per_problem(tmp_path):
    model = _model("coral_keras_lstm_mnist_ptq")
    r = _run(f"--model={model}", f"--output_dir={tmp_path}", "--plan_only")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert any("UNIDIRECTIONAL_SEQUENCE_LSTM" in line for line in lines)
    assert all(line.startswith("coral_keras_lstm_mnist_ptq.tflite: ") for line in lines)
    assert not (tmp_path / "plan.json").exists()


@pytest.mark.parametrize("content", [b"", b"not a flatbuffer at all" * 10, None])
def test_invalid_files_refused_cleanly(tmp_path, content):
    path = tmp_path / "bad.tflite"
    if content is not None:
        path.write_bytes(content)
    r = _run(f"--model={path}", f"--output_dir={tmp_path / 'out'}", "--plan_only")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert r.stderr.startswith("bad.tflite: ")


def test_relative_paths_resolved_against_bazel_working_directory(tmp_path):
    model = _model("tflm_hello_world_int8")
    user = tmp_path / "user"
    user.mkdir()
    shutil.copy(model, user / "m.tflite")
    r = _run("--model=m.tflite", "--output_dir=out", "--plan_only",
             cwd=tmp_path, env={"BUILD_WORKING_DIRECTORY": str(user)})
    assert r.returncode == 0, r.stderr
    assert (user / "out" / "plan.json").is_file()
    assert not (tmp_path / "out").exists()


def test_without_plan_only_emits_c_or_says_why(tmp_path):
    model = _model("tflm_hello_world_int8")
    r = _run(f"--model={model}", f"--output_dir={tmp_path}", "--name=hello")
    assert "Traceback" not in r.stderr + r.stdout
    assert (tmp_path / "plan.json").is_file()
    if r.returncode == 0:
        assert ("C emission not built yet: wrote plan only" in r.stdout) or (tmp_path / "hello.c").is_file()
    else:  # the code generator refused an op: one line each, naming it
        assert r.returncode == 2
        assert all(line.startswith("tflm_hello_world_int8.tflite: op ") for line in r.stderr.strip().splitlines())


def test_missing_flags_is_a_usage_error(tmp_path):
    r = _run(f"--output_dir={tmp_path}")
    assert r.returncode != 0 and "--model" in r.stderr
    assert "Traceback" not in r.stderr


def test_console_script_installed(tmp_path):
    script = pathlib.Path(sys.executable).parent / "mcunet-convert"
    if not script.is_file():
        pytest.skip("mcunet-convert console script not installed in this environment")
    model = _model("tflm_hello_world_int8")
    r = subprocess.run([str(script), f"--model={model}", f"--output_dir={tmp_path}", "--plan_only"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "plan.json").is_file()
