"""`//nas:search` end to end on the smoke budget: every deliverable, a run killed with
SIGKILL and resumed ends with the same arch.json as an unbroken run, and bad input is
explained in one line with exit status 2."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from nas.flash_estimate import ESTIMATE_ERROR_FRACTION
from nas.space_search import MIN_FIT_FRACTION

REPO = pathlib.Path(__file__).resolve().parent.parent
SMOKE = ["--budget=smoke", "--mcu=stm32f746", "--progress=false"]


def _search(args, timeout=1500, **kw):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "nas.search", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, **kw)


def _one_line_error(result, pattern):
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("search: error: ")
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, pattern", [
    (["--mcu=esp32"], "unknown MCU 'esp32'"),
    (["--budget=huge"], "unknown budget 'huge'"),
    (["--sram_kb=-1"], "--sram_kb must be positive"),
    (["--quantization=int3"], "quantization"),
    (["--dataset=cifar10"], "needs --data_dir"),
    (["--dataset=fashion_mnist", "--data_dir=/nonexistent/fmnist"], "does not exist"),
    (["--space=wide"], "--space wants WIDTH,RESOLUTION"),
])
def test_bad_flags_get_one_line(args, pattern, tmp_path):
    _one_line_error(_search([*SMOKE, f"--output_dir={tmp_path / 'run'}", *args], timeout=120), pattern)


def test_limits_nothing_meets_say_what_the_space_reaches(tmp_path):
    r = _search([*SMOKE, f"--output_dir={tmp_path / 'run'}", "--sram_kb=4"], timeout=300)
    _one_line_error(r, "nothing in the search space fits")
    assert "KiB of SRAM (peak)" in r.stderr and "KiB of Flash" in r.stderr


def test_empty_and_one_class_data_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _search([*SMOKE, f"--output_dir={tmp_path / 'a'}", "--dataset=image_folder",
                 f"--data_dir={empty}"], timeout=120)
    _one_line_error(r, "is empty")
    from PIL import Image

    one = tmp_path / "one" / "cats"
    one.mkdir(parents=True)
    for i in range(12):
        Image.new("RGB", (16, 16), (i * 20, 0, 0)).save(one / f"{i}.png")
    r = _search([*SMOKE, f"--output_dir={tmp_path / 'b'}", "--dataset=image_folder",
                 f"--data_dir={one.parent}"], timeout=300)
    _one_line_error(r, "only one class")


def test_a_folder_with_an_unreadable_run_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run_config.json").write_text(json.dumps({"not": "a run"}))
    _one_line_error(_search([*SMOKE, f"--output_dir={out}", "--resume"], timeout=120),
                    "cannot read")


def test_an_existing_run_needs_resume_and_the_same_flags(unbroken):
    _one_line_error(_search([*SMOKE, f"--output_dir={unbroken}", "--baseline"], timeout=120),
                    "pass --resume")
    _one_line_error(_search([*SMOKE, f"--output_dir={unbroken}", "--resume", "--seed=5"], timeout=120),
                    "seed")


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "run"
    r = _search([*SMOKE, f"--output_dir={out}", "--baseline"])
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def test_smoke_run_produces_every_deliverable(unbroken):
    out = unbroken
    for name in ("arch.json", "model_int8.tflite", "report.json", "report.md", "stage1.json",
                 "spaces.md", "flops_cdf.png", "evolution.json", "evolution_curve.png",
                 "c/model.c", "c/model.h"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    d = report["deployed"]
    assert d["verified"] is True
    assert report["fits"] is True
    assert d["arena_bytes"] <= report["limits"]["sram_bytes"]
    # the planner's figure the search used is the generated C's arena
    assert report["network"]["planned_arena_bytes"] == d["arena_bytes"]
    if d.get("flash_bytes_model_object"):  # the search's Flash figure is the model object's
        estimate = report["network"]["flash_estimate_bytes"]
        assert abs(estimate - d["flash_bytes_model_object"]) <= \
            ESTIMATE_ERROR_FRACTION * d["flash_bytes_model_object"]
    assert 0.0 <= d["c_test_accuracy"] <= 1.0 and d["c_test_accuracy"] > 0.15  # above chance
    assert report["search"]["evaluations"] >= report["budget"]["population"]
    history = json.loads((out / "evolution.json").read_text())["history"]
    assert len(history) == report["budget"]["generations"]
    assert [h["best_accuracy"] for h in history] == sorted(h["best_accuracy"] for h in history)
    stage1 = json.loads((out / "stage1.json").read_text())
    means = [sum(x["fitting_macs"]) / len(x["fitting_macs"])
             if len(x["fitting_macs"]) >= MIN_FIT_FRACTION * x["samples"] and x["fitting_macs"] else 0.0
             for x in stage1["spaces"]]
    assert stage1["chosen_index"] == means.index(max(means))
    assert (report["arch"]["width_mult"], report["arch"]["resolution"]) == (
        stage1["chosen"]["width_mult"], stage1["chosen"]["resolution"])
    base = report["baseline"]
    assert base is not None and base["deploy"]["verified"] is True
    assert base["training_steps"] == report["budget"]["largest_steps"] + report["budget"]["elastic_steps"] \
        + report["budget"]["finetune_steps"]
    assert "| searched |" in (out / "report.md").read_text()


def test_killed_run_resumes_to_the_same_architecture(unbroken, tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "nas.search", *SMOKE, f"--output_dir={out}",
                             "--qemu=false"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # kill -9 once the supernet has written its first checkpoint (mid-training): the state
    # file `checkpoint`, which tf.train.CheckpointManager writes (atomically) after the
    # ckpt-N files, so that the checkpoint is complete when the run dies
    deadline = time.time() + 900
    while time.time() < deadline and not (out / "supernet" / "checkpoint").is_file():
        assert proc.poll() is None, "the run ended before it was killed"
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "arch.json").exists()
    r = _search([*SMOKE, f"--output_dir={out}", "--qemu=false", "--resume"])
    assert r.returncode == 0, r.stderr[-4000:]
    assert json.loads((out / "arch.json").read_text()) == json.loads((unbroken / "arch.json").read_text())
    state = json.loads((out / "state.json").read_text())
    assert state["done"]["supernet"]["resumed_from"] > 0
