"""Static memory planner: one arena, an offset for every non-constant tensor and scratch buffer.

This is also the NAS's SRAM oracle, so the path below is plain Python over small lists: no
file I/O, no numpy work on tensors, no TensorFlow.

How a plan is made, for a fixed execution order (`order`, positions in `graph.ops`), one
module per job (as TFLM keeps its allocation info apart from its planners):

1. `lifetimes`: a tensor lives from the step of its producer (graph inputs: step 0) to the
   step of its last consumer (graph outputs: the last step).
2. `layout`: buffers that share bytes (reshape aliases, in-place ops, concatenations written
   into place) are merged into groups with fixed offsets inside the group; kernel scratch is
   a one-step buffer of its own; sizes are rounded up to the alignment (`records`'
   OFFSET_ALIGNMENT by default, which also says how it relates to the C arena's alignment).
   `live` sums the bytes live at each step: the lower bound.
3. `placement`: groups are placed by several strategies (a two-ended one that is optimal for
   chains, TFLM's greedy "largest first, lowest offset that fits", by start, by size x
   duration, by duration); the smallest arena wins.
4. `plan`: if that arena is not below the plain greedy plan without in-place reuse, the latter
   is used, so the result is never worse than TFLM-style greedy planning.
5. `scratch`: an op whose kernel runs faster with more scratch gets, after placement, the
   largest scratch up to its preferred size that fits in a free gap of the arena at its step;
   the arena and every other offset stay as placed.

`verify` checks a plan independently of how it was made.
"""
from __future__ import annotations

from tflite_converter.planner.layout import Groups, Item, Layout, Member, alias_root, build_layout, tensor_buffers
from tflite_converter.planner.lifetimes import check_order, lifetimes, resolve_order, round_up
from tflite_converter.planner.live import live_bytes, live_bytes_of
from tflite_converter.planner.placement import TieBreak, greedy_order, place_greedy
from tflite_converter.planner.plan import (
    GreedyBuffers,
    GreedyPlan,
    greedy_arena_bytes,
    lower_bound_bytes,
    plan_memory,
    tflm_greedy_plan,
)
from tflite_converter.planner.records import (
    OFFSET_ALIGNMENT,
    MemoryPlan,
    PlanError,
    Role,
    ScratchPlacement,
    TensorPlacement,
)
from tflite_converter.planner.verify import verify_plan

__all__ = [
    "OFFSET_ALIGNMENT",
    "GreedyBuffers",
    "GreedyPlan",
    "Groups",
    "Item",
    "Layout",
    "Member",
    "MemoryPlan",
    "PlanError",
    "Role",
    "ScratchPlacement",
    "TensorPlacement",
    "TieBreak",
    "alias_root",
    "build_layout",
    "check_order",
    "greedy_arena_bytes",
    "greedy_order",
    "lifetimes",
    "live_bytes",
    "live_bytes_of",
    "lower_bound_bytes",
    "place_greedy",
    "plan_memory",
    "resolve_order",
    "round_up",
    "tensor_buffers",
    "tflm_greedy_plan",
    "verify_plan",
]
