"""Static memory planner: one arena, an offset for every non-constant tensor and scratch buffer.

This is also the NAS's SRAM oracle, so the path below is plain Python over small lists: no
file I/O, no numpy work on tensors, no TensorFlow.

How a plan is made, for a fixed execution order (`order`, positions in `graph.ops`):

1. Lifetimes in steps: a tensor lives from the step of its producer (graph inputs: step 0) to
   the step of its last consumer (graph outputs: the last step). Sizes are rounded up to
   `alignment`, so every offset is aligned.
2. Buffers that share bytes are merged into *groups* with fixed offsets inside the group:
   - RESHAPE / SQUEEZE / EXPAND_DIMS outputs are aliases of their input (same offset);
   - an op runs in place (output at its input's offset) when `opspec` allows it and that
     input dies at this op (elementwise ops, activations, MCUNet's in-place depthwise);
   - a CONCATENATION along an axis with every outer dimension 1 is a no-op: its producers
     write their results straight into their slices of its output.
   Kernel scratch (`opspec.scratch_bytes`) is a one-step buffer of its own.
3. Groups are placed by several strategies (a two-ended one that is optimal for chains,
   TFLM's greedy "largest first, lowest offset that fits", by start, by size x duration,
   by duration); the smallest arena wins. Conflicts are checked per member buffer, so a
   group only blocks the bytes its live members use.
4. If that arena is not below the plain greedy plan without in-place reuse, the latter is
   used, so the result is never worse than TFLM-style greedy planning.

`verify_plan` checks a plan independently of how it was made.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Iterable, Optional, Sequence

import numpy as np

from tflite_converter import opspec
from tflite_converter.ir import DType, Graph, OpKind, Tensor


class Role(enum.Enum):
    """How a tensor's buffer relates to another tensor's (`alias_of`)."""

    OWN = "own"
    ALIAS = "alias"  # same bytes under another shape (reshape); both read-only views
    INPLACE = "inplace"  # output written over its input, which dies at that op
    CONCAT_SLICE = "concat_slice"  # written straight into its slice of a concatenation


@dataclasses.dataclass(frozen=True)
class TensorPlacement:
    index: int
    name: str
    offset: int
    bytes: int  # the tensor's own size (the arena reserves it rounded up to the alignment)
    first_step: int
    last_step: int
    role: Role = Role.OWN
    alias_of: Optional[int] = None  # tensor whose buffer this one shares (see `role`)


@dataclasses.dataclass(frozen=True)
class ScratchPlacement:
    op: int  # position in graph.ops
    step: int
    offset: int
    bytes: int


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """A placed arena for one schedule.

    `lower_bound_bytes`: for this schedule with every tensor fully stored, the maximum over
    steps of the bytes live at once, counting aliases, in-place and concatenation merges once,
    scratch buffers included, every size rounded up to `alignment`. No placement of these
    buffers can use less; `arena_bytes` >= it, and equal for chains.
    `live_bytes[s]`: those bytes at step s. `inplace_ops`: positions in graph.ops of ops that
    write over their input (elementwise, in-place depthwise) or, for concatenations, need no
    code because their producers wrote into place.
    """

    order: tuple[int, ...]
    alignment: int
    arena_bytes: int
    lower_bound_bytes: int
    tensors: dict[int, TensorPlacement]
    scratch: dict[int, ScratchPlacement]
    live_bytes: tuple[int, ...]
    inplace_ops: frozenset[int]
    strategy: str

    def step_of(self, op_position: int) -> int:
        return self.order.index(op_position)


# ---------------------------------------------------------------------------------------------
# Lifetimes


def _round(n: int, a: int) -> int:
    return -(-n // a) * a


# element sizes without building numpy dtypes (this runs inside the NAS loop)
# (keyed by name: enum members hash through a Python-level __hash__)
_ITEMSIZE = {d.name: d.itemsize for d in DType}


def _nbytes(t: Tensor) -> int:
    n = _ITEMSIZE[t.dtype._name_]
    for d in t.shape:
        n *= d
    return n


class PlanError(ValueError):
    """The order is not a valid schedule of the graph."""


def check_order(graph: Graph, order: Sequence[int]) -> None:
    n = len(graph.ops)
    if sorted(order) != list(range(n)):
        raise PlanError(f"order is not a permutation of the {n} ops")
    produced_at: dict[int, int] = {}
    for s, p in enumerate(order):
        for t in graph.ops[p].outputs:
            produced_at[t] = s
    for s, p in enumerate(order):
        for t in graph.ops[p].inputs:
            if t >= 0 and produced_at.get(t, -1) >= s:
                raise PlanError(f"{graph.ops[p]} runs before the producer of tensor {t}")


def lifetimes(graph: Graph, order: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
    """first and last step of every non-constant tensor the schedule touches."""
    tensors = graph.tensors
    end = max(len(order) - 1, 0)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in graph.inputs:
        if tensors[t].data is None:
            first[t] = 0
            last[t] = 0
    ops = graph.ops
    for s, p in enumerate(order):
        op = ops[p]
        for t in op.inputs:
            if t >= 0 and tensors[t].data is None:
                if t not in first:
                    first[t] = 0  # read but never written: treat as present from the start
                last[t] = s
        for t in op.outputs:
            if tensors[t].data is None:
                first[t] = s
                if last.get(t, -1) < s:
                    last[t] = s
    for t in graph.outputs:
        if tensors[t].data is None:
            first.setdefault(t, 0)
            last[t] = end
    return first, last


# ---------------------------------------------------------------------------------------------
# Groups of buffers sharing bytes

# A member buffer inside a group: (rel offset, rounded size, first step, last step, key).
# key >= 0: tensor index; key < 0: scratch of op position -key - 1.
Member = tuple[int, int, int, int, int]


@dataclasses.dataclass
class _Item:
    first: int
    last: int
    extent: int
    members: list[Member]


class _Groups:
    """Union-find with offsets: rel[t] is t's offset inside parent[t]'s buffer."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.rel: dict[int, int] = {}
        self.members: dict[int, list[int]] = {}

    def add(self, t: int) -> None:
        self.parent[t] = t
        self.rel[t] = 0
        self.members[t] = [t]

    def find(self, t: int) -> tuple[int, int]:
        off = 0
        path = []
        r = t
        while self.parent[r] != r:
            path.append(r)
            off += self.rel[r]
            r = self.parent[r]
        # path compression, keeping offsets relative to the root
        acc = off
        for node in path:
            self.parent[node] = r
            self.rel[node], acc = acc, acc - self.rel[node]
        return r, off

    def attach(self, child_root: int, parent_root: int, offset: int) -> None:
        self.parent[child_root] = parent_root
        self.rel[child_root] = offset
        self.members[parent_root].extend(self.members.pop(child_root))

    def singleton(self, t: int) -> bool:
        return self.parent[t] == t and len(self.members[t]) == 1


@dataclasses.dataclass
class _Layout:
    """Everything placement needs, decided for one schedule."""

    order: list[int]
    first: dict[int, int]
    last: dict[int, int]
    size: dict[int, int]
    groups: _Groups
    roles: dict[int, tuple[Role, int]]
    inplace_ops: set[int]
    scratch: dict[int, tuple[int, int]]  # op position -> (step, rounded bytes)
    scratch_raw: dict[int, int]
    items: list[_Item]
    n_steps: int
    alignment: int


def _same_quant(graph: Graph, a: int, b: int) -> bool:
    qa, qb = graph.tensors[a].quant, graph.tensors[b].quant
    if qa is None or qb is None:
        return qa is qb
    return (
        qa.axis == qb.axis
        and np.array_equal(qa.scale, qb.scale)
        and np.array_equal(qa.zero_point, qb.zero_point)
    )


def _concat_inplace(graph: Graph, layout: _Layout, alignment: int, p: int, n_consumers: dict[int, int], producer_kind: dict[int, OpKind], protected: set[int]) -> bool:
    """Merge a CONCATENATION's inputs into slices of its output if exactly safe."""
    op = graph.ops[p]
    if not opspec.concat_slice_axis_ok(graph, op):
        return False
    out = op.outputs[0]
    tensors = graph.tensors
    if tensors[out].data is not None or not layout.groups.singleton(out):
        return False
    ins = op.inputs
    if len(set(ins)) != len(ins) or any(t < 0 for t in ins):
        return False
    g = layout.groups
    slices = []
    offset = 0
    roots = set()
    for t in ins:
        tt = tensors[t]
        if (
            tt.data is not None
            or t in protected
            or t not in producer_kind
            or opspec.spec(producer_kind[t]).alias
            or n_consumers.get(t, 0) != 1
            or tt.dtype is not tensors[out].dtype
            or not _same_quant(graph, t, out)
            or offset % alignment
        ):
            return False
        r, off_t = g.find(t)
        if r in roots or r == out:
            return False
        # the group t belongs to (a nested concatenation) must lie inside t's slice
        for m in g.members[r]:
            _, off_m = g.find(m)
            if off_m - off_t < 0 or off_m - off_t + layout.size[m] > layout.size[t]:
                return False
        roots.add(r)
        slices.append((r, offset - off_t))
        offset += _nbytes(tt)
    if offset != _nbytes(tensors[out]):
        return False
    for (r, rel), t in zip(slices, ins):
        g.attach(r, out, rel)
        layout.roles[t] = (Role.CONCAT_SLICE, out)
    layout.inplace_ops.add(p)
    return True


def _try_inplace(graph: Graph, layout: _Layout, s: int, p: int, overwrite_inputs: bool, graph_inputs: set[int], protected: set[int]) -> None:
    op = graph.ops[p]
    if len(op.outputs) != 1:
        return
    out = op.outputs[0]
    tensors = graph.tensors
    g = layout.groups
    if tensors[out].data is not None or out not in g.parent or not g.singleton(out):
        return
    # graph outputs are never written over; graph inputs only when the caller allows it
    blocked = protected if overwrite_inputs else protected | graph_inputs
    for ci in opspec.inplace_candidates(graph, op):
        t = op.inputs[ci]
        if t < 0 or tensors[t].data is not None or t in blocked:
            continue
        if layout.last[t] != s:
            continue
        # worth it only if the bytes saved at this step exceed the extra kernel scratch
        saved = min(layout.size[t], layout.size[out])
        extra = _round(opspec.scratch_bytes(graph, op, True), layout.alignment) - _round(
            opspec.scratch_bytes(graph, op, False), layout.alignment
        )
        if saved <= extra:
            continue
        r, off_t = g.find(t)
        hi = off_t + max(layout.size[t], layout.size[out])
        ok = True
        for m in g.members[r]:
            _, off_m = g.find(m)
            if off_m < hi and off_t < off_m + layout.size[m] and (
                layout.last[m] > s or m in blocked
            ):
                ok = False
                break
        if not ok:
            continue
        g.attach(out, r, off_t)
        layout.roles[out] = (Role.INPLACE, t)
        layout.inplace_ops.add(p)
        return


def _build_layout(graph: Graph, order: list[int], alignment: int, inplace: bool, overwrite_inputs: bool) -> _Layout:
    tensors = graph.tensors
    first, last = lifetimes(graph, order)
    size = {t: _round(_nbytes(tensors[t]), alignment) for t in first}
    g = _Groups()
    for t in first:
        g.add(t)
    layout = _Layout(
        order=order, first=first, last=last, size=size, groups=g, roles={},
        inplace_ops=set(), scratch={}, scratch_raw={}, items=[], n_steps=max(len(order), 1),
        alignment=alignment,
    )
    ops = graph.ops
    graph_inputs = set(graph.inputs)
    protected = {t for t in graph.outputs}  # graph outputs are never written over

    if inplace:
        n_consumers: dict[int, int] = {}
        producer_kind: dict[int, OpKind] = {}
        for op in ops:
            for t in set(op.inputs):
                if t >= 0:
                    n_consumers[t] = n_consumers.get(t, 0) + 1
            for t in op.outputs:
                producer_kind[t] = op.kind
        for p in order:
            if ops[p].kind is OpKind.CONCATENATION:
                _concat_inplace(graph, layout, alignment, p, n_consumers, producer_kind, protected | graph_inputs)

    for s, p in enumerate(order):
        op = ops[p]
        if opspec.is_alias(op):
            if op.inputs and op.inputs[0] >= 0 and len(op.outputs) == 1:
                t, out = op.inputs[0], op.outputs[0]
                if (
                    tensors[t].data is None
                    and tensors[out].data is None
                    and _nbytes(tensors[t]) == _nbytes(tensors[out])
                    and g.singleton(out)
                ):
                    r, off_t = g.find(t)
                    g.attach(out, r, off_t)
                    layout.roles[out] = (Role.ALIAS, t)
            continue
        if inplace and p not in layout.inplace_ops:
            _try_inplace(graph, layout, s, p, overwrite_inputs, graph_inputs, protected)

    for s, p in enumerate(order):
        raw = opspec.scratch_bytes(graph, ops[p], p in layout.inplace_ops)
        if raw > 0:
            layout.scratch[p] = (s, _round(raw, alignment))
            layout.scratch_raw[p] = raw

    # items to place
    items = layout.items
    for r, mem in g.members.items():
        ms: list[Member] = []
        for m in mem:
            _, off = g.find(m)
            ms.append((off, size[m], first[m], last[m], m))
        lo = min(x[0] for x in ms)
        if lo:
            ms = [(o - lo, sz, f, l, k) for (o, sz, f, l, k) in ms]
        items.append(
            _Item(min(x[2] for x in ms), max(x[3] for x in ms), max(x[0] + x[1] for x in ms), ms)
        )
    for p, (s, sz) in layout.scratch.items():
        items.append(_Item(s, s, sz, [(0, sz, s, s, -p - 1)]))
    return layout


# ---------------------------------------------------------------------------------------------
# Live bytes (the lower bound)


def _live_bytes(layout: _Layout) -> list[int]:
    n = layout.n_steps
    diff = [0] * (n + 1)
    for it in layout.items:
        if len(it.members) == 1:
            if it.extent:
                diff[it.first] += it.extent
                diff[it.last + 1] -= it.extent
            continue
        for s in range(it.first, it.last + 1):
            spans = sorted((o, o + sz) for (o, sz, f, l, _) in it.members if f <= s <= l and sz)
            total = 0
            end = -1
            for a, b in spans:
                if b <= end:
                    continue
                total += b - max(a, end)
                end = b
            diff[s] += total
            diff[s + 1] -= total
    live = []
    acc = 0
    for s in range(n):
        acc += diff[s]
        live.append(acc)
    return live


# ---------------------------------------------------------------------------------------------
# Placement


def _forbidden(item: _Item, placed: Iterable[tuple[_Item, int]]) -> list[tuple[int, int]]:
    """Open intervals (lo, hi) of group base offsets that would overlap a live buffer."""
    out = []
    f0, l0 = item.first, item.last
    single = len(item.members) == 1
    for other, base in placed:
        if other.last < f0 or other.first > l0:
            continue
        if single and len(other.members) == 1:
            out.append((base - item.extent, base + other.extent))
            continue
        for (ro, so, fo, lo_, _) in other.members:
            if not so:
                continue
            for (rm, sm, fm, lm, _) in item.members:
                if sm and fo <= lm and fm <= lo_:
                    out.append((base + ro - rm - sm, base + ro + so - rm))
    return out


def _lowest(intervals: list[tuple[int, int]]) -> int:
    b = 0
    for lo, hi in sorted(intervals):
        if lo >= b:
            break
        if hi > b:
            b = hi
    return b


def _highest(intervals: list[tuple[int, int]], top: int) -> Optional[int]:
    b = top
    for lo, hi in sorted(intervals, key=lambda iv: -iv[1]):
        if hi <= b:
            break
        if lo < b:
            b = lo
    return b if b >= 0 else None


def _place_first_fit(items: list[_Item], idx: list[int], sweep: bool) -> tuple[list[int], int]:
    """Each item in `idx` order at the lowest offset that fits. `sweep`: idx is sorted by
    first step, so items that ended before the current start can be forgotten."""
    bases = [0] * len(items)
    placed: list[tuple[_Item, int]] = []
    arena = 0
    for i in idx:
        it = items[i]
        if sweep:
            placed = [pb for pb in placed if pb[0].last >= it.first]
        b = _lowest(_forbidden(it, placed))
        bases[i] = b
        placed.append((it, b))
        arena = max(arena, b + it.extent)
    return bases, arena


def _place_two_ended(items: list[_Item], idx: list[int], cap: int) -> tuple[list[int], int]:
    """Items by first step; each goes to whichever end of a `cap`-byte arena it can touch
    (bottom first), else the lowest fit. On a chain consecutive tensors alternate ends and
    scratch falls in the gap, which reaches the lower bound exactly."""
    bases = [0] * len(items)
    placed: list[tuple[_Item, int]] = []
    arena = 0
    for i in idx:
        it = items[i]
        placed = [pb for pb in placed if pb[0].last >= it.first]
        iv = _forbidden(it, placed)
        b = _lowest(iv)
        if b != 0 and it.extent <= cap:
            t = _highest(iv, cap - it.extent)
            if t is not None and t == cap - it.extent:
                b = t
        bases[i] = b
        placed.append((it, b))
        arena = max(arena, b + it.extent)
    return bases, arena


def _strategies(items: list[_Item], lower_bound: int):
    n = len(items)
    by_start = sorted(range(n), key=lambda i: (items[i].first, -items[i].extent, i))
    yield "two_ended", lambda: _place_two_ended(items, by_start, lower_bound)
    yield "greedy_by_size", lambda: _place_first_fit(
        items, sorted(range(n), key=lambda i: (-items[i].extent, items[i].first, i)), False
    )
    yield "by_start", lambda: _place_first_fit(items, by_start, True)
    yield "by_size_x_duration", lambda: _place_first_fit(
        items,
        sorted(range(n), key=lambda i: (-items[i].extent * (items[i].last - items[i].first + 1), i)),
        False,
    )
    yield "by_duration", lambda: _place_first_fit(
        items,
        sorted(range(n), key=lambda i: (items[i].first - items[i].last, -items[i].extent, i)),
        False,
    )


def _assemble(graph: Graph, layout: _Layout, bases: list[int], arena: int, live: list[int], strategy: str, alignment: int) -> MemoryPlan:
    tensors: dict[int, TensorPlacement] = {}
    scratch: dict[int, ScratchPlacement] = {}
    for it, base in zip(layout.items, bases):
        for (rel, _, f, l, key) in it.members:
            if key < 0:
                p = -key - 1
                scratch[p] = ScratchPlacement(p, f, base + rel, layout.scratch_raw[p])
            else:
                role, of = layout.roles.get(key, (Role.OWN, None))
                tensors[key] = TensorPlacement(
                    key, graph.tensors[key].name, base + rel, _nbytes(graph.tensors[key]), f, l, role, of
                )
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
    )


def _best(layout: _Layout, lower_bound: int) -> tuple[list[int], int, str]:
    best: Optional[tuple[list[int], int, str]] = None
    for name, run in _strategies(layout.items, lower_bound):
        bases, arena = run()
        if best is None or arena < best[1]:
            best = (bases, arena, name)
        if arena <= lower_bound:
            break
    assert best is not None
    return best


def plan_memory(
    graph: Graph,
    order: Optional[Sequence[int]] = None,
    alignment: int = 4,
    inplace: bool = True,
    overwrite_inputs: bool = False,
) -> MemoryPlan:
    """Plan the arena for `graph` run in `order` (positions in graph.ops; default file order).

    inplace: allow in-place ops and concatenations written into place (reshape aliases are
    always used: the engine never copies a reshape). overwrite_inputs: let an in-place op
    write over a graph input it is the last reader of (off by default: the caller owns the
    input). Graph outputs are never written over.
    """
    if alignment < 1:
        raise ValueError("alignment must be >= 1")
    order = list(range(len(graph.ops))) if order is None else list(order)
    check_order(graph, order)
    layout = _build_layout(graph, order, alignment, inplace, overwrite_inputs)
    live = _live_bytes(layout)
    lb = max(live) if live else 0
    if not layout.items:
        return _assemble(graph, layout, [], 0, live, "empty", alignment)
    bases, arena, name = _best(layout, lb)
    if arena > lb and (layout.inplace_ops):
        # never worse than plain greedy planning without in-place reuse (TFLM's planner)
        plain = _build_layout(graph, order, alignment, False, overwrite_inputs)
        pb, pa = _place_first_fit(
            plain.items,
            sorted(range(len(plain.items)), key=lambda i: (-plain.items[i].extent, plain.items[i].first, i)),
            False,
        )
        if pa < arena:
            plain_live = _live_bytes(plain)
            pbases, parena, pname = _best(plain, max(plain_live))
            return _assemble(graph, plain, pbases, parena, plain_live, pname + "_no_inplace", alignment)
    return _assemble(graph, layout, bases, arena, live, name, alignment)


def greedy_arena_bytes(graph: Graph, order: Optional[Sequence[int]] = None, alignment: int = 4) -> int:
    """The baseline: TFLM's GreedyMemoryPlanner rule (largest buffer first, at the lowest
    offset that does not overlap a buffer with an overlapping lifetime), on the same tensors,
    scratch and reshape aliases, without in-place reuse."""
    order = list(range(len(graph.ops))) if order is None else list(order)
    check_order(graph, order)
    layout = _build_layout(graph, order, alignment, False, False)
    items = layout.items
    if not items:
        return 0
    _, arena = _place_first_fit(
        items, sorted(range(len(items)), key=lambda i: (-items[i].extent, items[i].first, i)), False
    )
    return arena


# ---------------------------------------------------------------------------------------------
# Independent checker


def verify_plan(graph: Graph, plan: MemoryPlan) -> list[str]:
    """Every way `plan` could corrupt data, as readable lines (empty list: sound).

    Recomputes lifetimes from the graph and the plan's order, then checks that every
    non-constant tensor and every op's scratch is placed, aligned and inside the arena, and
    that two buffers live at the same step never share a byte unless they are a sanctioned
    pair: reshape aliases at the same offset; an in-place output and the input it took over
    (same offset, the input dying at that op, the op allowed to run in place); a concatenation
    input at exactly its slice of the output.
    """
    problems: list[str] = []
    order = list(plan.order)
    try:
        check_order(graph, order)
    except PlanError as e:
        return [str(e)]
    first, last = lifetimes(graph, order)
    a = plan.alignment
    step_of = {p: s for s, p in enumerate(order)}
    producer = {t: p for p, op in enumerate(graph.ops) for t in op.outputs}

    bufs: list[tuple[str, int, int, int, int, int]] = []  # (name, key, off, size, first, last)
    for t in first:
        tp = plan.tensors.get(t)
        if tp is None:
            problems.append(f"tensor {t} is not placed")
            continue
        if (tp.first_step, tp.last_step) != (first[t], last[t]):
            problems.append(f"tensor {t}: lifetime {tp.first_step}..{tp.last_step}, expected {first[t]}..{last[t]}")
        if tp.bytes != graph.tensors[t].nbytes:
            problems.append(f"tensor {t}: {tp.bytes} bytes, the tensor has {graph.tensors[t].nbytes}")
        bufs.append((f"tensor {t}", t, tp.offset, _round(graph.tensors[t].nbytes, a), first[t], last[t]))
    for t, tp in plan.tensors.items():
        if graph.tensors[t].data is not None:
            problems.append(f"constant tensor {t} is placed in the arena")
    for p, op in enumerate(graph.ops):
        need = opspec.scratch_bytes(graph, op, p in plan.inplace_ops)
        sp = plan.scratch.get(p)
        if need and (sp is None or sp.bytes < need):
            problems.append(f"{op}: scratch of {need} bytes not planned")
        if sp is not None:
            s = step_of[p]
            bufs.append((f"scratch of {op}", -p - 1, sp.offset, _round(sp.bytes, a), s, s))
    for name, _, off, sz, _, _ in bufs:
        if off % a or off < 0 or off + sz > plan.arena_bytes:
            problems.append(f"{name}: [{off}, {off + sz}) misaligned or outside the {plan.arena_bytes}-byte arena")

    def alias_root(t: int) -> int:
        while True:
            tp = plan.tensors.get(t)
            if tp is None or tp.role is not Role.ALIAS:
                return t
            t = tp.alias_of  # type: ignore[assignment]

    def sanctioned(x: int, y: int, offx: int, offy: int) -> bool:
        if x < 0 or y < 0:
            return False
        if offx == offy and alias_root(x) == alias_root(y):
            ok = True
            for t in (x, y):  # a reshape must really be a view of its input
                tp = plan.tensors[t]
                if tp.role is Role.ALIAS:
                    p = producer.get(t)
                    ok &= p is not None and opspec.is_alias(graph.ops[p]) and graph.ops[p].inputs[0] == tp.alias_of
            if ok:
                return True
        for u, v, offu, offv in ((x, y, offx, offy), (y, x, offy, offx)):
            tv = plan.tensors[v]
            if tv.role is Role.INPLACE and tv.alias_of is not None:
                src = tv.alias_of
                p = producer.get(v)
                if p is None or p not in plan.inplace_ops or offu != offv:
                    continue
                op = graph.ops[p]
                s = step_of[p]
                cands = {op.inputs[i] for i in opspec.inplace_candidates(graph, op)}
                if (
                    src in cands
                    and alias_root(u) == alias_root(src)
                    and plan.tensors[u].offset == plan.tensors[src].offset
                    and last[u] == s
                    and first[v] == s
                    and u not in graph.outputs
                ):
                    return True
            if tv.role is Role.CONCAT_SLICE and tv.alias_of == u:
                p = producer.get(u)
                if p is None or p not in plan.inplace_ops:
                    continue
                op = graph.ops[p]
                if op.kind is not OpKind.CONCATENATION or v not in op.inputs:
                    continue
                j = op.inputs.index(v)
                rel = sum(graph.tensors[t].nbytes for t in op.inputs[:j])
                if offv == offu + rel and last[v] == step_of[p] == first[u]:
                    return True
        return False

    bufs.sort(key=lambda b: b[2])
    for i in range(len(bufs)):
        ni, ki, oi, si, fi, li = bufs[i]
        if not si:
            continue
        for j in range(i + 1, len(bufs)):
            nj, kj, oj, sj, fj, lj = bufs[j]
            if oj >= oi + si:
                break
            if not sj or fj > li or fi > lj:
                continue
            if not sanctioned(ki, kj, oi, oj):
                problems.append(f"{ni} [{oi}, {oi + si}) steps {fi}..{li} overlaps {nj} [{oj}, {oj + sj}) steps {fj}..{lj}")
    return problems


def lower_bound_bytes(
    graph: Graph,
    order: Optional[Sequence[int]] = None,
    alignment: int = 4,
    inplace: bool = True,
    overwrite_inputs: bool = False,
) -> int:
    """The plan's `lower_bound_bytes` for `order` without placing anything (the schedule's
    objective)."""
    order = list(range(len(graph.ops))) if order is None else list(order)
    check_order(graph, order)
    live = _live_bytes(_build_layout(graph, order, alignment, inplace, overwrite_inputs))
    return max(live) if live else 0
