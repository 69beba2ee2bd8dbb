"""The OpSpec of DEPTHWISE_CONV_2D: its MACs, in-place rule, scratch and the kernel variant
(engine/kernels/depthwise_conv2d.c: CHW plane, HWC, band, single-channel and four-channel
band kernels) it runs with the scratch the planner grants. The planner stores the variant in
the plan; the emitter (codegen/ops/depthwise_conv2d.py) reads it."""
from __future__ import annotations

import functools
from typing import Mapping, Optional

from tflite_converter.ir import ConvAttrs, Graph, Op
from tflite_converter.opspec import OpSpec, out_elems


def depthwise_macs(graph: Graph, op: Op) -> int:
    # filter is [1, kh, kw, Cout]: every output element is kh*kw MACs
    f = graph.tensors[op.inputs[1]].shape
    return out_elems(graph, op) * f[1] * f[2]


def depthwise_plane_bytes(oh: int, ow: int, kh: int, kw: int, stride_h: int, stride_w: int,
                          dil_h: int = 1, dil_w: int = 1) -> int:
    """The single source of the in-place depthwise buffer size: one channel of the padded
    input, as many rows and columns as the output reads, int8:
    ((out_h-1)*stride_h + (kh-1)*dil_h + 1) * ((out_w-1)*stride_w + (kw-1)*dil_w + 1).
    (With TFLite's SAME padding this is (H + top + bottom) * (W + left + right).) The kernel
    (engine/kernels/depthwise_conv2d.c) copies input channel c there, padding filled with the
    input zero point, before writing output channel c over the arena; it runs one batch
    element at a time, so the buffer is per image."""
    return ((oh - 1) * stride_h + (kh - 1) * dil_h + 1) * ((ow - 1) * stride_w + (kw - 1) * dil_w + 1)


def depthwise_inplace_scratch_bytes(graph: Graph, op: Op) -> int:
    """depthwise_plane_bytes of `op`."""
    a = op.attrs
    assert isinstance(a, ConvAttrs)
    f = graph.tensors[op.inputs[1]].shape
    _, oh, ow, _ = graph.tensors[op.outputs[0]].shape
    return depthwise_plane_bytes(oh, ow, f[1], f[2], a.stride_h, a.stride_w, a.dilation_h, a.dilation_w)


def depthwise_band_rows_bytes(ow: int, kh: int, kw: int, stride_w: int, dil_h: int = 1, dil_w: int = 1) -> int:
    """Scratch of the single-input-channel kernel (mcu_depthwise_conv2d_c1_s8): the padded
    rows one output row reads, ((kh-1)*dil_h + 1) * ((out_w-1)*stride_w + (kw-1)*dil_w + 1)."""
    return ((kh - 1) * dil_h + 1) * ((ow - 1) * stride_w + (kw - 1) * dil_w + 1)


def depthwise_band_bytes(graph: Graph, op: Op) -> int:
    """depthwise_band_rows_bytes of `op`."""
    a = op.attrs
    assert isinstance(a, ConvAttrs)
    f = graph.tensors[op.inputs[1]].shape
    ow = graph.tensors[op.outputs[0]].shape[2]
    return depthwise_band_rows_bytes(ow, f[1], f[2], a.stride_w, a.dilation_h, a.dilation_w)


def is_single_channel_image(shape: tuple[int, ...]) -> bool:
    """An NHWC tensor of one channel: a plane already (see depthwise_single_channel)."""
    return len(shape) == 4 and shape[3] == 1


def depthwise_single_channel(graph: Graph, op: Op, inplace: bool) -> bool:
    """Whether the op runs out of place on a single input channel (micro_speech's and
    person_detect's first layers): then the input is a plane already and the band kernel
    pads a few rows of it at a time instead of bounds-testing every tap."""
    return not inplace and is_single_channel_image(graph.tensors[op.inputs[0]].shape)


def depthwise_min_scratch_bytes(inplace: bool, single_channel: bool, oh: int, ow: int, kh: int, kw: int,
                                stride_h: int, stride_w: int, dil_h: int = 1, dil_w: int = 1) -> int:
    """depthwise_scratch from shapes (`single_channel`: depthwise_single_channel's answer).
    In place: one padded channel plane. Single input channel: one band of rows. Otherwise the
    direct kernels, which need none."""
    if inplace:
        return depthwise_plane_bytes(oh, ow, kh, kw, stride_h, stride_w, dil_h, dil_w)
    return depthwise_band_rows_bytes(ow, kh, kw, stride_w, dil_h, dil_w) if single_channel else 0


def depthwise_scratch(graph: Graph, op: Op, inplace: bool) -> int:
    """depthwise_min_scratch_bytes of `op`."""
    a = op.attrs
    assert isinstance(a, ConvAttrs)
    f = graph.tensors[op.inputs[1]].shape
    _, oh, ow, _ = graph.tensors[op.outputs[0]].shape
    return depthwise_min_scratch_bytes(inplace, depthwise_single_channel(graph, op, inplace), oh, ow, f[1], f[2],
                                       a.stride_h, a.stride_w, a.dilation_h, a.dilation_w)


# Channels the channel-group depthwise kernel (mcu_depthwise_conv2d_hwc_s8) handles at once.
DEPTHWISE_GROUP = 4


def depthwise_hwc_scratch_bytes(graph: Graph, op: Op) -> int:
    """In place, the channel-group kernel copies one group of input channels at a time:
    in_h * in_w * DEPTHWISE_GROUP bytes."""
    _, ih, iw, _ = graph.tensors[op.inputs[0]].shape
    return ih * iw * DEPTHWISE_GROUP


@functools.lru_cache(maxsize=1 << 14)  # the search asks about the same layers again and again
def _valid_taps(size: int, out: int, k: int, stride: int, dil: int, pad: int) -> float:
    """Mean number of the k taps of one axis that fall inside the image, over the outputs."""
    total = 0
    for o in range(out):
        base = o * stride - pad
        total += sum(1 for t in range(k) if 0 <= base + t * dil < size)
    return total / out


def depthwise_prefers_hwc(graph: Graph, op: Op) -> bool:
    """Whether the channel-group kernel (valid taps only, four channels a tap) is expected to
    run fewer instructions than the one-channel plane kernels: :func:`depthwise_prefers_hwc_shape`
    on `op`'s shapes and attributes."""
    a = op.attrs
    assert isinstance(a, ConvAttrs)
    _, ih, iw, _ = graph.tensors[op.inputs[0]].shape
    _, kh, kw, _ = graph.tensors[op.inputs[1]].shape
    _, oh, ow, _ = graph.tensors[op.outputs[0]].shape
    return depthwise_prefers_hwc_shape(ih, iw, kh, kw, oh, ow, a)


def depthwise_prefers_hwc_shape(ih: int, iw: int, kh: int, kw: int, oh: int, ow: int,
                                a: ConvAttrs) -> bool:
    """The cost rule behind :func:`depthwise_prefers_hwc`, from shapes alone (the search's
    size estimates use it without a graph). A model of the DSP build's cost per output
    element, fitted to Cortex-M7 instruction counts of tinyengine_mcunet_vww's layers: the
    plane kernels cost about 5 instructions a tap for 3x3 (two outputs share each word) and
    4.5 for larger kernels, plus ~1000 a channel (plane fill, set-up) spread over the
    channel's outputs; the group kernel ~4.15 a valid tap plus ~68 (pixel set-up, four
    requantisations). It wins where padding is most of the window: 3x3..7x7 kernels on maps
    of about 5x5 and below."""
    if a.depth_multiplier != 1:
        return False
    p = a.pads
    valid = (_valid_taps(ih, oh, kh, a.stride_h, a.dilation_h, p.top)
             * _valid_taps(iw, ow, kw, a.stride_w, a.dilation_w, p.left))
    fitted = a.dilation_h == a.dilation_w == 1 and a.stride_w in (1, 2)
    per_tap = (5.0 if kh == kw == 3 else 4.5) if fitted else 8.0
    plane = per_tap * kh * kw + 1000.0 / (oh * ow)
    return 68.0 + 4.15 * valid < plane


def depthwise_runs_hwc(graph: Graph, op: Op, consumers: Mapping[int, int]) -> bool:
    """Whether the engine runs `op` with the channel-group kernel: out of place (its input is
    read again later, or is a graph input) it always does; in place where the cost rule
    prefers it (the planner grants its buffer then). `consumers`: readers per tensor."""
    x = op.inputs[0]
    return consumers.get(x, 0) > 1 or x in graph.inputs or depthwise_prefers_hwc(graph, op)


def depthwise_preferred_scratch(graph: Graph, op: Op, inplace: bool) -> int:
    """In place, the channel-group buffer where that kernel is the faster one; out of place on
    a single input channel, the whole padded plane (the plane kernel, faster than the band
    one). The emitter picks the kernel by what the plan granted (ctx.scratch_bytes)."""
    need = depthwise_scratch(graph, op, inplace)
    if inplace and depthwise_prefers_hwc(graph, op):
        return max(need, depthwise_hwc_scratch_bytes(graph, op))
    if depthwise_single_channel(graph, op, inplace):
        return max(need, depthwise_inplace_scratch_bytes(graph, op))
    return need


# Output channels the four-channel band kernel (mcu_depthwise_conv2d_c1g4_s8) computes from
# one band word (MCU_DW_BAND4).
BAND4_CHANNELS = 4


def depthwise_band4_fits(op: Op, depth_mult: int, k_w: int) -> bool:
    """Whether the four-channel band kernel applies: whole groups of BAND4_CHANNELS output
    channels and of four taps per kernel row (it reads the band a word at a time and has no
    row padding), no dilation."""
    a = op.attrs
    assert isinstance(a, ConvAttrs)
    return (depth_mult % BAND4_CHANNELS == 0 and k_w % 4 == 0 and a.dilation_h == 1
            and a.dilation_w == 1)


def depthwise_variant(graph: Graph, op: Op, inplace: bool, scratch: int) -> Optional[str]:
    """DEPTHWISE_CONV_2D's kernel (the values of codegen's DwKernel). In place: the
    channel-group kernel "hwc" where the cost rule prefers it and `scratch` holds its buffer,
    else the channel-plane kernel "plane". Out of place on one input channel: "plane" if
    `scratch` holds a whole plane, else the band kernel ("band4" where it applies, "band").
    Out of place on several channels: "hwc" reading the input where it lies (depth
    multiplier 1), else "direct" (bounds-tested taps, no scratch)."""
    x, w, y = (graph.tensors[t].shape for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    if len(x) != 4 or len(w) != 4 or len(y) != 4 or not x[3] or y[3] % x[3]:
        return None  # the emitter refuses such a layer by name
    depth_mult = y[3] // x[3]
    if inplace:
        if depthwise_prefers_hwc(graph, op) and scratch >= depthwise_hwc_scratch_bytes(graph, op):
            return "hwc"
        return "plane"
    if depthwise_single_channel(graph, op, inplace):
        if scratch >= depthwise_inplace_scratch_bytes(graph, op):
            return "plane"
        return "band4" if depthwise_band4_fits(op, depth_mult, w[2]) else "band"
    return "hwc" if depth_mult == 1 else "direct"


def depthwise_inplace(graph: Graph, op: Op) -> tuple[int, ...]:
    """MCUNet's in-place depthwise convolution: with depth multiplier 1 and batch 1, output
    channel c only writes bytes whose offset mod C == c, i.e. bytes of input channel c, which
    the kernel has copied to the one-channel scratch first. Holds for any stride, dilation and
    padding (the buffer takes the larger of the two sizes)."""
    a = op.attrs
    if not isinstance(a, ConvAttrs) or a.depth_multiplier != 1 or len(op.outputs) != 1:
        return ()
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[0] != 1 or y.shape[0] != 1:
        return ()
    if x.shape[3] != y.shape[3] or x.dtype.itemsize != 1 or y.dtype.itemsize != 1:
        return ()
    return (0,)


SPEC = OpSpec(macs=depthwise_macs, scratch=depthwise_scratch, preferred_scratch=depthwise_preferred_scratch,
              inplace=depthwise_inplace, variant=depthwise_variant)
