"""Fast paths of ADD and QUANTIZE against TFLite's arithmetic and TFLite Micro: the same-shape
ADD one-rounding-pass form (engine/kernels/add.c mcu_add_fast_s8), exhaustively over every
int8 input pair in numpy (ADD and SUB against the reference arithmetic), then through the
generated C on the host and on the emulated Cortex-M7 (portable and DSP builds)."""
from __future__ import annotations

import numpy as np
import pytest

from engine import qemu, quant_ops
from engine.host import have_compiler, HostModel
from engine.tflm import TflmModel
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.codegen.generate import convert_model

_GRID_X, _GRID_Y = (g.astype(np.int8) for g in np.meshgrid(np.arange(-128, 128),
                                                            np.arange(-128, 128)))


def test_fast_form_equals_reference_on_every_input_pair():
    rng = np.random.default_rng(4)
    checked = 0
    for i in range(120):
        s1, s2, so = np.exp(rng.uniform(-7, 0, 3)).astype(np.float32)
        if i % 4 == 0:
            s2 = s1  # equal scales: both inputs without a rounding step
        z1, z2, zo = (int(v) for v in rng.integers(-128, 128, 3))
        lo, hi = (-128, 127) if i % 2 else (zo, 127)
        for fn, sign in ((quant_ops.add_params, 1), (quant_ops.sub_params, -1)):
            p = fn(s1, z1, s2, z2, so, zo)
            f = quant_ops.add_fast_params(p, lo, hi)
            if f is None:
                continue
            want = quant_ops.add_reference(p, _GRID_X, _GRID_Y, sign, lo, hi)
            got = quant_ops.add_fast_eval(f, _GRID_X, _GRID_Y, sign)
            assert np.array_equal(got, want), (p, f)
            checked += 1
    assert checked > 150


def test_fast_params_refuse_what_the_form_cannot_do():
    p = quant_ops.add_params(0.1, 0, 0.1, 0, 0.1, 0)
    assert quant_ops.add_fast_params(p, -128, 127).variant == 4  # both rs = 0, full range
    # A rounding constant that would leave int32: output shift 30 with a large zero point.
    bad = quant_ops.AddParams(p.in1_offset, p.in1_multiplier, p.in1_shift, p.in2_offset,
                              p.in2_multiplier, p.in2_shift, 100, p.out_multiplier, -30)
    assert quant_ops.add_fast_params(bad, -128, 127) is None
    neg = quant_ops.AddParams(0, -5, -1, 0, 1 << 30, 0, 0, 1 << 30, -20)
    assert quant_ops.add_fast_params(neg, -128, 127) is None


_SCALES = [  # (s1, zp1), (s2, zp2), (so, zpo), activation
    ((0.05, -3), (0.02, 10), (0.06, -128), "RELU"),
    ((0.01, 127), (0.01, -128), (0.03, 5), "NONE"),
    ((0.9, -128), (0.001, 127), (0.5, 0), "NONE"),
    ((0.004, 0), (0.03, -7), (0.02, 20), "RELU6"),
]


def _model(op: str, shape, case) -> bytes:
    (s1, z1), (s2, z2), (so, zo), act = case
    return build_single_op_model(
        op, [TensorSpec(shape, scale=s1, zero_point=z1), TensorSpec(shape, scale=s2, zero_point=z2)],
        [TensorSpec(shape, scale=so, zero_point=zo)], {"activation": act})


@pytest.mark.skipif(not have_compiler(), reason="no host C compiler")
@pytest.mark.parametrize("case", _SCALES)
def test_same_shape_add_matches_tflm_on_every_pair(case, tmp_path):
    model = _model("ADD", (1, 256, 256, 1), case)
    convert_model(model, tmp_path / "m", name="m")
    assert "mcu_add_fast_s8(" in (tmp_path / "m" / "m.c").read_text()
    sample = [_GRID_X.reshape(1, 256, 256, 1), _GRID_Y.reshape(1, 256, 256, 1)]
    got = HostModel(str(tmp_path / "m"), "m").run(sample)[0]
    assert np.array_equal(got, TflmModel(model, arena_size=1 << 20).run(sample)[0])


@pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi / qemu not installed")
@pytest.mark.parametrize("case", [_SCALES[0], _SCALES[3]])
def test_same_shape_add_on_cortex_m7(case, tmp_path):
    rng = np.random.default_rng(9)
    shape = (1, 16, 16, 17)  # 4352 elements: every x value many times, odd length
    model = _model("ADD", shape, case)
    convert_model(model, tmp_path / "m", name="m")
    samples = [[rng.integers(-128, 128, shape).astype(np.int8) for _ in range(2)]
               for _ in range(2)]
    samples.append([np.full(shape, -128, np.int8), np.full(shape, 127, np.int8)])
    want = [TflmModel(model, arena_size=1 << 18).run(s)[0] for s in samples]
    for dsp in (False, True):
        got = qemu.run_on_qemu(tmp_path / "m", "m", samples, dsp=dsp).outputs
        assert all(np.array_equal(g[0], e) for g, e in zip(got, want)), f"dsp={dsp}"


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


@pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi / qemu not installed")
@pytest.mark.parametrize("scale,zp", [(0.02, -5), (1.0, 127), (0.0039, -128)])
def test_float_quantize_on_cortex_m7(scale, zp, tmp_path):
    x = _quantize_inputs(scale)
    shape = (1, x.size)
    model = build_single_op_model("QUANTIZE", [TensorSpec(shape, "float32")],
                                  [TensorSpec(shape, scale=scale, zero_point=zp)])
    convert_model(model, tmp_path / "m", name="m")
    rng = np.random.default_rng(3)
    samples = [[x.reshape(shape)], [(rng.standard_normal(shape) * 3).astype(np.float32)]]
    want = [TflmModel(model, arena_size=1 << 16).run(s)[0] for s in samples]
    extremes = np.resize(_EXTREMES, shape)
    for dsp in (False, True):
        res = qemu.run_on_qemu(tmp_path / "m", "m", samples + [[extremes]], dsp=dsp).outputs
        assert all(np.array_equal(g[0], e) for g, e in zip(res, want)), f"dsp={dsp}"
        assert np.array_equal(res[2][0], np.resize(_EXTREMES_OUT, shape)), f"dsp={dsp}"
