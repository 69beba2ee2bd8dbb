"""The independent checker: every way a plan could corrupt data.

It shares only lifetimes, opspec's rules and `alias_root` with the code that makes plans, so a
placement bug cannot hide behind the same bug here.
"""
from __future__ import annotations

from tflite_converter import opspec
from tflite_converter.ir import Graph, OpKind
from tflite_converter.planner.layout import alias_root
from tflite_converter.planner.lifetimes import check_order, lifetimes, round_up
from tflite_converter.planner.records import MemoryPlan, PlanError, Role


def verify_plan(graph: Graph, plan: MemoryPlan) -> list[str]:
    """Every way `plan` could corrupt data, as readable lines (empty list: sound).

    Recomputes lifetimes from the graph and the plan's order, then checks that every
    non-constant tensor and every op's scratch is placed, aligned and inside the arena, and
    that two buffers live at the same step never share a byte unless they are a sanctioned
    pair: reshape aliases at the same offset; an in-place output and the input it took over
    (same offset, the input dying at that op, the op allowed to run in place); a concatenation
    input at exactly its slice of the output; an output starting inside its op's dying input
    no further than the kernel's write order allows (write_order.py).
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
        bufs.append((f"tensor {t}", t, tp.offset, round_up(graph.tensors[t].nbytes, a), first[t], last[t]))
    for t in plan.tensors:
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
        variant = opspec.kernel_variant(graph, op, inplace_op, sp.bytes if sp else 0)
        if plan.variants.get(p) != variant:
            problems.append(f"{op}: kernel variant recorded as {plan.variants.get(p)}, "
                            f"its scratch and placement give {variant}")
        if sp is not None:
            s = step_of[p]
            bufs.append((f"scratch of {op}", -p - 1, sp.offset, round_up(sp.bytes, a), s, s))
    for name, _, off, sz, _, _ in bufs:
        if off % a or off < 0 or off + sz > plan.arena_bytes:
            problems.append(f"{name}: [{off}, {off + sz}) misaligned or outside the {plan.arena_bytes}-byte arena")

    # the reshape views the plan claims: tensor -> the tensor whose bytes it views
    views = {t: tp.alias_of for t, tp in plan.tensors.items() if tp.role is Role.ALIAS and tp.alias_of is not None}

    def sanctioned(x: int, y: int, offx: int, offy: int) -> bool:
        if x < 0 or y < 0:
            return False
        if offx == offy and alias_root(x, views) == alias_root(y, views):
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
                    and alias_root(u, views) == alias_root(src, views)
                    and plan.tensors[u].offset == plan.tensors[src].offset
                    and last[u] == s
                    and first[v] == s
                    and u not in graph.outputs
                ):
                    return True
            p = producer.get(v)
            if p is not None and p in plan.overlaps and _overlap_safe(graph, p, u, v, offu, offv):
                return True
            if _row_view_safe(u, v, offu, offv):
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

    def _row_view_safe(u: int, v: int, offu: int, offv: int) -> bool:
        # v, a row band of u (ROW_BANDS cutting u, or ROW_JOIN joining into u), at exactly its
        # rows' bytes, the two live together only at that op's step
        for p, whole_dies in ((producer.get(v), True), (producer.get(u), False)):
            if p is None:
                continue
            views = opspec.row_views(graph, graph.ops[p])
            if views is None or views[0] != u:
                continue
            s = step_of[p]
            for band, d in views[1]:
                if band == v and offv == offu + d:
                    if whole_dies and last[u] == s == first[v] and u not in graph.outputs:
                        return True
                    if not whole_dies and last[v] == s == first[u] and v not in graph.outputs:
                        return True
        return False

    def _overlap_safe(graph: Graph, p: int, u: int, v: int, offu: int, offv: int) -> bool:
        # v, the output of op p, may start inside u, its input 0 dying there, as far as the
        # kernel's write order proves (recomputed from the graph, not read from the plan)
        op = graph.ops[p]
        shift_fn = opspec.spec(op.kind).output_shift
        if shift_fn is None or p in plan.inplace_ops or not op.inputs or op.inputs[0] != u:
            return False
        s = step_of[p]
        if last[u] != s or first[v] != s or u in graph.outputs:
            return False
        d = shift_fn(graph, op)
        return d is not None and offv - offu <= d

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
                problems.append(f"{ni} [{oi}, {oi + si}) steps {fi}..{li} overlaps "
                                f"{nj} [{oj}, {oj + sj}) steps {fj}..{lj}")
    return problems
