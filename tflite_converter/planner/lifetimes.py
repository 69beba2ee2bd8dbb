"""Schedules and lifetimes: which orders are valid, and when each tensor is live.

Like TFLM's allocation info (which records each buffer's first and last use before any
planner runs), this knows nothing about offsets: a tensor lives from the step of its producer
(graph inputs: step 0) to the step of its last consumer (graph outputs: the last step).
"""
from __future__ import annotations

from typing import Optional, Sequence

from tflite_converter.ir import Graph
from tflite_converter.planner.records import PlanError


def round_up(n: int, a: int) -> int:
    """`n` rounded up to a multiple of `a` (a buffer's reserved size)."""
    return -(-n // a) * a


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


def resolve_order(graph: Graph, order: Optional[Sequence[int]]) -> list[int]:
    """The schedule to plan, checked (the file order needs no permutation check)."""
    if order is None:
        resolved = list(range(len(graph.ops)))
        _check_dependencies(graph, resolved)
        return resolved
    resolved = list(order)
    check_order(graph, resolved)
    return resolved


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
