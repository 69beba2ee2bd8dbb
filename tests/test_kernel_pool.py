"""AVERAGE_POOL_2D and MAX_POOL_2D (engine/kernels/pool.c) against TFLite Micro on the host:
SAME and VALID padding, unequal filters and strides, batches, a 1x1 input and a global pool."""
from __future__ import annotations

import numpy as np
import pytest

from tests.kernel_harness import (
    assert_host_matches_tflm_on_random_inputs,
    needs_host_compiler,
    random_qspec,
)
from tests.tflite_builder import TensorSpec, build_single_op_model

POOLS = [  # (input shape, filter, stride, padding)
    ((1, 7, 7, 3), (3, 3), (2, 2), "SAME"),
    ((1, 8, 6, 5), (2, 2), (2, 2), "VALID"),
    ((1, 1, 1, 8), (1, 1), (1, 1), "SAME"),
    ((2, 5, 9, 1), (5, 3), (1, 2), "SAME"),
    ((1, 10, 10, 16), (10, 10), (1, 1), "VALID"),
]


def _pool_out(n, k, s, pad):
    return (n + s - 1) // s if pad == "SAME" else (n - k + s) // s


@needs_host_compiler
@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("case", POOLS, ids=str)
def test_pool_matches_tflm(op, case, tmp_path):
    shape, (fh, fw), (sh, sw), pad = case
    rng = np.random.default_rng(sum(shape) + fh)
    x = random_qspec(rng, shape)
    out = (shape[0], _pool_out(shape[1], fh, sh, pad), _pool_out(shape[2], fw, sw, pad), shape[3])
    y = TensorSpec(out, scale=x.scale, zero_point=x.zero_point)
    opts = {"padding": pad, "stride_h": sh, "stride_w": sw, "filter_height": fh,
            "filter_width": fw, "activation": "RELU6" if fh == 3 else "NONE"}
    assert_host_matches_tflm_on_random_inputs(build_single_op_model(op, [x], [y], options=opts), tmp_path)
