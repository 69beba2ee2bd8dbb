"""CONV_2D: the one-pass fast requantisation (SMMLAR form), constant (dead) channels
folded into the fast table, the requantisation modes, and the in-image receptive-field copy
of the kxk gather (RGB stems, KWS's 10x4 first layer), against TFLite's arithmetic and TFLM."""
from __future__ import annotations

import numpy as np
import pytest

from engine import qemu, quantization
from engine.host import HostModel, have_compiler
from engine.tflm import TflmModel
from tests.test_kernels_conv import ConvCase, _conv_options, _conv_tensors, _inputs, _rng
from tests.tflite_builder import build_single_op_model
from tflite_converter.codegen.generate import convert_model
from tflite_converter.codegen.ops._conv_common import (CONV_RQ_STRIDE, ConvRequantMode,
                                                       conv_requant_table)


class _Op:
    index = 3


class _Ctx:
    def __init__(self):
        self.arrays = {}

    def const_array(self, hint, values, c_type=None):
        self.arrays[hint] = np.asarray(values)
        return hint


def _fast_model(acc: np.ndarray, mult: int, rnd: int, rs: int) -> np.ndarray:
    """numpy model of mcu_matmul_s8.h mcu_mm_requant_fast (SMMLAR = floor((ab + 2^31) / 2^32)
    + c, then an arithmetic shift)."""
    a = acc.astype(np.int64)
    t = ((2 * a * mult + (1 << 31)) >> 32) + rnd + (a >> 31)
    return t >> rs


def test_fast_formula_is_tflite_requantisation():
    rng = np.random.default_rng(0)
    for rs in (1, 2, 5, 12, 20):
        for mult in (1 << 30, (1 << 30) + 1, int(rng.integers(1 << 30, 1 << 31)), 0):
            zp = int(rng.integers(-128, 128))
            rnd = (1 << (rs - 1)) + zp * (1 << rs)
            acc = np.concatenate([rng.integers(-(1 << 29), 1 << 29, 4000),
                                  np.arange(-3000, 3000),
                                  # exact ties of RoundingDivideByPOT when mult = 2^30
                                  (np.arange(-50, 50) * 2 + 1) << max(rs - 1, 0)])
            want = quantization.multiply_by_quantized_multiplier(acc, mult, -rs).astype(np.int64) + zp
            assert np.array_equal(_fast_model(acc, mult, rnd, rs), want), (rs, mult)


def test_table_modes_and_layout():
    w = np.ones((2, 16), dtype=np.int8)
    bias = np.array([10, -10], dtype=np.int64)
    mult = np.array([1 << 30, 1 << 30])
    ctx = _Ctx()
    rq = conv_requant_table(ctx, _Op(), bias, w, mult, np.array([-3, -4]), 5, -128, 127)
    t = ctx.arrays[rq.table]
    assert rq.mode is ConvRequantMode.FAST_FULL and t.shape == (2, CONV_RQ_STRIDE)
    assert list(t[:, 3]) == [3, 4] and list(t[:, 2]) == [4 + 5 * 8, 8 + 5 * 16]
    rq = conv_requant_table(ctx, _Op(), bias, w, mult, np.array([-3, -4]), 5, -128, 100)
    assert rq.mode is ConvRequantMode.FAST  # a clamp narrower than int8
    # a left shift on a live channel: generic, TFLite's shift kept
    rq = conv_requant_table(ctx, _Op(), bias, w, mult, np.array([-3, 1]), 5, -128, 127)
    assert rq.mode is ConvRequantMode.GENERIC and list(ctx.arrays[rq.table][:, 2]) == [-3, 1]


def test_dead_channels_become_constant_entries():
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (4, 24)).astype(np.int8)
    # channel 1: a bias of 2^30 dominates every accumulator; channel 2: multiplier 0 with
    # shift 0 (both seen in mlperf vww_96); channel 3: live but with a huge right shift
    bias = np.array([100, 1 << 30, 5, -7], dtype=np.int64)
    mult = np.array([1 << 30, 1 << 30, 0, 1 << 30])
    shift = np.array([-8, -9, 0, -31])
    ctx = _Ctx()
    rq = conv_requant_table(ctx, _Op(), bias, w, mult, shift, -128, -128, 127)
    t = ctx.arrays[rq.table].astype(np.int64)
    assert rq.mode is ConvRequantMode.FAST_FULL
    assert list(t[1, :2]) == [0, 0] and list(t[2, :2]) == [0, 0]
    # every channel, over accumulators across its whole reachable range, gives TFLite's byte
    acc = rng.integers(-128, 128, (3000, 24)) @ w.astype(np.int64).T  # (3000, 4)
    for c in range(4):
        a = acc[:, c] + bias[c]
        want = quantization.requantize(a, mult[c], shift[c], -128)
        model_acc = acc[:, c] + t[c, 0]
        got = np.clip(_fast_model(model_acc, int(t[c, 1]), int(t[c, 2]), int(t[c, 3])), -128, 127)
        assert np.array_equal(got.astype(np.int8), want), c


pytestmark_host = pytest.mark.skipif(not have_compiler(), reason="no host C compiler")

CASES = [
    # RGB stems: 3x3x3 stride 2, SAME (pads on the far side only) and explicit both-side pads
    ConvCase("rgb_stem_same", (1, 12, 10, 3), 8, stride=(2, 2), zp_in=-128, zp_out=-128,
             activation="RELU"),
    ConvCase("rgb_stem_odd", (1, 9, 11, 3), 5, stride=(2, 2), activation="RELU6"),
    # KWS-like first layer: 10x4 kernel over a 1-channel spectrogram
    ConvCase("kws_10x4", (1, 14, 6, 1), 6, kernel=(10, 4), stride=(2, 2), zp_in=83),
    # cifar10-like 5x5 over 32 channels (rows of 160 bytes) and a dilated kernel
    ConvCase("k5_c32", (1, 7, 7, 32), 4, kernel=(5, 5), stride=(2, 2)),
    ConvCase("k3_dilated", (1, 9, 9, 5), 3, dilation=(2, 2)),
    ConvCase("pw_k8_relu6", (1, 5, 7, 8), 16, kernel=(1, 1), activation="RELU6"),
]


def _convert_case(case: ConvCase, tmp_path):
    rng = _rng(case.name)
    x, w, b, y = _conv_tensors(case, False, rng)
    model = build_single_op_model("CONV_2D", [x, w, b], [y], _conv_options(case, False))
    convert_model(model, tmp_path / "m", name="m")
    return rng, model


@pytestmark_host
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cases_match_tflm_on_host(case: ConvCase, tmp_path):
    rng, model = _convert_case(case, tmp_path)
    ours, ref = HostModel(str(tmp_path / "m"), "m"), TflmModel(model, arena_size=1 << 20)
    for sample in _inputs(rng, case.in_shape):
        assert np.array_equal(ours.run(sample)[0], ref.run(sample)[0])
    src = (tmp_path / "m" / "m.c").read_text()
    if case.activation == "RELU6":
        assert f"_rq, {int(ConvRequantMode.FAST)}, " in src
    elif case.activation == "RELU" and case.zp_out == -128:
        assert f"_rq, {int(ConvRequantMode.FAST_FULL)}, " in src


@pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi / qemu not installed")
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[5]], ids=lambda c: c.name)
def test_cases_on_cortex_m7(case: ConvCase, tmp_path):
    rng, model = _convert_case(case, tmp_path)
    samples = _inputs(rng, case.in_shape, 2)
    want = [TflmModel(model, arena_size=1 << 20).run(s)[0] for s in samples]
    for dsp in (False, True):
        got = qemu.run_on_qemu(tmp_path / "m", "m", samples, dsp=dsp).outputs
        assert all(np.array_equal(g[0], e) for g, e in zip(got, want)), f"dsp={dsp}"

