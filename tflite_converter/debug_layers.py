"""`convert --debug_layers`: every op's output of the generated C against TFLite Micro's.

    python -m tflite_converter.convert --model=M.tflite --output_dir=DIR --debug_layers \\
        [--debug_input=X.npy|X.npz] [--debug_seed=0]

The generated folder is built for the host exactly as written, with two defines only:
`-DMCU_PROFILE_OPS` turns the `MCU_OP_END(op)` statement the generator already puts after
every op of `NAME_invoke` into a call, and `-DMCU_DEBUG_LAYERS` makes the host runner
(engine/runtime/host_runner.c) answer that call by copying the whole arena. So the code under
test is byte for byte the code that ships, and right after op k its outputs are where the plan
put them (in-place depthwise and concatenation written into its output included). TFLM runs
the same input with every tensor preserved (`engine.tflm.TflmModel(preserve_all_tensors=True)`);
each op's output tensors are compared element by element in their dtype.

Rows are in the .tflite's op order (TFLM's execution order, a topological order, so the first
row that differs is an op whose inputs agree). Ops the passes removed have no C: a constant
they folded is compared with TFLM's value; a reshape or identity requantization folded into an
alias is compared through the tensor it aliases; others (a PAD folded into its convolution)
are not observable. Exit status 0 when every compared tensor is identical, 1 otherwise.
TFLM is imported only when a run starts: the converter stays importable without it.
"""
from __future__ import annotations

import ctypes
import dataclasses
import re
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from engine import host
from engine.model_dir import ModelDir
from tflite_converter import schema
from tflite_converter.codegen.generate import plan_view
from tflite_converter.ir import Graph, OpKind, same_quantization
from tflite_converter.pipeline import CompiledModel, compile_model

DEBUG_FLAGS = ("-DMCU_PROFILE_OPS", "-DMCU_DEBUG_LAYERS")
# ops whose output holds the input's bytes (when both have the same dtype and quantization)
_ALIAS_KINDS = tuple(k.value for k in (OpKind.RESHAPE, OpKind.SQUEEZE, OpKind.EXPAND_DIMS, OpKind.QUANTIZE))
_NO_CODE = "nothing to do"  # generate.py's comment in the body of an op with no statement
_NAME_CHARS = 40


class DebugInputError(ValueError):
    """Bad --debug_input, or nothing to compare with (no compiler, TFLM cannot run the model,
    a C folder that is not the model's generated code): one line for the user, exit status 2."""


@dataclasses.dataclass
class Row:
    """One output tensor of one op of the .tflite."""

    op_index: int
    kind: str
    tensor: str
    note: str = ""  # "alias (no code)", "folded to a constant", ... or why it is not compared
    compared: bool = False
    max_diff: float = 0.0
    differing: int = 0
    total: int = 0

    @property
    def differs(self) -> bool:
        return self.compared and self.differing > 0


@dataclasses.dataclass
class Report:
    rows: list[Row]
    model: str

    @property
    def first_difference(self) -> Optional[Row]:
        return next((r for r in self.rows if r.differs), None)

    @property
    def n_ops(self) -> int:
        return len({r.op_index for r in self.rows})

    def format(self) -> str:
        lines = [f"{'op':>4}  {'kind':<24}{'output':<{_NAME_CHARS + 2}}{'max|diff|':>10}  {'differing':>15}"]
        for r in self.rows:
            name = _short(r.tensor)
            if r.compared:
                diff = f"{r.max_diff:g}" if r.max_diff != int(r.max_diff) else str(int(r.max_diff))
                cells = f"{diff:>10}  {f'{r.differing}/{r.total}':>15}"
            else:
                cells = f"{'-':>10}  {'-':>15}"
            lines.append(f"{r.op_index:>4}  {r.kind:<24}{name:<{_NAME_CHARS + 2}}{cells}"
                         + (f"  {r.note}" if r.note else ""))
        first = self.first_difference
        if first is None:
            n_seen = len({r.op_index for r in self.rows if r.compared})
            lines.append(f"all {self.n_ops} ops identical" if n_seen == self.n_ops else
                         f"all {n_seen} observable ops identical ({self.n_ops - n_seen} of "
                         f"{self.n_ops} not observable: no code or tensor of their own)")
        else:
            lines.append(f"first op that differs: op {first.op_index} {first.kind}, output "
                         f"'{_short(first.tensor)}': {first.differing}/{first.total} elements differ, "
                         f"max |diff| {first.max_diff:g}")
        return "\n".join(lines)


def _short(name: str) -> str:
    name = name.split(";")[0]
    return name if len(name) <= _NAME_CHARS else "..." + name[-(_NAME_CHARS - 3):]


# ---------------------------------------------------------------------------------------------
# Inputs


def load_inputs(path: Path, details: Sequence[dict]) -> list[np.ndarray]:
    """The arrays of a .npy (one input) or .npz (one array per input, in file order), each
    checked against the model input's shape and dtype."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DebugInputError(f"--debug_input {path}: cannot read it as .npy/.npz ({e})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            arrays = [loaded[k] for k in loaded.files]
    else:
        arrays = [loaded]
    if len(arrays) != len(details):
        raise DebugInputError(f"--debug_input {path}: {len(arrays)} array(s) for a model with "
                              f"{len(details)} input(s) (a .npz holds one array per input)")
    out = []
    for i, (x, d) in enumerate(zip(arrays, details)):
        shape, dtype = tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"])
        if x.shape != shape or x.dtype != dtype:
            raise DebugInputError(f"--debug_input {path}: input {i} must be {dtype} of shape "
                                  f"{list(shape)}, got {x.dtype} of shape {list(x.shape)}")
        out.append(np.ascontiguousarray(x))
    return out


# ---------------------------------------------------------------------------------------------
# Running both sides


@dataclasses.dataclass(frozen=True)
class FileOp:
    """An operator as the .tflite (and so TFLM) has it, before the converter's passes."""

    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def file_ops(model_bytes: bytes) -> tuple[list[FileOp], int]:
    """The operators of the (single) subgraph and its number of tensors, read with the schema
    binding (the model has already passed the reader)."""
    model = schema.S.Model.GetRootAs(model_bytes, 0)
    sub = model.Subgraphs(0)
    ops = []
    for k in range(sub.OperatorsLength()):
        raw = sub.Operators(k)
        code = schema.builtin_code(schema.S.OperatorCodeT.InitFromObj(model.OperatorCodes(raw.OpcodeIndex())))
        ins = tuple(int(i) for i in raw.InputsAsNumpy()) if raw.InputsLength() else ()
        outs = tuple(int(i) for i in raw.OutputsAsNumpy()) if raw.OutputsLength() else ()
        ops.append(FileOp(k, schema.op_name(code), ins, outs))
    return ops, int(sub.TensorsLength())


def _executed_ops(source: str) -> list[tuple[int, bool]]:
    """(op index, has code) of each MCU_OP_BEGIN(k) ... MCU_OP_END(k) block of NAME_invoke."""
    body = source[source.rfind("_invoke(void) {"):]
    return [(int(m.group(1)), _NO_CODE not in m.group(2))
            for m in re.finditer(r"MCU_OP_BEGIN\((\d+)\);(.*?)MCU_OP_END\(\1\);", body, re.S)]


def _snapshots(output_dir: Path, n_ops: int, inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """Build the folder with the per-op hook, invoke once on `inputs`; the arena after each
    op (n_ops x arena bytes) and the op indices in the order the hooks fired."""
    model = host.HostModel(output_dir, extra_flags=DEBUG_FLAGS)
    lib, name = model.lib, model.model.name
    arena_bytes = model.model.arena_bytes
    cfg_offset = _input_offset(output_dir)
    arena = ctypes.c_void_p(getattr(lib, f"{name}_input")(0) - cfg_offset)
    snaps = np.zeros((n_ops, max(arena_bytes, 1)), dtype=np.int8)
    ops = np.zeros(max(n_ops, 1), dtype=np.int32)
    lib.mcu_debug_layers_start.restype = None
    lib.mcu_debug_layers_start.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                                           ctypes.c_void_p, ctypes.c_int]
    lib.mcu_debug_layers_count.restype = ctypes.c_int
    lib.mcu_debug_layers_start(arena, arena_bytes, snaps.ctypes.data, ops.ctypes.data, n_ops)
    try:
        model.run(inputs)
        count = lib.mcu_debug_layers_count()
    finally:
        lib.mcu_debug_layers_start(None, 0, None, None, 0)
    if count != n_ops:
        raise DebugInputError(f"{output_dir}: the invoke ran {count} ops, the generated code has "
                              f"{n_ops}: regenerate the folder")
    return snaps[:, :arena_bytes], [int(k) for k in ops[:n_ops]]


def _input_offset(output_dir: Path) -> int:
    from tflite_converter.codegen.generate import GeneratedModel

    gen = GeneratedModel.load(output_dir)
    if not gen.inputs:
        raise DebugInputError("the model has no input")
    return gen.inputs[0].offset


def _tflm(model_bytes: bytes, graph: Graph):
    from engine.tflm import TflmModel

    # every tensor has its own bytes: room for all of them besides TFLM's own allocations
    need = sum(t.nbytes for t in graph.tensors)
    size = 10 * len(model_bytes) + 2 * need + (1 << 16)
    try:
        return TflmModel(model_bytes, arena_size=size, preserve_all_tensors=True)
    except RuntimeError as e:
        raise DebugInputError(f"TFLM cannot run the model: {str(e).splitlines()[0]}") from None


def _compare(ours: np.ndarray, ref: np.ndarray, row: Row) -> None:
    row.compared, row.total = True, int(ref.size)
    if ours.dtype != ref.dtype or ours.size != ref.size:
        row.note = f"ours {ours.dtype} x{ours.size}, TFLM {ref.dtype} x{ref.size}"
        row.differing, row.max_diff = row.total, float("nan")
        return
    a, b = ours.reshape(-1), ref.reshape(-1)
    if a.dtype.kind == "f":  # bit-exact means the same bytes; |diff| as numbers
        bits = np.dtype(f"u{a.dtype.itemsize}")
        differ = a.view(bits) != b.view(bits)
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))[differ]
        row.max_diff = float(np.nanmax(d)) if d.size and not np.all(np.isnan(d)) else (
            float("nan") if d.size else 0.0)
    else:
        differ = a != b
        row.max_diff = float(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64)))) if differ.any() else 0.0
    row.differing = int(np.count_nonzero(differ))


def debug_layers(model_path: Path, output_dir: Path, inputs: Optional[Sequence[np.ndarray]] = None,
                 input_file: Optional[Path] = None, seed: int = 0,
                 compiled: Optional[CompiledModel] = None) -> Report:
    """Compare every op's outputs of the C folder `output_dir` (generated from `model_path`;
    built as it is now, so a test may edit it first) with TFLM's on one input: `inputs`, the
    arrays of `input_file`, or seeded random ones."""
    if not host.have_compiler():
        raise DebugInputError(f"no C compiler '{host.CC}' found (set CC)")
    model_bytes = Path(model_path).read_bytes()
    compiled = compiled if compiled is not None else compile_model(model_bytes)
    graph, order = compiled.graph, list(compiled.order)
    # the .tflite's own ops (the passes only append tensors: the first n_file are the file's)
    original, n_file = file_ops(model_bytes)
    tflm = _tflm(model_bytes, graph)
    details = [tflm.input_details(i) for i in range(tflm.num_inputs)]
    if inputs is None:
        if input_file is not None:
            inputs = load_inputs(Path(input_file), details)
        else:
            from engine.tflm import random_inputs

            inputs = random_inputs(details, np.random.default_rng(seed))
    inputs = [np.ascontiguousarray(x) for x in inputs]

    gen_src = ModelDir.open(output_dir).source.read_text()
    executed = _executed_ops(gen_src)
    expected = [graph.ops[p].index for p in order]
    if [k for k, _ in executed] != expected:
        raise DebugInputError(f"{output_dir}: the generated invoke runs ops {[k for k, _ in executed]}, "
                              f"the model's plan {expected}: regenerate the folder")
    snaps, fired = _snapshots(Path(output_dir), len(order), inputs)
    if fired != expected:
        raise DebugInputError(f"{output_dir}: the per-op hook fired for ops {fired}, expected "
                              f"{expected}: regenerate the folder")
    tflm.run(inputs)

    offsets = plan_view(compiled.plan, graph).tensor_offsets
    # our value of each tensor: the arena right after the op that produced it
    observed: dict[int, np.ndarray] = {i: x for i, x in zip(graph.inputs, inputs)}
    rows: list[tuple[int, int, Row]] = []
    for pos, (p, (_, has_code)) in enumerate(zip(order, executed)):
        op = graph.ops[p]
        kind = original[op.index].kind if op.index < len(original) else op.kind.value
        for t in op.outputs:
            tensor = graph.tensors[t]
            off = offsets[t]
            ours = snaps[pos, off:off + tensor.nbytes].view(tensor.dtype.np).reshape(tensor.shape).copy()
            observed[t] = ours
            row = Row(op.index, kind, tensor.name, "" if has_code else "alias (no code)")
            if t < n_file:
                _compare(ours, tflm.tensor(t), row)
            else:
                row.note = "tensor made by a pass, not in the .tflite"
            rows.append((op.index, pos, row))
    kept = {graph.ops[p].index for p in order}
    for fop in original:
        if fop.index in kept:
            continue
        for t in fop.outputs:
            tensor = graph.tensors[t]
            row = Row(fop.index, fop.kind, tensor.name)
            src = _alias_source(graph, fop, t)
            if tensor.is_constant and tensor.data is not None:
                row.note = "folded to a constant (no code)"
                _compare(np.asarray(tensor.data), tflm.tensor(t), row)
            elif t in observed:
                row.note = "computed by another op"
                _compare(observed[t], tflm.tensor(t), row)
            elif src is not None and src in observed:
                row.note = f"aliased (no code): compared as '{_short(graph.tensors[src].name)}'"
                _compare(observed[src], tflm.tensor(t), row)
            else:
                row.note = "removed by a pass (no code), not observable"
            rows.append((fop.index, -1, row))
    rows.sort(key=lambda r: (r[0], r[1]))
    return Report([r for _, _, r in rows], Path(model_path).name)


def _alias_source(graph: Graph, op: FileOp, out: int) -> Optional[int]:
    """The input whose bytes an alias op's output holds (same dtype and quantization)."""
    if op.kind not in _ALIAS_KINDS or not op.inputs or op.inputs[0] < 0:
        return None
    a, b = graph.tensors[op.inputs[0]], graph.tensors[out]
    if a.dtype != b.dtype or a.nbytes != b.nbytes or not same_quantization(a.quant, b.quant):
        return None
    return a.index


def run(model_path: Path, output_dir: Path, input_file: Optional[Path] = None, seed: int = 0,
        compiled: Optional[CompiledModel] = None, out: Callable[[str], None] = print) -> int:
    """The command line's step: print the table; 0 when every op is identical, 1 otherwise.
    Raises DebugInputError for bad input."""
    report = debug_layers(model_path, output_dir, input_file=input_file, seed=seed, compiled=compiled)
    what = f"input {input_file}" if input_file is not None else f"seeded random input (seed {seed})"
    out(f"debug_layers: {report.model}, {what}: generated C (host {host.CC}) vs TFLM, every op's outputs")
    out(report.format())
    sys.stdout.flush()
    return 1 if report.first_difference is not None else 0


__all__ = ["DebugInputError", "Report", "Row", "debug_layers", "load_inputs", "run"]
