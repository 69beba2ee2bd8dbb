"""int4 filters (TFLite INT4, two values a byte, low nibble first) against TFLite Micro.

The reader unpacks them into int8 values marked packed_int4 (tflite_converter/int4.py); the
emitters store the kernels' layouts packed again and run the *_s4 kernels of conv2d.c,
depthwise_conv2d.c and fully_connected.c, which unpack a block of rows / a channel at a time
(or, FULLY_CONNECTED, a group of four as it is read). Here: the packing itself, the nibble
order against TFLM, every kernel variant bit-exact with the TFLM wheel on random inputs on the
host (and a chain on the Cortex-M7 under QEMU, portable and DSP builds), the scratch the
planner grants the int4 convolutions, and the refusals (an int4 tensor anywhere TFLM does not
run one, a per-channel int4 FULLY_CONNECTED, a wrongly sized buffer).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.tflm import TflmModel
from tests.kernel_harness import (
    ConvCase,
    assert_cortex_m7_matches,
    assert_host_matches_tflm,
    conv_options,
    conv_tensors,
    convert,
    needs_cortex_m7,
    needs_host_compiler,
    random_int8_samples,
    seeded_rng,
    tflm_outputs,
)
from tests.tflite_builder import ModelBuilder, TensorSpec, build_single_op_model
from tflite_converter import int4
from tflite_converter.codegen.generate import convert_model
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite


def _int4_weights(spec: TensorSpec, rng: np.random.Generator) -> TensorSpec:
    """The same weight tensor with random int4 values (both extremes included)."""
    values = rng.integers(-8, 8, tuple(spec.shape)).astype(np.int8)
    flat = values.reshape(-1)
    flat[:2] = (-8, 7)
    return dataclasses.replace(spec, data=values, int4=True)


def _int4_conv_model(c: ConvCase, depthwise: bool) -> bytes:
    rng = seeded_rng(c.name)
    x, w, b, y = conv_tensors(c, depthwise, rng)
    w = _int4_weights(w, rng)
    # int4 weights make accumulators ~16x smaller than conv_tensors' int8 estimate
    y = dataclasses.replace(y, scale=float(y.scale) / 12)
    op = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    inputs = [x, w] if b is None and depthwise else [x, w, b]
    return build_single_op_model(op, inputs, [y], conv_options(c, depthwise))


def _fc_model(rng: np.random.Generator, units: int, depth: int, batches: int,
              activation: str = "NONE") -> bytes:
    w = rng.integers(-8, 8, (units, depth)).astype(np.int8)
    bias = rng.integers(-300, 300, units).astype(np.int32)
    return build_single_op_model(
        "FULLY_CONNECTED",
        [TensorSpec((batches, depth), scale=0.05, zero_point=-7),
         TensorSpec((units, depth), scale=0.01, zero_point=0, data=w, int4=True),
         TensorSpec((units,), "int32", scale=0.0005, zero_point=0, data=bias)],
        [TensorSpec((batches, units), scale=float(0.05 * 0.01 * 3 * np.sqrt(depth)), zero_point=4)],
        {"activation": activation})


# ---------------------------------------------------------------------------------------------
# The packing and the nibble order


def test_pack_is_low_nibble_first():
    assert int4.pack(np.array([1, -2, 7])).tolist() == [0xE1, 0x07]
    assert int4.unpack(bytes([0xE1, 0x07]), 3).tolist() == [1, -2, 7]
    values = np.arange(-8, 8, dtype=np.int8)
    assert np.array_equal(int4.unpack(int4.pack(values), 16), values)
    with pytest.raises(ValueError):
        int4.pack(np.array([8]))


def test_pack_words_layout():
    """CONV_2D's word layout: byte j of a group of eight holds v_j low and v_{4+j} high."""
    v = np.array([1, 2, 3, -1, -8, 7, 0, -2, 5, -3, 4, 6], np.int8)
    got = int4.pack_words(v).tolist()
    assert got == [0x81, 0x72, 0x03, 0xEF, 0x05, 0x0D, 0x04, 0x06]
    nib = np.array(got, np.uint8)
    lo, hi = nib & 0xF, nib >> 4
    back = np.concatenate([np.where(x >= 8, x.astype(int) - 16, x)
                           for g in range(2) for x in (lo[4 * g:4 * g + 4], hi[4 * g:4 * g + 4])])
    assert back[:12].tolist() == v.tolist()
    with pytest.raises(ValueError):
        int4.pack_words(np.zeros(6, np.int8))


def _one_weight_fc(raw: bytes, int4_type: bool, weights: np.ndarray) -> bytes:
    """FULLY_CONNECTED 1 x 2 -> 1 with the filter buffer written as given."""
    mb = ModelBuilder()
    x = mb.add_tensor(TensorSpec((1, 2), scale=1.0, zero_point=0))
    w = mb.add_tensor(TensorSpec((1, 2), scale=1.0, zero_point=0, data=weights, int4=int4_type))
    y = mb.add_tensor(TensorSpec((1, 1), scale=1.0, zero_point=0))
    mb.add_op("FULLY_CONNECTED", [x, w], [y])
    model = mb.to_model([x], [y])
    model.buffers[1].data = np.frombuffer(raw, np.uint8)
    from tests.tflite_builder import _finish
    return _finish(model)


def test_nibble_order_matches_tflm():
    """Byte 0x21 holds the values (1, 2): element 0 in the low nibble. TFLM computes
    1 * x0 + 2 * x1 from it, and so does the reader's unpacking; reading the nibbles the
    other way round gives 2 * x0 + 1 * x1, which this input tells apart."""
    packed = _one_weight_fc(bytes([0x21]), True, np.array([[1, 2]], np.int8))
    x = np.array([[10, 1]], np.int8)
    assert int(TflmModel(packed).run([x])[0][0, 0]) == 12
    graph = read_tflite(packed)
    assert graph.tensors[1].packed_int4
    assert graph.tensors[1].data.tolist() == [[1, 2]]


@needs_host_compiler
def test_nibble_order_end_to_end(tmp_path):
    """The C of a model whose every weight pair differs under a nibble swap equals TFLM: a
    swap anywhere (reader, generator packing, kernel unpacking) changes the outputs."""
    rng = np.random.default_rng(7)
    w = np.tile(np.array([3, -5], np.int8), (4, 4))  # [4, 8]: pairs (3, -5)
    model = build_single_op_model(
        "FULLY_CONNECTED",
        [TensorSpec((1, 8), scale=0.05, zero_point=0),
         TensorSpec((4, 8), scale=0.01, zero_point=0, data=w, int4=True)],
        [TensorSpec((1, 4), scale=0.002, zero_point=0)])
    swapped = np.tile(np.array([-5, 3], np.int8), (4, 4))
    assert int4.pack(w).tolist() != int4.pack(swapped).tolist()
    x = np.array([[100, 0, 100, 0, 100, 0, 100, 0]], np.int8)
    want = TflmModel(model).run([x])[0]
    from engine.host import HostModel
    got = HostModel(convert(model, tmp_path), "m").run([x])[0]
    assert np.array_equal(got, want)
    assert not np.array_equal(want, np.zeros_like(want))
    assert_host_matches_tflm(model, tmp_path / "r", rng, (1, 8))


# ---------------------------------------------------------------------------------------------
# CONV_2D

CONV_CASES = [
    ConvCase("s4_1x1", (1, 5, 5, 6), 5, kernel=(1, 1), padding="VALID"),
    ConvCase("s4_1x1_c8", (1, 4, 4, 8), 7, kernel=(1, 1), padding="VALID"),  # int8: register kernel
    ConvCase("s4_1x1_s2", (1, 7, 7, 9), 6, kernel=(1, 1), stride=(2, 2), padding="VALID"),
    ConvCase("s4_3x3_rgb", (1, 8, 8, 3), 8, activation="RELU6"),
    ConvCase("s4_3x3_s2", (1, 9, 9, 5), 7, stride=(2, 2)),
    ConvCase("s4_3x3_valid_pt", (1, 6, 7, 4), 3, padding="VALID", per_channel=False),
    ConvCase("s4_5x3_dil", (1, 10, 9, 2), 4, kernel=(5, 3), dilation=(2, 1), bias=False),
    ConvCase("s4_1px", (1, 2, 1, 3), 3),  # fewer pixels than a block
    # larger images: the plan grants three-pixel blocks (np = 3), with leftover pixels
    ConvCase("s4_3x3_px3", (1, 16, 16, 4), 9),
    ConvCase("s4_3x3_s2_px3", (1, 17, 15, 6), 8, stride=(2, 2), activation="RELU"),
]


@needs_host_compiler
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.name)
def test_conv2d_int4_matches_tflm(case, tmp_path):
    model = _int4_conv_model(case, depthwise=False)
    src = assert_host_matches_tflm(model, tmp_path, seeded_rng(case.name + "x"), case.in_shape)
    pointwise = case.kernel == (1, 1) and case.padding == "VALID"
    assert ("mcu_conv2d_1x1_s4(" if pointwise else "mcu_conv2d_s4(") in src
    if case.name.endswith("px3"):
        assert src.split("mcu_conv2d_s4(")[1].split(";")[0].split(",")[-3].strip() == "3"
    assert "const uint8_t" in src.split("_w4[")[0].splitlines()[-1]  # packed bytes in Flash


def _whole_filter_model() -> bytes:
    """CONV_2D 3x3 (int4) then a 1x1 widening to 64 channels: the arena peaks at the second
    op, so the plan has room at the first for its whole filter unpacked."""
    rng = np.random.default_rng(13)
    mb = ModelBuilder()
    x = mb.add_tensor(TensorSpec((1, 12, 12, 4), scale=0.05, zero_point=1))
    a = mb.add_tensor(TensorSpec((1, 12, 12, 6), scale=0.05, zero_point=-3))
    y = mb.add_tensor(TensorSpec((1, 12, 12, 64), scale=0.04, zero_point=2))
    for src, dst, shape in ((x, a, (6, 3, 3, 4)), (a, y, (64, 1, 1, 6))):
        n = shape[0]
        w = mb.add_tensor(TensorSpec(shape, scale=[0.03] * n, zero_point=[0] * n, axis=0,
                                     data=rng.integers(-8, 8, shape).astype(np.int8), int4=True))
        b = mb.add_tensor(TensorSpec((n,), "int32", scale=[0.0015] * n, zero_point=[0] * n, axis=0,
                                     data=rng.integers(-300, 300, n).astype(np.int32)))
        pad = "SAME" if shape[1] == 3 else "VALID"
        mb.add_op("CONV_2D", [src, w, b], [dst], {"padding": pad, "stride_h": 1, "stride_w": 1})
    return mb.build([x], [y])


@needs_host_compiler
def test_conv2d_int4_whole_filter_variant(tmp_path):
    """Where the plan has room, the kxk layer unpacks its whole filter once ("px3w", whole = 1)
    and runs the int8 kernel on it; the 1x1 layer at the arena's peak unpacks row blocks."""
    model = _whole_filter_model()
    src = assert_host_matches_tflm(model, tmp_path, np.random.default_rng(14), (1, 12, 12, 4))
    kxk = src.split("mcu_conv2d_s4(")[1].split(";")[0].split(",")
    one = src.split("mcu_conv2d_1x1_s4(")[1].split(";")[0].split(",")
    assert (kxk[-3].strip(), kxk[-2].strip(), one[-2].strip()) == ("3", "1", "0")


@needs_cortex_m7
def test_conv2d_int4_whole_filter_on_cortex_m7(tmp_path):
    model = _whole_filter_model()
    d = convert(model, tmp_path)
    samples = random_int8_samples(np.random.default_rng(15), (1, 12, 12, 4), n=2)
    assert_cortex_m7_matches(d, "m", samples, tflm_outputs(model, samples))


def test_conv2d_int4_flash_and_scratch(tmp_path):
    """The generated weights are half the int8 ones; the plan grants the unpacked rows."""
    case = CONV_CASES[3]
    model = _int4_conv_model(case, depthwise=False)
    d4 = tmp_path / "four"
    convert_model(model, d4, name="m")
    src = (d4 / "m.c").read_text()
    k4 = (3 * 3 * 3 + 3) // 4 * 4
    # pack_weight_rows: 8 rows of K4 = 28 int8 -> 112 bytes packed
    assert f"m_op0_w4[{8 * k4 // 2}]" in src
    graph = read_tflite(model)
    from tflite_converter.conv2d_spec import conv2d_block_scratch
    op = graph.ops[0]
    assert conv2d_block_scratch(graph, op, 3) == 3 * k4 * 2 + 27 + 2 * k4


# ---------------------------------------------------------------------------------------------
# DEPTHWISE_CONV_2D

DW_CASES = [
    ConvCase("s4_dw3", (1, 8, 8, 6), 6),  # out of place, multiplier 1: the channel-group kernel
    ConvCase("s4_dw3_s2", (1, 9, 9, 5), 5, stride=(2, 2), per_channel=False),
    ConvCase("s4_dw5", (1, 7, 7, 4), 4, kernel=(5, 5), activation="RELU6"),
    ConvCase("s4_dw7", (1, 9, 9, 3), 3, kernel=(7, 7)),
    ConvCase("s4_dw_m2", (1, 6, 6, 3), 6, bias=False),  # multiplier 2, several channels: direct
    ConvCase("s4_dw_c1_m3", (1, 8, 8, 1), 3),  # one input channel: the band kernel
    ConvCase("s4_dw_c1_m8", (1, 10, 8, 1), 8, kernel=(5, 4), padding="VALID"),  # int8: band4
]


@needs_host_compiler
@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: c.name)
def test_depthwise_int4_matches_tflm(case, tmp_path):
    model = _int4_conv_model(case, depthwise=True)
    src = assert_host_matches_tflm(model, tmp_path, seeded_rng(case.name + "x"), case.in_shape)
    assert "_s4(" in src and "mcu_depthwise_conv2d" in src


@needs_host_compiler
@pytest.mark.parametrize("case", DW_CASES[:3], ids=lambda c: c.name)
def test_depthwise_int4_in_place(case, tmp_path):
    """With the input free to overwrite, the plan runs the layer in place (plane kernel or
    the channel-group kernel with its buffer)."""
    model = _int4_conv_model(case, depthwise=True)
    d = tmp_path / "m"
    convert_model(model, d, name="m")
    from engine.host import HostModel
    src = (d / "m.c").read_text()
    assert "mcu_depthwise_conv2d_s4(" in src or "mcu_depthwise_conv2d_hwc_s4(" in src
    ours, ref = HostModel(d, "m"), TflmModel(model)
    for sample in random_int8_samples(seeded_rng(case.name + "p"), case.in_shape):
        assert np.array_equal(ours.run(sample)[0], ref.run(sample)[0])


def test_depthwise_int4_refuses_too_large_kernel(tmp_path):
    """Out of place, a 9x9 layer takes the channel-group kernel: 4 * 81 weights to unpack."""
    case = ConvCase("s4_dw9", (1, 10, 10, 4), 4, kernel=(9, 9))
    with pytest.raises(ConversionError, match="op 0 DEPTHWISE_CONV_2D.*int4 9x9"):
        convert(_int4_conv_model(case, depthwise=True), tmp_path)


# ---------------------------------------------------------------------------------------------
# FULLY_CONNECTED


@needs_host_compiler
@pytest.mark.parametrize("units,depth,batches,activation", [
    (7, 10, 1, "NONE"), (16, 64, 2, "RELU"), (1, 3, 1, "NONE"), (6, 33, 3, "RELU6")])
def test_fully_connected_int4_matches_tflm(units, depth, batches, activation, tmp_path):
    rng = np.random.default_rng(units * 100 + depth)
    model = _fc_model(rng, units, depth, batches, activation)
    src = assert_host_matches_tflm(model, tmp_path, rng, (batches, depth))
    assert "mcu_fully_connected_s4(" in src


@needs_cortex_m7
@pytest.mark.parametrize("units,depth,batches", [(7, 10, 1), (6, 33, 3)])
def test_fully_connected_int4_on_cortex_m7(units, depth, batches, tmp_path):
    """Leftover rows of the last (zero-padded) block and a depth tail, portable and DSP."""
    rng = np.random.default_rng(units * 100 + depth)
    model = _fc_model(rng, units, depth, batches)
    samples = random_int8_samples(rng, (batches, depth), n=2)
    assert_cortex_m7_matches(convert(model, tmp_path), "m", samples, tflm_outputs(model, samples))


# ---------------------------------------------------------------------------------------------
# A chain on the Cortex-M7


def _chain_model() -> bytes:
    """CONV_2D 3x3 s2 -> DEPTHWISE 3x3 -> CONV_2D 1x1 -> FULLY_CONNECTED, all int4 filters."""
    rng = np.random.default_rng(11)
    mb = ModelBuilder()

    def act(shape, scale, zp):
        return mb.add_tensor(TensorSpec(shape, scale=scale, zero_point=zp))

    def filt(shape, axis, per_channel=True):
        ch = shape[axis]
        w = rng.integers(-8, 8, shape).astype(np.int8)
        scales = [0.02] * ch if per_channel else 0.02
        return mb.add_tensor(TensorSpec(shape, scale=scales, zero_point=[0] * ch if per_channel else 0,
                                        axis=axis if per_channel else None, data=w, int4=True))

    def bias(n, scale):
        return mb.add_tensor(TensorSpec((n,), "int32", scale=[scale] * n, zero_point=[0] * n,
                                        axis=0, data=rng.integers(-200, 200, n).astype(np.int32)))

    x = act((1, 12, 12, 3), 0.05, -2)
    a = act((1, 6, 6, 8), 0.08, -10)
    mb.add_op("CONV_2D", [x, filt((8, 3, 3, 3), 0), bias(8, 0.001)], [a],
              {"padding": "SAME", "stride_h": 2, "stride_w": 2, "activation": "RELU6"})
    b = act((1, 6, 6, 8), 0.08, -10)
    mb.add_op("DEPTHWISE_CONV_2D", [a, filt((1, 3, 3, 8), 3), bias(8, 0.0016)], [b],
              {"padding": "SAME", "stride_h": 1, "stride_w": 1, "depth_multiplier": 1})
    c = act((1, 6, 6, 12), 0.1, 3)
    mb.add_op("CONV_2D", [b, filt((12, 1, 1, 8), 0), bias(12, 0.0016)], [c],
              {"padding": "VALID", "stride_h": 1, "stride_w": 1})
    flat = act((1, 432), 0.1, 3)
    shape = mb.add_tensor(TensorSpec((2,), "int32", data=np.array([1, 432], np.int32)))
    mb.add_op("RESHAPE", [c, shape], [flat])
    y = act((1, 10), 0.5, 0)
    wf = mb.add_tensor(TensorSpec((10, 432), scale=0.01, zero_point=0,
                                  data=rng.integers(-8, 8, (10, 432)).astype(np.int8), int4=True))
    mb.add_op("FULLY_CONNECTED", [flat, wf, mb.add_tensor(TensorSpec(
        (10,), "int32", scale=0.001, zero_point=0, data=rng.integers(-200, 200, 10).astype(np.int32)))],
        [y])
    return mb.build([x], [y])


@needs_host_compiler
def test_int4_chain_on_host(tmp_path):
    """Ours equals TFLM; ai_edge_litert's reference kernels agree with both here."""
    model = _chain_model()
    assert_host_matches_tflm(model, tmp_path, np.random.default_rng(3), (1, 12, 12, 3))
    from engine.tflm import LiteRtModel
    x = [np.random.default_rng(8).integers(-128, 128, (1, 12, 12, 3)).astype(np.int8)]
    assert np.array_equal(LiteRtModel(model).run(x)[0], TflmModel(model).run(x)[0])


@needs_cortex_m7
def test_int4_chain_on_cortex_m7(tmp_path):
    model = _chain_model()
    d = tmp_path / "m"
    convert_model(model, d, name="m")
    samples = random_int8_samples(np.random.default_rng(5), (1, 12, 12, 3), n=2)
    assert_cortex_m7_matches(d, "m", samples, tflm_outputs(model, samples))


# ---------------------------------------------------------------------------------------------
# Refusals


def _refusal(model: bytes) -> str:
    with pytest.raises(ConversionError) as e:
        read_tflite(model)
    return str(e.value)


def test_refuses_per_channel_int4_fully_connected():
    w = np.zeros((3, 4), np.int8)
    model = build_single_op_model(
        "FULLY_CONNECTED",
        [TensorSpec((1, 4), scale=0.1, zero_point=0),
         TensorSpec((3, 4), scale=[0.1, 0.2, 0.3], zero_point=[0, 0, 0], axis=0, data=w, int4=True)],
        [TensorSpec((1, 3), scale=0.1, zero_point=0)])
    assert "op 0 FULLY_CONNECTED" in _refusal(model) and "per tensor only" in _refusal(model)


def test_refuses_int4_outside_a_filter():
    add = build_single_op_model(
        "ADD",
        [TensorSpec((1, 4), scale=0.1, zero_point=0),
         TensorSpec((1, 4), scale=0.1, zero_point=0, data=np.ones((1, 4), np.int8), int4=True)],
        [TensorSpec((1, 4), scale=0.1, zero_point=0)])
    msg = _refusal(add)
    assert "op 0 ADD" in msg and "int4 tensor as input 1" in msg
    nonconst = build_single_op_model(
        "FULLY_CONNECTED",
        [TensorSpec((1, 4), scale=0.1, zero_point=0),
         TensorSpec((3, 4), scale=0.1, zero_point=0, int4=True)],
        [TensorSpec((1, 3), scale=0.1, zero_point=0)])
    assert "op 0 FULLY_CONNECTED" in _refusal(nonconst) and "non-constant int4" in _refusal(nonconst)


def test_refuses_wrongly_sized_int4_buffer():
    model = _one_weight_fc(bytes([0x21, 0x00]), True, np.array([[1, 2]], np.int8))
    assert "int4 (two values a byte) needs 1" in _refusal(model)


# ---------------------------------------------------------------------------------------------
# Rewriting an int8 model's filters as int4 (what mcunet_tf.export.export_int4_tflite does)


def _int8_chain() -> bytes:
    """The chain's shapes with int8 weights, the FC filter per channel (as TF 2.21 writes)."""
    rng = np.random.default_rng(21)
    mb = ModelBuilder()
    x = mb.add_tensor(TensorSpec((1, 8, 8, 3), scale=0.05, zero_point=-2))
    a = mb.add_tensor(TensorSpec((1, 8, 8, 6), scale=0.1, zero_point=-5))
    s_w = [0.004 + 0.001 * i for i in range(6)]
    mb.add_op("CONV_2D", [x, mb.add_tensor(TensorSpec(
        (6, 3, 3, 3), scale=s_w, zero_point=[0] * 6, axis=0,
        data=rng.integers(-127, 128, (6, 3, 3, 3)).astype(np.int8))),
        mb.add_tensor(TensorSpec((6,), "int32", scale=[0.05 * s for s in s_w], zero_point=[0] * 6,
                                 axis=0, data=rng.integers(-900, 900, 6).astype(np.int32)))],
        [a], {"padding": "SAME", "stride_h": 1, "stride_w": 1, "activation": "RELU6"})
    b = mb.add_tensor(TensorSpec((1, 8, 8, 6), scale=0.1, zero_point=-5))
    s_d = [0.01] * 6
    mb.add_op("DEPTHWISE_CONV_2D", [a, mb.add_tensor(TensorSpec(
        (1, 3, 3, 6), scale=s_d, zero_point=[0] * 6, axis=3,
        data=rng.integers(-60, 61, (1, 3, 3, 6)).astype(np.int8)))], [b],
        {"padding": "SAME", "stride_h": 1, "stride_w": 1, "depth_multiplier": 1})
    flat = mb.add_tensor(TensorSpec((1, 384), scale=0.1, zero_point=-5))
    mb.add_op("RESHAPE", [b, mb.add_tensor(TensorSpec((2,), "int32", data=np.array([1, 384], np.int32)))],
              [flat])
    y = mb.add_tensor(TensorSpec((1, 5), scale=0.2, zero_point=1))
    s_f = [0.001, 0.002, 0.0015, 0.003, 0.0005]
    mb.add_op("FULLY_CONNECTED", [flat, mb.add_tensor(TensorSpec(
        (5, 384), scale=s_f, zero_point=[0] * 5, axis=0,
        data=rng.integers(-127, 128, (5, 384)).astype(np.int8))),
        mb.add_tensor(TensorSpec((5,), "int32", scale=[0.1 * s for s in s_f], zero_point=[0] * 5,
                                 axis=0, data=rng.integers(-500, 500, 5).astype(np.int32)))], [y])
    return mb.build([x], [y])


def test_int4_filters_rewrite_scales_and_values():
    int8_model = _int8_chain()
    model = int4.int4_filters_tflite(int8_model)
    g8, g4 = read_tflite(int8_model), read_tflite(model)
    filters = [(op.kind.value, op.inputs[1], op.inputs[2] if len(op.inputs) > 2 else -1)
               for op in g4.ops if op.kind.value in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert len(filters) == 3
    for kind, w, b in filters:
        t4, t8 = g4.tensors[w], g8.tensors[w]
        assert t4.packed_int4 and not t8.packed_int4
        axis = t8.quant.axis
        moved8 = np.moveaxis(t8.data, axis, 0).reshape(t8.data.shape[axis], -1).astype(np.int64)
        m = np.abs(moved8).max(axis=1)
        if kind == "FULLY_CONNECTED":  # per tensor: the largest channel's range
            assert t4.quant.scale.size == 1
            s4 = np.float32(np.max(t8.quant.scale.astype(np.float64) * m / 7))
            assert np.isclose(t4.quant.scale[0], s4, rtol=1e-6)
            ratio = t8.quant.scale.astype(np.float64) / np.float64(s4)
        else:
            assert np.allclose(t4.quant.scale, t8.quant.scale * m / 7, rtol=1e-6)
            ratio = 7.0 / m
        moved4 = np.moveaxis(t4.data, axis, 0).reshape(moved8.shape)
        assert np.abs(moved4 - np.round(moved8 * ratio[:, None])).max() <= 1
        assert moved4.min() >= -7 and moved4.max() <= 7
        if b >= 0:
            assert np.abs(g4.tensors[b].data - np.round(g8.tensors[b].data * ratio)).max() <= 1


@needs_host_compiler
def test_int4_filters_rewrite_runs_bit_exact(tmp_path):
    """The rewritten model runs in TFLM, our C equals it, and it stays close to the int8
    model's outputs (the requantization changes only the weights' resolution)."""
    int8_model = _int8_chain()
    model = int4.int4_filters_tflite(int8_model)
    assert_host_matches_tflm(model, tmp_path, np.random.default_rng(4), (1, 8, 8, 3))
    x = [np.random.default_rng(9).integers(-128, 128, (1, 8, 8, 3)).astype(np.int8)]
    o8 = TflmModel(int8_model).run(x)[0].astype(int)
    o4 = TflmModel(model).run(x)[0].astype(int)
    assert np.abs(o8 - o4).max() <= 40 and len(model) < len(int8_model)


@needs_host_compiler
def test_export_int4_tflite_of_a_keras_network(tmp_path):
    """mcunet_tf.export.export_int4_tflite: a small MCUNet-space network (random weights),
    every filter int4, the C bit-exact with TFLM."""
    pytest.importorskip("mcunet_tf.tf_env")  # TensorFlow, with TF_USE_LEGACY_KERAS set first
    from mcunet_tf.arch import SearchSpace
    from mcunet_tf.export import calibration_data, export_int4_tflite, randomize_weights
    from mcunet_tf.keras_builder import build_keras_model

    spec = SearchSpace(width_mult=0.25, resolution=32, num_classes=10).smallest().to_network()
    model = build_keras_model(spec)
    data = calibration_data(spec, seed=1, num_samples=4)
    randomize_weights(model, data, seed=1)
    path = tmp_path / "net4.tflite"
    flatbuffer = export_int4_tflite(model, data, path)
    assert path.read_bytes() == flatbuffer
    graph = read_tflite(flatbuffer)
    filters = [graph.tensors[op.inputs[1]] for op in graph.ops
               if op.kind.value in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert filters and all(t.packed_int4 for t in filters)
    assert_host_matches_tflm(flatbuffer, tmp_path, np.random.default_rng(2), (1, 32, 32, 3))


def test_benchmark_bisection_in_child_processes(tmp_path):
    """benchmarks.int4_weights finds TFLM's smallest arena with every trial in a child
    process (the wheel segfaults on some too-small arenas): the in-process bisection's size."""
    from benchmarks.int4_weights import tflm_smallest_arena

    path = tmp_path / "chain.tflite"
    path.write_bytes(_chain_model())
    recorded = TflmModel(path.read_bytes()).arena_used_bytes()
    got = tflm_smallest_arena(path, recorded)
    want = TflmModel.smallest_arena(path.read_bytes(), hi=recorded, granularity=16)
    assert abs(got - want) <= 16 and TflmModel(path.read_bytes(), arena_size=got) is not None
