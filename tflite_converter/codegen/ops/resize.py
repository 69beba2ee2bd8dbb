"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR on 8-bit NHWC tensors (engine/kernels/
resize.c). Source coordinates are tabulated here with TFLite's arithmetic: float32 for
nearest neighbour (reference GetNearestNeighbor), 10-bit fixed point for int8 bilinear
(ComputeInterpolationValuesInteger)."""
from __future__ import annotations

import math

import numpy as np

from engine.quantization import round_half_away
from tflite_converter import opspec, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops._common import BYTE_TYPES, int32_array, refuse, require_dtype
from tflite_converter.ir import DType, Op, OpKind, ResizeAttrs
from tflite_converter.op_registry import OpRecord, register
from tflite_converter.schema import S

B = schema.BuiltinOperator

f32 = np.float32


def nearest_sources(in_size: int, out_size: int, align: bool, half: bool) -> list[int]:
    if align and out_size > 1:
        scale = f32(f32(in_size - 1) / f32(out_size - 1))
    else:
        scale = f32(f32(in_size) / f32(out_size))
    offset = f32(0.5) if half else f32(0.0)
    out = []
    for v in range(out_size):
        pos = f32(f32(f32(v) + offset) * scale)
        idx = round_half_away(float(pos)) if align else math.floor(float(pos))
        idx = min(idx, in_size - 1)
        out.append(max(0, idx) if half else idx)
    return out


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def bilinear_sources(in_size: int, out_size: int, align: bool, half: bool) -> list[int]:
    """(lower, upper, 10-bit weight) per output coordinate, flattened."""
    scale = _trunc_div((1 << 10) * in_size + out_size // 2, out_size)
    if align and out_size > 1:
        scale = _trunc_div((1 << 10) * (in_size - 1) + (out_size - 1) // 2, out_size - 1)
    out = []
    for v in range(out_size):
        scaled = v * scale + (_trunc_div(scale, 2) - (1 << 9) if half else 0)
        lo = max(_trunc_div(scaled, 1 << 10), 0)
        hi = min(_trunc_div(scaled + (1 << 10) - 1, 1 << 10), in_size - 1)
        out += [lo, hi, scaled - (1 << 10) * lo]
    return out


def _emit_resize(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs if isinstance(op.attrs, ResizeAttrs) else ResizeAttrs()
    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    if len(x.shape) != 4 or len(y.shape) != 4:
        refuse(op, "resize needs 4-D NHWC tensors")
    if x.shape[0] != y.shape[0] or x.shape[3] != y.shape[3]:
        refuse(op, "batch or channel count changes")
    if a.align_corners and a.half_pixel_centers:
        refuse(op, "align_corners and half_pixel_centers together")
    n, ih, iw, c = x.shape
    _, oh, ow, _ = y.shape
    g = int32_array(ctx, f"op{op.index}_resize", [n, ih, iw, c, oh, ow])
    src, dst = ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])
    if op.kind is OpKind.RESIZE_NEAREST_NEIGHBOR:
        for t in (x, y):
            require_dtype(op, t, BYTE_TYPES)
        ys = int32_array(ctx, f"op{op.index}_src_y", nearest_sources(ih, oh, a.align_corners, a.half_pixel_centers))
        xs = int32_array(ctx, f"op{op.index}_src_x", nearest_sources(iw, ow, a.align_corners, a.half_pixel_centers))
        return KernelCall(f"mcu_resize_nearest_8({src}, {dst}, {g}, {ys}, {xs});", ("resize",))
    for t in (x, y):
        require_dtype(op, t, (DType.INT8,))
    ys = int32_array(ctx, f"op{op.index}_bilinear_y", bilinear_sources(ih, oh, a.align_corners, a.half_pixel_centers))
    xs = int32_array(ctx, f"op{op.index}_bilinear_x", bilinear_sources(iw, ow, a.align_corners, a.half_pixel_centers))
    return KernelCall(f"mcu_resize_bilinear_s8({src}, {dst}, {g}, {ys}, {xs});", ("resize",))


register(
    OpRecord(OpKind.RESIZE_NEAREST_NEIGHBOR, B.RESIZE_NEAREST_NEIGHBOR,
             reader.read_resize(S.ResizeNearestNeighborOptionsT), validate.resize_rule, opspec.MOVE,
             _emit_resize),
    # bilinear interpolates: arithmetic per output element
    OpRecord(OpKind.RESIZE_BILINEAR, B.RESIZE_BILINEAR, reader.read_resize(S.ResizeBilinearOptionsT),
             validate.resize_rule, opspec.PER_OUTPUT, _emit_resize),
)

