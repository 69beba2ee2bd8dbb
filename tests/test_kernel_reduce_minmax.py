"""REDUCE_MAX and REDUCE_MIN (engine/kernels/reduce_minmax.c) against TFLite Micro: spatial,
channel, batch and full reductions, with and without keep_dims, the int8 extremes (all -128,
all 127: the start values), on the host and the emulated Cortex-M7; refusals as TFLM's."""
from __future__ import annotations

import pytest

from tests.kernel_harness import (
    REDUCTIONS,
    assert_cortex_m7_matches,
    assert_host_matches_tflm,
    const_int32,
    convert,
    needs_cortex_m7,
    needs_host_compiler,
    random_int8_samples,
    random_qspec,
    reduced_shape,
    seeded_rng,
    tflm_outputs,
)
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite

OPS = ["REDUCE_MAX", "REDUCE_MIN"]
CASES = REDUCTIONS + [
    ((9,), (0,), False),
    ((2, 3, 4, 5), (-1, 1), False),
]


def _model(op, case, out_quant=None) -> bytes:
    shape, axes, keep = case
    x = random_qspec(seeded_rng(f"{op} {case}"), shape)
    scale, zp = out_quant or (x.scale, x.zero_point)
    y = TensorSpec(reduced_shape(shape, axes, keep), scale=scale, zero_point=zp)
    axes_spec = const_int32(list(axes), shape=(len(axes),))
    return build_single_op_model(op, [x, axes_spec], [y], options={"keepDims": keep})


@needs_host_compiler
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_reduce_max_min_match_tflm(op, case, tmp_path):
    src = assert_host_matches_tflm(_model(op, case), tmp_path, seeded_rng(str(case)), case[0])
    assert f"mcu_{op.lower()}_s8(" in src


@needs_cortex_m7
@pytest.mark.parametrize("op", OPS)
def test_reduce_max_min_on_cortex_m7(op, tmp_path):
    case = REDUCTIONS[3]
    model = _model(op, case)
    samples = random_int8_samples(seeded_rng(op), case[0], n=2)
    assert_cortex_m7_matches(convert(model, tmp_path), "m", samples, tflm_outputs(model, samples))


@pytest.mark.parametrize("op", OPS)
def test_reduce_max_min_refuse_a_requantization(op):
    """TFLM's int8 REDUCE_MAX / REDUCE_MIN require the input's scale and zero point."""
    with pytest.raises(ConversionError, match=f"op 0 {op}.*quantization must be identical"):
        read_tflite(_model(op, REDUCTIONS[0], out_quant=(0.5, 1)))
