"""The conversion pipeline, written once: .tflite -> legalized Graph, schedule, memory plan.

Both ways into the converter run it: the `convert` command line (which prints the plan's
table, writes plan.json and generates C) and `codegen.generate.convert_model` (which
generates C). So the table a user reads describes exactly the plan the C was laid out by.
"""
from __future__ import annotations

import dataclasses
import os

from tflite_converter.ir import Graph
from tflite_converter.passes import legalize
from tflite_converter.planner import MemoryPlan, plan_memory
from tflite_converter.reader import load_tflite, read_tflite
from tflite_converter.schedule import schedule


@dataclasses.dataclass(frozen=True)
class CompiledModel:
    """A legalized graph with its execution order and the memory plan for that order."""

    graph: Graph
    order: tuple[int, ...]  # positions in graph.ops, as the plan runs them
    plan: MemoryPlan


def compile_model(tflite: str | os.PathLike[str] | bytes, overlap: bool = True,
                  overwrite_input: bool = True) -> CompiledModel:
    """Read a .tflite (a path, or the file's bytes), legalize, schedule and plan memory
    (`overlap`, the default: let outputs start inside their op's dying input where the
    kernels' write order proves it safe, planner.plan_memory; False: layer-by-layer).
    `overwrite_input` (the default): an in-place or overlapping first op may write over the
    graph input it reads last, as the arena reuses the input's bytes after that anyway; False
    keeps the input intact until its last reader has run (planner.plan_memory's
    overwrite_inputs).

    Raises ConversionError (every problem at once, each naming its op or tensor) for a file
    that cannot be read or a model the engine cannot run exactly.
    """
    if isinstance(tflite, (bytes, bytearray)):
        graph = read_tflite(bytes(tflite))
    else:
        graph = load_tflite(tflite)
    graph = legalize(graph)
    plan = plan_memory(graph, schedule(graph), overlap=overlap, overwrite_inputs=overwrite_input)
    return CompiledModel(graph, tuple(plan.order), plan)
