"""Exporter patterns from tf_keras (tests/keras_patterns.py) convert and give TFLM's bytes on
the host, or are refused with the stated reason. Skipped without TensorFlow; the models are
exported in a child process."""
from __future__ import annotations

import pathlib

import pytest
from conftest import REPO_ROOT

from tests.keras_patterns import PATTERNS, export_in_child, exported_model
from tests.kernel_harness import assert_host_matches_tflm_on_random_inputs, needs_host_compiler
from tflite_converter import schema
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite

pytestmark = needs_host_compiler


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> pathlib.Path:
    return export_in_child("tests.keras_patterns", tmp_path_factory.mktemp("keras_patterns"),
                           REPO_ROOT)


def _float32_ops(model: bytes) -> set[str]:
    """Operators with a float32 output (other than DEQUANTIZE)."""
    m = schema.S.ModelT.InitFromPackedBuf(model, 0)
    g = m.subgraphs[0]
    names = {schema.op_name(schema.builtin_code(m.operatorCodes[o.opcodeIndex])) for o in g.operators
             if any(g.tensors[t].type == schema.S.TensorType.FLOAT32 for t in o.outputs)}
    return names - {"DEQUANTIZE"}


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_keras_pattern_matches_tflm(name, exported, tmp_path):
    pattern = PATTERNS[name]
    model = exported_model(exported, name, pattern.ops)
    if pattern.float_ops:
        still_float = _float32_ops(model) & pattern.float_ops
        assert still_float, f"no op of {sorted(pattern.float_ops)} stayed float32: not a float edge"
    if pattern.refused is not None:
        with pytest.raises(ConversionError, match=pattern.refused):
            read_tflite(model)
        return
    assert_host_matches_tflm_on_random_inputs(model, tmp_path)
