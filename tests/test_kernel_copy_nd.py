"""The data-movement ops on the strided N-d copy (engine/kernels/copy_nd.c) against TFLite
Micro on the host: PAD, PADV2, TRANSPOSE, CONCATENATION, SPLIT, STRIDED_SLICE (negative
strides included), DEPTH_TO_SPACE and SPACE_TO_DEPTH (also on the emulated Cortex-M7)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.kernel_harness import (
    assert_cortex_m7_matches,
    assert_host_matches_tflm_on_random_inputs,
    const_int32,
    convert,
    needs_cortex_m7,
    needs_host_compiler,
    random_int8_samples,
    seeded_rng,
    tflm_outputs,
)
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite

pytestmark = needs_host_compiler


@pytest.mark.parametrize("op", ["PAD", "PADV2"])
def test_pad_matches_tflm(op, tmp_path):
    x = TensorSpec((1, 3, 5, 3), scale=0.1, zero_point=-7)
    pads = const_int32([[0, 0], [1, 2], [2, 1], [0, 1]])
    y = TensorSpec((1, 6, 8, 4), scale=0.1, zero_point=-7)
    inputs = [x, pads]
    if op == "PADV2":
        inputs.append(TensorSpec((1,), scale=0.1, zero_point=-7, data=np.array([5], np.int8)))
    assert_host_matches_tflm_on_random_inputs(build_single_op_model(op, inputs, [y]), tmp_path)


@pytest.mark.parametrize("perm", [(0, 3, 1, 2), (0, 2, 1, 3), (3, 2, 1, 0), (0, 1, 2, 3)])
def test_transpose_matches_tflm(perm, tmp_path):
    shape = (1, 3, 4, 5)
    x = TensorSpec(shape, scale=0.1, zero_point=1)
    y = TensorSpec(tuple(shape[p] for p in perm), scale=0.1, zero_point=1)
    assert_host_matches_tflm_on_random_inputs(
        build_single_op_model("TRANSPOSE", [x, const_int32(perm)], [y]), tmp_path)


@pytest.mark.parametrize("axis", [1, 3, -1])
def test_concatenation_matches_tflm(axis, tmp_path):
    shapes = [(1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4)]
    out = list(shapes[0])
    out[axis] *= 3
    xs = [TensorSpec(s, scale=0.2, zero_point=3) for s in shapes]
    y = TensorSpec(tuple(out), scale=0.2, zero_point=3)
    assert_host_matches_tflm_on_random_inputs(
        build_single_op_model("CONCATENATION", xs, [y], options={"axis": axis}), tmp_path)


def test_split_matches_tflm(tmp_path):
    x = TensorSpec((1, 4, 3, 6), scale=0.2, zero_point=3)
    ys = [TensorSpec((1, 4, 3, 2), scale=0.2, zero_point=3) for _ in range(3)]
    axis = TensorSpec((), "int32", data=np.array(3, np.int32))
    assert_host_matches_tflm_on_random_inputs(
        build_single_op_model("SPLIT", [axis, x], ys, options={"numSplits": 3}), tmp_path)


@pytest.mark.parametrize("begin,end,strides,out", [
    ((0, 1, 0, 0), (1, 4, 5, 3), (1, 1, 2, 1), (1, 3, 3, 3)),
    ((0, 4, 4, 2), (1, 0, 0, 0), (1, -2, -1, -1), (1, 2, 4, 2)),
])
def test_strided_slice_matches_tflm(begin, end, strides, out, tmp_path):
    x = TensorSpec((1, 5, 5, 3), scale=0.2, zero_point=3)
    y = TensorSpec(out, scale=0.2, zero_point=3)
    model = build_single_op_model("STRIDED_SLICE", [x, const_int32(begin), const_int32(end),
                                                    const_int32(strides)], [y])
    assert_host_matches_tflm_on_random_inputs(model, tmp_path)


# (op, input shape, block size, output shape)
BLOCK_CASES = [
    ("DEPTH_TO_SPACE", (1, 3, 4, 8), 2, (1, 6, 8, 2)),
    ("DEPTH_TO_SPACE", (2, 2, 3, 18), 3, (2, 6, 9, 2)),
    ("DEPTH_TO_SPACE", (1, 2, 2, 4), 2, (1, 4, 4, 1)),
    ("DEPTH_TO_SPACE", (1, 3, 3, 5), 1, (1, 3, 3, 5)),
    ("SPACE_TO_DEPTH", (1, 6, 8, 2), 2, (1, 3, 4, 8)),
    ("SPACE_TO_DEPTH", (2, 6, 9, 3), 3, (2, 2, 3, 27)),
    ("SPACE_TO_DEPTH", (1, 4, 4, 1), 4, (1, 1, 1, 16)),
]


def _block_model(op, in_shape, block, out_shape) -> bytes:
    x = TensorSpec(in_shape, scale=0.3, zero_point=-4)
    y = TensorSpec(out_shape, scale=0.3, zero_point=-4)
    return build_single_op_model(op, [x], [y], options={"block_size": block})


@pytest.mark.parametrize("op,in_shape,block,out_shape", BLOCK_CASES)
def test_depth_space_moves_match_tflm(op, in_shape, block, out_shape, tmp_path):
    assert_host_matches_tflm_on_random_inputs(_block_model(op, in_shape, block, out_shape), tmp_path)


@needs_cortex_m7
@pytest.mark.parametrize("case", [BLOCK_CASES[1], BLOCK_CASES[5]], ids=lambda c: c[0])
def test_depth_space_moves_on_cortex_m7(case, tmp_path):
    model = _block_model(*case)
    samples = random_int8_samples(seeded_rng(str(case)), case[1], n=2)
    assert_cortex_m7_matches(convert(model, tmp_path), "m", samples, tflm_outputs(model, samples))


@pytest.mark.parametrize("op,in_shape,block,out_shape,message", [
    ("DEPTH_TO_SPACE", (1, 2, 2, 6), 2, (1, 4, 4, 1), "6 channels do not fill 2x2 blocks"),
    ("SPACE_TO_DEPTH", (1, 5, 4, 2), 2, (1, 2, 2, 8), "height 5 and width 4 are not multiples"),
    ("DEPTH_TO_SPACE", (1, 2, 2, 4), 2, (1, 4, 2, 2), r"shape \[1, 4, 2, 2\] does not match"),
    ("SPACE_TO_DEPTH", (1, 4, 4, 1), 0, (1, 4, 4, 1), "block_size 0 must be at least 1"),
])
def test_depth_space_refusals(op, in_shape, block, out_shape, message):
    with pytest.raises(ConversionError, match=f"op 0 {op}.*{message}"):
        read_tflite(_block_model(op, in_shape, block, out_shape))
