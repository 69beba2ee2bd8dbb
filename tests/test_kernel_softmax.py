"""SOFTMAX (engine/kernels/softmax.c mcu_softmax_s8) against TFLite Micro on the host: several
betas, input scales and row lengths; other output quantizations than TFLM's are refused."""
from __future__ import annotations

import numpy as np
import pytest

from tests.kernel_harness import assert_host_matches_tflm_on_random_inputs, needs_host_compiler
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.codegen.generate import convert_model
from tflite_converter.errors import ConversionError


@needs_host_compiler
@pytest.mark.parametrize("shape,beta", [((1, 10), 1.0), ((3, 7), 0.5), ((1, 1), 1.0),
                                        ((2, 2, 33), 2.0)])
def test_softmax_matches_tflm(shape, beta, tmp_path):
    rng = np.random.default_rng(shape[-1])
    for scale in (0.02, 0.25, 1.7):
        x = TensorSpec(shape, scale=scale, zero_point=int(rng.integers(-128, 128)))
        y = TensorSpec(shape, scale=1 / 256, zero_point=-128)
        model = build_single_op_model("SOFTMAX", [x], [y], options={"beta": beta})
        assert_host_matches_tflm_on_random_inputs(model, tmp_path / str(scale))


def test_softmax_refuses_other_output_quantization(tmp_path):
    model = build_single_op_model("SOFTMAX", [TensorSpec((1, 4), scale=0.1, zero_point=0)],
                                  [TensorSpec((1, 4), scale=1 / 128, zero_point=0)])
    with pytest.raises(ConversionError, match="SOFTMAX"):
        convert_model(model, tmp_path / "g", name="m")
