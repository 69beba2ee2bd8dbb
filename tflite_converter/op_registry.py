"""One record per op kind: everything the converter knows about an op, in one place.

TFLite Micro gives each kernel one registration (Init / Prepare / Eval); here an `OpRecord`
holds, for one `OpKind`: the TFLite builtin it is read from and its attribute reader
(reader.py), its refusal rule (validate.py), its cost, scratch, in-place and kernel-variant
rules (an `opspec.OpSpec`), its constant folding (passes.py) and its C emitter (codegen).
The records live beside their emitters, one module per op family under
`tflite_converter/codegen/ops/`; the reader, validator, planner, passes and code generator
look them up here and keep no per-op tables of their own. Adding an op is one `OpKind`
member, one record (built from the generic readers, rules and specs where they fit) and, if
no existing kernel computes it, one kernel file.

The records are loaded on first use (importing the family modules registers them), so this
module imports nothing from the reader, validator or code generator itself.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from tflite_converter.ir import DType, Graph, Op, OpKind
from tflite_converter.opspec import OpSpec

if TYPE_CHECKING:  # the emitter's types; importing codegen here would be a cycle
    from tflite_converter.codegen.api import EmitFn

# The builtin codes of the converter's own ops (made by its passes, never read from a file) are
# this and below: not int32s, so no BuiltinOperator code of a file can name them.
INTERNAL_BUILTIN = -(1 << 40)

ReadFn = Callable[[Any], object]  # reader._OpContext -> the op's typed attributes
RuleFn = Callable[[Graph, Op], None]  # raises validate's refusal; returns when the op is supported


@dataclasses.dataclass(frozen=True)
class Fold:
    """How passes.fold_constants computes the op's output at conversion time."""

    compute: Callable[[Graph, Op], Optional[np.ndarray]]  # None: not foldable after all
    # which inputs must be constant (None: all of them; (): none, e.g. SHAPE's static shape)
    const_inputs: Optional[tuple[int, ...]] = None


@dataclasses.dataclass(frozen=True)
class Float32Impl:
    """The op on float32 tensors, as TFLM's float reference kernel computes it: the float heads
    and tails of int8 models (a DEQUANTIZE then SOFTMAX in float32, a normalisation before the
    first QUANTIZE). Chosen instead of the int8 rule and emitter when the op's data input is
    float32 (`computes_in_float32`)."""

    validate: RuleFn
    emit: "EmitFn"


@dataclasses.dataclass(frozen=True)
class OpRecord:
    kind: OpKind
    builtin: int  # schema.BuiltinOperator code read as this kind
    read: ReadFn
    # None: the op is accepted only when folded away (validate refuses it otherwise)
    validate: Optional[RuleFn]
    spec: OpSpec = OpSpec()
    emit: Optional["EmitFn"] = None  # None only for ops that never reach the code generator
    fold: Optional[Fold] = None
    float32: Optional[Float32Impl] = None  # None: float32 data is refused by `validate`

    @property
    def internal(self) -> bool:
        """The converter's own op (tflite_converter/patch.py's PATCH_WRITE), not a TFLite one."""
        return self.builtin <= INTERNAL_BUILTIN

    def __post_init__(self) -> None:
        if self.validate is not None and self.emit is None:
            raise ValueError(f"{self.kind.value}: an op the validator accepts needs an emitter")
        if self.validate is None and self.fold is None:
            raise ValueError(f"{self.kind.value}: an op neither validated nor folded is never supported")


def computes_in_float32(graph: Graph, op: Op) -> bool:
    """The op's data input (input 0) is a float32 tensor. QUANTIZE and DEQUANTIZE convert
    between float32 and int8 and keep their own rules."""
    if op.kind in (OpKind.QUANTIZE, OpKind.DEQUANTIZE) or not op.inputs or op.inputs[0] < 0:
        return False
    return graph.tensors[op.inputs[0]].dtype is DType.FLOAT32


def rule_and_emitter(graph: Graph, op: Op) -> tuple[Optional[RuleFn], Optional["EmitFn"]]:
    """The refusal rule and the C emitter that apply to `op` as it stands in `graph`: the
    float32 ones where it computes in float32 and its record has them, else the record's own
    (whose rule then refuses the float32 data by name). (None, None) without a record."""
    rec = record(op.kind)
    if rec is None:
        return None, None
    if rec.float32 is not None and computes_in_float32(graph, op):
        return rec.float32.validate, rec.float32.emit
    return rec.validate, rec.emit


_RECORDS: dict[OpKind, OpRecord] = {}
_BY_BUILTIN: dict[int, OpRecord] = {}
_loaded = False
_lock = threading.Lock()


def register(*records: OpRecord) -> None:
    """Called by the op-family modules at import."""
    for r in records:
        if r.kind in _RECORDS or r.builtin in _BY_BUILTIN:
            raise ValueError(f"two records for {r.kind.value} (builtin {r.builtin})")
        _RECORDS[r.kind] = r
        _BY_BUILTIN[r.builtin] = r


def _load() -> None:
    global _loaded
    with _lock:
        if not _loaded:
            import tflite_converter.codegen.ops  # noqa: F401  (registers every record)
            _loaded = True


def records() -> dict[OpKind, OpRecord]:
    """Every registered record by kind (a copy)."""
    if not _loaded:
        _load()
    return dict(_RECORDS)


def record(kind: OpKind) -> Optional[OpRecord]:
    if not _loaded:
        _load()
    return _RECORDS.get(kind)


def for_builtin(code: int) -> Optional[OpRecord]:
    """The record read from TFLite builtin `code`, or None when the converter has none."""
    if not _loaded:
        _load()
    return _BY_BUILTIN.get(code)
