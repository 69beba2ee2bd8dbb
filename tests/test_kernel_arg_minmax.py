"""ARG_MAX and ARG_MIN (engine/kernels/arg_minmax.c) against TFLite Micro: a classifier's
[1, N] logits, inner, outer and middle axes, ties (the first index wins, as in TFLM), on the
host and the emulated Cortex-M7; what TFLM refuses (int64 indices) is refused."""
from __future__ import annotations

import numpy as np
import pytest

from engine.host import HostModel
from engine.tflm import TflmModel
from tests.kernel_harness import (
    assert_cortex_m7_matches,
    assert_same_outputs,
    const_int32,
    convert,
    needs_cortex_m7,
    needs_host_compiler,
    random_int8_samples,
    random_qspec,
    seeded_rng,
    tflm_outputs,
)
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite

OPS = ["ARG_MAX", "ARG_MIN"]
CASES = [  # (input shape, axis)
    ((1, 10), -1),
    ((1, 4, 5, 6), 3),
    ((1, 4, 5, 6), 1),
    ((3, 4), 0),
    ((2, 1, 7), 2),
    ((5,), 0),
]


def _model(op, shape, axis, out_dtype="int32") -> bytes:
    x = random_qspec(seeded_rng(f"{op} {shape}"), shape)
    out = tuple(d for i, d in enumerate(shape) if i != axis % len(shape))
    return build_single_op_model(op, [x, const_int32([axis], shape=())], [TensorSpec(out, out_dtype)],
                                 options={"outputType": 2 if out_dtype == "int32" else 4})


def _samples(shape, rng):
    """Full-range inputs, the extremes (all equal: index 0) and inputs of three values only
    (many ties)."""
    few = [[rng.integers(-1, 2, shape).astype(np.int8)] for _ in range(3)]
    return random_int8_samples(rng, shape) + few


@needs_host_compiler
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape,axis", CASES)
def test_arg_max_min_match_tflm(op, shape, axis, tmp_path):
    model = _model(op, shape, axis)
    ours, ref = HostModel(convert(model, tmp_path), "m"), TflmModel(model)
    for sample in _samples(shape, seeded_rng(f"{shape} {axis}")):
        got, want = ours.run(sample), ref.run(sample)
        assert want[0].dtype == np.int32
        assert_same_outputs(got, want)


@needs_cortex_m7
@pytest.mark.parametrize("op", OPS)
def test_arg_max_min_on_cortex_m7(op, tmp_path):
    shape, axis = CASES[2]
    model = _model(op, shape, axis)
    samples = _samples(shape, seeded_rng(op))
    assert_cortex_m7_matches(convert(model, tmp_path), "m", samples, tflm_outputs(model, samples))


@pytest.mark.parametrize("op", OPS)
def test_int64_indices_refused_as_tflm_does(op):
    model = _model(op, (1, 10), -1, out_dtype="int64")
    with pytest.raises(ConversionError, match=f"op 0 {op}.*int64 output not supported"):
        read_tflite(model)
    with pytest.raises(RuntimeError):
        TflmModel(model).run([np.zeros((1, 10), np.int8)])


def test_int32_model_edges_only_as_outputs():
    """int32 is accepted at the edge only as a model output (the indices): an int32 model
    input is still refused, naming the tensor."""
    model = build_single_op_model("ABS", [TensorSpec((1, 4), "int32", name="ids")],
                                  [TensorSpec((1, 4), "int32")])
    with pytest.raises(ConversionError, match="tensor 'ids': model input/output of type int32 not supported"):
        read_tflite(model)
