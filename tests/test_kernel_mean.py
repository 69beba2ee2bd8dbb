"""MEAN and SUM (engine/kernels/mean.c) against TFLite Micro on the host: spatial, channel and
batch axes, with and without keep_dims, a 1x1 input and a 2-D full reduction."""
from __future__ import annotations

import numpy as np
import pytest

from tests.kernel_harness import (
    REDUCTIONS,
    assert_host_matches_tflm_on_random_inputs,
    const_int32,
    needs_host_compiler,
    random_qspec,
    reduced_shape,
)
from tests.tflite_builder import TensorSpec, build_single_op_model


@needs_host_compiler
@pytest.mark.parametrize("op", ["MEAN", "SUM"])
@pytest.mark.parametrize("case", REDUCTIONS, ids=str)
def test_mean_and_sum_match_tflm(op, case, tmp_path):
    shape, axes, keep = case
    rng = np.random.default_rng(len(shape) * 31 + sum(axes))
    out = reduced_shape(shape, axes, keep)
    x = random_qspec(rng, shape)
    y = random_qspec(rng, out)
    if op == "SUM":  # keep the sum representable: a wider output scale
        y = TensorSpec(out, scale=x.scale * float(np.prod([shape[a] for a in axes])) / 4,
                       zero_point=int(rng.integers(-20, 20)))
    model = build_single_op_model(op, [x, const_int32(list(axes))], [y], options={"keepDims": keep})
    assert_host_matches_tflm_on_random_inputs(model, tmp_path)
