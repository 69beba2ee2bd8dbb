"""PRELU (engine/kernels/prelu.c mcu_prelu_s8) against TFLite Micro on the host: a constant
int8 alpha broadcast over the channels."""
from __future__ import annotations

import numpy as np

from tests.kernel_harness import (
    assert_host_matches_tflm_on_random_inputs,
    needs_host_compiler,
    random_qspec,
)
from tests.tflite_builder import TensorSpec, build_single_op_model


@needs_host_compiler
def test_prelu_matches_tflm(tmp_path):
    rng = np.random.default_rng(7)
    alpha = TensorSpec((1, 1, 5), scale=0.01, zero_point=3,
                       data=rng.integers(-128, 128, (1, 1, 5)).astype(np.int8))
    model = build_single_op_model("PRELU", [random_qspec(rng, (1, 3, 4, 5)), alpha],
                                  [random_qspec(rng, (1, 3, 4, 5))])
    assert_host_matches_tflm_on_random_inputs(model, tmp_path)
