"""The register-record pointwise CONV_2D kernels (conv2d.c mcu_conv2d_1x1_reg_s8) at strides
above 1 (mcu_conv2d_1x1_reg_strided_s8: ic_resnet's ops 6 and 10) and at 24 and 32 input channels (mcu_1x1_rec2_c24 / _c32:
widened inputs on the stack, two output channels per loop, the odd last channel in C; as
person_detect's ops 6 and 8): record layout, emitter choice, and outputs against TFLM on the
host (portable C) and on the Cortex-M7 (portable and DSP builds, the assembly loops)."""
from __future__ import annotations

import numpy as np
import pytest

from engine import qemu
from engine.host import HostModel, have_compiler
from engine.tflm import TflmModel
from tests.test_kernels_conv import ConvCase, _conv_options, _conv_tensors, _inputs, _rng
from tests.tflite_builder import build_single_op_model
from tflite_converter.codegen.generate import convert_model
from tflite_converter.codegen.ops._conv_common import conv1x1_register_records

pytestmark = pytest.mark.skipif(not have_compiler(), reason="no host C compiler")

KERNEL = "mcu_conv2d_1x1_reg_s8("
STRIDED = "mcu_conv2d_1x1_reg_strided_s8("


def test_records_k24_layout():
    rng = np.random.default_rng(24)
    rows = rng.integers(-128, 128, (2, 24)).astype(np.int8)
    table = np.array([[5, 1 << 30, 7, 3], [-9, 99, -1, 1]], dtype=np.int32)
    rec = conv1x1_register_records(rows, table)
    assert rec.shape == (2, 16)
    u = rec[:, 1:13].astype(np.int64) & 0xFFFFFFFF
    lo = ((u & 0xFFFF) ^ 0x8000) - 0x8000
    hi = ((u >> 16) ^ 0x8000) - 0x8000
    for j in range(12):
        g, b = divmod(j, 2)
        assert list(lo[:, j]) == list(2 * rows[:, 4 * g + b].astype(np.int64))
        assert list(hi[:, j]) == list(2 * rows[:, 4 * g + 2 + b].astype(np.int64))
    assert list(rec[:, 0]) == [10, -18] and list(rec[1, 13:]) == [99, -1, 1]


def _model(case: ConvCase):
    rng = _rng(case.name)
    x, w, b, y = _conv_tensors(case, False, rng)
    return build_single_op_model("CONV_2D", [x, w, b], [y], _conv_options(case, False)), rng


CASES = [
    ConvCase("reg24_32", (1, 4, 5, 24), 32, kernel=(1, 1), zp_in=-128),
    ConvCase("reg24_odd_out_batch2", (2, 3, 2, 24), 7, kernel=(1, 1), zp_in=9, bias=False),
    ConvCase("reg32_64", (1, 3, 4, 32), 64, kernel=(1, 1), zp_in=-128),
    ConvCase("reg32_odd_out", (1, 2, 3, 32), 9, kernel=(1, 1), zp_in=3),
    ConvCase("reg32_one_channel", (1, 2, 2, 32), 1, kernel=(1, 1)),
    ConvCase("reg16_stride2", (1, 5, 5, 16), 6, kernel=(1, 1), stride=(2, 2)),
    ConvCase("reg32_stride2_odd_map", (1, 7, 5, 32), 64, kernel=(1, 1), stride=(2, 2)),
    ConvCase("reg24_stride_2x1", (1, 4, 3, 24), 5, kernel=(1, 1), stride=(2, 1), zp_in=-5),
    ConvCase("reg8_stride_1x2_batch2", (2, 3, 6, 8), 4, kernel=(1, 1), stride=(1, 2)),
    ConvCase("reg24_per_tensor", (1, 2, 3, 24), 5, kernel=(1, 1), per_channel=False,
             zp_out=-100),
]
# not the register kernel: fused RELU clamp (FAST mode), another depth
OTHER = [
    ConvCase("reg24_relu", (1, 3, 3, 24), 6, kernel=(1, 1), activation="RELU"),
    ConvCase("depth40", (1, 3, 3, 40), 6, kernel=(1, 1)),
]


@pytest.mark.parametrize("case", CASES + OTHER, ids=lambda c: c.name)
def test_k24_matches_tflm_on_host(case: ConvCase, tmp_path):
    model, rng = _model(case)
    convert_model(model, tmp_path / "m", name="m")
    src = (tmp_path / "m" / "m.c").read_text()
    strided = case.stride != (1, 1)
    assert (KERNEL in src) == (case in CASES and not strided)
    assert (STRIDED in src) == (case in CASES and strided)
    ours, ref = HostModel(str(tmp_path / "m"), "m"), TflmModel(model, arena_size=1 << 20)
    for sample in _inputs(rng, case.in_shape):
        assert np.array_equal(ours.run(sample)[0], ref.run(sample)[0])


@pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi / qemu not installed")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_k24_on_cortex_m7(case: ConvCase, tmp_path):
    model, rng = _model(case)
    convert_model(model, tmp_path / "m", name="m")
    samples = _inputs(rng, case.in_shape, 2)
    want = [TflmModel(model, arena_size=1 << 20).run(s)[0] for s in samples]
    for dsp in (False, True):
        got = qemu.run_on_qemu(tmp_path / "m", "m", samples, dsp=dsp).outputs
        assert all(np.array_equal(g[0], e) for g, e in zip(got, want)), f"dsp={dsp}"
