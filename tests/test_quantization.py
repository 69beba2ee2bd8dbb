"""engine/quantization.py (TFLite's multiplier arithmetic, numpy references of the integer
helpers) and the C helpers of engine/kernels/mcu_common.h, which must agree bit for bit."""
from __future__ import annotations

import ctypes
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine import quantization as q
from engine.host import have_compiler

KERNELS = Path(q.__file__).resolve().parent / "kernels"
I32_MIN, I32_MAX = q.INT32_MIN, q.INT32_MAX


# ---------------------------------------------------------------------------------------------
# quantize_multiplier


@pytest.mark.parametrize("real, expected", [
    (0.0, (0, 0)),
    (0.5, (1 << 30, 0)),
    (1.0, (1 << 30, 1)),
    (0.25, (1 << 30, -1)),
    (0.75, (3 << 29, 0)),
    (-0.5, (-(1 << 30), 0)),
    (3.0, (3 << 29, 2)),
    (2.0 ** -31, (1 << 30, -30)),
    (2.0 ** -32, (1 << 30, -31)),   # the smallest exponent kept
    (2.0 ** -33, (0, 0)),           # below: flushed to zero
    (1e-12, (0, 0)),
])
def test_quantize_multiplier_known_values(real, expected):
    assert q.quantize_multiplier(real) == expected


def test_quantize_multiplier_rounds_half_away_from_zero():
    # mantissa * 2^31 = 2^30 + 0.5 exactly: std::round gives 2^30 + 1 (Python's round: 2^30)
    real = (2 ** 30 + 0.5) / 2 ** 31
    assert q.quantize_multiplier(real) == ((1 << 30) + 1, 0)
    assert q.quantize_multiplier(-real) == (-((1 << 30) + 1), 0)


def test_quantize_multiplier_mantissa_rounding_up_to_one_is_renormalised():
    real = 1.0 - 2.0 ** -40  # the mantissa rounds to 2^31: halved, exponent + 1
    assert q.quantize_multiplier(real) == (1 << 30, 1)


def test_quantize_multiplier_reconstructs_the_real_value():
    rng = np.random.default_rng(0)
    for real in rng.uniform(1e-6, 4.0, 500):
        m, s = q.quantize_multiplier(float(real))
        assert (1 << 30) <= m <= I32_MAX
        assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0 ** -30


def test_conv_multipliers_use_double_and_broadcast_a_single_scale():
    in_s, out_s = np.float32(0.0235), np.float32(0.1171)
    fs = np.array([0.0031, 0.0077], dtype=np.float32)
    mult, shift = q.conv_multipliers(in_s, fs, out_s, 2)
    for c in range(2):
        real = float(in_s) * float(fs[c]) / float(out_s)
        assert (int(mult[c]), int(shift[c])) == q.quantize_multiplier(real)
    m1, s1 = q.conv_multipliers(in_s, fs[:1], out_s, 3)
    assert np.all(m1 == m1[0]) and np.all(s1 == s1[0]) and m1.size == 3
    with pytest.raises(ValueError):
        q.conv_multipliers(in_s, fs, out_s, 3)


def test_fully_connected_product_is_taken_in_double():
    """The pinned TFLM wheel multiplies input and filter scales in double for per-tensor
    FULLY_CONNECTED (test_kernel_fully_connected.py checks the wheel itself); the float32
    order really differs for some scales, so the choice matters."""
    rng = np.random.default_rng(1)
    found = 0
    for _ in range(2000):
        a, b, o = (np.float32(v) for v in rng.uniform(1e-3, 1e-1, 3))
        got = q.fully_connected_effective_scale(a, b, o)
        assert got == float(a) * float(b) / float(o)
        found += got != float(np.float32(a * b)) / float(o)
    assert found > 0


# ---------------------------------------------------------------------------------------------
# numpy references against hand-computed TFLite values


def test_srdhm_known_values():
    assert int(q.saturating_rounding_doubling_high_mul(1 << 30, 1 << 30)) == 1 << 29
    assert int(q.saturating_rounding_doubling_high_mul(I32_MIN, I32_MIN)) == I32_MAX
    assert int(q.saturating_rounding_doubling_high_mul(3, 1 << 30)) == 2  # 1.5 -> 2
    # negative ties go toward zero: the nudge is 1 - 2^30, then the division truncates
    assert int(q.saturating_rounding_doubling_high_mul(-3, 1 << 30)) == -1  # -1.5 -> -1
    assert int(q.saturating_rounding_doubling_high_mul(I32_MAX, I32_MAX)) == I32_MAX - 1


def test_rdbpot_known_values():
    x = np.array([5, -5, -4, 3, -3, 6, -6, 0, I32_MAX, I32_MIN])
    assert q.rounding_divide_by_pot(x, 1).tolist() == [3, -3, -2, 2, -2, 3, -3, 0, 1 << 30,
                                                       -(1 << 30)]
    assert q.rounding_divide_by_pot([7, -7], 0).tolist() == [7, -7]
    assert q.rounding_divide_by_pot([I32_MIN, I32_MAX, 1 << 30], 31).tolist() == [-1, 1, 1]


def test_mbqm_known_values():
    assert int(q.multiply_by_quantized_multiplier(1000, 1 << 30, 1)) == 1000
    assert int(q.multiply_by_quantized_multiplier(1000, 1 << 30, -2)) == 125
    assert int(q.multiply_by_quantized_multiplier(-1001, 1 << 30, -1)) == -250  # -250.25
    assert int(q.multiply_by_quantized_multiplier(1002, 1 << 30, -2)) == 125  # 125.25
    assert int(q.multiply_by_quantized_multiplier(-1002, 1 << 30, -2)) == -125


def test_requantize_clamps():
    acc = np.array([10 ** 6, -(10 ** 6), 0])
    assert q.requantize(acc, 1 << 30, 0, 3).tolist() == [127, -128, 3]
    assert q.requantize(acc, 1 << 30, 0, 3, act_min=0, act_max=100).tolist() == [100, 0, 3]


# ---------------------------------------------------------------------------------------------
# The C helpers equal the numpy references


_HARNESS = r"""
#include "mcu_common.h"
void srdhm(const int32_t *a, const int32_t *b, int32_t *o, int n) {
    for (int i = 0; i < n; ++i) o[i] = mcu_saturating_rounding_doubling_high_mul(a[i], b[i]);
}
void rdbpot(const int32_t *a, const int32_t *e, int32_t *o, int n) {
    for (int i = 0; i < n; ++i) o[i] = mcu_rounding_divide_by_pot(a[i], e[i]);
}
void mbqm(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *o, int n) {
    for (int i = 0; i < n; ++i) o[i] = mcu_multiply_by_quantized_multiplier(x[i], m[i], s[i]);
}
void dual(const uint32_t *a, const uint32_t *b, int32_t *o, int n) {
    for (int i = 0; i < n; ++i)
        o[i] = mcu_smlad(mcu_sxtb16(a[i]), mcu_sxtb16(b[i]),
                         mcu_smlad(mcu_sxtb16_ror8(a[i]), mcu_sxtb16_ror8(b[i]), 0));
}
"""


@pytest.fixture(scope="module")
def helpers(tmp_path_factory):
    if not have_compiler():
        pytest.skip("no host C compiler")
    d = tmp_path_factory.mktemp("helpers")
    (d / "h.c").write_text(_HARNESS)
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-fPIC", "-shared",
                    "-I", str(KERNELS), str(d / "h.c"), "-o", str(d / "h.so")], check=True)
    return ctypes.CDLL(str(d / "h.so"))


def _call(fn, *arrays, dtype=np.int32):
    arrays = [np.ascontiguousarray(a, dtype=dtype) for a in arrays]
    out = np.zeros(arrays[0].size, np.int32)
    fn(*[a.ctypes.data_as(ctypes.c_void_p) for a in arrays],
       out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(out.size))
    return out


def _edge_int32(rng, n):
    edges = np.array([0, 1, -1, I32_MAX, I32_MIN, 1 << 30, -(1 << 30), 12345, -12345])
    return np.concatenate([edges, rng.integers(I32_MIN, I32_MAX, n, endpoint=True)]).astype(np.int64)


def test_c_helpers_equal_numpy_references(helpers):
    rng = np.random.default_rng(7)
    a, b = _edge_int32(rng, 20000), _edge_int32(rng, 20000)
    b = np.roll(b, 3)
    np.testing.assert_array_equal(_call(helpers.srdhm, a, b),
                                  q.saturating_rounding_doubling_high_mul(a, b))
    e = rng.integers(0, 32, a.size)
    np.testing.assert_array_equal(_call(helpers.rdbpot, a, e), q.rounding_divide_by_pot(a, e))
    # realistic requantisation inputs: accumulators, multipliers in [2^30, 2^31), shifts [-31, 8]
    x = rng.integers(-(1 << 24), 1 << 24, 20000)
    m = rng.integers(1 << 30, I32_MAX, 20000, endpoint=True)
    s = rng.integers(-31, 9, 20000)
    np.testing.assert_array_equal(_call(helpers.mbqm, x, m, s),
                                  q.multiply_by_quantized_multiplier(x, m, s))


def test_c_dual_mac_helpers_compute_a_four_term_dot_product(helpers):
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (5000, 4)).astype(np.int8)
    b = rng.integers(-128, 128, (5000, 4)).astype(np.int8)
    a[0], b[0] = -128, -128  # the largest products
    got = _call(helpers.dual, a.view(np.uint32).reshape(-1), b.view(np.uint32).reshape(-1),
                dtype=np.uint32)
    np.testing.assert_array_equal(got, (a.astype(np.int32) * b).sum(axis=1))
    assert math.isclose(got[0], 4 * 128 * 128)
