"""LOG_SOFTMAX int8 (engine/kernels/log_softmax.c) against TFLite Micro: input scales from
tiny (the exponent underflows for few differences) to large (almost every difference below
diff_min), row lengths 1 to 1,000, thousands of rows per model with random, narrow-spread and
constant rows; the emulated Cortex-M7; refusals of what TFLM cannot run."""
from __future__ import annotations

import numpy as np
import pytest

from engine.host import HostModel
from engine.tflm import TflmModel
from tests import kernel_harness as kh
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite

OP = "LOG_SOFTMAX"
OUT = TensorSpec((1,), scale=16 / 256, zero_point=127)  # the output quantization TFLM requires
SCALES = [0.0007, 0.02, 0.1, 0.37, 3.0]
DEPTHS = [1, 2, 10, 1000]


def _model(shape, scale: float, zp: int = -3, out: TensorSpec = OUT) -> bytes:
    return build_single_op_model(OP, [TensorSpec(shape, scale=scale, zero_point=zp)],
                                 [TensorSpec(shape, scale=out.scale, zero_point=out.zero_point)])


def _rows(rng: np.random.Generator, rows: int, depth: int) -> np.ndarray:
    x = rng.integers(-128, 128, (rows, depth))
    x[: rows // 4] //= 16  # narrow spread: many exponentials count
    x[rows // 4: rows // 3] = rng.integers(-128, 128, (rows // 3 - rows // 4, 1))  # constant rows
    x[-1], x[-2, :1] = -128, 127  # all equal at the bottom; one maximum over -128 (below)
    x[-2, 1:] = -128
    return x.astype(np.int8)


@kh.needs_host_compiler
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("depth", DEPTHS)
def test_log_softmax_matches_tflm(scale, depth, tmp_path):
    rows = max(4, 3000 // depth)
    model = _model((rows, depth), scale)
    ours = HostModel(kh.convert(model, tmp_path), "m")
    ref = TflmModel(model, arena_size=1 << 20)
    x = _rows(kh.seeded_rng(f"{scale} {depth}"), rows, depth)
    kh.assert_same_outputs(ours.run([x]), ref.run([x]))


@kh.needs_host_compiler
def test_log_softmax_4d_matches_tflm(tmp_path):
    model = _model((1, 3, 4, 7), 0.05, zp=10)
    kh.assert_host_matches_tflm_on_random_inputs(model, tmp_path)
    assert "mcu_log_softmax_s8(" in kh.generated_source(tmp_path / "gen")


@kh.needs_cortex_m7
def test_log_softmax_on_cortex_m7(tmp_path):
    model = _model((20, 10), 0.1)
    samples = [[_rows(kh.seeded_rng("m7"), 20, 10)]]
    kh.assert_cortex_m7_matches(kh.convert(model, tmp_path), "m", samples,
                                kh.tflm_outputs(model, samples))


def test_log_softmax_refuses_another_output_quantization(tmp_path):
    model = _model((2, 5), 0.1, out=TensorSpec((1,), scale=1 / 16, zero_point=0))
    with pytest.raises(ConversionError, match=f"op 0 {OP}.*16/256 and zero point 127"):
        kh.convert(model, tmp_path)


def test_log_softmax_refuses_a_tiny_input_scale(tmp_path):
    """beta * scale * 2^26 <= 1: TFLM's QuantizeMultiplierGreaterThanOne check aborts."""
    with pytest.raises(ConversionError, match=f"op 0 {OP}.*not above 1"):
        kh.convert(_model((2, 5), 1e-8), tmp_path)


def test_log_softmax_refuses_rows_whose_sum_could_wrap():
    with pytest.raises(ConversionError, match=f"op 0 {OP}.*4096 or more"):
        read_tflite(_model((1, 4096), 0.1))
