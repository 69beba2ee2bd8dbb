"""Op patterns of PyTorch exporters and model zoos (tests/exporter_patterns.py) convert and
give TFLM's bytes on the host, a few also on the emulated Cortex-M7; what TFLM refuses, the
converter refuses by op, index and reason. Each export must contain its idiom's operators,
so no test passes on a model that lost its pattern. Skipped without TensorFlow (the models
are exported once per module, in a child process)."""
from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
from conftest import REPO_ROOT

from engine.tflm import TflmModel
from tests import kernel_harness as kh
from tests.exporter_patterns import PATTERNS
from tests.keras_patterns import export_in_child, exported_model
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite

pytestmark = kh.needs_host_compiler


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> pathlib.Path:
    return export_in_child("tests.exporter_patterns",
                           tmp_path_factory.mktemp("exporter_patterns"), REPO_ROOT)


def _tflm_error(model: bytes) -> str | None:
    """TFLM's message when it cannot prepare the model, else None."""
    try:
        TflmModel(model)
    except RuntimeError as e:
        return str(e)
    return None


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_exporter_pattern_matches_tflm(name, exported, tmp_path):
    pattern = PATTERNS[name]
    model = exported_model(exported, name, pattern.ops)
    tflm_error = _tflm_error(model)
    if pattern.refused is not None:
        with pytest.raises(ConversionError, match=pattern.refused):
            read_tflite(model)
        if pattern.gap is not None:
            assert tflm_error is None, tflm_error
            pytest.xfail(pattern.gap)
        assert tflm_error is not None and pattern.tflm_refuses is not None
        assert re.search(pattern.tflm_refuses, tflm_error), tflm_error
        return
    assert tflm_error is None, tflm_error
    kh.assert_host_matches_tflm_on_random_inputs(model, tmp_path, samples=6)


def _samples(model: bytes, n: int) -> list[list[np.ndarray]]:
    ref = TflmModel(model)
    rng = np.random.default_rng(7)
    return [kh.random_model_inputs(ref, rng) for _ in range(n)]


@kh.needs_cortex_m7
@pytest.mark.parametrize("name", sorted(n for n, p in PATTERNS.items() if p.qemu))
def test_exporter_pattern_on_cortex_m7(name, exported, tmp_path):
    """The portable and the DSP build on the emulated Cortex-M7 give TFLM's (host) bytes."""
    model = (exported / f"{name}.tflite").read_bytes()
    samples = _samples(model, 2)
    kh.assert_cortex_m7_matches(kh.convert(model, tmp_path), "m", samples,
                                kh.tflm_outputs(model, samples))
