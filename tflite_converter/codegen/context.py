"""The generator's implementation of `EmitContext`: pointers into the arena, constants.

Emitters see tensors only through C expressions this context hands out, so the arena name,
its offsets, and the naming/deduplication of `const` arrays are decided in one place.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Mapping, Optional

import numpy as np

from tflite_converter import opspec
from tflite_converter.codegen import c_writer
from tflite_converter.errors import ConversionError, Problem
from tflite_converter.ir import Graph, Op, Tensor

# Constant arrays are aligned so kernels may read weights a word at a time.
CONST_ALIGN = 8


@dataclasses.dataclass(frozen=True)
class PlanView:
    """What the generator needs from a memory plan, independent of its Python shape."""

    arena_bytes: int
    tensor_offsets: dict[int, int]  # tensor index -> byte offset in the arena
    scratch: dict[int, tuple[int, int]]  # op position in graph.ops -> (offset, bytes)
    inplace_ops: frozenset[int] = frozenset()  # positions of ops the plan runs in place
    # position -> kernel variant (MemoryPlan.variants); a hand-made view may leave it empty,
    # and the context then asks the same rule (opspec.kernel_variant)
    variants: Mapping[int, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ConstArray:
    name: str
    c_type: str
    values: np.ndarray  # flattened, in the numpy dtype of c_type
    comment: str

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)

    def definition(self, align_macro: str) -> str:
        count = max(int(self.values.size), 1)
        init = c_writer.array_initializer(self.values if self.values.size else np.zeros(1, self.values.dtype),
                                          self.c_type)
        return (f"{c_writer.comment(self.comment)}\n"
                f"static const {self.c_type} {self.name}[{count}] {align_macro}({CONST_ALIGN}) = {init};")


class CodegenContext:
    """EmitContext for one model. `name` prefixes every identifier it defines."""

    def __init__(self, graph: Graph, plan: PlanView, name: str):
        self.graph = graph
        self.plan = plan
        self.name = name
        self.arena = f"{name}_arena"
        self._arrays: list[ConstArray] = []
        self._by_content: dict[tuple[str, bytes, int], ConstArray] = {}
        self._names: set[str] = set()
        self._tensor_arrays: dict[int, str] = {}
        self._positions: dict[int, int] | None = None

    # -- EmitContext -----------------------------------------------------------------------

    def tensor(self, index: int) -> Tensor:
        return self.graph.tensors[index]

    def ptr(self, index: int) -> str:
        t = self.graph.tensors[index]
        if t.is_constant:
            if index not in self._tensor_arrays:
                self._tensor_arrays[index] = self.const_array(
                    f"t{index}_{t.name}", np.asarray(t.data), t.dtype.c_type)
            return self._tensor_arrays[index]
        return f"(({t.dtype.c_type} *)({self.arena} + {self.offset(index)}))"

    def scratch(self, op: Op) -> str:
        pos = self.position(op)
        if pos not in self.plan.scratch:
            raise ConversionError(Problem("the memory plan has no scratch buffer for this op, "
                                          "but its emitter asks for one", op.index, op.kind.value))
        offset, _ = self.plan.scratch[pos]
        return f"((int8_t *)({self.arena} + {offset}))"

    def const_array(self, hint: str, values: np.ndarray, c_type: str | None = None) -> str:
        arr = np.asarray(values)
        if c_type is None:
            c_type = c_writer.c_type_of(arr.dtype)
        target = c_writer.NP_TYPES[c_type]
        cast = arr.astype(target)
        # Integers must survive the cast unchanged (a silent wrap would be wrong code);
        # float constants are float32 by definition of the kernels' arithmetic.
        if target.kind in "iub" and arr.size and not np.array_equal(cast, arr):
            raise ValueError(f"constant '{hint}' does not fit {c_type}")
        flat = np.ascontiguousarray(cast.reshape(-1))
        key = (c_type, hashlib.sha256(flat.tobytes()).digest(), flat.size)
        found = self._by_content.get(key)
        if found is not None:
            return found.name
        name = self._unique(f"{self.name}_{c_writer.identifier(hint)}")
        arr_def = ConstArray(name, c_type, flat, f"{hint}: {flat.size} x {c_type}")
        self._arrays.append(arr_def)
        self._by_content[key] = arr_def
        return name

    # -- plan facts some emitters need -------------------------------------------------------

    def scratch_bytes(self, op: Op) -> int:
        """Size of the op's planned scratch buffer (0 if none)."""
        return self.plan.scratch.get(self.position(op), (0, 0))[1]

    def inplace(self, op: Op) -> bool:
        """True if the plan runs this op in place: its output shares its input's bytes
        (element-wise ops, MCUNet's in-place depthwise) or, for a CONCATENATION, its
        producers already wrote into place and it needs no code."""
        return self.position(op) in self.plan.inplace_ops

    def variant(self, op: Op) -> Optional[str]:
        """The kernel variant the plan chose for this op (opspec.kernel_variant)."""
        pos = self.position(op)
        if pos in self.plan.variants:
            return self.plan.variants[pos]
        return opspec.kernel_variant(self.graph, op, self.inplace(op), self.scratch_bytes(op))

    def position(self, op: Op) -> int:
        """The op's position in graph.ops (the planner's key for ops)."""
        if self._positions is None:
            self._positions = {id(o): i for i, o in enumerate(self.graph.ops)}
        return self._positions[id(op)]

    def offset(self, index: int) -> int:
        try:
            return self.plan.tensor_offsets[index]
        except KeyError:
            t = self.graph.tensors[index]
            raise ConversionError(Problem("the memory plan gives this tensor no arena offset",
                                          tensor=t.name)) from None

    # -- generator side ----------------------------------------------------------------------

    def arrays(self) -> list[ConstArray]:
        return list(self._arrays)

    def _unique(self, base: str) -> str:
        base = base[:60]
        name, n = base, 1
        while name in self._names:
            name = f"{base}_{n}"
            n += 1
        self._names.add(name)
        return name
