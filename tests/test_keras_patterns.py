"""Exporter patterns from tf_keras (tests/keras_patterns.py) convert and give TFLM's bytes on
the host, or are refused with the stated reason. Skipped without TensorFlow; the models are
exported in a child process."""
from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from tests.keras_patterns import PATTERNS
from tests.kernel_harness import assert_host_matches_tflm_on_random_inputs, needs_host_compiler
from tflite_converter import schema
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite

pytestmark = needs_host_compiler


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> pathlib.Path:
    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf_keras") is None:
        pytest.skip("TensorFlow / tf_keras not installed: cannot export the Keras patterns")
    out = tmp_path_factory.mktemp("keras_patterns")
    r = subprocess.run([sys.executable, "-m", "tests.keras_patterns", str(out)], capture_output=True,
                       text=True, cwd=REPO_ROOT, timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(f"exporting the Keras patterns failed:\n{r.stderr[-3000:]}")
    return out


def _operators(model: bytes) -> set[str]:
    m = schema.S.ModelT.InitFromPackedBuf(model, 0)
    return {schema.op_name(schema.builtin_code(oc)) for oc in m.operatorCodes}


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_keras_pattern_matches_tflm(name, exported, tmp_path):
    model = (exported / f"{name}.tflite").read_bytes()
    pattern = PATTERNS[name]
    missing = pattern.ops - _operators(model)
    assert not missing, f"the export no longer has {sorted(missing)}: the pattern is not tested"
    if pattern.refused is not None:
        with pytest.raises(ConversionError, match=pattern.refused):
            read_tflite(model)
        return
    assert_host_matches_tflm_on_random_inputs(model, tmp_path)
