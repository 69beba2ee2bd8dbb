"""The OpSpec of CONV_2D: its MACs, its scratch and the kernel variant it runs with the
scratch the planner grants (engine/kernels/conv2d.c, mcu_matmul_s8.h). The planner stores
the variant in the plan (MemoryPlan.variants); the emitter (codegen/ops/conv2d.py) reads it.
Mirrored C constants are checked by tests/test_c_constants.py."""
from __future__ import annotations

from typing import Optional

from tflite_converter.ir import Graph, Op
from tflite_converter.opspec import OpSpec, numel, op_pads, out_elems
from tflite_converter.write_order import INTERLEAVED_PIXEL, conv2d_output_shift


def conv2d_macs(graph: Graph, op: Op) -> int:
    # filter is [Cout, kh, kw, Cin]: every output element is kh*kw*Cin MACs
    f = graph.tensors[op.inputs[1]].shape
    return out_elems(graph, op) * f[1] * f[2] * f[3]


# Output pixels the CONV_2D kernels widen at once (engine/kernels/mcu_matmul_s8.h MCU_MM_NP);
# a kxk convolution may also run one pixel at a time (conv2d_pixel_block).
CONV_PIXEL_BLOCK = 3
CONV_PIXEL_BLOCKS = (CONV_PIXEL_BLOCK, 1)  # the blocks engine/kernels/conv2d.c has, widest first


def _is_pointwise(op: Op, kh: int, kw: int) -> bool:
    p = op_pads(op)
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


# Weight rows the int4 kernels (conv2d.c mcu_conv2d_s4 / _1x1_s4) unpack at a time
# (mcu_matmul_s8.h MCU_MM_RB).
CONV_INT4_ROWS = 2


def conv2d_int4_rows_bytes(kh: int, kw: int, cin: int) -> int:
    """The int4 kernels' room for CONV_INT4_ROWS unpacked weight rows of K4 int8 each, beside
    the columns."""
    return CONV_INT4_ROWS * ((kh * kw * cin + 3) // 4 * 4)


def conv2d_block_scratch(graph: Graph, op: Op, pixels: int, whole: bool = False) -> int:
    """conv2d_columns_bytes of `op`'s filter, plus for an int4 one conv2d_int4_rows_bytes or,
    `whole`, the whole filter unpacked (Cout rows of K4 int8: the "w" variants, which unpack
    it once per invoke instead of two rows per pixel block)."""
    w = graph.tensors[op.inputs[1]]
    f = w.shape
    columns = conv2d_columns_bytes(f[1], f[2], f[3], pixels, _is_pointwise(op, f[1], f[2]))
    if not w.packed_int4:
        return columns
    if whole:
        return columns + f[0] * ((f[1] * f[2] * f[3] + 3) // 4 * 4)
    return columns + conv2d_int4_rows_bytes(f[1], f[2], f[3])


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
        kh, kw, f[3], False, numel(graph.tensors[op.inputs[0]].shape), out_elems(graph, op)
    )


def conv2d_scratch(graph: Graph, op: Op, inplace: bool) -> int:
    """The minimum: the columns of conv2d_pixel_block pixels."""
    return conv2d_block_scratch(graph, op, conv2d_pixel_block(graph, op))


def conv2d_preferred_scratch(graph: Graph, op: Op, inplace: bool) -> int:
    """The widest block's columns: ~30% fewer instructions than one pixel at a time on a kxk
    layer, used where the plan has that room free at the op's step. An int4 filter whose
    minimum already is the widest block prefers the whole filter unpacked beside it (no
    unpacking per pixel block: the int8 kernel's speed, in room the arena has free anyway)."""
    whole = (graph.tensors[op.inputs[1]].packed_int4
             and conv2d_pixel_block(graph, op) == CONV_PIXEL_BLOCKS[0])
    return conv2d_block_scratch(graph, op, CONV_PIXEL_BLOCKS[0], whole)


def conv2d_variant(graph: Graph, op: Op, inplace: bool, scratch: int) -> Optional[str]:
    """CONV_2D's kernel variant for `scratch` granted bytes: the widest pixel block whose
    columns fit, "px3" or "px1" (conv2d_variant_pixels reads the number back); for an int4
    filter "px3w" first where the whole unpacked filter fits beside the widest block's
    columns (conv2d_variant_whole)."""
    if (graph.tensors[op.inputs[1]].packed_int4
            and conv2d_block_scratch(graph, op, CONV_PIXEL_BLOCKS[0], True) <= scratch):
        return f"px{CONV_PIXEL_BLOCKS[0]}w"
    for pixels in CONV_PIXEL_BLOCKS:
        if conv2d_block_scratch(graph, op, pixels) <= scratch:
            return f"px{pixels}"
    return None


def conv2d_variant_pixels(variant: str) -> int:
    """The pixel block of a conv2d_variant name."""
    return int(variant[2:].rstrip("w"))


def conv2d_variant_whole(variant: str) -> bool:
    """Whether a conv2d_variant name unpacks the whole int4 filter (a "w" variant)."""
    return variant.endswith("w")


# Input depths of the register-resident pointwise kernels (conv2d.c mcu_conv2d_1x1_reg_*),
# which the emitter runs for those depths when the requantisation is FAST_FULL.
REG_1X1_DEPTHS = (8, 16, 24, 32)


def conv2d_schedules(pointwise: bool, cin: int) -> tuple[int, ...]:
    """Every schedule a CONV_2D may run (write_order.conv_output_shift's `blocks`), whichever
    kernel the emitter picks: the pixel blocks, and for pointwise layers of a register
    kernel's depth its interleaved pixel. From shapes alone, so the NAS can ask."""
    if pointwise and cin in REG_1X1_DEPTHS:
        return (*CONV_PIXEL_BLOCKS, INTERLEAVED_PIXEL)
    return CONV_PIXEL_BLOCKS


def conv2d_shift(graph: Graph, op: Op) -> Optional[int]:
    """How far the output may start inside the dying input, whichever kernel runs."""
    f = graph.tensors[op.inputs[1]].shape
    return conv2d_output_shift(graph, op, conv2d_schedules(_is_pointwise(op, f[1], f[2]), f[3]))


SPEC = OpSpec(macs=conv2d_macs, scratch=conv2d_scratch, preferred_scratch=conv2d_preferred_scratch,
              variant=conv2d_variant, output_shift=conv2d_shift)
