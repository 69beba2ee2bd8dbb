"""The memory plan as JSON (`plan.json`) and as a readable per-layer table.

Steps are positions in the schedule (`plan.order`); `op` fields hold the op's index in the
source .tflite (`Op.index`, stable across passes) so a user can find the layer in Netron.
"""
from __future__ import annotations

from typing import Any

from tflite_converter import opspec
from tflite_converter.ir import Graph, shape_str
from tflite_converter.planner import MemoryPlan

PLAN_FORMAT_VERSION = 1


def _tensor_brief(graph: Graph, t: int) -> dict[str, Any]:
    tt = graph.tensors[t]
    return {
        "tensor": t,
        "shape": list(tt.shape),
        "dtype": tt.dtype.value,
        "constant": tt.data is not None,
    }


def plan_to_json(graph: Graph, plan: MemoryPlan) -> dict[str, Any]:
    """A JSON-ready dict: arena and lower bound, every placed tensor and scratch buffer, and
    per op (in schedule order) its shapes, live bytes, MACs and scratch."""
    if isinstance(graph, MemoryPlan):  # tolerate (plan, graph) as the code generator calls it
        graph, plan = plan, graph
    ops = graph.ops
    step_op = [ops[p].index for p in plan.order]
    tensors = []
    for t, tp in plan.tensors.items():
        tensors.append(
            {
                "index": t,
                "name": tp.name,
                "shape": list(graph.tensors[t].shape),
                "dtype": graph.tensors[t].dtype.value,
                "offset": tp.offset,
                "bytes": tp.bytes,
                "first_step": tp.first_step,
                "last_step": tp.last_step,
                "first_op": step_op[tp.first_step] if step_op else None,
                "last_op": step_op[tp.last_step] if step_op else None,
                "role": tp.role.value,
                "alias_of": tp.alias_of,
            }
        )
    scratch = [
        {"op": ops[p].index, "position": p, "step": sp.step, "offset": sp.offset, "bytes": sp.bytes,
         "min_bytes": sp.min_bytes}
        for p, sp in plan.scratch.items()
    ]
    op_rows = []
    total_macs = 0
    for s, p in enumerate(plan.order):
        op = ops[p]
        m = opspec.macs(graph, op)
        total_macs += m
        sp = plan.scratch.get(p)
        op_rows.append(
            {
                "step": s,
                "position": p,
                "index": op.index,
                "kind": op.kind.value,
                "inputs": [_tensor_brief(graph, t) for t in op.inputs if t >= 0],
                "outputs": [_tensor_brief(graph, t) for t in op.outputs],
                "live_bytes": plan.live_bytes[s],
                "macs": m,
                "scratch_bytes": sp.bytes if sp else 0,
                "variant": plan.variants.get(p),
                "inplace": p in plan.inplace_ops,
                "alias": opspec.is_alias(op),
                # bytes of the output written over the op's dying input (planner overlap)
                "overlap_bytes": plan.overlaps.get(p, 0),
            }
        )
    return {
        "format_version": PLAN_FORMAT_VERSION,
        "model": graph.name,
        "arena_bytes": plan.arena_bytes,
        "lower_bound_bytes": plan.lower_bound_bytes,
        "alignment": plan.alignment,
        "strategy": plan.strategy,
        "order": list(plan.order),
        "total_macs": total_macs,
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
        "tensors": tensors,
        "scratch": scratch,
        "ops": op_rows,
    }


def _activation_shape(graph: Graph, tensors: list[int]) -> str:
    shapes = [shape_str(graph.tensors[t].shape) for t in tensors if t >= 0 and graph.tensors[t].data is None]
    return ",".join(shapes) if shapes else "-"


def format_table(graph: Graph, plan: MemoryPlan) -> str:
    """One line per op in schedule order: op, activation input/output shapes, bytes live at
    that step, MACs, scratch and how it runs (in place / alias); the peak step is marked."""
    ops = graph.ops
    header = ("step", "op", "kind", "input", "output", "live B", "MACs", "scratch B", "note")
    rows = []
    peak = plan.lower_bound_bytes
    total = 0
    for s, p in enumerate(plan.order):
        op = ops[p]
        m = opspec.macs(graph, op)
        total += m
        notes = []
        if opspec.is_alias(op):
            notes.append("alias")
        elif p in plan.inplace_ops:
            notes.append("in place")
        if p in plan.overlaps:
            notes.append(f"overlap {plan.overlaps[p]:,} B")
        if plan.live_bytes[s] == peak and peak:
            notes.append("peak")
        sp = plan.scratch.get(p)
        rows.append(
            (
                str(s),
                str(op.index),
                op.kind.value,
                _activation_shape(graph, op.inputs),
                _activation_shape(graph, op.outputs),
                f"{plan.live_bytes[s]:,}",
                f"{m:,}",
                f"{sp.bytes:,}" if sp else "",
                " ".join(notes),
            )
        )
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    right = {0, 1, 5, 6, 7}

    def line(r) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    out = [
        f"model {graph.name}: arena {plan.arena_bytes:,} B, "
        f"{'layer-by-layer bound' if plan.overlaps else 'lower bound'} {plan.lower_bound_bytes:,} B "
        f"(schedule of {len(plan.order)} ops, alignment {plan.alignment}, placement {plan.strategy})",
        line(header),
        line(tuple("-" * w for w in widths)),
    ]
    out += [line(r) for r in rows]
    out.append(f"total MACs {total:,}")
    return "\n".join(out)
