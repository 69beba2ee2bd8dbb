"""Ops that describe their own costs: MACs, kernel scratch and in-place / alias behaviour.

One small `OpSpec` per `OpKind`, looked up in `SPECS`. The memory planner (and through it the
NAS SRAM oracle), the schedule, the plan report and the C emitter all ask these functions, so
there is a single answer to "how much scratch does this kernel need" and "may this op write
over its input". Each rule is a short named function so the engine side can adjust one
kernel's figure without touching the planner.

Nothing here imports anything heavy: it runs thousands of times a second inside the NAS.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional

from tflite_converter.ir import (
    Activation,
    ConcatAttrs,
    ConvAttrs,
    Graph,
    Op,
    OpKind,
    Pads,
    PoolAttrs,
)

MacsFn = Callable[[Graph, Op], int]
ScratchFn = Callable[[Graph, Op, bool], int]
InplaceFn = Callable[[Graph, Op], tuple[int, ...]]
# (graph, op, runs in place, scratch bytes granted) -> the kernel variant's name, or None when
# no variant runs in that scratch (only a hand-made plan can do that)
VariantFn = Callable[[Graph, Op, bool, int], Optional[str]]


# ---------------------------------------------------------------------------------------------
# Small helpers


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _out_elems(graph: Graph, op: Op) -> int:
    return sum(_numel(graph.tensors[t].shape) for t in op.outputs if t >= 0)


def _in_elems(graph: Graph, op: Op) -> int:
    return _numel(graph.tensors[op.inputs[0]].shape) if op.inputs and op.inputs[0] >= 0 else 0


def _zero_macs(graph: Graph, op: Op) -> int:
    return 0


def _no_scratch(graph: Graph, op: Op, inplace: bool) -> int:
    return 0


def _never_inplace(graph: Graph, op: Op) -> tuple[int, ...]:
    return ()


# the planner skips the in-place analysis of ops whose rule is this one
NEVER_INPLACE: InplaceFn = _never_inplace


_NO_PADS = Pads()  # built once: a frozen dataclass costs microseconds to construct


def _pads(op: Op) -> Pads:
    attrs = op.attrs
    return attrs.pads if isinstance(attrs, (ConvAttrs, PoolAttrs)) else _NO_PADS


# ---------------------------------------------------------------------------------------------
# MACs (multiply-accumulates; one per output element for element-wise arithmetic)


def conv2d_macs(graph: Graph, op: Op) -> int:
    # filter is [Cout, kh, kw, Cin]: every output element is kh*kw*Cin MACs
    f = graph.tensors[op.inputs[1]].shape
    return _out_elems(graph, op) * f[1] * f[2] * f[3]


def depthwise_macs(graph: Graph, op: Op) -> int:
    # filter is [1, kh, kw, Cout]: every output element is kh*kw MACs
    f = graph.tensors[op.inputs[1]].shape
    return _out_elems(graph, op) * f[1] * f[2]


def fully_connected_macs(graph: Graph, op: Op) -> int:
    # weights are [units, depth]: every output element is `depth` MACs
    w = graph.tensors[op.inputs[1]].shape
    return _out_elems(graph, op) * w[-1]


def pool_macs(graph: Graph, op: Op) -> int:
    a = op.attrs
    assert isinstance(a, PoolAttrs)
    return _out_elems(graph, op) * a.filter_h * a.filter_w


def reduce_macs(graph: Graph, op: Op) -> int:
    return _in_elems(graph, op)


def per_output_macs(graph: Graph, op: Op) -> int:
    return _out_elems(graph, op)


# ---------------------------------------------------------------------------------------------
# Scratch bytes (planned in the arena, living for the op only)


# Output pixels the CONV_2D kernels widen at once (engine/kernels/mcu_matmul_s8.h MCU_MM_NP);
# a kxk convolution may also run one pixel at a time (conv2d_pixel_block).
CONV_PIXEL_BLOCK = 3
CONV_PIXEL_BLOCKS = (CONV_PIXEL_BLOCK, 1)  # the blocks engine/kernels/conv2d.c has, widest first


def _is_pointwise(op: Op, kh: int, kw: int) -> bool:
    p = _pads(op)
    return kh == 1 and kw == 1 and p.top == p.bottom == p.left == p.right == 0


def conv2d_columns_bytes(kh: int, kw: int, cin: int, pixels: int, pointwise: bool) -> int:
    """Scratch of engine/kernels/conv2d.c run `pixels` output pixels at a time: that many
    int16 columns of K4 = kh*kw*Cin rounded up to 4 values (the inner loop then loads each
    input pair once per output channel pair, no per-MAC sign extension), plus, unless the
    convolution is `pointwise` (1x1, no padding), K int8 bytes to gather one receptive field
    before widening it. From shapes alone, so the NAS can ask without building the op."""
    k = kh * kw * cin
    columns = pixels * ((k + 3) // 4 * 4) * 2
    return columns if pointwise else columns + k


def conv2d_block_scratch(graph: Graph, op: Op, pixels: int) -> int:
    """conv2d_columns_bytes of `op`'s filter."""
    f = graph.tensors[op.inputs[1]].shape
    return conv2d_columns_bytes(f[1], f[2], f[3], pixels, _is_pointwise(op, f[1], f[2]))


def conv2d_min_pixel_block(kh: int, kw: int, cin: int, pointwise: bool, in_elems: int, out_elems: int) -> int:
    """The pixel block the *minimum* scratch is sized for: CONV_PIXEL_BLOCK, except for a kxk
    convolution whose columns would take more than a quarter of its input plus output bytes
    (large kh*kw*Cin on small images, e.g. a 5x5x32 filter on 16x16): there one pixel at a
    time keeps the scratch from raising the arena peak. The planner grants the wider block's
    scratch afterwards wherever the arena has room for it (conv2d_preferred_scratch)."""
    if pointwise:
        return CONV_PIXEL_BLOCK
    room = (in_elems + out_elems) // 4
    return CONV_PIXEL_BLOCK if conv2d_columns_bytes(kh, kw, cin, CONV_PIXEL_BLOCK, False) <= room else 1


def conv2d_min_scratch_bytes(kh: int, kw: int, cin: int, pointwise: bool, in_elems: int, out_elems: int) -> int:
    """conv2d_scratch from shapes: the columns of conv2d_min_pixel_block pixels."""
    return conv2d_columns_bytes(
        kh, kw, cin, conv2d_min_pixel_block(kh, kw, cin, pointwise, in_elems, out_elems), pointwise
    )


def conv2d_pixel_block(graph: Graph, op: Op) -> int:
    """conv2d_min_pixel_block of `op`."""
    f = graph.tensors[op.inputs[1]].shape
    kh, kw = f[1], f[2]
    if _is_pointwise(op, kh, kw):
        return CONV_PIXEL_BLOCK
    return conv2d_min_pixel_block(
        kh, kw, f[3], False, _numel(graph.tensors[op.inputs[0]].shape), _out_elems(graph, op)
    )


def conv2d_scratch(graph: Graph, op: Op, inplace: bool) -> int:
    """The minimum: the columns of conv2d_pixel_block pixels."""
    return conv2d_block_scratch(graph, op, conv2d_pixel_block(graph, op))


def conv2d_preferred_scratch(graph: Graph, op: Op, inplace: bool) -> int:
    """The widest block's columns: ~30% fewer instructions than one pixel at a time on a kxk
    layer, used where the plan has that room free at the op's step."""
    return conv2d_block_scratch(graph, op, CONV_PIXEL_BLOCKS[0])


def conv2d_variant(graph: Graph, op: Op, inplace: bool, scratch: int) -> Optional[str]:
    """CONV_2D's kernel variant for `scratch` granted bytes: the widest pixel block whose
    columns fit, "px3" or "px1" (conv2d_variant_pixels reads the number back)."""
    for pixels in CONV_PIXEL_BLOCKS:
        if conv2d_block_scratch(graph, op, pixels) <= scratch:
            return f"px{pixels}"
    return None


def conv2d_variant_pixels(variant: str) -> int:
    """The pixel block of a conv2d_variant name."""
    return int(variant[2:])


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


# ---------------------------------------------------------------------------------------------
# In-place candidates: inputs whose buffer the output may take over (same offset) when they
# die at this op. Only where every output element is written after the input bytes under it
# have been read, whatever the kernel's loop order within that rule.


def _same_layout(graph: Graph, a: int, b: int) -> bool:
    ta, tb = graph.tensors[a], graph.tensors[b]
    return ta.shape == tb.shape and ta.dtype.itemsize == tb.dtype.itemsize


def elementwise_unary_inplace(graph: Graph, op: Op) -> tuple[int, ...]:
    """Output element i depends on input element i only, same byte width: out may be in."""
    if not op.inputs or op.inputs[0] < 0 or len(op.outputs) != 1:
        return ()
    return (0,) if _same_layout(graph, op.inputs[0], op.outputs[0]) else ()


def elementwise_binary_inplace(graph: Graph, op: Op) -> tuple[int, ...]:
    """ADD/SUB/MUL/MAXIMUM/MINIMUM: an input with exactly the output's shape (not
    broadcast) and byte width; either operand qualifies."""
    if len(op.outputs) != 1:
        return ()
    out = op.outputs[0]
    ins = op.inputs
    # written out for the two operands: this runs for every ADD of every NAS candidate
    first = len(ins) > 0 and ins[0] >= 0 and _same_layout(graph, ins[0], out)
    second = len(ins) > 1 and ins[1] >= 0 and _same_layout(graph, ins[1], out)
    if first:
        return (0, 1) if second else (0,)
    return (1,) if second else ()


def prelu_inplace(graph: Graph, op: Op) -> tuple[int, ...]:
    # alpha (input 1) is broadcast; only the data input can be taken over
    return elementwise_unary_inplace(graph, op)


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


# ---------------------------------------------------------------------------------------------
# The registry


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """What one op kind costs. `alias`: the output is the input's bytes under another shape
    (no code runs, same offset, lifetimes merged)."""

    macs: MacsFn = _zero_macs
    scratch: ScratchFn = _no_scratch
    # more scratch the kernel runs faster with (>= `scratch`); None: the minimum is all it uses.
    # The planner grants up to this much where the arena has the room (planner.scratch.grant_scratch).
    preferred_scratch: Optional[ScratchFn] = None
    inplace: InplaceFn = _never_inplace
    alias: bool = False
    # kernels with several variants: which one runs, given in-place and the granted scratch;
    # the planner stores the answer in the plan (MemoryPlan.variants), the emitter reads it
    variant: Optional[VariantFn] = None


# Specs shared by several op kinds; each op's record (tflite_converter/op_registry.py) names one.
UNARY = OpSpec(macs=per_output_macs, inplace=elementwise_unary_inplace)
BINARY = OpSpec(macs=per_output_macs, inplace=elementwise_binary_inplace)
ALIAS = OpSpec(alias=True)
MOVE = OpSpec()  # data movement: no arithmetic, no scratch, writes elsewhere
PER_OUTPUT = OpSpec(macs=per_output_macs)  # arithmetic per output element, never in place
CONV2D = OpSpec(macs=conv2d_macs, scratch=conv2d_scratch,
                preferred_scratch=conv2d_preferred_scratch, variant=conv2d_variant)
DEPTHWISE_CONV2D = OpSpec(macs=depthwise_macs, scratch=depthwise_scratch,
                          preferred_scratch=depthwise_preferred_scratch, inplace=depthwise_inplace,
                          variant=depthwise_variant)
FULLY_CONNECTED = OpSpec(macs=fully_connected_macs)
POOL = OpSpec(macs=pool_macs)
REDUCE = OpSpec(macs=reduce_macs)
PRELU = OpSpec(macs=per_output_macs, inplace=prelu_inplace)

# Every record's spec keyed by member name (`_name_`, a plain attribute): enum members hash and
# `.name` resolves through Python-level code, and these lookups run for every op of every
# candidate the NAS plans. Filled from the records on the first lookup.
_BY_NAME: dict[str, OpSpec] = {}


def _spec(kind: OpKind) -> OpSpec:
    try:
        return _BY_NAME[kind._name_]
    except KeyError:
        pass
    from tflite_converter import op_registry  # the records import this module

    for k, r in op_registry.records().items():
        _BY_NAME[k._name_] = r.spec
    if kind._name_ not in _BY_NAME:
        raise KeyError(f"no op record for {kind.value}")
    return _BY_NAME[kind._name_]


def spec(kind: OpKind) -> OpSpec:
    return _spec(kind)


def macs(graph: Graph, op: Op) -> int:
    return _spec(op.kind).macs(graph, op)


def scratch_bytes(graph: Graph, op: Op, inplace: bool) -> int:
    """Kernel scratch of `op`, planned in the arena for that op only. `inplace` says whether
    the planner runs the op in place (the in-place depthwise kernel needs its channel buffer)."""
    return _spec(op.kind).scratch(graph, op, inplace)


def preferred_scratch_bytes(graph: Graph, op: Op, inplace: bool) -> int:
    """The scratch `op` would like (never below scratch_bytes); the planner grants what fits."""
    sp = _spec(op.kind)
    need = sp.scratch(graph, op, inplace)
    return need if sp.preferred_scratch is None else max(need, sp.preferred_scratch(graph, op, inplace))


def kernel_variant(graph: Graph, op: Op, inplace: bool, scratch: int) -> Optional[str]:
    """The kernel variant `op` runs with `scratch` granted bytes (None: the op has one kernel,
    or no variant runs in that scratch)."""
    rule = _spec(op.kind).variant
    return None if rule is None else rule(graph, op, inplace, scratch)


def inplace_candidates(graph: Graph, op: Op) -> tuple[int, ...]:
    """Indices into op.inputs of every input the output may take over exactly."""
    return _spec(op.kind).inplace(graph, op)


def inplace_input(graph: Graph, op: Op) -> Optional[int]:
    """The first input (index into op.inputs) whose buffer the output may take over, or None.
    The planner additionally requires that input to die at this op."""
    c = inplace_candidates(graph, op)
    return c[0] if c else None


def is_alias(op: Op) -> bool:
    return _spec(op.kind).alias


def concat_slice_axis_ok(graph: Graph, op: Op) -> bool:
    """CONCATENATION whose inputs are contiguous slices of its output: every dimension before
    the axis is 1, no fused activation."""
    a = op.attrs
    if not isinstance(a, ConcatAttrs) or len(op.outputs) != 1:
        return False
    shape = graph.tensors[op.outputs[0]].shape
    if a.activation is not Activation.NONE or a.axis >= len(shape):
        return False
    return _numel(shape[: a.axis]) == 1
