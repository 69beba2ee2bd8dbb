"""Patch-based inference (MCUNetV2): the memory-heavy first stage, one spatial patch at a time.

A CNN's peak activation memory sits in its first layers, at full resolution. Here the ops
before a *split* (a prefix of the schedule that only one tensor, the split tensor S, leaves)
run once per cell of an n x n grid over S. For each cell the window each stage tensor must
provide is worked out backwards from kernel sizes, strides, dilation and padding (the halo
the neighbouring cells recompute), and the stage is rewritten into ordinary ops on
patch-sized tensors:

- a STRIDED_SLICE copies the cell's window of the graph input (and, where a tensor feeds two
  ops wanting different windows, the smaller one of the patch: a residual ADD);
- each stage op runs on the patch with *local* padding: zero-point padding only where the
  patch touches the image border, exactly the taps TFLite pads, so every element is computed
  from the same values by the same arithmetic as layer by layer (bit-exact by construction);
- a PATCH_WRITE copies the cell's part of S into its window of S's row band for that grid
  row. A band's PATCH_WRITEs share one buffer (each output an alias of the one before,
  planner layout.py), and ROW_JOIN makes the bands S's rows: S is assembled in place;
- with more than one grid row, ROW_BANDS cuts the source into row bands, and each patch
  reads its window out of them (PATCH_READ): the bands are views of the source's rows
  (planner layout.py), so the rows every later patch is past are freed for the split
  tensor's bands and the next patches' buffers.

The rewritten graph is an ordinary Graph in patch-major order: the memory planner, the
verifier and the code generator treat it like any other, and its arena is the patch-based
peak (the stage's patch tensors live one cell at a time). Only ops with a rule in `RULES`
run per patch; a split is offered only where every op before it has one.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np

from tflite_converter import opspec
from tflite_converter.ir import (
    ConvAttrs,
    Graph,
    Op,
    OpKind,
    PadAttrs,
    Pads,
    PoolAttrs,
    StridedSliceAttrs,
    Tensor,
    WindowAttrs,
)
from tflite_converter.planner.records import OFFSET_ALIGNMENT

MAX_GRID = 8
Grid = tuple[int, int]  # (rows, columns) of patches


def as_grid(grid: "int | Grid") -> Grid:
    """(rows, columns) of a grid given as n (n x n) or as (rows, columns)."""
    return (grid, grid) if isinstance(grid, int) else (int(grid[0]), int(grid[1]))


def grid_text(grid: "int | Grid") -> str:
    rows, cols = as_grid(grid)
    return f"{rows}x{cols}"


class EmptyWindow(ValueError):
    """A patch would need an empty window of some tensor (it lies wholly in the padding):
    that grid cannot run this stage."""


@dataclasses.dataclass(frozen=True)
class Window:
    """Rows [h0, h1) and columns [w0, w1) of an NHWC tensor."""

    h0: int
    h1: int
    w0: int
    w1: int

    @property
    def height(self) -> int:
        return self.h1 - self.h0

    @property
    def width(self) -> int:
        return self.w1 - self.w0

    def union(self, other: Optional["Window"]) -> "Window":
        if other is None:
            return self
        return Window(min(self.h0, other.h0), max(self.h1, other.h1),
                      min(self.w0, other.w0), max(self.w1, other.w1))


# (graph, op, the window of its output) -> the window each spatial input must provide, by
# position in op.inputs (constants and broadcast operands are absent: they are read whole)
NeedsFn = Callable[[Graph, Op, Window], dict[int, Window]]
# (graph, op, its output window, the windows its inputs provide) -> the op's attributes on
# the patch
LocalAttrsFn = Callable[[Graph, Op, Window, dict[int, Window]], object]


@dataclasses.dataclass(frozen=True)
class PatchRule:
    needs: NeedsFn
    local_attrs: LocalAttrsFn


# ---------------------------------------------------------------------------------------------
# Sliding windows: CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MAX_POOL_2D


def _window_geometry(graph: Graph, op: Op) -> tuple[int, int, int, int, int, int, Pads]:
    """(kh, kw, stride h, stride w, dilation h, dilation w, pads)."""
    a = op.attrs
    if isinstance(a, PoolAttrs):
        return a.filter_h, a.filter_w, a.stride_h, a.stride_w, 1, 1, a.pads
    assert isinstance(a, ConvAttrs)
    w = graph.tensors[op.inputs[1]].shape
    return w[1], w[2], a.stride_h, a.stride_w, a.dilation_h, a.dilation_w, a.pads


def _taps(lo: int, hi: int, k: int, stride: int, dilation: int, pad: int, size: int) -> tuple[int, int]:
    """Input rows [a, b) that output rows [lo, hi) read, inside the input's `size` rows."""
    start = lo * stride - pad
    end = (hi - 1) * stride - pad + (k - 1) * dilation + 1
    return max(start, 0), min(end, size)


def _sliding_needs(graph: Graph, op: Op, out: Window) -> dict[int, Window]:
    kh, kw, sh, sw, dh, dw, p = _window_geometry(graph, op)
    x = graph.tensors[op.inputs[0]]
    h0, h1 = _taps(out.h0, out.h1, kh, sh, dh, p.top, x.shape[1])
    w0, w1 = _taps(out.w0, out.w1, kw, sw, dw, p.left, x.shape[2])
    return {0: Window(h0, h1, w0, w1)}


def _local_pads(lo: int, n_out: int, n_in: int, k: int, stride: int, dilation: int, pad: int) -> tuple[int, int]:
    """(before, after) padding of a patch whose output starts at `lo` and whose input window
    is exactly the rows it reads inside the image: before is what lies above the image, after
    whatever the output size needs below it (0 away from the border)."""
    before = max(pad - lo * stride, 0)
    after = (n_out - 1) * stride + (k - 1) * dilation + 1 - n_in - before
    return before, max(after, 0)


def _sliding_attrs(graph: Graph, op: Op, out: Window, ins: dict[int, Window]) -> object:
    kh, kw, sh, sw, dh, dw, p = _window_geometry(graph, op)
    x = ins[0]
    top, bottom = _local_pads(out.h0, out.height, x.height, kh, sh, dh, p.top)
    left, right = _local_pads(out.w0, out.width, x.width, kw, sw, dw, p.left)
    return dataclasses.replace(op.attrs, pads=Pads(top, bottom, left, right))  # type: ignore[type-var]


SLIDING = PatchRule(_sliding_needs, _sliding_attrs)


# ---------------------------------------------------------------------------------------------
# Element by element (activations, requantisation, binary arithmetic, channel concatenation)


def _spatial_inputs(graph: Graph, op: Op) -> list[int]:
    """Positions of the inputs that are read window by window: non-constant, and the output's
    full shape (a broadcast operand has none; `stage_split` refuses non-constant ones)."""
    out = graph.tensors[op.outputs[0]]
    return [i for i, t in enumerate(op.inputs)
            if t >= 0 and graph.tensors[t].data is None and graph.tensors[t].shape[:3] == out.shape[:3]]


def _same_window_needs(graph: Graph, op: Op, out: Window) -> dict[int, Window]:
    return {i: out for i in _spatial_inputs(graph, op)}


def _same_attrs(graph: Graph, op: Op, out: Window, ins: dict[int, Window]) -> object:
    return op.attrs


ELEMENTWISE = PatchRule(_same_window_needs, _same_attrs)


# ---------------------------------------------------------------------------------------------
# PAD / PADV2 over rows and columns


def _pad_needs(graph: Graph, op: Op, out: Window) -> dict[int, Window]:
    a = op.attrs_as(PadAttrs)
    x = graph.tensors[op.inputs[0]]
    (top, _), (left, _) = a.paddings[1], a.paddings[2]
    return {0: Window(max(out.h0 - top, 0), min(out.h1 - top, x.shape[1]),
                      max(out.w0 - left, 0), min(out.w1 - left, x.shape[2]))}


def _pad_attrs(graph: Graph, op: Op, out: Window, ins: dict[int, Window]) -> object:
    a = op.attrs_as(PadAttrs)
    x = ins[0]
    (top, _), (left, _) = a.paddings[1], a.paddings[2]
    before_h = max(top - out.h0, 0)
    before_w = max(left - out.w0, 0)
    local = (a.paddings[0], (before_h, out.height - before_h - x.height),
             (before_w, out.width - before_w - x.width), a.paddings[3])
    return dataclasses.replace(a, paddings=local)


PAD = PatchRule(_pad_needs, _pad_attrs)

RULES: dict[OpKind, PatchRule] = {
    OpKind.CONV_2D: SLIDING,
    OpKind.DEPTHWISE_CONV_2D: SLIDING,
    OpKind.AVERAGE_POOL_2D: SLIDING,
    OpKind.MAX_POOL_2D: SLIDING,
    OpKind.PAD: PAD,
    OpKind.PADV2: PAD,
    **{k: ELEMENTWISE for k in (
        OpKind.RELU, OpKind.RELU6, OpKind.LEAKY_RELU, OpKind.HARD_SWISH, OpKind.LOGISTIC,
        OpKind.TANH, OpKind.ABS, OpKind.RSQRT, OpKind.QUANTIZE, OpKind.ADD, OpKind.SUB,
        OpKind.MUL, OpKind.MAXIMUM, OpKind.MINIMUM, OpKind.SQUARED_DIFFERENCE, OpKind.PRELU,
        OpKind.CONCATENATION)},
}


# ---------------------------------------------------------------------------------------------
# Where the stage may end


def _patchable(graph: Graph, op: Op) -> bool:
    """An op the stage can run per patch: a rule, one 8-bit NHWC output of batch 1, every
    non-constant input a full-shape 8-bit NHWC tensor, constants only channel-wise (read
    whole by every patch), a concatenation only along channels."""
    if op.kind not in RULES or len(op.outputs) != 1:
        return False
    if not _byte_nhwc(graph.tensors[op.outputs[0]]):
        return False
    a = op.attrs
    if op.kind is OpKind.CONCATENATION and getattr(a, "axis", None) != 3:
        return False
    if isinstance(a, PadAttrs) and (len(a.paddings) != 4 or a.paddings[0] != (0, 0)):
        return False
    spatial = set(_spatial_inputs(graph, op)) if RULES[op.kind] is ELEMENTWISE else {0}
    for i, t in enumerate(op.inputs):
        if t < 0:
            continue
        x = graph.tensors[t]
        if x.data is not None:
            if i in spatial or (RULES[op.kind] is ELEMENTWISE and opspec.numel(x.shape[:-1]) != 1):
                return False
            continue
        if i not in spatial or not _byte_nhwc(x):
            return False
    return True


@dataclasses.dataclass(frozen=True)
class Split:
    """A stage that can run patch by patch: the ops of the schedule from position `start` up
    to (not including) `n_ops`, reading the 8-bit NHWC tensor `source` (the graph input, or a
    leading QUANTIZE's output for a float input), and the one tensor that leaves it."""

    n_ops: int
    tensor: int
    last_op_index: int  # the file index of the stage's last op (what `--patch=SPLIT:N` names)
    start: int = 0
    source: int = -1  # -1: the graph input


def _byte_nhwc(t: Tensor) -> bool:
    return len(t.shape) == 4 and t.shape[0] == 1 and t.dtype.itemsize == 1


def _stage_source(graph: Graph, order: Sequence[int]) -> Optional[tuple[int, int]]:
    """(start, source): where the stage may begin. An 8-bit NHWC graph input is read by the
    stage itself; a float one through the QUANTIZE that runs first (layer by layer), when
    nothing else reads it."""
    if len(graph.inputs) != 1 or not order:
        return None
    x = graph.inputs[0]
    if _byte_nhwc(graph.tensors[x]):
        return 0, x
    first = graph.ops[order[0]]
    if (first.kind is OpKind.QUANTIZE and first.inputs == [x] and len(first.outputs) == 1
            and _byte_nhwc(graph.tensors[first.outputs[0]])
            and not any(x in graph.ops[p].inputs for p in order[1:]) and x not in graph.outputs):
        return 1, first.outputs[0]
    return None


def stage_splits(graph: Graph, order: Sequence[int]) -> list[Split]:
    """Every stage that can run patch by patch: from the stage's source (`_stage_source`), ops
    all patchable, reading only the source, the stage's own tensors and constants, and exactly
    one of its tensors (not a graph output, at least 2 x 2 pixels) read after it."""
    begin = _stage_source(graph, order)
    if begin is None:
        return []
    start, source = begin
    last_read: dict[int, int] = {}
    for s, p in enumerate(order):
        for t in graph.ops[p].inputs:
            if t >= 0:
                last_read[t] = s
    outputs = set(graph.outputs)
    produced: list[int] = []
    available = {source}
    splits = []
    for s in range(start, len(order)):
        op = graph.ops[order[s]]
        if not _patchable(graph, op):
            break
        if any(t >= 0 and graph.tensors[t].data is None and t not in available for t in op.inputs):
            break
        out = op.outputs[0]
        if out in outputs:
            break
        produced.append(out)
        available.add(out)
        leaving = [t for t in produced if last_read.get(t, -1) > s]
        if len(leaving) == 1 and last_read.get(source, -1) <= s:
            shape = graph.tensors[leaving[0]].shape
            if shape[1] >= 2 and shape[2] >= 2:
                splits.append(Split(s + 1, leaving[0], op.index, start, source))
    return splits


# ---------------------------------------------------------------------------------------------
# The rewrite


def grid_bounds(size: int, n: int) -> list[int]:
    """n + 1 boundaries splitting `size` rows into n near-equal parts."""
    return [i * size // n for i in range(n + 1)]


@dataclasses.dataclass(frozen=True)
class PatchPlan:
    """How the stage runs: which split, the grid, and what it costs."""

    split: Split
    grid: Grid  # (rows, columns) asked for (apply_patches caps them at the split tensor's size)
    macs: int  # of the whole patched graph
    macs_layer_by_layer: int

    @property
    def macs_overhead(self) -> float:
        return self.macs / self.macs_layer_by_layer - 1.0 if self.macs_layer_by_layer else 0.0

    def get_config(self) -> dict:
        return {"split_op": self.split.last_op_index, "stage_ops": self.split.n_ops,
                "split_tensor": self.split.tensor, "grid": list(self.grid), "macs": self.macs,
                "macs_layer_by_layer": self.macs_layer_by_layer}


class _Builder:
    """Appends patch tensors and ops to a copy of the graph's lists."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.tensors = list(graph.tensors)
        self.ops: list[Op] = []

    def tensor_like(self, t: int, win: Window, tag: str) -> int:
        src = self.graph.tensors[t]
        shape = (1, win.height, win.width, src.shape[3])
        idx = len(self.tensors)
        self.tensors.append(Tensor(idx, f"{src.name}@{tag}", shape, src.dtype, src.quant))
        return idx

    def slice(self, index: int, src: int, src_win: Window, want: Window, t: int, tag: str) -> int:
        """A copy of window `want` (original coordinates) out of `src`, which holds `src_win`
        of tensor `t`."""
        shape = self.tensors[src].shape
        r, c = want.h0 - src_win.h0, want.w0 - src_win.w0
        attrs = StridedSliceAttrs((0, r, c, 0), (1, r + want.height, c + want.width, shape[3]), (1, 1, 1, 1))
        out = self.tensor_like(t, want, tag)
        self.ops.append(Op(index, OpKind.STRIDED_SLICE, [src], [out], attrs))
        return out


def _windows(graph: Graph, stage: Sequence[int], split: Split, cell: Window, tag: str
             ) -> tuple[dict[int, Window], dict[tuple[int, int], Window]]:
    """For one cell of the split tensor: the window of every stage tensor it needs (the
    union of what its readers need), and what each (op position, input) reads."""
    want: dict[int, Window] = {split.tensor: cell}
    demand: dict[tuple[int, int], Window] = {}
    for p in reversed(stage):  # windows backwards from the split tensor
        op = graph.ops[p]
        win = want.get(op.outputs[0])
        if win is None:
            continue
        for ci, need in RULES[op.kind].needs(graph, op, win).items():
            if need.height <= 0 or need.width <= 0:
                raise EmptyWindow(f"{op}: patch {tag} reads no pixel of input {ci}")
            t = op.inputs[ci]
            demand[(p, ci)] = need
            want[t] = need.union(want.get(t))
    return want, demand


def _rows_aligned(t: Tensor) -> bool:
    """A row of `t` is a multiple of the plan's offset alignment: row bands can then be views
    at their rows' bytes (else the planner would have to copy them)."""
    return (t.shape[2] * t.shape[3] * t.dtype.itemsize) % OFFSET_ALIGNMENT == 0


def _bands(starts: Sequence[int], size: int) -> list[tuple[int, int]]:
    """Row bands [start, next start) from sorted distinct starts beginning at 0."""
    ends = [*starts[1:], size]
    return list(zip(starts, ends))


def apply_patches(graph: Graph, order: Sequence[int], split: Split, grid: "int | Grid") -> tuple[Graph, list[int]]:
    """`graph` with the stage of `split` run on a grid of patches of the split tensor (`grid`
    rows x columns, or n for n x n; capped at the tensor's size), and its op order (what runs
    before the stage, the patches row by row, the rest).

    With more than one grid row the stage's source is cut into row bands (ROW_BANDS: the
    rows a grid row reads last form its band) and the split tensor is assembled band by band
    (one PATCH_WRITE chain per grid row, then ROW_JOIN): as bands are views of their rows'
    bytes, the planner frees the source's rows once read and takes the split tensor's rows
    only when they are written."""
    order = list(order)
    stage = order[split.start: split.n_ops]
    s_tensor = graph.tensors[split.tensor]
    g_h, g_w = as_grid(grid)
    n_h, n_w = min(g_h, s_tensor.shape[1]), min(g_w, s_tensor.shape[2])
    rows, cols = grid_bounds(s_tensor.shape[1], n_h), grid_bounds(s_tensor.shape[2], n_w)
    x = split.source if split.source >= 0 else graph.inputs[0]
    cells = [[_windows(graph, stage, split, Window(rows[i], rows[i + 1], cols[j], cols[j + 1]), f"p{i}_{j}")
              for j in range(n_w)] for i in range(n_h)]
    b = _Builder(graph)
    b.ops.extend(graph.ops[p] for p in order[: split.start])  # layer by layer before the stage
    first_index = graph.ops[stage[0]].index
    last_index = graph.ops[stage[-1]].index
    x_shape = graph.tensors[x].shape

    # the source's row bands: rows before the next grid row's first row are read last here
    starts = sorted({0, *(min(c[0][x].h0 for c in cells[i] if x in c[0]) for i in range(1, n_h))})
    x_bands: list[tuple[int, int, int]] = []  # (first row, end row, tensor)
    if len(starts) > 1 and _rows_aligned(graph.tensors[x]):
        for k, (h0, h1) in enumerate(_bands(starts, x_shape[1])):
            x_bands.append((h0, h1, b.tensor_like(x, Window(h0, h1, 0, x_shape[2]), f"rows{k}")))
        b.ops.append(Op(first_index, OpKind.ROW_BANDS, [x], [t for _, _, t in x_bands]))

    # the split tensor band by band, or (one grid row, or rows not aligned) one buffer
    banded_split = n_h > 1 and _rows_aligned(s_tensor)
    s_bands = []
    canvas = -1
    for i in range(n_h):
        if banded_split:
            canvas = -1
        for j in range(n_w):
            tag = f"p{i}_{j}"
            want, demand = cells[i][j]
            local: dict[int, int] = {}
            if x in want:
                w = want[x]
                if x_bands:
                    reads = [(h0, t) for h0, h1, t in x_bands if h0 < w.h1 and w.h0 < h1]
                    local[x] = b.tensor_like(x, w, tag)
                    b.ops.append(Op(first_index, OpKind.PATCH_READ, [t for _, t in reads], [local[x]],
                                    WindowAttrs(w.h0 - reads[0][0], w.w0)))
                else:
                    full = Window(0, x_shape[1], 0, x_shape[2])
                    local[x] = b.slice(first_index, x, full, w, x, tag)
            for p in stage:  # the stage forwards, on this patch
                op = graph.ops[p]
                out = op.outputs[0]
                if out not in want:
                    continue
                inputs = list(op.inputs)
                got: dict[int, Window] = {}
                for (q, ci), need in demand.items():
                    if q != p:
                        continue
                    t = op.inputs[ci]
                    src = local[t]
                    if need != want[t]:
                        src = b.slice(op.index, src, want[t], need, t, f"{tag}_in{ci}")
                    inputs[ci] = src
                    got[ci] = need
                attrs = RULES[op.kind].local_attrs(graph, op, want[out], got)
                local[out] = b.tensor_like(out, want[out], tag)
                b.ops.append(Op(op.index, op.kind, inputs, [local[out]], attrs))
            if not banded_split and i == n_h - 1 and j == n_w - 1:
                nxt = split.tensor  # one grid row: the chain ends in the split tensor itself
            else:
                band = Window(rows[i], rows[i + 1], 0, s_tensor.shape[2]) if banded_split else \
                    Window(0, s_tensor.shape[1], 0, s_tensor.shape[2])
                nxt = b.tensor_like(split.tensor, band, f"rows{i}_after_{tag}")
            win = want[split.tensor]
            b.ops.append(Op(last_index, OpKind.PATCH_WRITE, [canvas, local[split.tensor]], [nxt],
                            WindowAttrs(win.h0 - (rows[i] if banded_split else 0), win.w0)))
            canvas = nxt
        s_bands.append(canvas)
    if banded_split:
        b.ops.append(Op(last_index, OpKind.ROW_JOIN, s_bands, [split.tensor]))
    rest = [graph.ops[p] for p in order[split.n_ops:]]
    ops = b.ops + rest
    patched = Graph(b.tensors, ops, list(graph.inputs), list(graph.outputs), graph.name)
    return patched, list(range(len(ops)))


def total_macs(graph: Graph) -> int:
    return sum(opspec.macs(graph, op) for op in graph.ops)


def patched_macs(graph: Graph, order: Sequence[int], split: Split, grid: "int | Grid",
                 base_macs: Optional[int] = None) -> int:
    """total_macs(apply_patches(...)) from the windows alone: each stage op's MACs scale with
    its output pixels (the copies the rewrite adds have none). Raises EmptyWindow as
    apply_patches does."""
    stage = list(order)[split.start: split.n_ops]
    s_tensor = graph.tensors[split.tensor]
    g_h, g_w = as_grid(grid)
    n_h, n_w = min(g_h, s_tensor.shape[1]), min(g_w, s_tensor.shape[2])
    rows, cols = grid_bounds(s_tensor.shape[1], n_h), grid_bounds(s_tensor.shape[2], n_w)
    per_pixel = {}
    stage_macs = 0
    for p in stage:
        op = graph.ops[p]
        out = graph.tensors[op.outputs[0]].shape
        m = opspec.macs(graph, op)
        stage_macs += m
        per_pixel[p] = (op.outputs[0], m / (out[1] * out[2]))
    total = 0.0
    for i in range(n_h):
        for j in range(n_w):
            want, _ = _windows(graph, stage, split, Window(rows[i], rows[i + 1], cols[j], cols[j + 1]), f"p{i}_{j}")
            for t, rate in per_pixel.values():
                w = want.get(t)
                if w is not None:
                    total += rate * w.height * w.width
    base = total_macs(graph) if base_macs is None else base_macs
    return base - stage_macs + round(total)


def input_outside(graph: Graph) -> Graph:
    """`graph` with its inputs held outside the arena (a camera frame buffer, Flash): the
    planner then places none of their bytes, which is how the "without the input" peak is
    counted. For reporting only: no C is generated from it."""
    tensors = list(graph.tensors)
    outside = set(graph.inputs)
    # the row bands of an input outside the arena are views of it there too
    outside.update(t for op in graph.ops if op.kind is OpKind.ROW_BANDS and op.inputs[0] in graph.inputs
                   for t in op.outputs)
    for t in outside:
        src = tensors[t]
        tensors[t] = dataclasses.replace(src, data=np.zeros(src.shape, src.dtype.np))
    return Graph(tensors, graph.ops, [], list(graph.outputs), graph.name)


# ---------------------------------------------------------------------------------------------
# Choosing the split and the grid


@dataclasses.dataclass(frozen=True)
class PatchCandidate:
    """One (split, grid) and its planned peak, with the graph input in the arena (what the C
    uses) and held outside it."""

    plan: PatchPlan
    arena_bytes: int
    arena_bytes_without_input: int

    def get_config(self) -> dict:
        return {**self.plan.get_config(), "arena_bytes": self.arena_bytes,
                "arena_bytes_without_input": self.arena_bytes_without_input}


PlanFn = Callable[[Graph, Sequence[int]], int]  # (graph, order) -> arena bytes


def patch_candidates(graph: Graph, order: Sequence[int], plan_arena: PlanFn,
                     grids: Sequence[int] = tuple(range(2, MAX_GRID + 1)),
                     max_macs_overhead: float = 0.3,
                     splits: Optional[Sequence[Split]] = None,
                     sram_limit: Optional[int] = None,
                     without_input: bool = True) -> list[PatchCandidate]:
    """Every split x grid whose MACs stay within `max_macs_overhead` of layer by layer,
    planned with `plan_arena` (the caller's planner settings). A grid larger than the split
    tensor in a dimension is capped there, so grids that give the same patches are planned
    once. With `sram_limit` they are planned in order of MACs and the list ends at the first
    whose arena fits (the fewest MACs that fit, without planning the rest).
    `without_input`: also plan each with the input outside the arena (else that figure is
    the arena's)."""
    base_macs = total_macs(graph)
    # MACs from the windows alone (every stage op's MACs scale with its output pixels), so
    # only the grids within the cap are rewritten, and with a limit only until one fits
    chosen: list[tuple[int, Split, int, int]] = []  # (file position, split, n, MACs)
    for split in stage_splits(graph, order) if splits is None else splits:
        s_shape = graph.tensors[split.tensor].shape
        seen: set[tuple[int, int]] = set()
        for n in grids:
            cells = (min(n, s_shape[1]), min(n, s_shape[2]))
            if cells in seen:
                continue
            seen.add(cells)
            try:
                macs = patched_macs(graph, order, split, n, base_macs)
            except EmptyWindow:
                continue
            if base_macs and macs > base_macs * (1.0 + max_macs_overhead):
                break  # finer grids only recompute more
            chosen.append((len(chosen), split, n, macs))
    if sram_limit is not None:
        chosen.sort(key=lambda c: (c[3], c[0]))
    out: list[PatchCandidate] = []
    for _, split, n, macs in chosen:
        patched, p_order = apply_patches(graph, order, split, n)
        plan = PatchPlan(split, (n, n), macs, base_macs)
        arena = plan_arena(patched, p_order)
        out.append(PatchCandidate(plan, arena, plan_arena(input_outside(patched), p_order) if without_input else arena))
        if sram_limit is not None and arena <= sram_limit:
            break
    return out


def choose_patch(graph: Graph, order: Sequence[int], layer_by_layer_bytes: int, setting: "PatchSetting",
                 plan_arena: PlanFn, splits: Optional[Sequence[Split]] = None, without_input: bool = True
                 ) -> tuple[Optional[PatchCandidate], list[PatchCandidate]]:
    """`--patch=auto`'s choice for `graph` in `order` (the converter's and the search
    oracle's): (the candidate in use or None for layer by layer, every candidate weighed).
    A network within the setting's SRAM limit layer by layer is not patched."""
    if not setting.worth_trying(layer_by_layer_bytes):
        return None, []
    cands = patch_candidates(graph, order, plan_arena, max_macs_overhead=setting.max_macs_overhead,
                             splits=splits, sram_limit=setting.sram_limit, without_input=without_input)
    return best_candidate(cands, layer_by_layer_bytes, setting.sram_limit), cands


def best_candidate(candidates: Sequence[PatchCandidate], layer_by_layer_bytes: int,
                   sram_limit: Optional[int] = None) -> Optional[PatchCandidate]:
    """The lowest peak (ties: fewest MACs), or with `sram_limit` the fewest MACs that fit it
    (ties: lowest peak); None when no candidate is strictly below `layer_by_layer_bytes` (or
    within the limit): patches never raise the peak."""
    below = [c for c in candidates if c.arena_bytes < layer_by_layer_bytes]
    if sram_limit is not None:
        fits = [c for c in below if c.arena_bytes <= sram_limit]
        return min(fits, key=lambda c: (c.plan.macs, c.arena_bytes), default=None)
    return min(below, key=lambda c: (c.arena_bytes, c.plan.macs), default=None)


# ---------------------------------------------------------------------------------------------
# What the user asks for


@dataclasses.dataclass(frozen=True)
class PatchSetting:
    """`--patch`: "off" (layer by layer), "auto" (the lowest peak, or with `sram_limit` the
    fewest MACs that fit it, among grids within `max_macs_overhead`; layer by layer where
    none is lower), or "SPLIT:N" / "SPLIT:RxC" (the stage ending at file op SPLIT on an N x N
    or R rows x C columns grid)."""

    mode: str = "off"
    split_op: Optional[int] = None
    grid: Optional[Grid] = None
    max_macs_overhead: float = 0.3
    sram_limit: Optional[int] = None

    @classmethod
    def parse(cls, text: str, max_macs_overhead: float = 0.3, sram_limit: Optional[int] = None) -> "PatchSetting":
        """Raises ValueError with a one-line reason."""
        t = text.strip().lower()
        if t in ("off", "auto"):
            return cls(t, None, None, max_macs_overhead, sram_limit)
        split, sep, n = t.partition(":")
        rows, x, cols = n.partition("x")
        if not sep or not split.isdigit() or not rows.isdigit() or (x and not cols.isdigit()):
            raise ValueError(f"--patch={text}: expected off, auto or SPLIT:N or SPLIT:RxC (the stage's last op "
                             f"index, the grid), e.g. 3:4 or 3:4x2")
        grid = (int(rows), int(cols) if x else int(rows))
        if not all(1 <= g <= MAX_GRID for g in grid):
            raise ValueError(f"--patch={text}: the grid N (or R and C) must be 1..{MAX_GRID}")
        return cls("fixed", int(split), grid, max_macs_overhead, sram_limit)

    def worth_trying(self, layer_by_layer_bytes: int) -> bool:
        """auto, and the layer-by-layer arena is over the SRAM limit (or there is none)."""
        return self.mode == "auto" and (self.sram_limit is None or layer_by_layer_bytes > self.sram_limit)

    def get_config(self) -> dict:
        return {**dataclasses.asdict(self), "grid": None if self.grid is None else list(self.grid)}

    @classmethod
    def from_config(cls, config: dict) -> "PatchSetting":
        grid = config.get("grid")
        return cls(**{**config, "grid": None if grid is None else as_grid(tuple(grid))})
