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
5. Loop tiling into the room left free: an op whose kernel runs faster with more scratch
   (`opspec.preferred_scratch_bytes`, e.g. CONV_2D's wider im2col pixel block) gets, after
   placement, the largest scratch up to that size that fits in a free gap of the arena at
   its step. The arena never grows and every other offset stays as placed,
   so the arena is exactly the minimum-scratch plan's.

`verify_plan` checks a plan independently of how it was made.
"""
from __future__ import annotations

import bisect
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
    bytes: int  # granted: what the kernel may use, min_bytes <= bytes <= its preferred size
    min_bytes: int  # what the kernel needs (opspec.scratch_bytes); the arena was sized with it


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


def _check_dependencies(graph: Graph, order: Sequence[int]) -> None:
    """Every input is produced at an earlier step (`order` is known to be a permutation)."""
    ops = graph.ops
    produced_at: dict[int, int] = {}
    for s, p in enumerate(order):
        for t in ops[p].outputs:
            produced_at[t] = s
    get = produced_at.get
    for s, p in enumerate(order):
        for t in ops[p].inputs:
            if t >= 0 and get(t, -1) >= s:
                raise PlanError(f"{ops[p]} runs before the producer of tensor {t}")


def check_order(graph: Graph, order: Sequence[int]) -> None:
    n = len(graph.ops)
    if sorted(order) != list(range(n)):
        raise PlanError(f"order is not a permutation of the {n} ops")
    _check_dependencies(graph, order)


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
# What placement sees of a group: (first step, last step, extent in bytes, members).
# Plain tuples: placement reads these fields in its innermost loops.
Item = tuple[int, int, int, list[Member]]


class _Groups:
    """Buffers merged into groups that share bytes at fixed relative offsets.

    Only tensors that joined another tensor's group are recorded (most never do): root[t] is
    the group t belongs to and off[t] its byte offset inside that group's buffer; a tensor
    absent from `root` is the root of its own group, at offset 0. members[r] lists a group of
    two or more in the order its tensors joined. Groups only grow by attaching a whole group at
    a fixed offset, so offsets are kept explicit (no union-find path walking)."""

    __slots__ = ("root", "off", "members")

    def __init__(self) -> None:
        self.root: dict[int, int] = {}
        self.off: dict[int, int] = {}
        self.members: dict[int, list[int]] = {}

    def find(self, t: int) -> tuple[int, int]:
        return self.root.get(t, t), self.off.get(t, 0)

    def group(self, r: int) -> list[int]:
        """The tensors of the group whose root is `r`."""
        return self.members.get(r) or [r]

    def attach(self, child_root: int, parent_root: int, offset: int) -> None:
        """Put the group `child_root` inside `parent_root`'s at byte `offset`."""
        root, off = self.root, self.off
        moved = self.members.pop(child_root, None) or [child_root]
        for m in moved:
            root[m] = parent_root
            off[m] = off.get(m, 0) + offset
        group = self.members.get(parent_root)
        if group is None:
            self.members[parent_root] = [parent_root, *moved]
        else:
            group.extend(moved)

    def singleton(self, t: int) -> bool:
        return t not in self.root and t not in self.members


@dataclasses.dataclass
class _Layout:
    """Everything placement needs, decided for one schedule."""

    order: list[int]
    first: dict[int, int]
    last: dict[int, int]
    size: dict[int, int]  # rounded up to the alignment
    nbytes: dict[int, int]  # the tensor's own size
    groups: _Groups
    roles: dict[int, tuple[Role, int]]
    inplace_ops: set[int]
    scratch: dict[int, tuple[int, int]]  # op position -> (step, rounded bytes)
    scratch_raw: dict[int, int]
    preferred: dict[int, int]  # op position -> preferred scratch bytes, where above the minimum
    items: list[Item]
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
        for m in g.group(r):
            off_m = g.off.get(m, 0)
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


def _decide_inplace(graph: Graph, layout: _Layout, s: int, p: int, blocked: set[int], spec: opspec.OpSpec) -> int:
    """Let op `p` (at step `s`) write its output over an input that dies there, if exactly
    safe and worth it; `blocked`: tensors never written over. Returns the op's kernel scratch
    bytes for the way it will run."""
    op = graph.ops[p]
    tensors = graph.tensors
    g = layout.groups
    joined, groups, goff = g.root, g.members, g.off
    last, size = layout.last, layout.size
    out = op.outputs[0] if len(op.outputs) == 1 else -1
    if (
        out < 0
        or tensors[out].data is not None
        or out not in size
        or out in joined  # not a group of its own
        or out in groups
    ):
        return spec.scratch(graph, op, False)
    raw = None  # (scratch not in place, scratch in place), computed when first needed
    for ci in spec.inplace(graph, op):
        t = op.inputs[ci]
        if t < 0 or tensors[t].data is not None or t in blocked or last[t] != s:
            continue
        # worth it only if the bytes saved at this step exceed the extra kernel scratch
        if raw is None:
            raw = (spec.scratch(graph, op, False), spec.scratch(graph, op, True))
        a = layout.alignment
        extra = _round(raw[1], a) - _round(raw[0], a)
        size_t, size_out = size[t], size[out]
        if min(size_t, size_out) <= extra:
            continue
        r = joined.get(t, t)
        off_t = goff.get(t, 0)
        members = groups.get(r)
        if members is not None:
            # the output's bytes must not cover a member of t's group that is still needed
            hi = off_t + (size_t if size_t > size_out else size_out)
            clash = False
            for m in members:
                off_m = goff.get(m, 0)
                if off_m < hi and off_t < off_m + size[m] and (last[m] > s or m in blocked):
                    clash = True
                    break
            if clash:
                continue
        # (t alone in its group dies here and is not blocked: nothing to clash with)
        g.attach(out, r, off_t)
        layout.roles[out] = (Role.INPLACE, t)
        layout.inplace_ops.add(p)
        return raw[1]
    return raw[0] if raw is not None else spec.scratch(graph, op, False)


def _build_layout(
    graph: Graph,
    order: list[int],
    alignment: int,
    inplace: bool,
    overwrite_inputs: bool,
    spans: Optional[tuple[dict[int, int], dict[int, int]]] = None,
) -> _Layout:
    """Groups, roles, scratch and the items to place. `spans`: lifetimes(graph, order) if the
    caller has them already."""
    tensors = graph.tensors
    first, last = lifetimes(graph, order) if spans is None else spans
    size = {}
    nbytes = {}
    for t in first:
        tt = tensors[t]
        n = _ITEMSIZE[tt.dtype._name_]
        for d in tt.shape:
            n *= d
        nbytes[t] = n
        size[t] = -(-n // alignment) * alignment
    g = _Groups()
    layout = _Layout(
        order=order, first=first, last=last, size=size, nbytes=nbytes, groups=g, roles={},
        inplace_ops=set(), scratch={}, scratch_raw={}, preferred={}, items=[], n_steps=max(len(order), 1),
        alignment=alignment,
    )
    ops = graph.ops
    graph_inputs = set(graph.inputs)
    protected = set(graph.outputs)  # graph outputs are never written over
    # graph inputs belong to the caller: written over only when the caller allows it
    blocked = protected if overwrite_inputs else protected | graph_inputs

    if inplace and any(op.kind is OpKind.CONCATENATION for op in ops):
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

    # aliases and in-place ops in schedule order, and each op's scratch, which depends on
    # whether that op runs in place: settled when the op is reached (later ops never change it)
    inplace_ops = layout.inplace_ops
    scratch, scratch_raw = layout.scratch, layout.scratch_raw
    for s, p in enumerate(order):
        op = ops[p]
        spec = opspec.spec(op.kind)
        if spec.alias:
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
            raw = spec.scratch(graph, op, p in inplace_ops)
        elif inplace and p not in inplace_ops and spec.inplace is not opspec.NEVER_INPLACE:
            raw = _decide_inplace(graph, layout, s, p, blocked, spec)
        else:
            raw = spec.scratch(graph, op, p in inplace_ops)
        if raw > 0:
            scratch[p] = (s, -(-raw // alignment) * alignment)
            scratch_raw[p] = raw
            if spec.preferred_scratch is not None:
                want = spec.preferred_scratch(graph, op, p in inplace_ops)
                if want > raw:
                    layout.preferred[p] = want

    # items to place
    items = layout.items
    n_steps = layout.n_steps
    joined, groups, goff = g.root, g.members, g.off
    for r in first:  # one item per group, in the order of the groups' roots
        if r in joined:
            continue
        mem = groups.get(r)
        if mem is None:  # a group of one tensor sits at its own offset 0
            f, l, sz = first[r], last[r], size[r]
            items.append((f, l, sz, [(0, sz, f, l, r)]))
            continue
        lo = min([goff.get(m, 0) for m in mem])  # the group's lowest byte becomes offset 0
        ms: list[Member] = []
        f0, l0, extent = n_steps, -1, 0
        for m in mem:
            o, sz, f, l = goff.get(m, 0) - lo, size[m], first[m], last[m]
            ms.append((o, sz, f, l, m))
            if f < f0:
                f0 = f
            if l > l0:
                l0 = l
            if o + sz > extent:
                extent = o + sz
        items.append((f0, l0, extent, ms))
    for p, (s, sz) in scratch.items():
        items.append((s, s, sz, [(0, sz, s, s, -p - 1)]))
    return layout


# ---------------------------------------------------------------------------------------------
# Live bytes (the lower bound)


def _live_bytes(layout: _Layout) -> list[int]:
    n = layout.n_steps
    diff = [0] * (n + 1)
    for f0, l0, extent, members in layout.items:
        if len(members) == 1:
            if extent:
                diff[f0] += extent
                diff[l0 + 1] -= extent
            continue
        if len(members) == 2:
            # both members counted in full, minus their common bytes while both are live
            (o1, s1, f1, l1, _), (o2, s2, f2, l2, _) = members
            for o, sz, f, l in ((o1, s1, f1, l1), (o2, s2, f2, l2)):
                diff[f] += sz
                diff[l + 1] -= sz
            a, b = (f1 if f1 > f2 else f2), (l1 if l1 < l2 else l2) + 1
            common = (o1 + s1 if o1 + s1 < o2 + s2 else o2 + s2) - (o1 if o1 > o2 else o2)
            if a < b and common > 0:
                diff[a] -= common
                diff[b] += common
            continue
        # the union of the live members' bytes only changes where a member starts or ends:
        # compute it once per segment between those steps
        cuts = sorted({m[2] for m in members}.union([m[3] + 1 for m in members]))
        a = cuts[0]
        for b in cuts[1:]:
            spans = [(o, o + sz) for (o, sz, f, l, _) in members if f <= a <= l and sz]
            if len(spans) == 1:
                total = spans[0][1] - spans[0][0]
            else:
                spans.sort()
                total = 0
                end = -1
                for lo, hi in spans:
                    if hi <= end:
                        continue
                    total += hi - (lo if lo > end else end)
                    end = hi
            diff[a] += total
            diff[b] -= total
            a = b
    live = []
    acc = 0
    for s in range(n):
        acc += diff[s]
        live.append(acc)
    return live


# ---------------------------------------------------------------------------------------------
# Placement

# A placed item: (first step, last step, extent, members, base offset).
Placed = tuple[int, int, int, list[Member], int]


def _forbidden(item: Item, placed: Iterable[Placed]) -> list[tuple[int, int]]:
    """Open intervals (lo, hi) of group base offsets that would overlap a live buffer."""
    f0, l0, extent, members = item
    if len(members) == 1:
        # a lone buffer (offset 0 in its item, live for the whole item): only the other
        # item's members need their lifetimes checked
        out = []
        for fo_, lo_i, other_extent, other_members, base in placed:
            if lo_i < f0 or fo_ > l0:
                continue
            if len(other_members) == 1:
                out.append((base - extent, base + other_extent))
                continue
            for (ro, so, fo, lo_, _) in other_members:
                if so and fo <= l0 and f0 <= lo_ and extent:
                    out.append((base + ro - extent, base + ro + so))
        return out
    out = []
    for fo_, lo_i, other_extent, other_members, base in placed:
        if lo_i < f0 or fo_ > l0:
            continue
        for (ro, so, fo, lo_, _) in other_members:
            if not so:
                continue
            for (rm, sm, fm, lm, _) in members:
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


def _place_first_fit(items: list[Item], idx: list[int], sweep: bool) -> tuple[list[int], int]:
    """Each item in `idx` order at the lowest offset that fits. `sweep`: idx is sorted by
    first step, so items that ended before the current start can be forgotten."""
    bases = [0] * len(items)
    placed: list[Placed] = []
    arena = 0
    step = -1
    for i in idx:
        it = items[i]
        if sweep and it[0] != step:
            step = it[0]
            placed = [pb for pb in placed if pb[1] >= step]
        b = _lowest(_forbidden(it, placed))
        bases[i] = b
        placed.append((*it, b))
        if b + it[2] > arena:
            arena = b + it[2]
    return bases, arena


def _place_two_ended(items: list[Item], idx: list[int], cap: int) -> tuple[list[int], int]:
    """Items by first step; each goes to whichever end of a `cap`-byte arena it can touch
    (bottom first), else the lowest fit. On a chain consecutive tensors alternate ends and
    scratch falls in the gap, which reaches the lower bound exactly."""
    bases = [0] * len(items)
    placed: list[Placed] = []
    arena = 0
    step = -1
    for i in idx:
        it = items[i]
        f0, _, extent, _ = it
        if f0 != step:  # forget items that ended before this step (none end within a step)
            placed = [pb for pb in placed if pb[1] >= f0]
            step = f0
        iv = _forbidden(it, placed)
        b = _lowest(iv)
        if b != 0 and extent <= cap:
            # the top end is free iff no forbidden interval contains it
            top = cap - extent
            for lo, hi in iv:
                if lo < top < hi:
                    break
            else:
                b = top
        bases[i] = b
        placed.append((*it, b))
        if b + extent > arena:
            arena = b + extent
    return bases, arena


def _strategies(items: list[Item], lower_bound: int):
    n = len(items)
    by_start = sorted(range(n), key=lambda i: (items[i][0], -items[i][2], i))
    yield "two_ended", lambda: _place_two_ended(items, by_start, lower_bound)
    yield "greedy_by_size", lambda: _place_first_fit(items, _by_size(items), False)
    yield "by_start", lambda: _place_first_fit(items, by_start, True)
    yield "by_size_x_duration", lambda: _place_first_fit(
        items,
        sorted(range(n), key=lambda i: (-items[i][2] * (items[i][1] - items[i][0] + 1), i)),
        False,
    )
    yield "by_duration", lambda: _place_first_fit(
        items,
        sorted(range(n), key=lambda i: (items[i][0] - items[i][1], -items[i][2], i)),
        False,
    )


def _by_size(items: list[Item]) -> list[int]:
    """TFLM's greedy order: largest first, then earliest start."""
    return sorted(range(len(items)), key=lambda i: (-items[i][2], items[i][0], i))


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


def _grant_scratch(layout: _Layout, bases: list[int], arena: int) -> dict[int, tuple[int, int]]:
    """Op position -> (offset, bytes) of the scratch granted beyond the minimum: for each op
    with a preferred size, min(preferred, widest free gap) bytes, where the gaps are the
    arena's bytes no other buffer uses at the op's step (its minimum buffer's own bytes are
    free to it). The buffer grows in place when its gap is the widest, else moves to the
    widest gap's start. Nothing else moves and the arena does not grow."""
    preferred = layout.preferred
    if not preferred:
        return {}
    scratch = layout.scratch
    steps = {scratch[p][0]: p for p in preferred}  # one op per step
    own = {-p - 1 for p in preferred}
    # (lo, hi) of every other buffer live at one of those steps
    busy: dict[int, list[tuple[int, int]]] = {s: [] for s in steps}
    offset_of: dict[int, int] = {}
    step_list = sorted(steps)
    for (f0, l0, _, members), base in zip(layout.items, bases):
        i = bisect.bisect_left(step_list, f0)
        if i == len(step_list) or step_list[i] > l0:  # live at none of those steps
            continue
        hit = step_list[i:bisect.bisect_right(step_list, l0)]
        for rel, sz, f, l, key in members:
            if key in own:
                offset_of[-key - 1] = base + rel
            elif sz:
                lo = base + rel
                for s in hit:
                    if f <= s <= l:
                        busy[s].append((lo, lo + sz))
    grants: dict[int, tuple[int, int]] = {}
    for s, p in steps.items():
        off = offset_of[p]
        best_lo, best_size, cursor = off, 0, 0
        for lo, hi in sorted(busy[s]) + [(arena, arena)]:
            # the gap [cursor, lo); the one holding the minimum buffer wins ties (no move)
            size = lo - cursor
            if size > best_size or (size == best_size and cursor <= off < lo):
                best_lo, best_size = cursor, size
            if hi > cursor:
                cursor = hi
        raw = min(preferred[p], best_size)
        if raw > layout.scratch_raw[p]:
            in_gap = best_lo <= off and off + _round(raw, layout.alignment) <= best_lo + best_size
            grants[p] = (off if in_gap else best_lo, raw)
    return grants


def _assemble(graph: Graph, layout: _Layout, bases: list[int], arena: int, live: list[int], strategy: str, alignment: int) -> MemoryPlan:
    tensors: dict[int, TensorPlacement] = {}
    scratch: dict[int, ScratchPlacement] = {}
    roles = layout.roles
    nbytes = layout.nbytes
    scratch_raw = layout.scratch_raw
    grants = _grant_scratch(layout, bases, arena)
    graph_tensors = graph.tensors
    own = (Role.OWN, None)
    for (_, _, _, members), base in zip(layout.items, bases):
        for (rel, _, f, l, key) in members:
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
                    "bytes": nbytes[key], "first_step": f, "last_step": l, "role": role,
                    "alias_of": of,
                })
                tensors[key] = tp
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


def _resolve_order(graph: Graph, order: Optional[Sequence[int]]) -> list[int]:
    """The schedule to plan, checked (the file order needs no permutation check)."""
    if order is None:
        resolved = list(range(len(graph.ops)))
        _check_dependencies(graph, resolved)
        return resolved
    resolved = list(order)
    check_order(graph, resolved)
    return resolved


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
    order = _resolve_order(graph, order)
    spans = lifetimes(graph, order)
    layout = _build_layout(graph, order, alignment, inplace, overwrite_inputs, spans)
    live = _live_bytes(layout)
    lb = max(live) if live else 0
    if not layout.items:
        return _assemble(graph, layout, [], 0, live, "empty", alignment)
    bases, arena, name = _best(layout, lb)
    if arena > lb and (layout.inplace_ops):
        # never worse than plain greedy planning without in-place reuse (TFLM's planner)
        plain = _build_layout(graph, order, alignment, False, overwrite_inputs, spans)
        pb, pa = _place_first_fit(plain.items, _by_size(plain.items), False)
        if pa < arena:
            plain_live = _live_bytes(plain)
            pbases, parena, pname = _best(plain, max(plain_live))
            return _assemble(graph, plain, pbases, parena, plain_live, pname + "_no_inplace", alignment)
    return _assemble(graph, layout, bases, arena, live, name, alignment)


def greedy_arena_bytes(graph: Graph, order: Optional[Sequence[int]] = None, alignment: int = 4) -> int:
    """The baseline: TFLM's GreedyMemoryPlanner rule (largest buffer first, at the lowest
    offset that does not overlap a buffer with an overlapping lifetime), on the same tensors,
    scratch and reshape aliases, without in-place reuse."""
    order = _resolve_order(graph, order)
    layout = _build_layout(graph, order, alignment, False, False)
    items = layout.items
    if not items:
        return 0
    _, arena = _place_first_fit(items, _by_size(items), False)
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
        inplace_op = p in plan.inplace_ops
        need = opspec.scratch_bytes(graph, op, inplace_op)
        sp = plan.scratch.get(p)
        if need and (sp is None or sp.bytes < need):
            problems.append(f"{op}: scratch of {need} bytes not planned")
        if sp is not None:
            if sp.min_bytes != need:
                problems.append(f"{op}: scratch minimum recorded as {sp.min_bytes} bytes, the kernel needs {need}")
            want = opspec.preferred_scratch_bytes(graph, op, inplace_op)
            if sp.bytes > want:
                problems.append(f"{op}: {sp.bytes} bytes of scratch granted, more than the {want} it can use")
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
