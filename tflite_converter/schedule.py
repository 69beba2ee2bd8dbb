"""Execution order: the file's order, or for graphs with branches a lower-peak order.

The objective is the planner's lower bound (the most bytes live at one step, with aliases,
in-place ops and scratch counted). A graph whose file order is its only topological order
(every op reads an output of the op before it: chains and MobileNet-style residual blocks)
returns at once. Otherwise a search over "which ops have run" states, layer by layer, keeps
at most `budget` states per layer (exact dynamic programming while the layers stay under the
budget, a beam search beyond). Its estimate of live bytes is re-checked with the planner, and
the file order is kept unless the found order is strictly better.
"""
from __future__ import annotations

from typing import Optional

from tflite_converter import opspec
from tflite_converter.ir import Graph
from tflite_converter.planner import alias_root, lower_bound_bytes

DEFAULT_BUDGET = 128


def has_unique_order(graph: Graph) -> bool:
    """True when each op reads an output of the op before it in the file."""
    ops = graph.ops
    for i in range(1, len(ops)):
        prev = set(ops[i - 1].outputs)
        if not any(t in prev for t in ops[i].inputs):
            return False
    return True


def _search(graph: Graph, budget: int, alignment: int = 4) -> Optional[list[int]]:
    ops = graph.ops
    n = len(ops)
    tensors = graph.tensors
    producer = {t: i for i, op in enumerate(ops) for t in op.outputs}
    pred = [0] * n
    for i, op in enumerate(ops):
        for t in op.inputs:
            if t >= 0 and t in producer:
                pred[i] |= 1 << producer[t]

    # aliases (reshapes) cost nothing and keep their source alive as long as they are read:
    # a tensor's bytes go when every reader of it and of its aliases has run.
    alias_src: dict[int, int] = {}
    for op in ops:
        if opspec.is_alias(op) and op.inputs and op.inputs[0] >= 0:
            alias_src[op.outputs[0]] = op.inputs[0]

    def root(t: int) -> int:
        return alias_root(t, alias_src)

    size: dict[int, int] = {}
    readers: dict[int, int] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            if t >= 0 and tensors[t].data is None:
                readers[root(t)] = readers.get(root(t), 0) | (1 << i)
        for t in op.outputs:
            if tensors[t].data is None and t not in alias_src:
                size[t] = -(-tensors[t].nbytes // alignment) * alignment
    keep = {root(t) for t in graph.outputs} | {root(t) for t in graph.inputs}
    for t in graph.inputs:
        if tensors[t].data is None:
            size[t] = -(-tensors[t].nbytes // alignment) * alignment

    out_bytes = [sum(size.get(t, 0) for t in op.outputs) for op in ops]
    freed_by: list[list[int]] = [
        sorted({root(t) for t in op.inputs if t >= 0 and tensors[t].data is None}) for op in ops
    ]
    inplace_in: list[list[int]] = [
        [root(op.inputs[c]) for c in opspec.inplace_candidates(graph, op)] for op in ops
    ]
    scratch = [
        (opspec.scratch_bytes(graph, op, False), opspec.scratch_bytes(graph, op, True)) for op in ops
    ]

    start_mem = sum(size.get(t, 0) for t in {root(t) for t in graph.inputs})
    full = (1 << n) - 1
    # state: mask -> (peak, mem, order)
    layer: dict[int, tuple[int, int, tuple[int, ...]]] = {0: (start_mem, start_mem, ())}
    for _ in range(n):
        nxt: dict[int, tuple[int, int, tuple[int, ...]]] = {}
        for mask, (peak, mem, order) in layer.items():
            for o in range(n):
                bit = 1 << o
                if mask & bit or (pred[o] & mask) != pred[o]:
                    continue
                new = mask | bit
                freed = 0
                dying = []
                for t in freed_by[o]:
                    if t not in keep and (readers.get(t, 0) & new) == readers.get(t, 0):
                        freed += size.get(t, 0)
                        dying.append(t)
                sc = scratch[o][0]
                step = mem + out_bytes[o]
                for t in inplace_in[o]:
                    if t in dying and t not in keep:
                        step -= min(size.get(t, 0), out_bytes[o])
                        sc = scratch[o][1]
                        break
                step += sc
                cand = (max(peak, step), mem + out_bytes[o] - freed, order + (o,))
                old = nxt.get(new)
                if old is None or cand[:2] < old[:2]:
                    nxt[new] = cand
        if not nxt:
            return None
        if len(nxt) > budget:
            nxt = dict(sorted(nxt.items(), key=lambda kv: (kv[1][0], kv[1][1]))[:budget])
        layer = nxt
    best = layer.get(full)
    return list(best[2]) if best else None


def schedule(graph: Graph, memory_aware: bool = True, budget: int = DEFAULT_BUDGET) -> list[int]:
    """Op order (positions in graph.ops). File order unless `memory_aware` finds an order
    with a strictly lower planner lower bound within `budget` states per search layer."""
    file_order = list(range(len(graph.ops)))
    if not memory_aware or len(file_order) <= 2 or has_unique_order(graph):
        return file_order
    found = _search(graph, max(1, budget))
    if found is None or found == file_order:
        return file_order
    if lower_bound_bytes(graph, found) < lower_bound_bytes(graph, file_order):
        return found
    return file_order
