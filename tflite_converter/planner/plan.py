"""The planner's entry points: `plan_memory`, the TFLM-greedy baseline, the lower bound.

`plan_memory` builds the layout (layout.py), tries the placement strategies (placement.py),
falls back to the plain greedy plan without in-place reuse when that is smaller (so the
result is never worse than TFLM-style planning), grants scratch into the room left free
(scratch.py) and assembles the `MemoryPlan` records (records.py).
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Optional, Sequence

from tflite_converter import opspec
from tflite_converter.ir import Graph
from tflite_converter.planner.layout import Layout, build_layout, tensor_buffers
from tflite_converter.planner.lifetimes import check_order, lifetimes, resolve_order
from tflite_converter.planner.live import live_bytes, live_bytes_of
from tflite_converter.planner.placement import TieBreak, best_placement, place_greedy
from tflite_converter.planner.records import (
    OFFSET_ALIGNMENT,
    MemoryPlan,
    Role,
    ScratchPlacement,
    TensorPlacement,
)
from tflite_converter.planner.scratch import grant_scratch

# The plan's records are built without running their dataclass __init__ (which sets each
# field through object.__setattr__ because they are frozen): for a hundred tensors that was
# the slowest part of a plan. Same class, same fields, so equality, hashing, repr and
# dataclasses.replace behave as for a normal instance. The field lists are checked here so
# a field added to a record cannot be silently left out.
assert [f.name for f in dataclasses.fields(TensorPlacement)] == [
    "index", "name", "offset", "bytes", "first_step", "last_step", "role", "alias_of"
], "update _assemble to the new TensorPlacement fields"
assert [f.name for f in dataclasses.fields(ScratchPlacement)] == ["op", "step", "offset", "bytes", "min_bytes"], (
    "update _assemble to the new ScratchPlacement fields"
)
_new_object = object.__new__
_set_attribute = object.__setattr__


def _assemble(graph: Graph, layout: Layout, bases: list[int], arena: int, live: list[int], strategy: str,
              alignment: int) -> MemoryPlan:
    tensors: dict[int, TensorPlacement] = {}
    scratch: dict[int, ScratchPlacement] = {}
    roles = layout.roles
    nbytes = layout.nbytes
    scratch_raw = layout.scratch_raw
    grants = grant_scratch(layout, bases, arena)
    graph_tensors = graph.tensors
    own = (Role.OWN, None)
    for (_, _, _, members), base in zip(layout.items, bases):
        for (rel, _, f, e, key) in members:
            if key < 0:
                p = -key - 1
                sp = _new_object(ScratchPlacement)
                off, granted = grants.get(p) or (base + rel, scratch_raw[p])
                _set_attribute(sp, "__dict__", {"op": p, "step": f, "offset": off, "bytes": granted,
                                                "min_bytes": scratch_raw[p]})
                scratch[p] = sp
            else:
                role, of = roles.get(key, own)
                tp = _new_object(TensorPlacement)
                _set_attribute(tp, "__dict__", {
                    "index": key, "name": graph_tensors[key].name, "offset": base + rel,
                    "bytes": nbytes[key], "first_step": f, "last_step": e, "role": role,
                    "alias_of": of,
                })
                tensors[key] = tp
    overlaps: dict[int, int] = {}
    for (t, out), (_, p) in layout.overlaps.items():
        a, b = tensors[t], tensors[out]
        shared = min(a.offset + a.bytes, b.offset + b.bytes) - max(a.offset, b.offset)
        if shared > 0:
            overlaps[p] = shared
    variants: dict[int, str] = {}
    for p, op in enumerate(graph.ops):
        if opspec.spec(op.kind).variant is not None:
            sp_p = scratch.get(p)
            v = opspec.kernel_variant(graph, op, p in layout.inplace_ops, sp_p.bytes if sp_p else 0)
            if v is not None:
                variants[p] = v
    return MemoryPlan(
        order=tuple(layout.order),
        alignment=alignment,
        arena_bytes=arena,
        lower_bound_bytes=max(live) if live else 0,
        tensors=dict(sorted(tensors.items())),
        scratch=dict(sorted(scratch.items())),
        live_bytes=tuple(live),
        inplace_ops=frozenset(layout.inplace_ops),
        strategy=strategy,
        variants=variants,
        overlaps=overlaps,
    )


def overlap_union_bytes(n_in: int, n_out: int, d: int) -> int:
    """The fewest bytes an input and its output can take together when the output may start
    at any offset up to `d` from the input's start (every smaller offset is safe too): at 0
    when d >= 0 (max(in, out)), else at d (max(in - d, out))."""
    return max(n_in - min(d, 0), n_out)


def overlap_bound_bytes(layout: Layout, live: Sequence[int]) -> int:
    """The live bytes of the worst step once every allowed overlap is used to the full (no
    placement with these shifts can use less): at an op with a shift d, its input and output
    take overlap_union_bytes together."""
    saved = [0] * len(live)
    size = layout.size
    for (t, out), (d, _) in layout.overlaps.items():
        s = layout.first[out]
        union = overlap_union_bytes(size[t], size[out], d)
        saved[s] = max(saved[s], size[t] + size[out] - union)
    return max((v - w for v, w in zip(live, saved)), default=0)


def _place(layout: Layout, live: Sequence[int]) -> tuple[list[int], int, str]:
    """best_placement of the layout's items, using its overlaps where they place smaller."""
    lb = max(live) if live else 0
    plain = best_placement(layout.items, lb)
    if not layout.overlaps:
        return plain
    shifts = {pair: d for pair, (d, _) in layout.overlaps.items()}
    shifted = best_placement(layout.items, overlap_bound_bytes(layout, live), shifts)
    return shifted if shifted[1] < plain[1] else plain


def plan_memory(
    graph: Graph,
    order: Optional[Sequence[int]] = None,
    alignment: int = OFFSET_ALIGNMENT,
    inplace: bool = True,
    overwrite_inputs: bool = True,
    overlap: bool = True,
) -> MemoryPlan:
    """Plan the arena for `graph` run in `order` (positions in graph.ops; default file order).

    inplace: allow in-place ops and concatenations written into place (reshape aliases are
    always used: the engine never copies a reshape). overwrite_inputs: let an in-place or
    overlapping op write over a graph input it is the last reader of (the default: the
    arena reuses an input's bytes after its last reader anyway, as TFLM's does, so the caller
    writes the input before every invoke; False keeps it intact until that op has run).
    Graph outputs are never written over. overlap: let an op's output start inside
    the input that dies there as far as its kernel's write order allows (write_order.py), used
    only where it gives a smaller arena; the arena may then be below `lower_bound_bytes`.
    """
    if alignment < 1:
        raise ValueError("alignment must be >= 1")
    order = resolve_order(graph, order)
    spans = lifetimes(graph, order)
    layout = build_layout(graph, order, alignment, inplace, overwrite_inputs, spans, overlap)
    live = live_bytes(layout)
    lb = max(live) if live else 0
    if not layout.items:
        return _assemble(graph, layout, [], 0, live, "empty", alignment)
    bases, arena, name = _place(layout, live)
    if arena > lb and (layout.inplace_ops):
        # never worse than plain greedy planning without in-place reuse (TFLM's planner)
        plain = build_layout(graph, order, alignment, False, overwrite_inputs, spans)
        _, pa = place_greedy(plain.items)
        if pa < arena:
            plain_live = live_bytes(plain)
            pbases, parena, pname = best_placement(plain.items, max(plain_live))
            return _assemble(graph, plain, pbases, parena, plain_live, pname + "_no_inplace", alignment)
    return _assemble(graph, layout, bases, arena, live, name, alignment)


class GreedyBuffers(enum.Enum):
    """The buffers `tflm_greedy_plan` places."""

    # this planner's buffers without in-place reuse: reshape aliases share their input's
    # bytes, kernel scratch included (the baseline `plan_memory` is never worse than)
    PLANNER = "planner"
    # one buffer per non-constant tensor, no scratch: the graph as TFLM's allocator sees it
    TENSORS = "tensors"


@dataclasses.dataclass(frozen=True)
class GreedyPlan:
    arena_bytes: int
    live_bytes: tuple[int, ...]  # per step of the order


def tflm_greedy_plan(
    graph: Graph,
    order: Optional[Sequence[int]] = None,
    alignment: int = OFFSET_ALIGNMENT,
    tie_break: TieBreak = TieBreak.EARLIER_START,
    buffers: GreedyBuffers = GreedyBuffers.PLANNER,
) -> GreedyPlan:
    """TFLM's GreedyMemoryPlanner rule (largest buffer first, at the lowest offset that does
    not overlap a buffer with an overlapping lifetime) on `buffers`, every size rounded up to
    `alignment`, equal sizes ordered by `tie_break`; `order` defaults to the file order."""
    resolved = resolve_order(graph, order)
    if buffers is GreedyBuffers.PLANNER:
        layout = build_layout(graph, resolved, alignment, False, False)
        items, live = layout.items, live_bytes(layout)
    else:
        items = tensor_buffers(graph, resolved, alignment)
        live = live_bytes_of(items, len(resolved))
    arena = place_greedy(items, tie_break)[1] if items else 0
    return GreedyPlan(arena, tuple(live))


def greedy_arena_bytes(graph: Graph, order: Optional[Sequence[int]] = None, alignment: int = OFFSET_ALIGNMENT) -> int:
    """The baseline: TFLM's greedy rule on the same tensors, scratch and reshape aliases as
    `plan_memory`, without in-place reuse (`tflm_greedy_plan` with its defaults)."""
    return tflm_greedy_plan(graph, order, alignment).arena_bytes


def lower_bound_bytes(
    graph: Graph,
    order: Optional[Sequence[int]] = None,
    alignment: int = OFFSET_ALIGNMENT,
    inplace: bool = True,
    overwrite_inputs: bool = True,
) -> int:
    """The plan's `lower_bound_bytes` for `order` without placing anything (the schedule's
    objective)."""
    order = list(range(len(graph.ops))) if order is None else list(order)
    check_order(graph, order)
    live = live_bytes(build_layout(graph, order, alignment, inplace, overwrite_inputs))
    return max(live) if live else 0
