"""The four-channel band kernel (mcu_depthwise_conv2d_c1g4_s8) against TFLite Micro.

One input channel out of place, depth multiplier a multiple of 4, kernel width a multiple of
4, no dilation (micro_speech's 10x8 / stride 2 / multiplier 8 layer): the band word of four
taps is widened once and serves four output channels whose weights are stored as int16 pairs
(band4_weights). The host build runs the portable C; the Cortex-M7 DSP build under QEMU runs
the assembly row loop (kernel width 8) and the C loop (other widths).
"""
from __future__ import annotations

import numpy as np
import pytest

from engine import qemu
from engine.host import have_compiler
from engine.tflm import TflmModel
from tests.test_kernels_conv import (
    ConvCase,
    _assert_matches_tflm,
    _conv_options,
    _conv_tensors,
    _inputs,
    _rng,
)
from tests.tflite_builder import build_single_op_model
from tflite_converter.codegen.generate import convert_model
from tflite_converter.codegen.ops.depthwise_conv2d import band4_weights

BAND4 = "mcu_depthwise_conv2d_c1g4_s8("
BAND = "mcu_depthwise_conv2d_c1_s8("

BAND4_CASES = [
    ConvCase("b4_k10x8_m8_s2", (1, 25, 20, 1), 8, kernel=(10, 8), stride=(2, 2)),
    ConvCase("b4_k3x8_m4_s1_relu6", (1, 9, 11, 1), 4, kernel=(3, 8), zp_in=-128,
             activation="RELU6"),
    ConvCase("b4_k5x4_m12_s2x1_tensor", (1, 12, 9, 1), 12, kernel=(5, 4), stride=(2, 1),
             per_channel=False),
    # a left shift: TFLite's two-step requantisation instead of the SMMLAR form
    ConvCase("b4_k4x8_m4_left_shift", (1, 8, 10, 1), 4, kernel=(4, 8), out_scale=1e-4),
    ConvCase("b4_k10x8_m8_valid", (1, 14, 13, 1), 8, kernel=(10, 8), padding="VALID",
             zp_in=127),
]

pytestmark = pytest.mark.skipif(not have_compiler(), reason="no host C compiler")


def _model(case: ConvCase, rng: np.random.Generator) -> bytes:
    x, w, b, y = _conv_tensors(case, True, rng)
    return build_single_op_model("DEPTHWISE_CONV_2D", [x, w, b], [y], _conv_options(case, True))


@pytest.mark.parametrize("case", BAND4_CASES, ids=lambda c: c.name)
def test_band4_kernel_matches_tflm_on_host(case: ConvCase, tmp_path):
    rng = _rng(case.name)
    src = _assert_matches_tflm(_model(case, rng), tmp_path, rng, case.in_shape)
    assert BAND4 in src and BAND not in src


@pytest.mark.parametrize("case", [
    ConvCase("m6_not_multiple_of_4", (1, 9, 9, 1), 6, kernel=(3, 8)),
    ConvCase("kw5_not_multiple_of_4", (1, 9, 9, 1), 8, kernel=(3, 5)),
    ConvCase("dilated", (1, 12, 12, 1), 8, kernel=(3, 4), dilation=(2, 2)),
], ids=lambda c: c.name)
def test_other_single_channel_layers_keep_the_band_kernel(case: ConvCase, tmp_path):
    rng = _rng(case.name)
    src = _assert_matches_tflm(_model(case, rng), tmp_path, rng, case.in_shape)
    assert BAND in src and BAND4 not in src


def test_band4_weights_layout():
    rng = np.random.default_rng(3)
    k_h, k_w, c = 2, 8, 8
    rows = rng.integers(-127, 128, (c, k_h * k_w))
    words = band4_weights(rows, k_h, k_w)
    assert words.dtype == np.uint32 and words.size == c * k_h * k_w // 2
    lo = (words & 0xFFFF).astype(np.uint16).view(np.int16).astype(np.int64)
    hi = (words >> 16).astype(np.uint16).view(np.int16).astype(np.int64)
    # [group][ky][quad][channel][pair]
    lo = lo.reshape(c // 4, k_h, k_w // 4, 4, 2)
    hi = hi.reshape(c // 4, k_h, k_w // 4, 4, 2)
    w = rows.reshape(c // 4, 4, k_h, k_w // 4, 4)  # [group][channel][ky][quad][tap]
    for g, ch, ky, qd in np.ndindex(c // 4, 4, k_h, k_w // 4):
        taps = w[g, ch, ky, qd]
        assert (lo[g, ky, qd, ch, 0], hi[g, ky, qd, ch, 0]) == (taps[0], taps[2])
        assert (lo[g, ky, qd, ch, 1], hi[g, ky, qd, ch, 1]) == (taps[1], taps[3])


@pytest.mark.skipif(not qemu.toolchain_available(),
                    reason="arm-none-eabi-gcc / qemu-system-arm not installed")
@pytest.mark.parametrize("case", [BAND4_CASES[0], BAND4_CASES[2], BAND4_CASES[3]],
                         ids=lambda c: c.name)
def test_band4_kernel_on_cortex_m7_portable_and_dsp(case: ConvCase, tmp_path):
    rng = _rng(case.name)
    model = _model(case, rng)
    d = tmp_path / "b4"
    convert_model(model, d, name="b4")
    assert BAND4 in (d / "b4.c").read_text()
    ref = TflmModel(model)
    samples = _inputs(rng, case.in_shape, n=2)
    want = [ref.run(s)[0] for s in samples]
    for dsp in (False, True):
        res = qemu.run_on_qemu(d, "b4", samples, cpu="cortex-m7", dsp=dsp)
        for got, w in zip(res.outputs, want):
            assert np.array_equal(got[0], w), f"dsp={dsp}"
