"""The conversion pipeline, written once: .tflite -> legalized Graph, schedule, memory plan.

Both ways into the converter run it: the `convert` command line (which prints the plan's
table, writes plan.json and generates C) and `codegen.generate.convert_model` (which
generates C). So the table a user reads describes exactly the plan the C was laid out by.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

from tflite_converter.errors import ConversionError
from tflite_converter.ir import Graph
from tflite_converter.passes import legalize
from tflite_converter.patch import (
    EmptyWindow,
    PatchCandidate,
    PatchPlan,
    PatchSetting,
    apply_patches,
    choose_patch,
    grid_text,
    input_outside,
    stage_splits,
    total_macs,
)
from tflite_converter.planner import MemoryPlan, plan_memory
from tflite_converter.reader import load_tflite, read_tflite
from tflite_converter.schedule import schedule


@dataclasses.dataclass(frozen=True)
class CompiledModel:
    """A legalized graph with its execution order and the memory plan for that order."""

    graph: Graph
    order: tuple[int, ...]  # positions in graph.ops, as the plan runs them
    plan: MemoryPlan
    # patch-based inference (tflite_converter/patch.py): the plan in use (None: layer by
    # layer), the candidates weighed, and the layer-by-layer arena they were weighed against,
    # with the graph input in it and held outside it (set whenever patches were asked for)
    patch: Optional[PatchCandidate] = None
    patch_candidates: tuple[PatchCandidate, ...] = ()
    layer_by_layer_arena: Optional[int] = None
    layer_by_layer_without_input: Optional[int] = None


LAYER_BY_LAYER = PatchSetting("off")


def _with_patches(graph: Graph, order: Sequence[int], plan: MemoryPlan, setting: PatchSetting,
                  overlap: bool, overwrite_input: bool) -> CompiledModel:
    def arena(g: Graph, o: Sequence[int]) -> int:
        return plan_memory(g, o, overlap=overlap, overwrite_inputs=overwrite_input).arena_bytes

    lbl = (plan.arena_bytes, arena(input_outside(graph), order))
    splits = stage_splits(graph, order)
    if setting.mode == "fixed":
        grid = setting.grid or (1, 1)
        chosen = [s for s in splits if s.last_op_index == setting.split_op]
        if not chosen:
            where = ", ".join(str(s.last_op_index) for s in splits) or "none (the first op cannot run per patch)"
            raise ConversionError(f"--patch={setting.split_op}:{grid_text(grid)}: op {setting.split_op} does not end "
                                  f"a stage that can run patch by patch; stages end at ops {where}")
        try:
            patched, p_order = apply_patches(graph, order, chosen[0], grid)
        except EmptyWindow as e:
            raise ConversionError(f"--patch={setting.split_op}:{grid_text(grid)}: {e}") from None
        p_plan = plan_memory(patched, p_order, overlap=overlap, overwrite_inputs=overwrite_input)
        cand = PatchCandidate(PatchPlan(chosen[0], grid, total_macs(patched), total_macs(graph)),
                              p_plan.arena_bytes, arena(input_outside(patched), p_order))
        return CompiledModel(patched, tuple(p_plan.order), p_plan, cand, (cand,), *lbl)
    best, cands = choose_patch(graph, order, plan.arena_bytes, setting, arena, splits)
    if best is None:
        return CompiledModel(graph, tuple(plan.order), plan, None, tuple(cands), *lbl)
    # the candidates kept only their figures: rewrite and plan the chosen one once more
    patched, p_order = apply_patches(graph, order, best.plan.split, best.plan.grid)
    p_plan = plan_memory(patched, p_order, overlap=overlap, overwrite_inputs=overwrite_input)
    return CompiledModel(patched, tuple(p_plan.order), p_plan, best, tuple(cands), *lbl)


def compile_model(tflite: str | os.PathLike[str] | bytes, overlap: bool = True,
                  overwrite_input: bool = True, patch: PatchSetting = LAYER_BY_LAYER) -> CompiledModel:
    """Read a .tflite (a path, or the file's bytes), legalize, schedule and plan memory
    (`overlap`, the default: let outputs start inside their op's dying input where the
    kernels' write order proves it safe, planner.plan_memory; False: layer-by-layer).
    `overwrite_input` (the default): an in-place or overlapping first op may write over the
    graph input it reads last, as the arena reuses the input's bytes after that anyway; False
    keeps the input intact until its last reader has run (planner.plan_memory's
    overwrite_inputs). `patch`: run the first stage patch by patch (tflite_converter/patch.py;
    default off); the graph returned is then the rewritten one the C is generated from.

    Raises ConversionError (every problem at once, each naming its op or tensor) for a file
    that cannot be read or a model the engine cannot run exactly.
    """
    if isinstance(tflite, (bytes, bytearray)):
        graph = read_tflite(bytes(tflite))
    else:
        graph = load_tflite(tflite)
    graph = legalize(graph)
    plan = plan_memory(graph, schedule(graph), overlap=overlap, overwrite_inputs=overwrite_input)
    if patch.mode == "off":
        return CompiledModel(graph, tuple(plan.order), plan)
    return _with_patches(graph, plan.order, plan, patch, overlap, overwrite_input)


def plan_extra(compiled: CompiledModel) -> dict:
    """plan.json's patch entry (nothing when patches were not asked for): the plan in use
    (None: layer by layer), the layer-by-layer arena, and every candidate weighed."""
    if compiled.layer_by_layer_arena is None:
        return {}
    return {"patch": {"chosen": None if compiled.patch is None else compiled.patch.get_config(),
                      "layer_by_layer_arena_bytes": compiled.layer_by_layer_arena,
                      "layer_by_layer_without_input_bytes": compiled.layer_by_layer_without_input,
                      "candidates": [c.get_config() for c in compiled.patch_candidates]}}


def patch_summary(compiled: CompiledModel) -> Optional[str]:
    """One line on the patch plan for the command line (None when patches were not asked for)."""
    if compiled.layer_by_layer_arena is None:
        return None
    lbl = compiled.layer_by_layer_arena
    c = compiled.patch
    if c is None:
        return (f"patch-based: none of {len(compiled.patch_candidates)} candidates is below the layer-by-layer "
                f"arena of {lbl:,} B; running layer by layer")
    p = c.plan
    return (f"patch-based: the {p.split.n_ops} ops up to op {p.split.last_op_index} on a {grid_text(p.grid)} grid, "
            f"arena {c.arena_bytes:,} B ({c.arena_bytes_without_input:,} B with the input outside it) against "
            f"{lbl:,} B layer by layer, MACs +{100 * p.macs_overhead:.1f}%")
