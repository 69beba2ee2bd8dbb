"""FULLY_CONNECTED (engine/kernels/fully_connected.c) against TFLite Micro, byte for byte.

The emitter runs the offset-byte kernel mcu_fc_offset_s8 where its accumulator bound holds
(weights stored as offset bytes, 256 * (bias + sum w*x) in an int32; the DSP build's
whole-block path mcu_fco_blocks_sat (8-row blocks) for depths a multiple of 4 with the fast requantisation
into [-128, 127], four groups per loop iteration after G % 4 leading groups, and the
word-at-a-time input term) and the packed-row kernel mcu_fully_connected_s8 otherwise. Cases
cover batches, keep_num_dims, per-channel weights, every row-block and depth-tail edge and the
lane extremes (inputs of -128 and 127 next to each other), on the host and on the Cortex-M7
(portable and DSP builds); the generation-time layout, start values, bound and requantisation
table are checked in numpy.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from engine.host import HostModel
from engine.tflm import TflmModel
from tests.kernel_harness import (
    FakeOp,
    RecordingContext,
    assert_cortex_m7_matches,
    assert_host_matches_tflm,
    convert,
    generated_source,
    needs_cortex_m7,
    needs_host_compiler,
    random_int8_samples,
    seeded_rng,
    tflm_outputs,
    weight_and_bias_specs,
)
from tests.tflite_builder import ModelBuilder, TensorSpec, build_single_op_model
from tflite_converter.codegen.ops._conv_common import requant_table
from tflite_converter.codegen.ops.fully_connected import (
    FCO_ROW_BLOCK,
    OFFSET_ACC_LIMIT,
    offset_kernel_exact,
    offset_start_values,
    pack_offset_weights,
)

OFFSET_KERNEL = "mcu_fc_offset_s8("
LANES_KERNEL = "mcu_fc_offset_lanes_s8("
PLAIN_KERNEL = "mcu_fully_connected_s8("


def _fc_model(rng: np.random.Generator, units: int, depth: int, batches: int, zp_in: int,
              activation: str, extreme_weights: bool = False, out_scale_factor: float = 2) -> bytes:
    """A (batches, depth) -> (batches, units) layer, per-tensor int8 weights and an int32 bias
    drawn from rng; output scale 0.05 * 0.01 * out_scale_factor * sqrt(depth)."""
    w = rng.integers(-127, 128, (units, depth)).astype(np.int8)
    if extreme_weights:  # every |w| = 127: 128 * sum|w| reaches the bound sooner
        w = np.where(w < 0, -127, 127).astype(np.int8)
    bias = rng.integers(-3000, 3000, units).astype(np.int32)
    return build_single_op_model(
        "FULLY_CONNECTED",
        [TensorSpec((batches, depth), scale=0.05, zero_point=zp_in),
         TensorSpec((units, depth), scale=0.01, zero_point=0, data=w),
         TensorSpec((units,), "int32", scale=0.0005, zero_point=0, data=bias)],
        [TensorSpec((batches, units), scale=0.05 * 0.01 * out_scale_factor * np.sqrt(depth),
                    zero_point=-2)],
        {"activation": activation, "keep_num_dims": False})


def _lane_samples(rng: np.random.Generator, shape, n_random: int,
                  inverted_alternation: bool) -> list[list[np.ndarray]]:
    """n_random random samples, all 127, all -128, the P and Q lanes at their limits
    (-128, 127, -128, ...) and, if asked, the inverse alternation (127, -128, ...)."""
    out = [[rng.integers(-128, 128, shape).astype(np.int8)] for _ in range(n_random)]
    alt = np.resize(np.array([-128, 127], np.int8), shape)  # P and Q lanes at their limits
    extremes = [np.full(shape, 127, np.int8), np.full(shape, -128, np.int8), alt]
    if inverted_alternation:
        extremes.append(-1 - alt)
    for x in extremes:
        out.append([x.astype(np.int8)])
    return out


def _assert_host_matches_tflm(model: bytes, tmp_path, samples) -> str:
    d = convert(model, tmp_path)
    ours, ref = HostModel(str(d), "m"), TflmModel(model)
    for sample in samples:
        assert np.array_equal(ours.run(sample)[0], ref.run(sample)[0])
    return generated_source(d)


# ---------------------------------------------------------------------------------------------
# Shapes, batches, bias, activations, per-channel weights


@dataclasses.dataclass(frozen=True)
class FcCase:
    """One FULLY_CONNECTED layer; its name seeds its random data."""

    name: str
    in_shape: tuple[int, ...]
    units: int
    per_channel: bool = False
    bias: bool = True
    keep_num_dims: bool = False
    activation: str = "NONE"
    zp_in: int = 7
    zp_out: int = -4


FC_CASES = [
    FcCase("fc_basic", (1, 64), 10),
    FcCase("fc_odd_depth", (1, 37), 7, activation="RELU"),
    FcCase("fc_batch3", (3, 20), 5, zp_in=-128),
    FcCase("fc_no_bias", (1, 16), 4, bias=False),
    FcCase("fc_4d_input", (1, 2, 3, 8), 6),
    FcCase("fc_keep_num_dims", (2, 3, 12), 5, keep_num_dims=True),
    FcCase("fc_per_channel", (2, 24), 6, per_channel=True, activation="RELU6"),
    FcCase("fc_single", (1, 1), 1),
]


@needs_host_compiler
@pytest.mark.parametrize("case", FC_CASES, ids=lambda c: c.name)
def test_fully_connected_matches_tflm(case: FcCase, tmp_path):
    rng = seeded_rng(case.name)
    depth = case.in_shape[-1]
    rows = int(np.prod(case.in_shape)) // depth
    in_scale = float(np.float32(rng.uniform(0.01, 0.1)))
    wspec, bspec, ws = weight_and_bias_specs(rng, (case.units, depth), 0, in_scale,
                                             case.per_channel, case.bias)
    out_shape = (*case.in_shape[:-1], case.units) if case.keep_num_dims else (rows, case.units)
    out_scale = float(in_scale * np.mean(ws) * 60.0 * np.sqrt(depth) / 20.0)
    model = build_single_op_model(
        "FULLY_CONNECTED",
        [TensorSpec(case.in_shape, scale=in_scale, zero_point=case.zp_in), wspec, bspec],
        [TensorSpec(out_shape, scale=out_scale, zero_point=case.zp_out)],
        {"activation": case.activation, "keep_num_dims": case.keep_num_dims})
    assert_host_matches_tflm(model, tmp_path, rng, case.in_shape)


def test_requant_table_fast_only_when_exact():
    w = np.ones((2, 16), dtype=np.int8)
    bias = np.array([10, -10], dtype=np.int64)
    mult = np.array([1 << 30, 1 << 30])
    ctx = RecordingContext()
    name, fast = requant_table(ctx, FakeOp(7), bias, w, mult, np.array([-3, -4]), 5)
    assert fast == 1 and list(ctx.arrays[name][:, 2]) == [3, 4]
    # a left shift (or no shift) needs the generic arithmetic; the table keeps TFLite's shift
    name, fast = requant_table(ctx, FakeOp(7), bias, w, mult, np.array([-3, 1]), 5)
    assert fast == 0 and list(ctx.arrays[name][:, 2]) == [-3, 1]
    # accumulators that could reach 2^30 too
    name, fast = requant_table(ctx, FakeOp(7), np.array([1 << 30, 0]), w, mult, np.array([-3, -4]), 5)
    assert fast == 0


@needs_host_compiler
@pytest.mark.parametrize("units,depth", [(5, 13), (6, 8), (7, 3), (4, 1)])
def test_fully_connected_row_blocks_match_tflm(units, depth, tmp_path):
    rng = np.random.default_rng(units * 100 + depth)
    model = _fc_model(rng, units, depth, 2, 3, "NONE", out_scale_factor=4)
    _assert_host_matches_tflm(model, tmp_path, random_int8_samples(rng, (2, depth)))


# ---------------------------------------------------------------------------------------------
# The offset-byte kernel mcu_fc_offset_s8: layout, start values, bound, every edge


def test_pack_offset_weights_layout():
    w = np.arange(-6, 6, dtype=np.int8).reshape(2, 6)  # depth 6: padded to 8
    got = pack_offset_weights(w).view(np.uint8).reshape(-1, 4)
    # block of 2 rows, [group][row][4]; group (w0..w3) -> [w1+128, w0, w3+128, w2]
    want = [[-5 + 128, -6 & 0xFF, -3 + 128, -4 & 0xFF],
            [1 + 128, 0, 3 + 128, 2],
            [-1 + 128, -2 & 0xFF, 128, 0],  # padded weights are zero
            [5 + 128, 4, 128, 0]]
    assert got.tolist() == want


def test_pack_offset_weights_eight_row_blocks():
    w = np.arange(9 * 4, dtype=np.int8).reshape(9, 4)  # one block of FCO_ROW_BLOCK rows + 1
    assert FCO_ROW_BLOCK == 8
    got = pack_offset_weights(w).view(np.uint8).reshape(-1, 4)
    assert got.shape == (9, 4)  # one group: the eight rows of the block, then the ninth
    for r in range(9):
        w0, w1, w2, w3 = (int(v) for v in w[r])
        assert got[r].tolist() == [w1 + 128, w0, w3 + 128, w2]


def test_offset_start_values_and_bound():
    w = np.array([[1, -2, 3, 4], [100, 0, -100, 7]], dtype=np.int8)
    bias = np.array([10, -20], dtype=np.int32)
    # 256 * bias - 127 * (sum of the odd taps' w + 128)
    assert offset_start_values(bias, w).tolist() == [256 * 10 - 127 * (-2 + 4 + 256),
                                                     256 * -20 - 127 * (0 + 7 + 256)]
    # a depth tail: the padded odd taps (zero weights) count 128 each
    w5 = np.array([[1, 2, 3, 4, 5]], dtype=np.int8)
    assert offset_start_values(np.zeros(1, np.int32), w5).tolist() == [-127 * (2 + 4 + 4 * 128)]
    assert offset_kernel_exact(bias, w)
    big = np.full((1, 600), 127, dtype=np.int8)  # 128 * 127 * 600 > 2^23
    assert 128 * 127 * 600 >= OFFSET_ACC_LIMIT
    assert not offset_kernel_exact(np.zeros(1, np.int32), big)


def test_offset_kernel_sums_in_numpy():
    """The kernel's modulo-2^32 sums (fully_connected.c: P = SXTB16(x), Q = x EOR 0x007F007F
    against the offset bytes, start value minus the input term) give 256 * (bias + w.x) at
    the lane extremes and on a depth tail."""
    rng = np.random.default_rng(3)
    for depth in (1, 5, 8, 13):
        w = rng.integers(-127, 128, (3, depth)).astype(np.int8)
        bias = rng.integers(-3000, 3000, 3)
        start = offset_start_values(bias, w)
        packed = pack_offset_weights(w).view(np.uint8).reshape(-1, 3, 4).astype(np.int64)
        for x in (rng.integers(-128, 128, depth), np.full(depth, -128), np.full(depth, 127)):
            xp = np.zeros(packed.shape[0] * 4, np.int64)
            xp[:depth] = x
            b = (xp.reshape(-1, 4) & 0xFF).astype(np.int64)  # the input bytes of each group
            p = np.stack([xp[0::4], xp[2::4]], axis=1)
            q_lo = (b[:, [0, 2]] ^ 0x7F) + 256 * np.stack([xp[1::4], xp[3::4]], axis=1)
            cx = int(xp[1::2].sum()) << 15
            for r in range(3):
                wb = packed[:, r, :]  # [w1+128, w0, w3+128, w2] as bytes
                wh = wb[:, [0, 2]] + 256 * (wb[:, [1, 3]] - 256 * (wb[:, [1, 3]] >= 128))
                acc = int(start[r]) - cx + int((wh * p).sum() + (wb[:, [0, 2]] * q_lo).sum())
                want = 256 * (int(bias[r]) + int(w[r].astype(np.int64) @ x))
                assert acc % (1 << 32) == want % (1 << 32), (depth, r)


OFFSET_CASES = [  # units, depth, batches, zp_in, activation
    (8, 16, 1, -128, "NONE"),
    (7, 13, 2, 3, "NONE"),     # leftover rows, depth tail
    (4, 3, 1, 127, "RELU"),    # depth below one group
    (9, 40, 3, 0, "RELU6"),
    (13, 130, 1, -5, "NONE"),  # odd group count in the asm loop
]


@needs_host_compiler
@pytest.mark.parametrize("units,depth,batches,zp_in,activation", OFFSET_CASES)
def test_offset_kernel_matches_tflm(units, depth, batches, zp_in, activation, tmp_path):
    rng = np.random.default_rng(units * 1000 + depth)
    model = _fc_model(rng, units, depth, batches, zp_in, activation)
    src = _assert_host_matches_tflm(model, tmp_path, _lane_samples(rng, (batches, depth), 3, True))
    assert OFFSET_KERNEL in src


@needs_host_compiler
def test_plain_kernel_beyond_the_bound(tmp_path):
    rng = np.random.default_rng(5)
    model = _fc_model(rng, 5, 700, 1, 0, "NONE", extreme_weights=True)
    assert 128 * 127 * 700 >= OFFSET_ACC_LIMIT
    src = _assert_host_matches_tflm(model, tmp_path, _lane_samples(rng, (1, 700), 3, True))
    assert PLAIN_KERNEL in src


@needs_cortex_m7
@pytest.mark.parametrize("units,depth,batches,zp_in,activation", [OFFSET_CASES[1], OFFSET_CASES[4]])
def test_offset_kernel_on_cortex_m7(units, depth, batches, zp_in, activation, tmp_path):
    rng = np.random.default_rng(units * 1000 + depth)
    model = _fc_model(rng, units, depth, batches, zp_in, activation)
    d = convert(model, tmp_path)
    samples = _lane_samples(rng, (batches, depth), 3, True)
    assert_cortex_m7_matches(d, "m", samples, tflm_outputs(model, samples))


# units, depth, batches, zp_in, activation. Depth 4 * G with G % 4 = 1, 2, 3, 0 and G < 4
# (no loop iteration); units with and without leftover rows (the generic block after the
# whole-block path); "NONE" takes the fused range, "RELU" (range [-2, 127]) the generic path.
WHOLE_BLOCK_CASES = [
    (8, 4, 1, -128, "NONE"),   # one 8-row block, one group
    (9, 20, 2, 5, "NONE"),     # a block and a one-row tail (C)
    (4, 24, 1, 0, "NONE"),     # only the 4-row asm tail block
    (13, 44, 3, -7, "NONE"),   # a block and a 5-row tail (C)
    (16, 64, 1, 127, "NONE"),  # two blocks, four groups a turn, no lead
    (15, 32, 2, 1, "RELU"),    # a 7-row tail in C, generic path
    (22, 36, 1, 2, "NONE"),    # two 8-row blocks and a 6-row asm tail
    (12, 48, 1, -3, "RELU"),   # the generic path: an 8-row block, then a four-row one
    (14, 28, 1, 6, "RELU6"),   # the generic path: an 8-row block, then a six-row one
    (8, 12, 1, 4, "RELU6"),    # the generic 8-row block, three leading groups only
]


@needs_host_compiler
@pytest.mark.parametrize("units,depth,batches,zp_in,activation", WHOLE_BLOCK_CASES)
def test_offset_kernel_whole_blocks_match_tflm_on_host(units, depth, batches, zp_in, activation,
                                                       tmp_path):
    rng = np.random.default_rng(units * 100 + depth)
    model = _fc_model(rng, units, depth, batches, zp_in, activation)
    src = _assert_host_matches_tflm(model, tmp_path, _lane_samples(rng, (batches, depth), 2, False))
    assert OFFSET_KERNEL in src


@needs_cortex_m7
@pytest.mark.parametrize("case", WHOLE_BLOCK_CASES[1:])
def test_offset_kernel_whole_blocks_on_cortex_m7(case, tmp_path):
    units, depth, batches, zp_in, activation = case
    rng = np.random.default_rng(units * 100 + depth)
    model = _fc_model(rng, units, depth, batches, zp_in, activation)
    d = convert(model, tmp_path)
    samples = _lane_samples(rng, (batches, depth), 2, False)
    assert_cortex_m7_matches(d, "m", samples, tflm_outputs(model, samples), dsp_builds=(True, False))


# ---------------------------------------------------------------------------------------------
# The "lanes" variant (mcu_fc_offset_lanes_s8): each input row's P and Q lanes precomputed
# into scratch the plan has free. A single FC layer leaves no room (its arena is its input
# plus its output), so the layer under test follows a wide one: WIDE_DEPTH inputs -> `depth`,
# whose input dies there and leaves room for the lanes (8 bytes per group of 4) at the next.
WIDE_DEPTH = 1200

# units, depth, batches, zp_in, activation: G = depth / 4 with lead G % 4 = 0, 1, 2, 3 and
# G < 4 (no loop turn), leftover rows (the inputs' own path), a depth tail, the fused range
# ("NONE", mcu_fco_blocks_sat) and the clamped one (the 8-row block of mcu_fco_block)
LANES_CASES = [
    (16, 64, 1, -128, "NONE"),
    (11, 36, 1, 3, "NONE"),
    (13, 40, 2, 0, "RELU"),
    (8, 44, 1, -7, "RELU6"),
    (15, 14, 1, 5, "NONE"),
    (22, 32, 1, -1, "RELU"),   # two lanes blocks, then a 6-row tail from the inputs
]


def _fc_after_wide_layer(rng: np.random.Generator, units: int, depth: int, batches: int,
                         zp_in: int, activation: str) -> bytes:
    mb = ModelBuilder()
    x = mb.add_tensor(TensorSpec((batches, WIDE_DEPTH), scale=0.05, zero_point=1))
    wa = mb.add_tensor(TensorSpec((depth, WIDE_DEPTH), scale=0.01, zero_point=0,
                                  data=rng.integers(-127, 128, (depth, WIDE_DEPTH))))
    h = mb.add_tensor(TensorSpec((batches, depth), scale=0.05, zero_point=zp_in))
    w = mb.add_tensor(TensorSpec((units, depth), scale=0.01, zero_point=0,
                                 data=rng.integers(-127, 128, (units, depth))))
    b = mb.add_tensor(TensorSpec((units,), "int32", scale=0.0005, zero_point=0,
                                 data=rng.integers(-3000, 3000, units)))
    y = mb.add_tensor(TensorSpec((batches, units), scale=0.001 * np.sqrt(depth), zero_point=-2))
    opts = {"activation": "NONE", "keep_num_dims": False}
    mb.add_op("FULLY_CONNECTED", [x, wa, -1], [h], opts)
    mb.add_op("FULLY_CONNECTED", [h, w, b], [y], dict(opts, activation=activation))
    return mb.build([x], [y])


@needs_host_compiler
@needs_cortex_m7
@pytest.mark.parametrize("units,depth,batches,zp_in,activation", LANES_CASES)
def test_lanes_variant_matches_tflm_on_host_and_cortex_m7(units, depth, batches, zp_in,
                                                         activation, tmp_path):
    rng = np.random.default_rng(units * 10 + depth)
    model = _fc_after_wide_layer(rng, units, depth, batches, zp_in, activation)
    d = convert(model, tmp_path)
    src = generated_source(d)
    assert src.count(LANES_KERNEL) == 1  # the second layer; the wide one has no room for its own
    plan = json.loads((d / "plan.json").read_text())
    lanes = [s for s in plan["scratch"] if s["op"] == 1]
    assert lanes and lanes[0]["bytes"] == 8 * (depth // 4) and lanes[0]["min_bytes"] == 0
    # granted from free room: the arena stays the wide layer's input plus output (aligned)
    assert plan["arena_bytes"] == plan["lower_bound_bytes"] >= batches * (WIDE_DEPTH + depth)
    samples = [[rng.integers(-128, 128, (batches, WIDE_DEPTH)).astype(np.int8)] for _ in range(3)]
    want = tflm_outputs(model, samples)
    host = HostModel(str(d), "m")
    assert all(np.array_equal(host.run(s)[0], e[0]) for s, e in zip(samples, want))
    assert_cortex_m7_matches(d, "m", samples, want, dsp_builds=(True, False))


# ---------------------------------------------------------------------------------------------
# The per-tensor multiplier: the order the pinned TFLM wheel takes (engine/quantization.py
# fully_connected_effective_scale)


def _order_sensitive_layer(rng: np.random.Generator):
    """Scales for which the float32 and the double product give different multipliers, and
    biases (the accumulators, with the input at its zero point) whose outputs differ."""
    from engine import quantization as q

    while True:
        a, b, o = (np.float32(v) for v in rng.uniform(1e-3, 1e-1, 3))
        m32 = q.quantize_multiplier(float(np.float32(a * b)) / float(o))
        m64 = q.quantize_multiplier(float(a) * float(b) / float(o))
        acc = np.arange(-200_000, 200_000, dtype=np.int64)
        y32 = q.multiply_by_quantized_multiplier(acc, *m32)
        y64 = q.multiply_by_quantized_multiplier(acc, *m64)
        hits = acc[(y32 != y64) & (np.abs(y64) < 120)]
        if m32 != m64 and hits.size:
            return (a, b, o), hits[:12].astype(np.int32), m64


@needs_host_compiler
def test_multiplier_order_is_the_wheels(tmp_path):
    from engine import quantization as q

    rng = np.random.default_rng(11)
    for trial in range(3):
        (a, b, o), bias, m64 = _order_sensitive_layer(rng)
        n = bias.size
        model = build_single_op_model(
            "FULLY_CONNECTED",
            [TensorSpec((1, 4), scale=float(a), zero_point=3),
             TensorSpec((n, 4), scale=float(b), zero_point=0, data=np.ones((n, 4), np.int8)),
             TensorSpec((n,), "int32", scale=float(np.float32(a * b)), zero_point=0, data=bias)],
            [TensorSpec((1, n), scale=float(o), zero_point=0)],
            {"activation": "NONE", "keep_num_dims": False})
        sample = [np.full((1, 4), 3, np.int8)]
        want = TflmModel(model).run(sample)[0].reshape(-1)
        # the wheel follows the double order (the float32 one gives other bytes here)
        assert np.array_equal(want, np.clip(q.multiply_by_quantized_multiplier(bias, *m64), -128, 127))
        d = convert(model, tmp_path / str(trial))
        assert np.array_equal(HostModel(str(d), "m").run(sample)[0].reshape(-1), want)


@needs_host_compiler
@pytest.mark.parametrize("units", [30, 28, 19])
@pytest.mark.parametrize("simd", [True, False], ids=["sse2", "plain_c"])
def test_offset_kernel_host_vector_and_plain_paths(simd, units, tmp_path):
    """The host's SSE2 form of the offset kernel (8-, 6- and 4-row blocks) and the plain C that
    MCU_NO_SIMD keeps both give TFLM's bytes: 8-row blocks then a 6-row tail (30 = 3 * 8 + 6),
    a 4-row one (28) or a 3-row C tail (19), each with a depth tail."""
    rng = np.random.default_rng(77 + units)
    model = _fc_model(rng, units, 45, 2, -9, "NONE")
    d = convert(model, tmp_path)
    assert OFFSET_KERNEL in generated_source(d)
    ours = HostModel(str(d), "m", extra_flags=() if simd else ("-DMCU_NO_SIMD",))
    ref = TflmModel(model)
    for sample in _lane_samples(rng, (2, 45), 3, True):
        assert np.array_equal(ours.run(sample)[0], ref.run(sample)[0])
