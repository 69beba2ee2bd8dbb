"""The data-movement ops on the strided N-d copy (engine/kernels/copy_nd.c) against TFLite
Micro on the host: PAD, PADV2, TRANSPOSE, CONCATENATION, SPLIT and STRIDED_SLICE (negative
strides included)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.kernel_harness import (
    assert_host_matches_tflm_on_random_inputs,
    const_int32,
    needs_host_compiler,
)
from tests.tflite_builder import TensorSpec, build_single_op_model

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
