"""QUANTIZE from float32 (engine/kernels/quantize.c mcu_quantize_f32_s8) against TFLite Micro:
random inputs on the host, and on the emulated Cortex-M7 (portable and DSP/FPv5 builds) the
exact ties k + 1/2, their float neighbours, signed zeros, subnormals and values beyond int32
(which the kernels saturate). QUANTIZE between 8-bit types is a table look-up:
tests/test_kernel_lut.py."""
from __future__ import annotations

import numpy as np
import pytest

from engine import qemu
from tests.kernel_harness import (
    assert_host_matches_tflm_on_random_inputs,
    convert,
    needs_cortex_m7,
    needs_host_compiler,
    tflm_outputs,
)
from tests.tflite_builder import TensorSpec, build_single_op_model


@needs_host_compiler
def test_quantize_from_float_matches_tflm(tmp_path):
    q = build_single_op_model("QUANTIZE", [TensorSpec((1, 40), "float32")],
                              [TensorSpec((1, 40), "int8", scale=0.023, zero_point=-3)])
    assert_host_matches_tflm_on_random_inputs(q, tmp_path, samples=8)


def _quantize_inputs(scale: float) -> np.ndarray:
    """Exact ties k + 1/2 (times the scale, rounded to float32), their float neighbours,
    signed zeros and subnormals."""
    k = np.arange(-300, 300, dtype=np.float32)
    ties = ((k + np.float32(0.5)) * np.float32(scale)).astype(np.float32)
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)),
                           np.nextafter(ties, np.float32(-np.inf))])
    special = np.array([0.0, -0.0, 1e-45, -1e-45], dtype=np.float32)
    return np.concatenate([ties, near, k * np.float32(scale), special]).astype(np.float32)


# Beyond int32 after the division TFLM's float->int cast is CPU-dependent (x86 gives INT_MIN);
# the kernels saturate, and NaN gives the minimum.
_EXTREMES = np.array([3e38, -3e38, np.inf, -np.inf, 2.2e9, -2.2e9, np.nan], np.float32)
_EXTREMES_OUT = np.array([127, -128, 127, -128, 127, -128, -128], np.int8)


@needs_cortex_m7
@pytest.mark.parametrize("scale,zp", [(0.02, -5), (1.0, 127), (0.0039, -128)])
def test_float_quantize_ties_and_extremes_on_cortex_m7(scale, zp, tmp_path):
    x = _quantize_inputs(scale)
    shape = (1, x.size)
    model = build_single_op_model("QUANTIZE", [TensorSpec(shape, "float32")],
                                  [TensorSpec(shape, scale=scale, zero_point=zp)])
    d = convert(model, tmp_path)
    rng = np.random.default_rng(3)
    samples = [[x.reshape(shape)], [(rng.standard_normal(shape) * 3).astype(np.float32)]]
    want = tflm_outputs(model, samples, 1 << 16)
    extremes = np.resize(_EXTREMES, shape)
    for dsp in (False, True):
        res = qemu.run_on_qemu(d, "m", samples + [[extremes]], dsp=dsp).outputs
        assert all(np.array_equal(g[0], e[0]) for g, e in zip(res, want)), f"dsp={dsp}"
        assert np.array_equal(res[2][0], np.resize(_EXTREMES_OUT, shape)), f"dsp={dsp}"
