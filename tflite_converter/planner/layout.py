"""Buffers and aliasing: which tensors share bytes, and the items placement will see.

For a fixed schedule this decides everything except offsets (TFLM's allocation info plays
this part for its planners):

- RESHAPE / SQUEEZE / EXPAND_DIMS outputs are aliases of their input (same offset);
- an op runs in place (output at its input's offset) when `opspec` allows it and that input
  dies at this op (elementwise ops, activations, MCUNet's in-place depthwise);
- a CONCATENATION along an axis with every outer dimension 1 is a no-op: its producers write
  their results straight into their slices of its output;
- kernel scratch (`opspec.scratch_bytes`) is a one-step buffer of its own.

Buffers sharing bytes form *groups* with fixed offsets inside the group; each group becomes
one `Item`. Sizes are rounded up to the alignment, so every offset is aligned.
`alias_root` is the one walk of an aliasing chain to its root buffer.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

from tflite_converter import opspec
from tflite_converter.ir import Graph, OpKind, same_quantization
from tflite_converter.planner.lifetimes import lifetimes, round_up
from tflite_converter.planner.records import Role
from tflite_converter.write_order import aligned_shift

# A member buffer inside a group: (rel offset, rounded size, first step, last step, key).
# key >= 0: tensor index; key < 0: scratch of op position -key - 1.
Member = tuple[int, int, int, int, int]
# What placement sees of a group: (first step, last step, extent in bytes, members).
# Plain tuples: placement reads these fields in its innermost loops.
Item = tuple[int, int, int, list[Member]]


def alias_root(t: int, alias_of: Mapping[int, int]) -> int:
    """The buffer at the root of `t`'s aliasing chain: `alias_of` maps a tensor to the one
    whose bytes it views (a reshape's input, ...); a tensor not in it is its own root. A
    cycle (only in a corrupted plan) stops after every link was followed once."""
    for _ in range(len(alias_of)):
        src = alias_of.get(t)
        if src is None:
            break
        t = src
    return t


class Groups:
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
class Layout:
    """Everything placement needs, decided for one schedule."""

    order: list[int]
    first: dict[int, int]
    last: dict[int, int]
    size: dict[int, int]  # rounded up to the alignment
    nbytes: dict[int, int]  # the tensor's own size
    groups: Groups
    roles: dict[int, tuple[Role, int]]
    inplace_ops: set[int]
    scratch: dict[int, tuple[int, int]]  # op position -> (step, rounded bytes)
    scratch_raw: dict[int, int]
    preferred: dict[int, int]  # op position -> preferred scratch bytes, where above the minimum
    items: list[Item]
    n_steps: int
    alignment: int
    # (input tensor, output tensor) -> (largest output offset - input offset, op position):
    # an op's output may start that far inside its input, which dies there (write_order.py)
    overlaps: dict[tuple[int, int], tuple[int, int]] = dataclasses.field(default_factory=dict)


def _concat_inplace(graph: Graph, layout: Layout, alignment: int, p: int, n_consumers: dict[int, int],
                    producer_kind: dict[int, OpKind], protected: set[int]) -> bool:
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
            or not same_quantization(graph.tensors[t].quant, graph.tensors[out].quant)
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
        offset += tt.nbytes
    if offset != tensors[out].nbytes:
        return False
    for (r, rel), t in zip(slices, ins):
        g.attach(r, out, rel)
        layout.roles[t] = (Role.CONCAT_SLICE, out)
    layout.inplace_ops.add(p)
    return True


def _row_views(graph: Graph, layout: Layout, p: int) -> None:
    """ROW_BANDS' outputs / ROW_JOIN's inputs as views at their rows' bytes of the whole
    tensor (opspec.row_views), so a band's bytes are its own buffer's with its own lifetime:
    the rows of an input the patches have read are free before the later rows are, and a
    patch-assembled tensor's rows are taken band by band. Made only where every band is
    aligned, constant-free and not in another group; otherwise the emitters copy."""
    views = opspec.row_views(graph, graph.ops[p])
    if views is None:
        return
    whole, parts = views
    tensors, g, a = graph.tensors, layout.groups, layout.alignment
    if tensors[whole].data is not None or any(off % a or tensors[b].data is not None for b, off in parts):
        return
    if graph.ops[p].kind is OpKind.ROW_BANDS:
        if any(not g.singleton(b) for b, _ in parts):
            return
        r, off_w = g.find(whole)
        for b, off in parts:
            g.attach(b, r, off_w + off)
            layout.roles[b] = (Role.ROW_VIEW, whole)
        return
    if not g.singleton(whole):
        return
    roots = []
    for b, _ in parts:
        r, off_b = g.find(b)
        # the band's group (the PATCH_WRITEs of its rows) must lie within the band's bytes
        if r in roots or r == whole or any(not 0 <= g.off.get(m, 0) - off_b <= layout.size[b] - layout.size[m]
                                           for m in g.group(r)):
            return
        roots.append(r)
    for (b, off), r in zip(parts, roots):
        g.attach(r, whole, off - g.find(b)[1])


def _decide_inplace(graph: Graph, layout: Layout, s: int, p: int, blocked: set[int], spec: opspec.OpSpec) -> int:
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
        extra = round_up(raw[1], a) - round_up(raw[0], a)
        size_t, size_out = size[t], size[out]
        if min(size_t, size_out) <= extra:
            continue
        r = joined.get(t, t)  # g.find(t), inlined: this runs for every candidate of the NAS
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


def _decide_overlaps(graph: Graph, layout: Layout, blocked: set[int]) -> None:
    """The output-over-dying-input shifts the kernels' write order allows (opspec
    output_shift), for ops not already in place; rounded down to the alignment, kept where
    they let the two buffers share at least one aligned block."""
    ops, tensors = graph.ops, graph.tensors
    first, last, size, a = layout.first, layout.last, layout.size, layout.alignment
    for s, p in enumerate(layout.order):
        op = ops[p]
        shift_fn = opspec.spec(op.kind).output_shift
        if shift_fn is None or p in layout.inplace_ops or not op.inputs or len(op.outputs) != 1:
            continue
        t, out = op.inputs[0], op.outputs[0]
        if (t < 0 or tensors[t].data is not None or tensors[out].data is not None or t in blocked
                or t not in last or last[t] != s or first.get(out) != s):
            continue
        d = shift_fn(graph, op)
        if d is None:
            continue
        d = aligned_shift(d, a, size[out])
        if d is not None:
            layout.overlaps[(t, out)] = (d, p)


def build_layout(
    graph: Graph,
    order: list[int],
    alignment: int,
    inplace: bool,
    overwrite_inputs: bool,
    spans: Optional[tuple[dict[int, int], dict[int, int]]] = None,
    overlap: bool = False,
) -> Layout:
    """Groups, roles, scratch and the items to place. `spans`: lifetimes(graph, order) if the
    caller has them already. `overlap`: also record the output-over-input shifts
    (`Layout.overlaps`) the placement may use."""
    tensors = graph.tensors
    first, last = lifetimes(graph, order) if spans is None else spans
    size = {}
    nbytes = {}
    for t in first:
        n = tensors[t].nbytes
        nbytes[t] = n
        size[t] = -(-n // alignment) * alignment
    g = Groups()
    layout = Layout(
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
        if op.kind is OpKind.ROW_BANDS or op.kind is OpKind.ROW_JOIN:
            _row_views(graph, layout, p)
        if spec.alias:
            if op.inputs and op.inputs[0] >= 0 and len(op.outputs) == 1:
                t, out = op.inputs[0], op.outputs[0]
                if (
                    tensors[t].data is None
                    and tensors[out].data is None
                    and tensors[t].nbytes == tensors[out].nbytes
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
        want = 0 if spec.preferred_scratch is None else spec.preferred_scratch(graph, op, p in inplace_ops)
        if raw > 0 or want > raw:
            # an op that needs none but runs faster with some gets a buffer of 0 bytes, which
            # grant_scratch grows where the arena has the room
            scratch[p] = (s, -(-raw // alignment) * alignment)
            scratch_raw[p] = raw
            if want > raw:
                layout.preferred[p] = want

    if overlap:
        _decide_overlaps(graph, layout, blocked)

    # items to place
    items = layout.items
    n_steps = layout.n_steps
    joined, groups, goff = g.root, g.members, g.off
    for r in first:  # one item per group, in the order of the groups' roots
        if r in joined:
            continue
        mem = groups.get(r)
        if mem is None:  # a group of one tensor sits at its own offset 0
            f, e, sz = first[r], last[r], size[r]
            items.append((f, e, sz, [(0, sz, f, e, r)]))
            continue
        lo = min([goff.get(m, 0) for m in mem])  # the group's lowest byte becomes offset 0
        ms: list[Member] = []
        f0, l0, extent = n_steps, -1, 0
        for m in mem:
            o, sz, f, e = goff.get(m, 0) - lo, size[m], first[m], last[m]
            ms.append((o, sz, f, e, m))
            if f < f0:
                f0 = f
            if e > l0:
                l0 = e
            if o + sz > extent:
                extent = o + sz
        items.append((f0, l0, extent, ms))
    for p, (s, sz) in scratch.items():
        items.append((s, s, sz, [(0, sz, s, s, -p - 1)]))
    return layout


def tensor_buffers(graph: Graph, order: list[int], alignment: int) -> list[Item]:
    """One item per non-constant tensor, no aliases, no scratch: the graph as TFLM's
    allocator sees it (every tensor its own buffer, a reshape output included). A tensor of
    no bytes gets no buffer: it occupies nothing and conflicts with nothing."""
    tensors = graph.tensors
    first, last = lifetimes(graph, order)
    items: list[Item] = []
    for t, f in first.items():
        sz = round_up(tensors[t].nbytes, alignment)
        if sz:
            items.append((f, last[t], sz, [(0, sz, f, last[t], t)]))
    return items
