"""The converter fuzzer (benchmarks.fuzz): its mutants are reproducible, its harness catches
every kind of failure it promises to catch, and a short seeded run over the shared models
finds nothing. The 100,000-case campaign is `python -m benchmarks.fuzz --cases=100000`."""
from __future__ import annotations

import faulthandler
import hashlib
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks import fuzz
from benchmarks.fuzz_mutate import Mutator, load_seeds, pack
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.reader import read_tflite

SHARED_MODELS = Path(__file__).resolve().parent.parent.parent / "shared" / "models"


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory) -> Path:
    """Two small models of our own: the harness tests never depend on ../shared."""
    d = tmp_path_factory.mktemp("seeds")
    (d / "relu.tflite").write_bytes(build_single_op_model(
        "RELU", [TensorSpec((1, 4, 4, 3), scale=0.05, zero_point=-3)],
        [TensorSpec((1, 4, 4, 3), scale=0.05, zero_point=-3)]))
    (d / "add.tflite").write_bytes(build_single_op_model(
        "ADD", [TensorSpec((1, 8), scale=0.1, zero_point=1), TensorSpec((1, 8), scale=0.2, zero_point=-2)],
        [TensorSpec((1, 8), scale=0.3, zero_point=0)]))
    return d


def _cfg(seed_dir: Path, tmp_path: Path, **kw) -> fuzz.Config:
    base = dict(seed=11, cases=12, models=seed_dir, out=tmp_path / "repro", generate=0.0,
                sample_run=0.0, time_limit=2.0)
    base.update(kw)
    return fuzz.Config(**base)


def test_a_case_depends_only_on_seed_and_number(seed_dir):
    """Two mutators (as two workers would hold) make the same bytes for the same case, in
    any order: every in-place change to the parsed seed is undone."""
    a, b = Mutator(load_seeds(seed_dir)), Mutator(load_seeds(seed_dir))
    first = [a.mutate(fuzz.case_rngs(5, c)[0]) for c in range(60)]
    again = [b.mutate(fuzz.case_rngs(5, c)[0]) for c in reversed(range(60))][::-1]
    assert first == again
    assert len({d for d, _, _ in first}) > 50  # and the cases do differ
    for s in a.seeds:  # after 60 cases the parsed seed still packs to the model it was
        assert read_tflite(pack(s.model)).ops == read_tflite(s.data).ops


def test_traceback_is_saved_as_a_reproducer_that_replays_the_same_bytes(seed_dir, tmp_path):
    def target(data: bytes, job: fuzz.Job):
        if job.case == 3:
            raise KeyError("a converter bug")
        return "refused", "fine"

    cfg = _cfg(seed_dir, tmp_path)
    summary = fuzz.run_campaign(cfg, target, progress=False)
    assert summary.cases == 12 and summary.counts == {"refused": 11, "traceback": 1}
    (repro,) = summary.reproducers
    note = repro.with_suffix(".txt").read_text()
    assert "KeyError: 'a converter bug'" in note and "--replay=" in note and "WARNING" not in note
    data, _, _ = Mutator(load_seeds(seed_dir)).mutate(fuzz.case_rngs(cfg.seed, 3)[0])
    assert hashlib.sha256(repro.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_crash_hang_and_memory_are_caught_and_the_run_goes_on(seed_dir, tmp_path):
    def target(data: bytes, job: fuzz.Job):
        if job.case == 1:
            faulthandler.disable()  # pytest's handler would print the worker's stack
            os.kill(os.getpid(), signal.SIGSEGV)  # a native crash in the worker
        if job.case == 2:
            time.sleep(60)  # interrupted by the per-case alarm
        if job.case == 4:
            bytearray(1 << 33)  # past the worker's address-space limit
        return "converted", ""

    cfg = _cfg(seed_dir, tmp_path, cases=8, time_limit=1.0, memory_limit=1 << 31)
    t0 = time.monotonic()
    summary = fuzz.run_campaign(cfg, target, progress=False)
    assert time.monotonic() - t0 < 30
    assert summary.counts == {"converted": 5, "crash": 1, "hang": 1, "memory": 1}
    names = sorted(p.name.split("_")[0] for p in summary.reproducers)
    assert names == ["crash", "hang", "memory"]
    assert summary.failures == 3


def test_blank_refusals_and_unknown_statuses_are_failures(seed_dir, tmp_path):
    def target(data: bytes, job: fuzz.Job):
        return ("refused", "ok") if job.case % 2 else ("maybe", "")

    summary = fuzz.run_campaign(_cfg(seed_dir, tmp_path, cases=6), target, progress=False)
    assert summary.counts == {"refused": 3, "traceback": 3}


def test_convert_target_classifies_the_converter_outcomes(seed_dir):
    good = (seed_dir / "relu.tflite").read_bytes()
    assert fuzz.convert_target(good, fuzz.Job(0, False, False, 0)) == ("converted", "")
    status, message = fuzz.convert_target(good[: len(good) // 2], fuzz.Job(0, False, False, 0))
    assert status == "refused" and message


def test_short_seeded_run_over_the_shared_models_finds_nothing(tmp_path):
    if not SHARED_MODELS.is_dir() or not load_seeds(SHARED_MODELS):
        pytest.skip(f"{SHARED_MODELS} is absent: no shared seed models")
    cfg = fuzz.Config(seed=2026, cases=400, models=SHARED_MODELS, out=tmp_path / "repro",
                      generate=0.02, sample_run=0.0, time_limit=20.0)
    summary = fuzz.run_campaign(cfg, progress=False)
    assert summary.failures == 0, summary.text()
    assert summary.cases == 400
    c = summary.counts
    # both outcomes occur: the mutants reach past the reader, and bad ones are refused
    assert c.get("refused", 0) > 100 and c.get("converted", 0) + c.get("generated", 0) > 10
    assert np.isfinite(summary.seconds)
