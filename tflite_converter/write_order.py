"""How far an op's output may start inside its dying input: the write order of the kernels.

A kernel that reads its input front to back and writes its output front to back can place
its output over the part of the input it has finished reading (vMCU, MLSys 2024). The
planner may then put the output at `input offset + d` for any `d <= output_shift(...)`
(`d` negative: the output starts below the input), which lowers the arena below the
layer-by-layer bound where the op is the peak.

The proof is a replay of the kernel's schedule. engine/kernels/conv2d.c runs every variant
as a sequence of *blocks* of output pixels in row-major order: a block first reads all its
inputs (gathered into the scratch columns), then writes its outputs (the matrix core reads
only the scratch). So a block's writes can only hurt the reads of *later* blocks, and the
output at offset `d` is safe iff for every block b

    d + (highest output byte written by blocks before b) <= (lowest input byte b reads).

The lowest input byte of output pixel (y, x) is bounded below by the window's first row and
column clamped into the image (padded taps read nothing): exact for windows inside the
image, conservative at its borders. The last block of an image of at least MCU_MM_NP pixels
starts at n - MCU_MM_NP (it rewinds over pixels already written: `mcu_block_start`), which
the replay includes. The pointwise register kernels (mcu_conv2d_1x1_reg_*) are different:
one pixel at a time, and where the inputs do not stay in registers (the portable build's
24/32-channel path, the DSP build's odd last channel) they read the pixel's input again for
each output channel they write, so a pixel's own writes must stay clear of its own input
(`INTERLEAVED_PIXEL`). Every schedule the op might run is replayed and the smallest shift
kept, so the answer holds whatever scratch the planner grants and whichever kernel the
emitter picks.

The element-wise kernels that change the byte width (QUANTIZE float32 -> int8 / uint8 in
engine/kernels/quantize.c, DEQUANTIZE through mcu_lut_f32 in lut.c) read element i and then
write element i, for i = 0, 1, ...: `elementwise_output_shift`. (Their pointers are of
different types, one of them a character type, so C's aliasing rules keep that order.)
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from tflite_converter.ir import ConvAttrs, Graph, Op, OpKind

# A schedule of `conv_output_shift`: one pixel at a time, its reads interleaved with its writes.
INTERLEAVED_PIXEL = 0


def block_starts(n_pix: int, np_: int) -> list[int]:
    """The first pixel of every block engine/kernels/conv2d.c runs, in order: blocks of
    `np_` pixels, the last one moved back to end at the image's end (mcu_block_start);
    images smaller than a block run one pixel at a time."""
    if np_ <= 1 or n_pix < np_:
        return list(range(n_pix))
    return [p if p + np_ <= n_pix else n_pix - np_ for p in range(0, n_pix, np_)]


@functools.lru_cache(maxsize=4096)
def conv_output_shift(in_h: int, in_w: int, in_c: int, out_h: int, out_w: int, out_c: int,
                      stride_h: int, stride_w: int, pad_top: int, pad_left: int,
                      blocks: tuple[int, ...]) -> int:
    """The largest safe `output offset - input offset` in bytes (int8) of a convolution run
    in pixel blocks of each width in `blocks` (INTERLEAVED_PIXEL: one pixel whose reads and
    writes interleave), from its geometry alone (the NAS asks too)."""
    n = out_h * out_w
    if n == 0:
        return 0
    ys, xs = np.divmod(np.arange(n, dtype=np.int64), out_w)
    row = np.maximum(ys * stride_h - pad_top, 0)
    col = np.maximum(xs * stride_w - pad_left, 0)
    low = (np.minimum(row, in_h - 1) * in_w + np.minimum(col, in_w - 1)) * in_c
    best: Optional[int] = None
    for width in blocks:
        starts = np.asarray(block_starts(n, width), dtype=np.int64)
        w = 1 if (width <= 1 or n < width) else width
        ends = (starts + w) * out_c  # each block's highest output byte (exclusive)
        lowest_read = low[starts[:, None] + np.arange(w)].min(axis=1)
        # the highest output byte written before each block reads (one pixel whose reads and
        # writes interleave: its own writes count too)
        written = np.maximum.accumulate(ends)
        if width != INTERLEAVED_PIXEL:
            written = np.concatenate(([0], written[:-1]))
        after = written != 0
        # one block: every read before the first write
        shift = int((lowest_read[after] - written[after]).min()) if after.any() else in_h * in_w * in_c
        best = shift if best is None or shift < best else best
    assert best is not None
    return best


def aligned_shift(d: int, alignment: int, out_bytes: int) -> Optional[int]:
    """The shift the planner uses for a largest safe shift `d`: rounded down to the
    `alignment` (every offset in the arena is aligned), or None where the output
    (`out_bytes`, already rounded) could not then share an aligned block with its input.
    The planner (planner/layout.py) and the NAS fast path (nas/fast_oracle.py) both use it."""
    d = d // alignment * alignment
    return d if d > -out_bytes else None


def conv2d_output_shift(graph: Graph, op: Op, blocks: tuple[int, ...]) -> Optional[int]:
    """conv_output_shift of a CONV_2D op of int8 tensors, one image (None: no proof here)."""
    if op.kind is not OpKind.CONV_2D or not isinstance(op.attrs, ConvAttrs):
        return None
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x.dtype.np.itemsize != 1 or y.dtype.np.itemsize != 1 or len(x.shape) != 4 or len(y.shape) != 4:
        return None
    if x.shape[0] != 1:  # the emitter runs a batch image after image: not replayed here
        return None
    _, ih, iw, ic = x.shape
    _, oh, ow, oc = y.shape
    a = op.attrs
    return conv_output_shift(ih, iw, ic, oh, ow, oc, a.stride_h, a.stride_w, a.pads.top, a.pads.left,
                             blocks)


def elementwise_output_shift(n: int, in_bytes: int, out_bytes: int) -> int:
    """The largest safe `output offset - input offset` of a kernel that, for i = 0 .. n-1,
    reads input element i (`in_bytes` wide) and then writes output element i (`out_bytes`
    wide): the writes of elements 0..i must end before input element i + 1 starts,
    d + (i + 1) * out_bytes <= (i + 1) * in_bytes for i <= n - 2. Narrowing (QUANTIZE from
    float32) allows in_bytes - out_bytes; widening (DEQUANTIZE) needs the output to start
    (n - 1) * (out_bytes - in_bytes) below the input."""
    if n < 2:  # one element: read before it is written
        return n * in_bytes
    step = in_bytes - out_bytes
    return step if step >= 0 else (n - 1) * step


def elementwise_shift(graph: Graph, op: Op) -> Optional[int]:
    """elementwise_output_shift of a one-input, one-output op of equal element counts."""
    if len(op.inputs) != 1 or len(op.outputs) != 1 or op.inputs[0] < 0:
        return None
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x.num_elements != y.num_elements:
        return None
    return elementwise_output_shift(x.num_elements, x.dtype.np.itemsize, y.dtype.np.itemsize)
