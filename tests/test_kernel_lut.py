"""The table look-up kernels (engine/kernels/lut.c mcu_lut_8, mcu_lut_f32) against TFLite
Micro: LOGISTIC, TANH, HARD_SWISH, RELU, RELU6, ABS, LEAKY_RELU, RSQRT, QUANTIZE between int8 and uint8
(requantisation) and DEQUANTIZE to float32. The generation-time tables (engine/quant_ops.py,
engine/quantization.py) are checked exhaustively over all 256 input bytes against TFLM, then
one generated model per op runs on the host."""
from __future__ import annotations

import numpy as np
import pytest

from engine import quant_ops, quantization
from engine.tflm import TflmModel
from tests.kernel_harness import assert_host_matches_tflm_on_random_inputs, needs_host_compiler
from tests.tflite_builder import TensorSpec, build_single_op_model


def _all_bytes_model(op, si, zi, so, zo, options=None, in_dtype="int8", out_dtype="int8"):
    return build_single_op_model(op, [TensorSpec((1, 256), in_dtype, scale=si, zero_point=zi)],
                                 [TensorSpec((1, 256), out_dtype, scale=so, zero_point=zo)],
                                 options=options)


# op -> (si, zi, so, zo) -> (our table, the output quantization TFLM requires, options)
UNARY = {
    "LOGISTIC": lambda si, zi, so, zo: (quant_ops.logistic_table(si, zi, 1 / 256, -128), (1 / 256, -128), None),
    "TANH": lambda si, zi, so, zo: (quant_ops.tanh_table(si, zi, 1 / 128, 0), (1 / 128, 0), None),
    "HARD_SWISH": lambda si, zi, so, zo: (quant_ops.hard_swish_table(si, zi, so, zo), (so, zo), None),
    "RELU": lambda si, zi, so, zo: (quant_ops.relu_table(si, zi, so, zo), (so, zo), None),
    "RELU6": lambda si, zi, so, zo: (quant_ops.relu6_table(si, zi, si, zi), (si, zi), None),
    "ABS": lambda si, zi, so, zo: (quant_ops.abs_table(si, zi, so, zo), (so, zo), None),
    # equal scales: TFLM skips the rescale (only the zero points differ)
    "ABS_SAME_SCALE": lambda si, zi, so, zo: (quant_ops.abs_table(si, zi, si, zo), (si, zo), None),
    "LEAKY_RELU": lambda si, zi, so, zo: (
        quant_ops.leaky_relu_table(si, zi, so, zo, float(np.float32(0.3))), (so, zo), {"alpha": 0.3}),
    "QUANTIZE": lambda si, zi, so, zo: (
        quantization.requantize_table("int8", si, zi, "int8", so, zo), (so, zo), None),
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_tables_match_tflm_on_every_byte(op):
    """25 random quantizations per op: our table is TFLM's output on all 256 bytes, and we
    refuse only what TFLM refuses."""
    rng = np.random.default_rng(len(op))
    x = np.arange(256, dtype=np.uint8).view(np.int8).reshape(1, 256)
    checked = 0
    for _ in range(25):
        si, zi = float(np.exp(rng.uniform(-6, 0.5))), int(rng.integers(-128, 128))
        so, zo = float(np.exp(rng.uniform(-6, 0.5))), int(rng.integers(-128, 128))
        try:
            table, (so, zo), opts = UNARY[op](si, zi, so, zo)
        except quant_ops.UnsupportedQuantization:
            with pytest.raises(RuntimeError):  # we refuse only what TFLM refuses
                TflmModel(_all_bytes_model(op.removesuffix("_SAME_SCALE"), si, zi, so, zo))
            continue
        tflite_op = op.removesuffix("_SAME_SCALE")
        want = TflmModel(_all_bytes_model(tflite_op, si, zi, so, zo, opts)).run([x])[0].reshape(-1)
        assert np.array_equal(want, table), (op, si, zi, so, zo)
        checked += 1
    assert checked >= 15


@pytest.mark.parametrize("ins,outs", [("int8", "uint8"), ("uint8", "int8")])
def test_int8_uint8_requantize_tables_match_tflm_on_every_byte(ins, outs):
    rng = np.random.default_rng(3)
    x = np.arange(256, dtype=np.uint8).view(ins).reshape(1, 256)
    for _ in range(10):
        si, so = float(np.exp(rng.uniform(-5, 0))), float(np.exp(rng.uniform(-5, 0)))
        zi = int(rng.integers(-128, 128)) if ins == "int8" else int(rng.integers(0, 256))
        zo = int(rng.integers(-128, 128)) if outs == "int8" else int(rng.integers(0, 256))
        want = TflmModel(_all_bytes_model("QUANTIZE", si, zi, so, zo, None, ins, outs)).run([x])[0]
        got = quantization.requantize_table(ins, si, zi, outs, so, zo)
        assert np.array_equal(want.reshape(-1), got)


def test_rsqrt_table_matches_tflm_on_every_byte():
    """RSQRT: TFLM's invoke fails on an input below the zero point (outside the domain), so
    those bytes are fed as the zero point; every other byte is compared. 40 quantizations."""
    rng = np.random.default_rng(11)
    for _ in range(40):
        si, zi = float(np.exp(rng.uniform(-7, 0.5))), int(rng.integers(-128, 128))
        so, zo = float(np.exp(rng.uniform(-5, 1))), int(rng.integers(-128, 128))
        x = np.maximum(np.arange(-128, 128), zi).astype(np.int8)
        want = TflmModel(_all_bytes_model("RSQRT", si, zi, so, zo)).run([x.reshape(1, 256)])[0]
        table = quant_ops.rsqrt_table(si, zi, so, zo)
        assert np.array_equal(want.reshape(-1), table[x.view(np.uint8)]), (si, zi, so, zo)
        assert table[np.int8(zi).view(np.uint8)] == 127  # x == zero point: TFLM's kMax


@needs_host_compiler
def test_rsqrt_generated_matches_tflm(tmp_path):
    model = build_single_op_model("RSQRT", [TensorSpec((1, 4, 4, 3), scale=0.02, zero_point=-128)],
                                  [TensorSpec((1, 4, 4, 3), scale=0.05, zero_point=-100)])
    assert_host_matches_tflm_on_random_inputs(model, tmp_path)


@needs_host_compiler
@pytest.mark.parametrize("op", ["LOGISTIC", "TANH", "HARD_SWISH", "RELU", "RELU6", "ABS", "LEAKY_RELU"])
def test_unary_generated_matches_tflm(op, tmp_path):
    si, zi, so, zo = 0.07, -5, 0.05, 9
    if op == "LOGISTIC":
        so, zo = 1 / 256, -128
    elif op == "TANH":
        so, zo = 1 / 128, 0
    elif op == "RELU6":
        so, zo = si, zi
    opts = {"alpha": 0.2} if op == "LEAKY_RELU" else None
    model = build_single_op_model(op, [TensorSpec((1, 5, 5, 3), scale=si, zero_point=zi)],
                                  [TensorSpec((1, 5, 5, 3), scale=so, zero_point=zo)], options=opts)
    assert_host_matches_tflm_on_random_inputs(model, tmp_path)


@needs_host_compiler
def test_int8_requantize_generated_matches_tflm(tmp_path):
    model = build_single_op_model("QUANTIZE", [TensorSpec((1, 3, 3, 5), scale=0.03, zero_point=4)],
                                  [TensorSpec((1, 3, 3, 5), scale=0.011, zero_point=-20)])
    assert_host_matches_tflm_on_random_inputs(model, tmp_path)


@needs_host_compiler
@pytest.mark.parametrize("out_dtype", ["int8"])  # the reader refuses uint8 DEQUANTIZE
def test_dequantize_matches_tflm(out_dtype, tmp_path):
    zp = -3 if out_dtype == "int8" else 131
    dq = build_single_op_model("DEQUANTIZE", [TensorSpec((2, 17), out_dtype, scale=0.031, zero_point=zp)],
                               [TensorSpec((2, 17), "float32")])
    assert_host_matches_tflm_on_random_inputs(dq, tmp_path)
