"""DIV int8 (engine/kernels/div.c mcu_div_s8) against TFLite Micro: every one of the 65,536
int8 operand pairs for quantizations that reach each branch (divisor at and next to its
zero point, zero numerators whose shift is 32 or more, rounding ties), fused activations,
every broadcasting pattern, a constant divisor, on the host and on the emulated Cortex-M7;
and the refusals (quantizations TFLM's arithmetic is undefined for, mixed or uint8 types)."""
from __future__ import annotations

import numpy as np
import pytest

from engine import quant_ops
from engine.host import HostModel
from engine.quantization import activation_range
from engine.tflm import TflmModel
from tests import kernel_harness as kh
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite

ALL = 1 << 16
ARENA = 1 << 20
# (s1, zp1, s2, zp2, so, zpo): a TF export's (tests/exporter_patterns.py "divide"); both inputs
# non-negative (zero points -128: zero numerators shift by 32); a divisor scale that puts the
# divisor's zero point mid-range; a large ratio (shift 7 at the limit of 31)
QUANTS = [
    (0.011138326, 13, 0.01008546, -128, 0.0045895781, 5),
    (0.02, -128, 0.05, -128, 0.01, -128),
    (0.1, 0, 0.001, 5, 1.0, 0),
    (0.0037, -3, 0.0011, 40, 0.027, -9),
]


def _all_pairs() -> tuple[np.ndarray, np.ndarray]:
    x = np.repeat(np.arange(-128, 128), 256).astype(np.int8).reshape(1, ALL)
    y = np.tile(np.arange(-128, 128), 256).astype(np.int8).reshape(1, ALL)
    return x, y


def _div_model(quant, a_shape, b_shape, activation="NONE", b_data=None) -> bytes:
    s1, z1, s2, z2, so, zo = quant
    out_shape = tuple(np.broadcast_shapes(a_shape, b_shape))
    return build_single_op_model(
        "DIV", [TensorSpec(a_shape, scale=s1, zero_point=z1),
                TensorSpec(b_shape, scale=s2, zero_point=z2, data=b_data)],
        [TensorSpec(out_shape, scale=so, zero_point=zo)], {"activation": activation})


def test_quantizations_reach_every_branch():
    """The exhaustive cases below divide by a zero divisor, by +-1, and have zero numerators
    shifted by 32 or more (the kernel's special cases): a kernel that mishandled one of them
    could not pass."""
    x, y = _all_pairs()
    reached = {"d=0": False, "d=+-1": False, "n=0 shift>31": False}
    for q in QUANTS:
        p = quant_ops.div_params(*q)
        assert quant_ops.div_shift_problem(p, np.arange(-128, 128), np.arange(-128, 128)) is None
        n, _v, e = quant_ops._div_terms(p, x.reshape(-1), y.reshape(-1))
        d = y.reshape(-1).astype(int) + p.in2_offset
        reached["d=0"] |= bool(np.any(d == 0))
        reached["d=+-1"] |= bool(np.any(np.abs(d) == 1))
        reached["n=0 shift>31"] |= bool(np.any((n == 0) & (e > 31)))
    assert all(reached.values()), reached


@kh.needs_host_compiler
@pytest.mark.parametrize("quant", QUANTS, ids=lambda q: f"s{q[4]}z{q[5]}")
@pytest.mark.parametrize("activation", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])
def test_div_all_pairs_match_tflm(quant, activation, tmp_path):
    model = _div_model(quant, (1, ALL), (1, ALL), activation)
    d = kh.convert(model, tmp_path)
    assert "mcu_div_s8(" in kh.generated_source(d)
    x, y = _all_pairs()
    want = TflmModel(model, arena_size=ARENA).run([x, y])
    kh.assert_same_outputs(HostModel(d, "m").run([x, y]), want)
    # the numpy model of TFLM's arithmetic (used for the refusals) agrees too
    lo, hi = activation_range(activation, quant[4], quant[5])
    ref = quant_ops.div_reference(quant_ops.div_params(*quant), x, y, lo, hi)
    assert np.array_equal(ref.astype(np.int8), want[0])


def _accepted_quant(rng: np.random.Generator) -> tuple:
    """Random scales and zero points with an output scale that keeps TFLM's shifts defined
    (a ratio s1 / (s2 so) of 130..250)."""
    s1, s2 = (float(np.exp(rng.uniform(-5, 0))) for _ in range(2))
    so = s1 / (s2 * rng.uniform(130, 250))
    return (s1, int(rng.integers(-128, 128)), s2, int(rng.integers(-128, 128)), so,
            int(rng.integers(-128, 128)))


@kh.needs_host_compiler
@pytest.mark.parametrize("shapes", kh.BINARY_BROADCAST_SHAPES, ids=kh.binary_shapes_id)
def test_div_broadcast_matches_tflm(shapes, tmp_path):
    rng = kh.seeded_rng(f"DIV {shapes}")
    for k, act in enumerate(["NONE", "RELU6"]):
        for order in (shapes, shapes[::-1]):
            model = _div_model(_accepted_quant(rng), *order, activation=act)
            kh.assert_host_matches_tflm_on_random_inputs(model, tmp_path / f"{k}{order[0]}",
                                                         samples=3)


@kh.needs_host_compiler
def test_div_by_constant_matches_tflm(tmp_path):
    """x / c per channel, c constant (the numerator's scale alone would be refused: only the
    divisor values present count)."""
    quant = (0.02, 3, 0.05, -7, 0.01, 2)
    assert quant_ops.div_shift_problem(quant_ops.div_params(*quant), np.arange(-128, 128),
                                       np.arange(-128, 128)) is not None
    c = np.array([-9, -6, -4, 3, 5, 12], np.int8)  # divisors -2, 1, 3, 10, 12, 19
    model = _div_model(quant, (1, 4, 4, 6), (6,), b_data=c)
    rng = kh.seeded_rng("DIV const")
    kh.assert_host_matches_tflm(model, tmp_path, rng, (1, 4, 4, 6), arena_size=ARENA)


@kh.needs_cortex_m7
def test_div_on_cortex_m7(tmp_path):
    """All pairs of two quantizations, portable and DSP builds."""
    x, y = _all_pairs()
    for k, quant in enumerate(QUANTS[:2]):
        model = _div_model(quant, (1, ALL), (1, ALL))
        kh.assert_cortex_m7_matches(kh.convert(model, tmp_path / str(k)), "m", [[x, y]],
                                    kh.tflm_outputs(model, [[x, y]], ARENA))


def test_div_undefined_shift_refused():
    """s1 / (s2 so) = 62.8 gives shift 6: numerator -1 over a divisor of 128 shifts by 32,
    which TFLM's x86-64 build turns into -128 (the true quotient rounds to the zero point)."""
    model = _div_model((0.0173, 17, 0.00731, -100, 0.0377, -20), (1, 8), (1, 8))
    with pytest.raises(ConversionError, match=r"op 0 DIV.*shifts by 32 \(outside 0\.\.31\)"):
        read_tflite(model)


@pytest.mark.parametrize("out_dtype,in_dtype", [("int16", "int8"), ("uint8", "uint8")])
def test_div_types_refused_as_tflm_refuses_them(out_dtype, in_dtype):
    """TFLM's DIV wants one type for all three tensors, and its quantized path int8 only."""
    zp = 0 if out_dtype != "uint8" else 128
    model = build_single_op_model(
        "DIV", [TensorSpec((1, 4), in_dtype, scale=0.1, zero_point=zp),
                TensorSpec((1, 4), in_dtype, scale=0.1, zero_point=zp)],
        [TensorSpec((1, 4), out_dtype, scale=0.001, zero_point=zp)], {"activation": "NONE"})
    with pytest.raises(ConversionError, match=r"op 0 DIV"):
        read_tflite(model)
    x = np.zeros((1, 4), np.dtype(in_dtype))
    with pytest.raises(RuntimeError):
        TflmModel(model).run([x, x])
