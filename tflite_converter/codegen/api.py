"""The interface between the code generator and the per-op emitters.

Each op kind has one emitter, named by its op record (tflite_converter/op_registry.py) in
`tflite_converter/codegen/ops/<family>.py`. An emitter turns one planned op into the C
statement(s) that call its engine kernel with literal offsets, shapes and quantization
parameters; constant data it needs (weights, biases, per-channel multipliers) it hands to the
context, which defines them as `const` arrays (Flash). The generator owns the arena, the
public API, file layout and which kernel sources are copied into the output folder.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Protocol

import numpy as np

from tflite_converter.ir import Graph, Op, Tensor


@dataclasses.dataclass
class KernelCall:
    """What an emitter returns for one op."""

    code: str  # C statement(s), e.g. "mcu_conv2d_s8(...);" (no trailing newline needed)
    kernels: tuple[str, ...]  # engine kernel sources used: stems of engine/kernels/<stem>.c


class EmitContext(Protocol):
    graph: Graph

    def tensor(self, index: int) -> Tensor:
        """The IR tensor."""

    def ptr(self, index: int) -> str:
        """A C expression for the tensor's data: `(ARENA + 1234)` cast to its C type for
        activations, the const array's name for constants."""

    def scratch(self, op: Op) -> str:
        """A C expression `(int8_t *)(arena + N)` for the op's planned scratch buffer
        (the planner sized it from the op's spec); fails if none was planned."""

    def const_array(self, hint: str, values: np.ndarray, c_type: str | None = None) -> str:
        """Define a `static const` array (Flash) with these values, return its C name.
        Identical arrays are defined once."""

    # Plan facts some emitters need.

    def scratch_bytes(self, op: Op) -> int:
        """Size of the op's planned scratch buffer (0 if none)."""

    def inplace(self, op: Op) -> bool:
        """True if the plan runs this op in place (its output shares its input's bytes)."""

    def offset(self, index: int) -> int:
        """The arena offset of an activation tensor."""

    def variant(self, op: Op) -> Optional[str]:
        """The kernel variant the plan chose for the op (opspec.kernel_variant; None for ops
        with one kernel)."""


EmitFn = Callable[[EmitContext, Op], KernelCall]
