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
from typing import Callable, Optional

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
from tflite_converter.write_order import elementwise_shift

MacsFn = Callable[[Graph, Op], int]
ScratchFn = Callable[[Graph, Op, bool], int]
InplaceFn = Callable[[Graph, Op], tuple[int, ...]]
# (graph, op, runs in place, scratch bytes granted) -> the kernel variant's name, or None when
# no variant runs in that scratch (only a hand-made plan can do that)
VariantFn = Callable[[Graph, Op, bool, int], Optional[str]]


# ---------------------------------------------------------------------------------------------
# Small helpers


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def out_elems(graph: Graph, op: Op) -> int:
    return sum(numel(graph.tensors[t].shape) for t in op.outputs if t >= 0)


def in_elems(graph: Graph, op: Op) -> int:
    return numel(graph.tensors[op.inputs[0]].shape) if op.inputs and op.inputs[0] >= 0 else 0


def _zero_macs(graph: Graph, op: Op) -> int:
    return 0


def _no_scratch(graph: Graph, op: Op, inplace: bool) -> int:
    return 0


def _never_inplace(graph: Graph, op: Op) -> tuple[int, ...]:
    return ()


# the planner skips the in-place analysis of ops whose rule is this one
NEVER_INPLACE: InplaceFn = _never_inplace


_NO_PADS = Pads()  # built once: a frozen dataclass costs microseconds to construct


def op_pads(op: Op) -> Pads:
    attrs = op.attrs
    return attrs.pads if isinstance(attrs, (ConvAttrs, PoolAttrs)) else _NO_PADS


# ---------------------------------------------------------------------------------------------
# MACs (multiply-accumulates; one per output element for element-wise arithmetic)


def fully_connected_macs(graph: Graph, op: Op) -> int:
    # weights are [units, depth]: every output element is `depth` MACs
    w = graph.tensors[op.inputs[1]].shape
    return out_elems(graph, op) * w[-1]


def pool_macs(graph: Graph, op: Op) -> int:
    a = op.attrs
    assert isinstance(a, PoolAttrs)
    return out_elems(graph, op) * a.filter_h * a.filter_w


def reduce_macs(graph: Graph, op: Op) -> int:
    return in_elems(graph, op)


def per_output_macs(graph: Graph, op: Op) -> int:
    return out_elems(graph, op)


# ---------------------------------------------------------------------------------------------
# Scratch bytes (planned in the arena, living for the op only)


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


# ---------------------------------------------------------------------------------------------
# The registry


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """What one op kind costs. `alias`: the output is input 0's bytes (same offset, lifetimes
    merged): a view under another shape where no code runs (RESHAPE), or input 0 with part of
    it written over (PATCH_WRITE, a patch copied into its window)."""

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
    # the largest safe `output offset - input 0's offset` in bytes when input 0 dies at this op
    # (tflite_converter/write_order.py: the kernels' read/write order); None: never overlap
    output_shift: Optional[Callable[[Graph, Op], Optional[int]]] = None


# Specs shared by several op kinds; each op's record (tflite_converter/op_registry.py) names one.
UNARY = OpSpec(macs=per_output_macs, inplace=elementwise_unary_inplace)
# QUANTIZE / DEQUANTIZE: in place where the byte width is kept, else the output may start
# inside the dying input as far as the element-by-element order allows
TYPE_CONVERSION = OpSpec(macs=per_output_macs, inplace=elementwise_unary_inplace, output_shift=elementwise_shift)
BINARY = OpSpec(macs=per_output_macs, inplace=elementwise_binary_inplace)
ALIAS = OpSpec(alias=True)
MOVE = OpSpec()  # data movement: no arithmetic, no scratch, writes elsewhere
PER_OUTPUT = OpSpec(macs=per_output_macs)  # arithmetic per output element, never in place
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


def row_views(graph: Graph, op: Op) -> Optional[tuple[int, list[tuple[int, int]]]]:
    """ROW_BANDS (one tensor cut into row bands) and ROW_JOIN (row bands joined into one):
    (the whole tensor, [(band, byte offset of the band in the whole)]) when the bands are
    consecutive full-width rows of the whole (batch 1), else None. The planner lays the bands
    out as views at those offsets where it can (planner/layout.py); the emitters copy
    whatever it could not."""
    if op.kind is OpKind.ROW_BANDS and len(op.inputs) == 1:
        whole, bands = op.inputs[0], op.outputs
    elif op.kind is OpKind.ROW_JOIN and len(op.outputs) == 1:
        whole, bands = op.outputs[0], op.inputs
    else:
        return None
    tensors = graph.tensors
    w = tensors[whole]
    if len(w.shape) != 4 or w.shape[0] != 1 or not bands:
        return None
    parts, offset = [], 0
    for b in bands:
        t = tensors[b] if b >= 0 else None
        if t is None or len(t.shape) != 4 or t.shape[0] != 1 or t.shape[2:] != w.shape[2:] or t.dtype is not w.dtype:
            return None
        parts.append((b, offset))
        offset += t.nbytes
    return (whole, parts) if offset == w.nbytes else None


def concat_slice_axis_ok(graph: Graph, op: Op) -> bool:
    """CONCATENATION whose inputs are contiguous slices of its output: every dimension before
    the axis is 1, no fused activation."""
    a = op.attrs
    if not isinstance(a, ConcatAttrs) or len(op.outputs) != 1:
        return False
    shape = graph.tensors[op.outputs[0]].shape
    if a.activation is not Activation.NONE or a.axis >= len(shape):
        return False
    return numel(shape[: a.axis]) == 1
