"""float32 heads and tails of int8 models (codegen/ops/float32.py; engine/kernels/float_*.c)
against TFLite Micro, bit for bit (NaNs included, as bit patterns): every float32 op alone
over values chosen to reach each branch (cut-offs, overflow, zeros, signed zero, tiny and
huge magnitudes), broadcasting with fused activations, a classifier's DEQUANTIZE -> float
tail and a float normalisation head before QUANTIZE, on the host and on the emulated
Cortex-M7; and the refusals (float convolutions, int8 EXP)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.host import HostModel
from engine.tflm import TflmModel
from tests import kernel_harness as kh
from tests.tflite_builder import ModelBuilder, TensorSpec, build_single_op_model
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite

UNARY = ["LOGISTIC", "TANH", "RELU", "RELU6", "ABS", "EXP", "LOG", "SQRT", "RSQRT"]
BINARY = ["ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM"]
WITH_ACTIVATION = {"ADD", "SUB", "MUL", "DIV"}
ARENA = 1 << 20


def _f32(shape) -> TensorSpec:
    return TensorSpec(shape, "float32")


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32)


def assert_same_bits(got, want) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        if g.dtype == np.float32:
            differ = int(np.sum(_bits(g) != _bits(w)))
            assert differ == 0, f"{differ} of {g.size} floats differ in their bits"
        else:
            kh.assert_same_outputs([g], [w])


def _special_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """Values around every branch of the float kernels, then random ones of all magnitudes."""
    fixed = np.array([0.0, -0.0, 1.0, -1.0, 6.0, 6.000001, -9.0, -9.000001, 16.619047,
                      16.62, 88.0, 89.0, -87.0, -104.0, -200.0, 1e-30, -1e-30, 1e-42,
                      3.4e38, -3.4e38, 0.5, 2.0, 1e6], np.float32)
    rand = (rng.standard_normal(n) * 10.0 ** rng.integers(-4, 3, n)).astype(np.float32)
    return np.concatenate([fixed, rand])[:n].astype(np.float32)


@kh.needs_host_compiler
@pytest.mark.parametrize("op", UNARY)
def test_float_unary_matches_tflm(op, tmp_path):
    x = _special_values(kh.seeded_rng(op), 256).reshape(1, 16, 16)
    model = build_single_op_model(op, [_f32(x.shape)], [_f32(x.shape)])
    d = kh.convert(model, tmp_path)
    assert f"mcu_{op.lower()}_f32(" in kh.generated_source(d)
    assert_same_bits(HostModel(d, "m").run([x]), TflmModel(model, arena_size=ARENA).run([x]))


def _broadcast_shapes():
    return [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((1, 5, 1, 3), (2, 1, 4, 1)), ((6,), (1,))]


@kh.needs_host_compiler
@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("shapes", _broadcast_shapes(), ids=kh.binary_shapes_id)
def test_float_binary_matches_tflm(op, shapes, tmp_path):
    rng = kh.seeded_rng(f"{op} {shapes}")
    out_shape = tuple(np.broadcast_shapes(*shapes))
    acts = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"] if op in WITH_ACTIVATION else [None]
    for act in acts:
        options = {"activation": act} if act else None
        model = build_single_op_model(op, [_f32(s) for s in shapes], [_f32(out_shape)], options)
        d = kh.convert(model, tmp_path / str(act))
        xs = [_special_values(rng, int(np.prod(s, dtype=np.int64))).reshape(s) for s in shapes]
        assert_same_bits(HostModel(d, "m").run(xs), TflmModel(model, arena_size=ARENA).run(xs))


def _float_constant_operand_model() -> bytes:
    """ADD of a float32 constant (the constant is written exactly, as a hex float)."""
    c = np.array([0.1, -2.5e-7, 3.0e5], np.float32)
    return build_single_op_model("ADD", [_f32((2, 3)), TensorSpec((3,), "float32", data=c)],
                                 [_f32((2, 3))])


@kh.needs_host_compiler
def test_float_constant_operand(tmp_path):
    model = _float_constant_operand_model()
    x = _special_values(kh.seeded_rng("const"), 6).reshape(2, 3)
    assert_same_bits(HostModel(kh.convert(model, tmp_path), "m").run([x]), TflmModel(model, arena_size=ARENA).run([x]))


@kh.needs_host_compiler
@pytest.mark.parametrize("op,beta", [("SOFTMAX", 1.0), ("SOFTMAX", 0.37), ("LOG_SOFTMAX", None)])
@pytest.mark.parametrize("depth", [1, 10, 1000])
def test_float_softmax_matches_tflm(op, beta, depth, tmp_path):
    rows = max(3, 2000 // depth)
    rng = kh.seeded_rng(f"{op} {beta} {depth}")
    x = (rng.standard_normal((rows, depth)) * rng.choice([0.01, 1.0, 30.0], (rows, 1)))
    x[0] = 0.0  # all equal
    x[1, 0] = 500.0  # one dominating exponential
    x = x.astype(np.float32)
    options = {"beta": beta} if beta is not None else None
    model = build_single_op_model(op, [_f32(x.shape)], [_f32(x.shape)], options)
    d = kh.convert(model, tmp_path)
    assert f"mcu_{op.lower()}_f32(" in kh.generated_source(d)
    assert_same_bits(HostModel(d, "m").run([x]), TflmModel(model, arena_size=ARENA).run([x]))


def classifier_with_float_edges() -> bytes:
    """float input -> SUB mean, DIV std (per channel), QUANTIZE -> int8 FULLY_CONNECTED ->
    DEQUANTIZE -> float MUL (temperature), SOFTMAX and LOG_SOFTMAX outputs, a RESHAPE between."""
    rng = np.random.default_rng(3)
    mb = ModelBuilder()
    x = mb.add_tensor(_f32((1, 2, 2, 3)))
    mean = mb.add_tensor(TensorSpec((3,), "float32", data=np.array([0.5, -0.25, 0.125], np.float32)))
    std = mb.add_tensor(TensorSpec((3,), "float32", data=np.array([0.25, 0.5, 2.0], np.float32)))
    centred, normed = mb.add_tensor(_f32((1, 2, 2, 3))), mb.add_tensor(_f32((1, 2, 2, 3)))
    q = mb.add_tensor(TensorSpec((1, 2, 2, 3), scale=0.03, zero_point=-2))
    flat = mb.add_tensor(TensorSpec((1, 12), scale=0.03, zero_point=-2))
    w = mb.add_tensor(TensorSpec((10, 12), scale=0.02, zero_point=0,
                                 data=rng.integers(-127, 128, (10, 12))))
    b = mb.add_tensor(TensorSpec((10,), "int32", scale=0.03 * 0.02, zero_point=0,
                                 data=rng.integers(-500, 500, 10)))
    logits = mb.add_tensor(TensorSpec((1, 10), scale=0.05, zero_point=3))
    lf, scaled = mb.add_tensor(_f32((1, 10))), mb.add_tensor(_f32((1, 10)))
    temp = mb.add_tensor(TensorSpec((1,), "float32", data=np.array([0.7], np.float32)))
    probs, logp = mb.add_tensor(_f32((1, 10))), mb.add_tensor(_f32((1, 10)))
    shape = mb.add_tensor(TensorSpec((2,), "int32", data=np.array([1, 12])))
    mb.add_op("SUB", [x, mean], [centred])
    mb.add_op("DIV", [centred, std], [normed])
    mb.add_op("QUANTIZE", [normed], [q])
    mb.add_op("RESHAPE", [q, shape], [flat])
    mb.add_op("FULLY_CONNECTED", [flat, w, b], [logits])
    mb.add_op("DEQUANTIZE", [logits], [lf])
    mb.add_op("MUL", [lf, temp], [scaled])
    mb.add_op("SOFTMAX", [scaled], [probs], {"beta": 1.0})
    mb.add_op("LOG_SOFTMAX", [scaled], [logp])
    return mb.build([x], [probs, logp])


def _classifier_inputs(n: int) -> list[list[np.ndarray]]:
    rng = kh.seeded_rng("classifier")
    return [[rng.uniform(-1.5, 1.5, (1, 2, 2, 3)).astype(np.float32)] for _ in range(n)]


@kh.needs_host_compiler
def test_classifier_with_float_head_and_tail(tmp_path):
    model = classifier_with_float_edges()
    d = kh.convert(model, tmp_path)
    src = kh.generated_source(d)
    for call in ("mcu_sub_f32(", "mcu_div_f32(", "mcu_mul_f32(", "mcu_softmax_f32(",
                 "mcu_log_softmax_f32(", "mcu_quantize_f32_s8("):
        assert call in src
    ours, ref = HostModel(d, "m"), TflmModel(model, arena_size=ARENA)
    for sample in _classifier_inputs(20):
        assert_same_bits(ours.run(sample), ref.run(sample))


@kh.needs_cortex_m7
def test_float_edges_on_cortex_m7(tmp_path):
    """The float kernels with newlib's libm against TFLM on the host (glibc)."""
    model = classifier_with_float_edges()
    samples = _classifier_inputs(3)
    kh.assert_cortex_m7_matches(kh.convert(model, tmp_path), "m", samples,
                                kh.tflm_outputs(model, samples, ARENA), dsp_builds=(True,))
    x = _special_values(kh.seeded_rng("m7 unary"), 64).reshape(1, 64)
    x = np.abs(x) + np.float32(1e-3)  # in every function's domain: NaN bits are the libm's own
    for op in ("LOGISTIC", "TANH", "EXP", "LOG", "RSQRT"):
        m = build_single_op_model(op, [_f32(x.shape)], [_f32(x.shape)])
        kh.assert_cortex_m7_matches(kh.convert(m, tmp_path / op), "m", [[x]],
                                    kh.tflm_outputs(m, [[x]], ARENA), dsp_builds=(True,))


def test_float_convolution_refused_by_name():
    model = build_single_op_model(
        "FULLY_CONNECTED", [_f32((1, 4)), TensorSpec((2, 4), "float32", data=np.ones((2, 4))), None],
        [_f32((1, 2))])
    with pytest.raises(ConversionError, match=r"op 0 FULLY_CONNECTED.*float32 FULLY_CONNECTED not supported"):
        read_tflite(model)


def test_int8_exp_refused_as_tflm_refuses_it():
    model = build_single_op_model("EXP", [TensorSpec((1, 4), scale=0.1, zero_point=0)],
                                  [TensorSpec((1, 4), scale=0.1, zero_point=0)])
    with pytest.raises(ConversionError, match=r"op 0 EXP.*int8 EXP not supported \(TFLM runs it on float32 only\)"):
        read_tflite(model)


def test_float_broadcast_beyond_4d_refused():
    model = build_single_op_model("ADD", [_f32((2, 1, 3, 1, 2)), _f32((2,))], [_f32((2, 1, 3, 1, 2))])
    with pytest.raises(ConversionError, match="beyond 4 dimensions"):
        read_tflite(model)


def test_nonfinite_float_constant_refused():
    model = build_single_op_model(
        "MUL", [_f32((2,)), TensorSpec((2,), "float32", data=np.array([1.0, np.inf]))], [_f32((2,))])
    with pytest.raises(ConversionError, match="infinity or NaN"):
        read_tflite(model)
