"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR (engine/kernels/resize.c) against TFLite Micro
on the host: up- and down-sampling, align_corners, half_pixel_centers and a 1x1 input."""
from __future__ import annotations

import pytest

from tests.kernel_harness import (
    assert_host_matches_tflm_on_random_inputs,
    const_int32,
    needs_host_compiler,
)
from tests.tflite_builder import TensorSpec, build_single_op_model


@needs_host_compiler
@pytest.mark.parametrize("op", ["RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"])
@pytest.mark.parametrize("in_hw,out_hw,align,half", [
    ((3, 4), (6, 8), False, False), ((5, 5), (3, 7), True, False),
    ((4, 3), (9, 5), False, True), ((1, 1), (3, 2), False, False)])
def test_resize_matches_tflm(op, in_hw, out_hw, align, half, tmp_path):
    x = TensorSpec((1, *in_hw, 3), scale=0.1, zero_point=-2)
    y = TensorSpec((1, *out_hw, 3), scale=0.1, zero_point=-2)
    model = build_single_op_model(op, [x, const_int32(out_hw)], [y],
                                  options={"alignCorners": align, "halfPixelCenters": half})
    assert_host_matches_tflm_on_random_inputs(model, tmp_path)
