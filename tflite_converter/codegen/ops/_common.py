"""Helpers shared by the emitters of the element-wise, reduction and data-movement ops:
refusals, quantization lookup, and folding shapes into the fixed-rank stride descriptions the
kernels take (engine/kernels/mcu_broadcast.h, copy_nd.c, mean.c)."""
from __future__ import annotations

from typing import NoReturn, Sequence

import numpy as np

from engine import quantization
from tflite_converter.codegen.api import EmitContext
from tflite_converter.errors import ConversionError, Problem
from tflite_converter.ir import Activation, DType, Op, Tensor

BCAST_DIMS = 6  # MCU_BCAST_DIMS
COPY_DIMS = 6  # MCU_COPY_DIMS
REDUCE_DIMS = 4  # MCU_REDUCE_DIMS (mcu_reduce.h)
BYTE_TYPES = (DType.INT8, DType.UINT8)


def refuse(op: Op, reason: str, tensor: Tensor | None = None) -> NoReturn:
    raise ConversionError(Problem(reason, op.index, op.kind.value,
                                  tensor.name if tensor is not None else None))


def qparams(op: Op, t: Tensor) -> tuple[float, int]:
    """(scale, zero_point) of a per-tensor quantized tensor, or a refusal."""
    if t.quant is None or t.quant.scale.size == 0:
        refuse(op, "tensor is not quantized", t)
    if t.quant.scale.size != 1:
        refuse(op, "per-channel quantization is not supported for this op", t)
    return float(t.quant.scale[0]), int(t.quant.zero_point[0])


def require_dtype(op: Op, t: Tensor, allowed: Sequence[DType]) -> None:
    if t.dtype not in allowed:
        names = "/".join(d.value for d in allowed)
        refuse(op, f"{t.dtype.value} tensors are not supported (only {names})", t)


def act_range(op: Op, activation: Activation, out: Tensor) -> tuple[int, int]:
    scale, zp = qparams(op, out)
    try:
        return quantization.activation_range(activation.value, scale, zp)
    except quantization.UnsupportedQuantization as e:
        refuse(op, str(e))


def offset_ptr(ptr: str, offset: int) -> str:
    """A C pointer expression `offset` elements past `ptr`."""
    return ptr if offset == 0 else f"({ptr} + {offset})"


def int32_array(ctx: EmitContext, hint: str, values: Sequence[int]) -> str:
    return ctx.const_array(hint, np.asarray(list(values), dtype=np.int64), "int32_t")


def contiguous_strides(shape: Sequence[int]) -> list[int]:
    strides, acc = [], 1
    for d in reversed(list(shape)):
        strides.append(acc)
        acc *= d
    return strides[::-1]


def fold(dims: Sequence[int], *strides: Sequence[int]) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dimensions and merge neighbours that are contiguous in every stride set,
    so kernels loop over as few, as long rows as possible."""
    keep = [k for k, d in enumerate(dims) if d != 1]
    d = [int(dims[k]) for k in keep]
    ss = [[int(s[k]) for k in keep] for s in strides]
    k = len(d) - 2
    while k >= 0:
        if all(s[k] == s[k + 1] * d[k + 1] for s in ss):
            d[k] *= d[k + 1]
            for s in ss:
                s[k] = s[k + 1]
                del s[k + 1]
            del d[k + 1]
        k -= 1
    return d, ss


def pad_front(dims: list[int], strides: list[list[int]], rank: int
              ) -> tuple[list[int], list[list[int]]] | None:
    """Left-pad to `rank` dimensions (size 1, stride 0); None if there are more."""
    if len(dims) > rank:
        return None
    n = rank - len(dims)
    if not dims:  # a single element
        return [1] * (rank - 1) + [1], [[0] * (rank - 1) + [1] for _ in strides]
    return [1] * n + dims, [[0] * n + s for s in strides]


def broadcast_layout(op: Op, out_shape: Sequence[int], a_shape: Sequence[int],
                     b_shape: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """(dims, a_strides, b_strides) over BCAST_DIMS dimensions, numpy broadcasting rules."""
    rank = len(out_shape)
    if len(a_shape) > rank or len(b_shape) > rank:
        refuse(op, "an input has more dimensions than the output")

    def strides_of(shape: Sequence[int]) -> list[int]:
        full = [1] * (rank - len(shape)) + list(shape)
        cs = contiguous_strides(full)
        out = []
        for k, (d, o) in enumerate(zip(full, out_shape)):
            if d == o:
                out.append(cs[k] if d != 1 else 0)
            elif d == 1:
                out.append(0)
            else:
                refuse(op, f"shapes {tuple(a_shape)} and {tuple(b_shape)} do not broadcast "
                           f"to {tuple(out_shape)}")
        return out

    sa, sb = strides_of(a_shape), strides_of(b_shape)
    so = contiguous_strides(out_shape)
    # size-1 output dims carry stride 0 everywhere; fold merges the rest
    d, (fa, fb, _fo) = fold(list(out_shape), sa, sb, so)
    padded = pad_front(d, [fa, fb], BCAST_DIMS)
    if padded is None:
        refuse(op, f"broadcast needs more than {BCAST_DIMS} dimensions")
    dims, (pa, pb) = padded
    return dims, pa, pb


def copy_layout(op: Op, dims: Sequence[int], src: Sequence[int], dst: Sequence[int]
                ) -> tuple[list[int], list[int], list[int]]:
    d, (s, t) = fold(dims, src, dst)
    padded = pad_front(d, [s, t], COPY_DIMS)
    if padded is None:
        refuse(op, f"the copy needs more than {COPY_DIMS} dimensions after folding")
    dd, (ps, pt) = padded
    return dd, ps, pt


def emit_copy(ctx: EmitContext, op: Op, hint: str, src_ptr: str, dst_ptr: str,
              dims: Sequence[int], src: Sequence[int], dst: Sequence[int]) -> str:
    if int(np.prod(dims)) == 0:
        return ""
    d, s, t = copy_layout(op, dims, src, dst)
    return (f"mcu_copy_nd_8({src_ptr}, {dst_ptr}, {int32_array(ctx, hint + '_dims', d)}, "
            f"{int32_array(ctx, hint + '_src_strides', s)}, "
            f"{int32_array(ctx, hint + '_dst_strides', t)});")


def same_offset(ctx: EmitContext, a: int, b: int, byte_offset: int = 0) -> bool:
    """True when the plan put tensor a exactly at tensor b's offset + byte_offset (a copy
    between them is then a no-op, e.g. a concatenation input written in place)."""
    ta, tb = ctx.tensor(a), ctx.tensor(b)
    if ta.is_constant or tb.is_constant:
        return False
    return ctx.offset(a) == ctx.offset(b) + byte_offset
