"""TFLM offline memory plan: our placement of a model's activations, in the model itself.

TFLite Micro reads an offline plan from the model's metadata (tflite-micro
docs/memory_management.md, "Offline planned tensor allocations"): a metadata entry named
"OfflineMemoryAllocation" whose buffer holds little-endian int32 words

    [format version, number of subgraphs, n, offset of tensor 0, ..., offset of tensor n-1]

one offset per tensor of the (single) subgraph, in bytes from the start of TFLM's
non-persistent arena section, -1 = "TFLM's GreedyMemoryPlanner places it". TFLM reads only
n and the offsets (n must equal the tensor count) and uses an offset only for a tensor it
allocates in that section: not a constant (buffer with data), not of zero bytes, not a
variable (which TFLM then plans offline too, with a lifetime inside one invocation: its state
would be overwritten, so variables stay -1 and persistent). It never checks offline offsets
against each other; its own buffers (kernel scratch, and every -1 tensor) are fitted around
them by its greedy rule.

What goes in (`plan_offsets`):

- the buffers are the ones TFLM allocates, with TFLM's lifetimes (micro_allocation_info.cc:
  graph inputs from scope 0, op k at scope k + 1 in file order, an op's inputs until its scope,
  graph outputs until the last scope), each size rounded up to TFLM's 16-byte buffer alignment;
- a RESHAPE output shares its input's offset: TFLM's RESHAPE kernel skips its copy when the
  two are at the same address (SQUEEZE and EXPAND_DIMS always copy, so their outputs get their
  own bytes). Nothing else shares bytes: no in-place op, no output over its input;
- offsets come from the planner's placement strategies (planner.best_placement), or from
  TFLM's own greedy rule where that is smaller, so the plan never needs more than TFLM's
  planner for the same buffers;
- tensors TFLM allocates elsewhere or not at all, and tensors with no TFLM lifetime (unused,
  or read but never written), get -1.

`check_offsets` verifies a plan independently before anything is written: every offset
aligned, and no two buffers live in the same scope sharing a byte, except a RESHAPE output at
exactly its input's offset. `with_offline_plan` writes the words into a copy of the model
(object API, every other field as read; buffer data 16-byte aligned as the TFLite converter
writes it): an existing "OfflineMemoryAllocation" entry is replaced, its buffer reused only
when nothing else refers to it.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Optional

import flatbuffers
import numpy as np

from tflite_converter import schema
from tflite_converter.errors import ConversionError
from tflite_converter.planner.layout import Item, alias_root
from tflite_converter.planner.live import live_bytes_of
from tflite_converter.planner.placement import TieBreak, best_placement, place_greedy
from tflite_converter.reader import unpack_model
from tflite_converter.schema import S

METADATA_NAME = b"OfflineMemoryAllocation"
FORMAT_VERSION = 1  # word 0 (TFLM ignores it and word 1)
ONLINE = -1  # the offset word for "TFLM plans this tensor"
TFLM_ALIGNMENT = 16  # MicroArenaBufferAlignment(): TFLM rounds every buffer up to it
BUFFER_DATA_ALIGNMENT = 16  # of every buffer's data in the written file, as TFLite writes it

# TfLiteTypeSizeOf for the types a microcontroller model holds; any other type stays -1
TYPE_BYTES = {
    S.TensorType.FLOAT32: 4, S.TensorType.FLOAT16: 2, S.TensorType.FLOAT64: 8,
    S.TensorType.INT8: 1, S.TensorType.UINT8: 1, S.TensorType.INT16: 2, S.TensorType.UINT16: 2,
    S.TensorType.INT32: 4, S.TensorType.UINT32: 4, S.TensorType.INT64: 8, S.TensorType.UINT64: 8,
    S.TensorType.BOOL: 1,
}


@dataclasses.dataclass(frozen=True)
class TflmBuffer:
    """A tensor TFLM allocates in its non-persistent section, as its allocator sees it."""

    tensor: int
    bytes: int  # rounded up to TFLM_ALIGNMENT
    first: int  # TFLM allocation scopes: 0 = before the first op, op k = k + 1
    last: int
    view_of: Optional[int] = None  # a RESHAPE output: the tensor whose bytes it shares


@dataclasses.dataclass(frozen=True)
class TflmPlan:
    offsets: tuple[int, ...]  # one per tensor of the subgraph, ONLINE where TFLM plans it
    buffers: tuple[TflmBuffer, ...]
    arena_bytes: int  # bytes of TFLM's non-persistent section the offline buffers span
    greedy_bytes: int  # TFLM's greedy rule on the same tensors (each its own buffer)
    lower_bound_bytes: int  # the most bytes live in one scope, a RESHAPE pair counted once
    strategy: str

    @property
    def n_planned(self) -> int:
        """Tensors with an offset (the others TFLM places itself)."""
        return sum(o != ONLINE for o in self.offsets)

    def words(self) -> np.ndarray:
        """The metadata buffer's int32 words."""
        return np.array([FORMAT_VERSION, 1, len(self.offsets), *self.offsets], dtype="<i4")


def _round(n: int) -> int:
    return -(-n // TFLM_ALIGNMENT) * TFLM_ALIGNMENT


def _subgraph(model: "S.ModelT") -> "S.SubGraphT":
    if int(model.version) != schema.SCHEMA_VERSION:
        raise ConversionError(f"TFLite schema version {model.version} not supported (expected {schema.SCHEMA_VERSION})")
    subgraphs = model.subgraphs or []
    if len(subgraphs) != 1:
        raise ConversionError(f"the model has {len(subgraphs)} subgraphs: an offline plan is written "
                              "only for single-subgraph models")
    if any(int(b.offset or 0) > 1 for b in model.buffers or []):
        raise ConversionError("buffers stored after the flatbuffer (models over 2 GB) are not supported")
    return subgraphs[0]


def _ints(values, n: int, what: str, optional: bool = False) -> list[int]:
    out = [] if values is None else [int(v) for v in values]
    for v in out:
        if not (0 <= v < n or (optional and v == -1)):
            raise ConversionError(f"malformed TFLite file: {what} index {v} out of range (0..{n - 1})")
    return out


def tflm_buffers(model: "S.ModelT") -> tuple[list[TflmBuffer], int]:
    """The buffers TFLM's allocator plans for subgraph 0 and the number of tensors there."""
    sub = _subgraph(model)
    tensors = sub.tensors or []
    n = len(tensors)
    buffers = model.buffers or []
    nbytes: dict[int, int] = {}
    for i, t in enumerate(tensors):
        b = int(t.buffer)
        if not 0 <= b < len(buffers):
            raise ConversionError(f"malformed TFLite file: tensor {i} buffer index {b} out of range")
        data = buffers[b].data
        shape = [] if t.shape is None else [int(d) for d in t.shape]
        size = TYPE_BYTES.get(int(t.type))
        if (data is not None and len(data)) or t.isVariable or size is None or min(shape, default=0) < 0:
            continue  # constant, persistent, or a type TFLM sizes its own way: TFLM decides
        if math.prod(shape) * size:
            nbytes[i] = math.prod(shape) * size

    ops = []
    n_opcodes = len(model.operatorCodes or [])
    for k, op in enumerate(sub.operators or []):
        code = _ints([op.opcodeIndex], n_opcodes, f"op {k} opcode")[0]
        ops.append((schema.builtin_code(model.operatorCodes[code]),
                    _ints(op.inputs, n, f"op {k} input", optional=True), _ints(op.outputs, n, f"op {k} output")))
    inputs, outputs = _ints(sub.inputs, n, "subgraph input"), _ints(sub.outputs, n, "subgraph output")

    # TFLM's AllocationInfoBuilder: first creation is set once, last use on every use
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in inputs:
        first.setdefault(t, 0)
        last[t] = 0
    for scope, (_, ins, outs) in enumerate(ops, start=1):
        for t in outs:
            first.setdefault(t, scope)
        for t in ins + outs:
            if t >= 0:
                last[t] = scope
    for t in outputs:
        first.setdefault(t, len(ops))
        last[t] = len(ops)

    produced: dict[int, int] = {}
    for _, _, outs in ops:
        for t in outs:
            produced[t] = produced.get(t, 0) + 1
    view_of: dict[int, int] = {}
    for scope, (code, ins, outs) in enumerate(ops, start=1):
        if code != S.BuiltinOperator.RESHAPE or not ins or len(outs) != 1:
            continue
        src, out = ins[0], outs[0]
        # the input already there (so views never form a cycle), each written once, same bytes
        if (src in nbytes and out in nbytes and nbytes[src] == nbytes[out] and first.get(src, scope) < scope
                and first.get(out) == scope and produced.get(out) == 1 and produced.get(src, 0) <= 1):
            view_of[out] = src
    result = [TflmBuffer(t, _round(b), first[t], last[t], view_of.get(t))
              for t, b in nbytes.items() if t in first]
    kept = {b.tensor for b in result}
    result = [b if b.view_of is None or b.view_of in kept else dataclasses.replace(b, view_of=None) for b in result]
    return result, n


def _items(buffers: list[TflmBuffer], aliases: bool) -> list[Item]:
    """One placement item per group of buffers sharing bytes (a RESHAPE chain), else per buffer."""
    view_of = {b.tensor: b.view_of for b in buffers if aliases and b.view_of is not None}
    groups: dict[int, list[TflmBuffer]] = {}
    for b in buffers:
        groups.setdefault(alias_root(b.tensor, view_of), []).append(b)
    return [(min(b.first for b in g), max(b.last for b in g), max(b.bytes for b in g),
             [(0, b.bytes, b.first, b.last, b.tensor) for b in g]) for g in groups.values()]


def _offsets(items: list[Item], bases: list[int], n: int) -> list[int]:
    offsets = [ONLINE] * n
    for (_, _, _, members), base in zip(items, bases):
        for rel, _, _, _, t in members:
            offsets[t] = base + rel
    return offsets


def plan_offsets(model: "S.ModelT") -> TflmPlan:
    """Our offline plan for `model` (see the module docstring); checked by `check_offsets`."""
    buffers, n = tflm_buffers(model)
    n_scopes = len((model.subgraphs[0].operators or [])) + 1
    items = _items(buffers, aliases=True)
    lower = max(live_bytes_of(items, n_scopes), default=0)
    bases, arena, strategy = best_placement(items, lower) if items else ([], 0, "empty")
    plain = _items(buffers, aliases=False)
    greedy_bases, greedy = place_greedy(plain, TieBreak.LATER_TENSOR) if plain else ([], 0)
    if greedy < arena:  # TFLM's own rule did better on these buffers: use its offsets
        items, bases, arena, strategy = plain, greedy_bases, greedy, "tflm_greedy"
    plan = TflmPlan(tuple(_offsets(items, bases, n)), tuple(buffers), arena, greedy, lower, strategy)
    problems = check_offsets(plan)
    if problems:
        raise AssertionError("unsafe TFLM offline plan:\n" + "\n".join(problems))
    return plan


def check_offsets(plan: TflmPlan) -> list[str]:
    """Every way the plan's offsets could make TFLM corrupt data, one line each (empty: sound)."""
    problems = []
    by_tensor = {b.tensor: b for b in plan.buffers}
    view_of = {b.tensor: b.view_of for b in plan.buffers if b.view_of is not None}
    for t, off in enumerate(plan.offsets):
        if off == ONLINE:
            continue
        if t not in by_tensor:
            problems.append(f"tensor {t}: offset {off} for a tensor TFLM does not plan in its arena")
        elif off < 0 or off % TFLM_ALIGNMENT or off + by_tensor[t].bytes > plan.arena_bytes:
            problems.append(f"tensor {t}: offset {off} misaligned or outside the {plan.arena_bytes}-byte plan")
    placed = sorted(((plan.offsets[b.tensor], b) for b in plan.buffers if plan.offsets[b.tensor] != ONLINE),
                    key=lambda x: (x[0], x[1].tensor))
    for i, (oa, a) in enumerate(placed):
        for ob, b in placed[i + 1:]:
            if ob >= oa + a.bytes:
                break
            if a.first > b.last or b.first > a.last:
                continue
            if oa == ob and alias_root(a.tensor, view_of) == alias_root(b.tensor, view_of):
                continue  # a RESHAPE output viewing its input's bytes
            problems.append(f"tensors {a.tensor} [{oa}, {oa + a.bytes}) scopes {a.first}..{a.last} and "
                            f"{b.tensor} [{ob}, {ob + b.bytes}) scopes {b.first}..{b.last} overlap")
    return problems


def _is_plan_entry(m: "S.MetadataT") -> bool:
    name = m.name.encode() if isinstance(m.name, str) else m.name
    return name == METADATA_NAME


def _attach(model: "S.ModelT", words: np.ndarray) -> None:
    """Point one "OfflineMemoryAllocation" entry at a buffer holding `words`; older entries go."""
    buffers = model.buffers = list(model.buffers or [])
    metadata = list(model.metadata or [])
    old = [m for m in metadata if _is_plan_entry(m)]
    used = {int(t.buffer) for sg in model.subgraphs or [] for t in sg.tensors or []}
    used |= {int(m.buffer) for m in metadata if not _is_plan_entry(m)}
    free = [int(m.buffer) for m in old if 0 < int(m.buffer) < len(buffers) and int(m.buffer) not in used]
    data = np.frombuffer(words.tobytes(), dtype=np.uint8)
    if free:
        index = free[0]
        buffers[index] = S.BufferT(data=data)
    else:
        index = len(buffers)
        buffers.append(S.BufferT(data=data))
    entry = S.MetadataT(name=METADATA_NAME.decode(), buffer=index)
    at = metadata.index(old[0]) if old else len(metadata)
    kept = [m for m in metadata if not _is_plan_entry(m)]
    kept.insert(min(at, len(kept)), entry)
    model.metadata = kept


class _AlignedBuffer(S.BufferT):
    """A Buffer whose data vector starts on a BUFFER_DATA_ALIGNMENT boundary when packed."""

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (the object API's name)
        data = None
        if self.data is not None:
            raw = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(raw), BUFFER_DATA_ALIGNMENT)
            builder.head -= len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            builder.vectorNumElems = len(raw)
            data = builder.EndVector()
        S.BufferStart(builder)
        if data is not None:
            S.BufferAddData(builder, data)
        S.BufferAddOffset(builder, self.offset)
        S.BufferAddSize(builder, self.size)
        return S.BufferEnd(builder)


def _pack(model: "S.ModelT") -> bytes:
    originals = model.buffers
    model.buffers = [_AlignedBuffer(b.data, b.offset, b.size) for b in originals]
    try:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=schema.FILE_IDENTIFIER)
    finally:
        model.buffers = originals
    return bytes(builder.Output())


def read_offline_plan(data: bytes) -> Optional[np.ndarray]:
    """The int32 words of the model's last "OfflineMemoryAllocation" entry (the one TFLM
    uses), or None without one."""
    model = unpack_model(data)
    words = None
    for m in model.metadata or []:
        if _is_plan_entry(m) and 0 <= int(m.buffer) < len(model.buffers or []):
            data = model.buffers[int(m.buffer)].data
            raw = b"" if data is None else np.asarray(data, np.uint8).tobytes()
            words = np.frombuffer(raw[:len(raw) // 4 * 4], "<i4")
    return words


def with_offline_plan(data: bytes) -> tuple[bytes, TflmPlan]:
    """`data` (a .tflite) with our offline plan in its metadata, and the plan."""
    model = unpack_model(data)
    plan = plan_offsets(model)
    _attach(model, plan.words())
    out = _pack(model)
    written = read_offline_plan(out)
    if written is None or written.tolist() != plan.words().tolist():
        raise AssertionError("the offline plan did not survive writing the model")
    return out, plan


def write_tflm_plan(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> TflmPlan:
    """Write the model at `src`, with our offline plan, to `dst`; returns the plan."""
    try:
        data = Path(src).read_bytes()
    except OSError as e:
        raise ConversionError(f"cannot read {src}: {e.strerror or e}") from None
    out, plan = with_offline_plan(data)
    try:
        Path(dst).write_bytes(out)
    except OSError as e:
        raise ConversionError(f"cannot write {dst}: {e.strerror or e}") from None
    return plan
