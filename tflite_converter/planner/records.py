"""What a memory plan is: the records `plan_memory` returns and the plan's offset alignment.

Everything else in the package produces or checks these; nothing here computes anything.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Optional

# The plan's offset alignment: every buffer's offset and reserved size in the arena is a
# multiple of it (`plan_memory(alignment=...)`, recorded as `MemoryPlan.alignment`). It is
# not the generator's `codegen.generate.ARENA_ALIGN` (8), which is the alignment of the
# arena's *base address* (the C array's `aligned` attribute). A buffer's address is
# base + offset, so it is aligned to the smaller of the two as long as one divides the
# other: with 4 and 8 every buffer is 4-byte aligned (int32 / float32 elements), and only the
# base itself is 8-byte aligned. ARENA_ALIGN must stay a multiple of this for that to hold
# (tests/test_planner.py checks it). Raising this changes every offset; raising ARENA_ALIGN
# changes only the attribute.
OFFSET_ALIGNMENT = 4


class PlanError(ValueError):
    """The order is not a valid schedule of the graph."""


class Role(enum.Enum):
    """How a tensor's buffer relates to another tensor's (`alias_of`)."""

    OWN = "own"
    ALIAS = "alias"  # same bytes under another shape (reshape); both read-only views
    INPLACE = "inplace"  # output written over its input, which dies at that op
    CONCAT_SLICE = "concat_slice"  # written straight into its slice of a concatenation
    ROW_VIEW = "row_view"  # a row band of a tensor cut by ROW_BANDS, at its rows' bytes


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
    buffers can use less, unless ops write their output over part of their input
    (`overlaps`); otherwise `arena_bytes` >= it, and equal for chains.
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
    # position -> kernel variant (opspec.kernel_variant) of every op with several kernels,
    # chosen here once from in-place and the granted scratch; the emitter reads it
    variants: dict[int, str] = dataclasses.field(default_factory=dict)
    # position -> bytes by which the op's output lies over its dying input (write_order.py);
    # the arena can then be below the layer-by-layer `lower_bound_bytes`
    overlaps: dict[int, int] = dataclasses.field(default_factory=dict)

    def step_of(self, op_position: int) -> int:
        return self.order.index(op_position)
