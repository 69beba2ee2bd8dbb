"""Read a .tflite flatbuffer into the typed Graph IR, without TensorFlow.

`read_tflite(data)` parses the bytes with the `flatbuffers` runtime and the TFLite schema
binding, builds `ir.Tensor`s (shape, dtype, quantization, read-only constant data) and `ir.Op`s
with typed attributes, folds the ops whose results are constants (`passes.fold_constants`),
then checks that the engine can run everything (`validate.validate`). Every problem ends in one
`ConversionError` listing all problems found, one line each; nothing else escapes.

The file is untrusted. Before the schema binding's object API sees it, the header is checked
(size, "TFL3" identifier, root table and vtable inside the file), and the object API itself runs
under a catch-all: generated flatbuffer code raises whatever Python raises on garbage
(struct.error, IndexError, UnicodeDecodeError, ...). After that every index (opcode, tensor,
buffer) is range-checked, every tensor's element count and byte size are capped before any
array is made, constant data must lie inside the file and match the shape exactly, and the
graph must be a DAG in file order with every tensor produced once.
"""
from __future__ import annotations

import math
import os
import pathlib
import struct
from typing import Any, Callable, Optional, TypeVar

import numpy as np

from tflite_converter import int4, op_registry, schema
from tflite_converter.errors import ConversionError, Problem
from tflite_converter.ir import (
    AxisAttrs,
    BatchMatMulAttrs,
    BatchSpaceAttrs,
    BlockAttrs,
    ConcatAttrs,
    ConvAttrs,
    DType,
    ElementwiseAttrs,
    FullyConnectedAttrs,
    GatherAttrs,
    Graph,
    LeakyReluAttrs,
    NoAttrs,
    Op,
    OpKind,
    PackAttrs,
    PadAttrs,
    Padding,
    Pads,
    PoolAttrs,
    Quantization,
    ReduceAttrs,
    ResizeAttrs,
    SoftmaxAttrs,
    SplitAttrs,
    StridedSliceAttrs,
    Tensor,
    TransposeAttrs,
    same_pads,
)
from tflite_converter.schema import S  # noqa: E402  (the binding, by its usual name)
from tflite_converter.validate import check_structure

B = schema.BuiltinOperator
OptionsT = TypeVar("OptionsT")  # a schema options class (S.Conv2DOptionsT, ...)

MAX_TENSOR_BYTES = 64 * 1024 * 1024  # no microcontroller model has a bigger tensor
MAX_RANK = 8
MAX_FILE_BYTES = 1 << 31  # a flatbuffer proper addresses at most 2 GiB


def load_tflite(path: str | os.PathLike[str], name: Optional[str] = None) -> Graph:
    """Read a .tflite file; the graph is named after the file unless `name` is given."""
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {e.strerror or e}") from None
    return read_tflite(data, name or path.stem)


def read_tflite(data: bytes, name: str = "model", *, validate: bool = True) -> Graph:
    """Parse a TFLite model into a Graph, constants folded and (by default) validated.

    Raises ConversionError (all problems at once) for anything that is not a well-formed,
    supported model. With `validate=False` the engine-support checks of `validate.py` are
    skipped (the file must still be well formed and use only operators the IR describes).
    """
    # Imported here: passes and validate import the IR, not the reader, but keep the
    # dependency one-way and explicit.
    from tflite_converter import passes
    from tflite_converter import validate as validate_mod

    reader = _Reader(bytes(data), name)
    graph, problems = reader.read()
    int4_problems: list[Problem] = []
    if not problems:
        if validate:  # before folding: an int4 constant read by a folded op is refused too
            int4_problems = validate_mod.int4_problems(graph)
        graph = passes.fold_constants(graph)
        problems += _check_dynamic(graph, reader.dynamic)
    if validate:
        # Ops reading a refused tensor see only its placeholder shape: skip them, their
        # problem is already listed.
        skip = {op.index for op in graph.ops
                if any(t in reader.bad_tensors for t in op.inputs + op.outputs)}
        problems += validate_mod.check_graph(graph, structural_ok=not problems, skip_ops=skip)
    problems += int4_problems
    if problems:
        raise ConversionError(_sorted(problems))
    return graph


def _resolved_reshape(graph: Graph, op: Op) -> Optional[tuple[int, ...]]:
    """The shape a RESHAPE's constant shape operand gives (its one -1 filled in from the
    input's element count, as TFLM fills it), or None without a constant operand."""
    if len(op.inputs) < 2 or min(op.inputs[:2]) < 0:
        return None
    shape_operand = graph.tensors[op.inputs[1]]
    data = shape_operand.data
    if data is None or shape_operand.dtype not in (DType.INT32, DType.INT64):
        return None
    dims = [int(d) for d in data.reshape(-1)]
    known = math.prod(d for d in dims if d != -1)
    if dims.count(-1) > 1 or any(d < -1 for d in dims) or (dims.count(-1) and not known):
        return None
    count = graph.tensors[op.inputs[0]].num_elements
    return tuple(count // known if d == -1 else d for d in dims)


def _non_unit(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _check_dynamic(graph: Graph, dynamic: dict[int, list[int]]) -> list[Problem]:
    """Accept a tensor with a dynamic non-batch dimension only where its static shape is the
    one TFLM runs (TFLM ignores shape_signature and runs the static shapes): the output of a
    RESHAPE whose shape operand, folded to a constant, gives exactly that shape (a dynamic-
    batch `tf.reshape(x, [tf.shape(x)[0], -1])`); of SQUEEZE / EXPAND_DIMS, which only add or
    remove size-1 dimensions of a proven input; or of any other op whose dynamic inputs are
    proven (validate recomputes every other op's output shape from its inputs). Model inputs
    and everything else stay refused."""
    if not dynamic:
        return []
    proven: set[int] = set()
    for op in graph.ops:
        shapes_ok = all(t not in dynamic or t in proven for t in op.inputs)
        for t in op.outputs:
            if t not in dynamic:
                continue
            shape = graph.tensors[t].shape
            if op.kind is OpKind.RESHAPE:
                ok = _resolved_reshape(graph, op) == tuple(shape)
            elif op.kind in (OpKind.SQUEEZE, OpKind.EXPAND_DIMS):
                ok = (shapes_ok and bool(op.inputs) and op.inputs[0] >= 0
                      and _non_unit(graph.tensors[op.inputs[0]].shape) == _non_unit(shape))
            else:
                ok = shapes_ok
            if ok:
                proven.add(t)
    return [Problem(f"dynamic shape (shape_signature {sig}) not supported", tensor=graph.tensors[t].name)
            for t, sig in sorted(dynamic.items()) if t not in proven]


def _sorted(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    unique = []
    for p in sorted(problems, key=lambda p: (-1 if p.op_index is None else p.op_index)):
        if str(p) not in seen:
            seen.add(str(p))
            unique.append(p)
    return unique


# ---------------------------------------------------------------------------------------------
# Header and object-API parsing


def _check_header(data: bytes) -> None:
    n = len(data)
    if n == 0:
        raise ConversionError("not a TFLite model: the file is empty")
    if n < 16:
        raise ConversionError(f"not a TFLite model: the file is only {n} bytes")
    if n > MAX_FILE_BYTES:
        raise ConversionError(f"file of {n} bytes is too large for a flatbuffer (2 GiB maximum)")
    ident = data[4:8]
    if ident != schema.FILE_IDENTIFIER:
        raise ConversionError(
            f"not a TFLite model: file identifier {ident!r}, expected {schema.FILE_IDENTIFIER!r}")
    (root,) = struct.unpack_from("<I", data, 0)
    if root < 8 or root + 4 > n:
        raise ConversionError(f"malformed TFLite file: root table offset {root} outside the file")
    (vt_rel,) = struct.unpack_from("<i", data, root)
    vtable = root - vt_rel
    if vtable < 0 or vtable + 4 > n:
        raise ConversionError("malformed TFLite file: root vtable outside the file")
    vt_size, obj_size = struct.unpack_from("<HH", data, vtable)
    if vt_size < 4 or vt_size % 2 or vtable + vt_size > n or root + obj_size > n:
        raise ConversionError("malformed TFLite file: inconsistent root vtable")


def unpack_model(data: bytes) -> "S.ModelT":
    """The file's object-API model, the header checked first; raises ConversionError for a
    file that is not a well-formed flatbuffer (nothing the generated code raises escapes)."""
    _check_header(data)
    try:
        return S.ModelT.InitFromPackedBuf(data, 0)
    except RecursionError:
        raise ConversionError("malformed TFLite file: nesting too deep") from None
    except MemoryError:
        raise ConversionError("malformed TFLite file: structure sizes out of range") from None
    except Exception as e:  # generated code raises anything on garbage; all mean "corrupt"
        raise ConversionError(f"malformed TFLite file ({type(e).__name__} while parsing)") from None


def _as_ints(values: Any, what: str) -> list[int]:
    if values is None:
        return []
    try:
        return [int(v) for v in values]  # numpy views of the file become Python ints
    except (TypeError, ValueError):
        raise ConversionError(f"malformed TFLite file: {what} is not a list of integers") from None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# ---------------------------------------------------------------------------------------------
# Tensors


class _OpProblem(Exception):
    """Raised by attribute readers: the op cannot be described; the message is the reason."""


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data = data
        self.name = name
        self.problems: list[Problem] = []
        self.bad_tensors: set[int] = set()  # refused tensors: their ops are not checked further
        # tensors with a dynamic non-batch dimension: their signatures, checked after folding
        self.dynamic: dict[int, list[int]] = {}

    def read(self) -> tuple[Graph, list[Problem]]:
        model = unpack_model(self.data)
        if int(model.version) != schema.SCHEMA_VERSION:
            raise ConversionError(
                f"TFLite schema version {model.version} not supported (expected {schema.SCHEMA_VERSION})")
        subgraphs = model.subgraphs or []
        if len(subgraphs) != 1:
            raise ConversionError(
                f"the model has {len(subgraphs)} subgraphs: only single-subgraph models are supported")
        self.model = model
        self.buffers = model.buffers or []
        self.opcodes = model.operatorCodes or []
        sub = subgraphs[0]
        raw_tensors = sub.tensors or []
        self.tensors = [self._tensor(i, t) for i, t in enumerate(raw_tensors)]
        n = len(self.tensors)
        inputs = self._indices(_as_ints(sub.inputs, "subgraph inputs"), n, "subgraph input")
        outputs = self._indices(_as_ints(sub.outputs, "subgraph outputs"), n, "subgraph output")
        ops = []
        for k, raw in enumerate(sub.operators or []):
            op = self._op(k, raw, n)
            if op is not None:
                ops.append(op)
        graph = Graph(tensors=self.tensors, ops=ops, inputs=inputs, outputs=outputs, name=self.name)
        if not self.problems:
            self.problems += check_structure(graph)
        return graph, self.problems

    def _indices(self, idx: list[int], n: int, what: str) -> list[int]:
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise ConversionError(f"malformed TFLite file: {what} index {bad[0]} out of range (0..{n - 1})")
        return idx

    def _tensor(self, index: int, t: "S.TensorT") -> Tensor:
        name = _text(t.name) or f"tensor_{index}"
        # INT4 is read as int8 values marked packed_int4 (int4.py); validate decides where
        # that is allowed
        packed = int(t.type) == int4.TENSOR_TYPE_INT4
        dtype = DType.INT8 if packed else schema.TENSOR_DTYPES.get(int(t.type))
        shape = tuple(_as_ints(t.shape, f"shape of tensor '{name}'"))
        tensor = Tensor(index=index, name=name, shape=shape, dtype=dtype or DType.INT8,
                        packed_int4=packed)

        def refuse(reason: str) -> Tensor:
            self.problems.append(Problem(reason, tensor=name))
            self.bad_tensors.add(index)
            tensor.shape = tuple(max(0, min(d, 1)) for d in shape)  # harmless placeholder
            return tensor

        if dtype is None:
            return refuse(f"tensor type {schema.TENSOR_TYPE_NAMES.get(int(t.type), int(t.type))} not supported")
        if len(shape) > MAX_RANK:
            return refuse(f"rank {len(shape)} exceeds {MAX_RANK}")
        if any(d < 0 for d in shape):
            return refuse(f"negative dimension in shape {list(shape)}")
        signature = _as_ints(t.shapeSignature, f"shape signature of tensor '{name}'")
        # A -1 in shape_signature marks a dimension resizable at run time. Keras writes one for
        # the batch of every tensor while `shape` fixes it (at 1), which is what TFLM runs. A
        # dynamic dimension anywhere else may make the static shape a placeholder: such a
        # tensor is accepted only where folding proves its static shape (`_check_dynamic`).
        if signature and len(signature) != len(shape):
            return refuse(f"dynamic shape (shape_signature {signature}) not supported")
        if any(d < 0 and not (i == 0 and shape[0] == 1) for i, d in enumerate(signature)):
            self.dynamic[index] = signature
        count = math.prod(shape)
        if count * dtype.itemsize > MAX_TENSOR_BYTES:
            return refuse(f"shape {list(shape)} is {count * dtype.itemsize} bytes, over the "
                          f"{MAX_TENSOR_BYTES >> 20} MiB limit")
        if t.isVariable:
            return refuse("variable tensors not supported")
        if t.sparsity is not None:
            return refuse("sparse tensors not supported")
        if getattr(t, "externalBuffer", 0):
            return refuse("external buffers not supported")
        try:
            tensor.quant = self._quant(t.quantization, shape)
        except _OpProblem as e:
            return refuse(str(e))
        buffer_index = int(t.buffer)
        if not 0 <= buffer_index < max(len(self.buffers), 1):
            return refuse(f"buffer index {buffer_index} out of range (0..{len(self.buffers) - 1})")
        try:
            raw = self._buffer_bytes(buffer_index)
        except _OpProblem as e:
            return refuse(str(e))
        if raw is not None and packed:
            need = int4.packed_size(count)
            if len(raw) != need:
                return refuse(f"constant data has {len(raw)} bytes, shape {list(shape)} of int4 "
                              f"(two values a byte) needs {need}")
            arr = int4.unpack(raw, count).reshape(shape)
            arr.setflags(write=False)
            tensor.data = arr
        elif raw is not None:
            need = count * dtype.itemsize
            if len(raw) != need:
                return refuse(f"constant data has {len(raw)} bytes, shape {list(shape)} of "
                              f"{dtype.value} needs {need}")
            arr = np.frombuffer(raw, dtype=dtype.np.newbyteorder("<")).astype(dtype.np).reshape(shape)
            arr.setflags(write=False)
            tensor.data = arr
        return tensor

    def _buffer_bytes(self, index: int) -> Optional[bytes]:
        """The constant bytes of buffer `index`, or None for an empty buffer (an activation)."""
        if index == 0 or index >= len(self.buffers):
            return None  # buffer 0 is by convention the empty buffer of every activation
        buf = self.buffers[index]
        offset, size = int(buf.offset or 0), int(buf.size or 0)
        if offset > 1:
            # Models over 2 GB keep data after the flatbuffer: offset/size from the file start
            # (offset 1 is the writer's placeholder for "not yet placed").
            if size == 0:
                return None
            if offset + size > len(self.data):
                raise _OpProblem(f"buffer {index} (offset {offset}, {size} bytes) lies outside "
                                 f"the {len(self.data)}-byte file")
            return self.data[offset:offset + size]
        if buf.data is None or len(buf.data) == 0:
            return None
        return np.asarray(buf.data, dtype=np.uint8).tobytes()

    @staticmethod
    def _quant(q: Optional["S.QuantizationParametersT"], shape: tuple[int, ...]) -> Optional[Quantization]:
        if q is None or q.scale is None or len(q.scale) == 0:
            if q is not None and q.details is not None:
                raise _OpProblem("custom quantization details not supported")
            return None
        if q.details is not None:
            raise _OpProblem("custom quantization details not supported")
        scale = np.asarray(q.scale, dtype=np.float32).reshape(-1).copy()
        if q.zeroPoint is None or len(q.zeroPoint) == 0:
            # TFLite and TFLM read a tensor's quantization only when both lists are present:
            # with scales alone they run it as unquantized, so no reading of it would match.
            raise _OpProblem(f"{scale.size} scales but no zero points (TFLite and TFLM then "
                             "ignore the quantization)")
        zp = np.asarray(q.zeroPoint, dtype=np.int64).reshape(-1).copy()
        if zp.size != scale.size:
            raise _OpProblem(f"{scale.size} scales but {zp.size} zero points")
        axis: Optional[int] = None
        if scale.size > 1:
            axis = int(q.quantizedDimension)
            if axis >= len(shape) and len(shape) == 1 and shape[0] == scale.size:
                # Old converters wrote the filter's quantized_dimension (3 for depthwise) on the
                # 1-D bias too (tflm_person_detect). TFLM never reads the bias's dimension; the
                # scales run along the only axis there is.
                axis = 0
            if not 0 <= axis < len(shape):
                raise _OpProblem(f"quantized_dimension {axis} out of range for shape {list(shape)}")
            if shape[axis] != scale.size:
                raise _OpProblem(f"{scale.size} per-channel scales for dimension {axis} of size {shape[axis]}")
        scale.setflags(write=False)
        zp.setflags(write=False)
        return Quantization(scale=scale, zero_point=zp, axis=axis)

    # -----------------------------------------------------------------------------------------
    # Operators

    def _op(self, k: int, raw: "S.OperatorT", n_tensors: int) -> Optional[Op]:
        opcode_index = int(raw.opcodeIndex)
        if not 0 <= opcode_index < len(self.opcodes):
            self.problems.append(Problem(f"opcode index {opcode_index} out of range "
                                         f"(0..{len(self.opcodes) - 1})", k, "?"))
            return None
        opcode = self.opcodes[opcode_index]
        code = schema.builtin_code(opcode)
        name = schema.op_name(code)
        if code == B.CUSTOM:
            self.problems.append(Problem(f"custom operator '{_text(opcode.customCode)}' not supported", k, "CUSTOM"))
            return None
        if code not in schema.BUILTIN_NAMES:
            self.problems.append(Problem(f"unknown builtin operator code {code}", k, name))
            return None
        inputs = _as_ints(raw.inputs, f"inputs of op {k}")
        outputs = _as_ints(raw.outputs, f"outputs of op {k}")
        bad = [i for i in inputs if not -1 <= i < n_tensors] + [i for i in outputs if not 0 <= i < n_tensors]
        if bad:
            self.problems.append(Problem(f"tensor index {bad[0]} out of range (0..{n_tensors - 1})", k, name))
            return None
        rec = op_registry.for_builtin(code)
        if rec is None:
            self.problems.append(Problem("not supported", k, name))
            return None
        if any(t in self.bad_tensors for t in inputs + outputs):
            return None  # the tensor's problem is listed; its placeholder shape says nothing
        ctx = _OpContext(self, k, name, inputs, outputs, raw.builtinOptions)
        try:
            kind, attrs = rec.kind, rec.read(ctx)
        except _OpProblem as e:
            self.problems.append(Problem(str(e), k, name, ctx.blame))
            return None
        except (ArithmeticError, IndexError, TypeError, ValueError) as e:
            # A file inconsistent in a way no rule above anticipated: still a refusal, never
            # a traceback; the exception is named so the gap can be closed.
            self.problems.append(Problem(f"inconsistent operator ({type(e).__name__}: {e})", k, name))
            return None
        return Op(index=k, kind=kind, inputs=inputs, outputs=outputs, attrs=attrs)


class _OpContext:
    """What an attribute reader sees of one operator."""

    def __init__(self, reader: _Reader, index: int, name: str, inputs: list[int],
                 outputs: list[int], options: object):
        self.reader, self.index, self.name = reader, index, name
        self.inputs, self.outputs, self.raw_options = inputs, outputs, options
        self.blame: Optional[str] = None

    def options(self, cls: type[OptionsT]) -> OptionsT:
        """The op's options table, or the schema defaults when the file has none."""
        if self.raw_options is None:
            return cls()
        if not isinstance(self.raw_options, cls):
            raise _OpProblem(f"options table {type(self.raw_options).__name__[:-1]} does not belong to this operator")
        return self.raw_options

    def tensor(self, slot: int, *, output: bool = False) -> Tensor:
        idx = self.outputs if output else self.inputs
        if slot >= len(idx) or idx[slot] < 0:
            raise _OpProblem(f"missing {'output' if output else 'input'} {slot}")
        return self.reader.tensors[idx[slot]]

    def const(self, slot: int, what: str) -> np.ndarray:
        t = self.tensor(slot)
        if t.data is None:
            self.blame = t.name
            raise _OpProblem(f"{what} must be a constant tensor")
        if t.dtype not in (DType.INT32, DType.INT64):
            self.blame = t.name
            raise _OpProblem(f"{what} must be int32 or int64, not {t.dtype.value}")
        return t.data

    def rank(self, slot: int, *, output: bool = False) -> int:
        return len(self.tensor(slot, output=output).shape)


def _axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise _OpProblem(f"{what} {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def _activation(code: int):
    act = schema.ACTIVATIONS.get(int(code))
    if act is None:
        raise _OpProblem(f"unknown fused activation {code}")
    return act


def _padding(code: int) -> Padding:
    pad = schema.PADDINGS.get(int(code))
    if pad is None:
        raise _OpProblem(f"unknown padding {code}")
    return pad


def _positive(value: int, what: str) -> int:
    if int(value) < 1:
        raise _OpProblem(f"{what} {value} must be at least 1")
    return int(value)


def _spatial_pads(ctx: _OpContext, padding: Padding, kh: int, kw: int, sh: int, sw: int,
                  dh: int, dw: int) -> Pads:
    """SAME resolved to explicit pads with TFLite's rule from the file's own sizes."""
    if padding is Padding.VALID:
        return Pads()
    x, y = ctx.tensor(0), ctx.tensor(0, output=True)
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise _OpProblem("input and output must be 4-D (NHWC)")
    top, bottom = same_pads(x.shape[1], kh, sh, dh, y.shape[1])
    left, right = same_pads(x.shape[2], kw, sw, dw, y.shape[2])
    return Pads(top, bottom, left, right)


def read_conv(ctx: _OpContext) -> ConvAttrs:
    o = ctx.options(S.Conv2DOptionsT)
    w = ctx.tensor(1)
    if len(w.shape) != 4:
        ctx.blame = w.name
        raise _OpProblem("filter must be 4-D (OHWI)")
    padding = _padding(o.padding)
    sh, sw = _positive(o.strideH, "stride_h"), _positive(o.strideW, "stride_w")
    dh, dw = _positive(o.dilationHFactor, "dilation_h"), _positive(o.dilationWFactor, "dilation_w")
    pads = _spatial_pads(ctx, padding, w.shape[1], w.shape[2], sh, sw, dh, dw)
    return ConvAttrs(padding, sh, sw, dh, dw, _activation(o.fusedActivationFunction), pads)


def read_depthwise(ctx: _OpContext) -> ConvAttrs:
    o = ctx.options(S.DepthwiseConv2DOptionsT)
    x, w = ctx.tensor(0), ctx.tensor(1)
    if len(w.shape) != 4 or len(x.shape) != 4:
        raise _OpProblem("input and filter must be 4-D (NHWC, 1HWO)")
    in_ch, out_ch = x.shape[3], w.shape[3]
    if in_ch == 0 or out_ch % in_ch:
        raise _OpProblem(f"filter channels {out_ch} not a multiple of input channels {in_ch}")
    multiplier = out_ch // in_ch
    # TFLite derives the multiplier from the shapes; a stated one must agree.
    if int(o.depthMultiplier) not in (0, multiplier):
        raise _OpProblem(f"depth_multiplier {o.depthMultiplier} disagrees with channels "
                         f"{in_ch} -> {out_ch}")
    padding = _padding(o.padding)
    sh, sw = _positive(o.strideH, "stride_h"), _positive(o.strideW, "stride_w")
    dh, dw = _positive(o.dilationHFactor, "dilation_h"), _positive(o.dilationWFactor, "dilation_w")
    pads = _spatial_pads(ctx, padding, w.shape[1], w.shape[2], sh, sw, dh, dw)
    return ConvAttrs(
        padding, sh, sw, dh, dw, _activation(o.fusedActivationFunction), pads, multiplier)


def read_fully_connected(ctx: _OpContext) -> FullyConnectedAttrs:
    o = ctx.options(S.FullyConnectedOptionsT)
    if int(o.weightsFormat) != S.FullyConnectedOptionsWeightsFormat.DEFAULT:
        raise _OpProblem("shuffled weights format not supported")
    return FullyConnectedAttrs(_activation(o.fusedActivationFunction), bool(o.keepNumDims))


def read_elementwise(cls: Any) -> Callable[[_OpContext], ElementwiseAttrs]:
    """ADD, SUB, MUL: a fused activation in their options of type `cls`."""
    def read(ctx: _OpContext):
        o = ctx.options(cls)
        return ElementwiseAttrs(_activation(o.fusedActivationFunction))
    return read


def read_pool(ctx: _OpContext) -> PoolAttrs:
    o = ctx.options(S.Pool2DOptionsT)
    padding = _padding(o.padding)
    sh, sw = _positive(o.strideH, "stride_h"), _positive(o.strideW, "stride_w")
    fh, fw = _positive(o.filterHeight, "filter_height"), _positive(o.filterWidth, "filter_width")
    pads = _spatial_pads(ctx, padding, fh, fw, sh, sw, 1, 1)
    return PoolAttrs(padding, sh, sw, fh, fw, _activation(o.fusedActivationFunction), pads)


def read_reduce(ctx: _OpContext) -> ReduceAttrs:
    o = ctx.options(S.ReducerOptionsT)
    rank = ctx.rank(0)
    axes = sorted({_axis(int(a), rank) for a in ctx.const(1, "axes").reshape(-1)})
    return ReduceAttrs(tuple(axes), bool(o.keepDims))


def fixed_attrs(attrs: object = NoAttrs()) -> Callable[[_OpContext], object]:
    """Ops whose options carry nothing the engine needs: the same attributes for every op."""
    return lambda ctx: attrs


def read_softmax(ctx: _OpContext) -> SoftmaxAttrs:
    return SoftmaxAttrs(float(ctx.options(S.SoftmaxOptionsT).beta))


def read_leaky_relu(ctx: _OpContext) -> LeakyReluAttrs:
    return LeakyReluAttrs(float(ctx.options(S.LeakyReluOptionsT).alpha))


def read_pad(with_value: bool) -> Callable[[_OpContext], PadAttrs]:
    """PAD (the output's zero point) or PADV2 (`with_value`: a constant_values input)."""
    def read(ctx: _OpContext):
        rank = ctx.rank(0)
        p = ctx.const(1, "paddings")
        if p.shape != (rank, 2):
            raise _OpProblem(f"paddings of shape {list(p.shape)}, expected [{rank}, 2]")
        if np.any(p < 0):
            raise _OpProblem("negative paddings not supported")
        paddings = tuple((int(a), int(b)) for a, b in p)
        if with_value and len(ctx.inputs) > 2 and ctx.inputs[2] >= 0:
            v = ctx.tensor(2)
            if v.data is None or v.data.size != 1:
                ctx.blame = v.name
                raise _OpProblem("constant_values must be a constant scalar")
            value = int(v.data.reshape(-1)[0])
        else:  # PAD pads with the output's zero point (real 0)
            q = ctx.tensor(0, output=True).quant
            value = int(q.zero_point[0]) if q is not None else 0
        return PadAttrs(paddings, value)
    return read


def read_concat(ctx: _OpContext) -> ConcatAttrs:
    o = ctx.options(S.ConcatenationOptionsT)
    return ConcatAttrs(_axis(int(o.axis), ctx.rank(0, output=True)), _activation(o.fusedActivationFunction))


def read_split(ctx: _OpContext) -> SplitAttrs:
    o = ctx.options(S.SplitOptionsT)
    axis_data = ctx.const(0, "axis").reshape(-1)
    if axis_data.size != 1:
        raise _OpProblem("axis must be a scalar")
    if int(o.numSplits) != len(ctx.outputs):
        raise _OpProblem(f"num_splits {o.numSplits} but {len(ctx.outputs)} outputs")
    return SplitAttrs(_axis(int(axis_data[0]), ctx.rank(1)), len(ctx.outputs))


def read_transpose(ctx: _OpContext) -> TransposeAttrs:
    rank = ctx.rank(0)
    perm = tuple(int(p) for p in ctx.const(1, "perm").reshape(-1))
    if sorted(perm) != list(range(rank)):
        raise _OpProblem(f"perm {list(perm)} is not a permutation of {rank} axes")
    return TransposeAttrs(perm)


def read_strided_slice(ctx: _OpContext) -> StridedSliceAttrs:
    o = ctx.options(S.StridedSliceOptionsT)
    if o.ellipsisMask:
        raise _OpProblem("ellipsis_mask not supported")
    if o.newAxisMask:
        raise _OpProblem("new_axis_mask not supported")
    shape = ctx.tensor(0).shape
    rank = len(shape)
    begin = [int(v) for v in ctx.const(1, "begin").reshape(-1)]
    end = [int(v) for v in ctx.const(2, "end").reshape(-1)]
    strides = [int(v) for v in ctx.const(3, "strides").reshape(-1)]
    if not len(begin) == len(end) == len(strides) == rank:
        raise _OpProblem(f"begin/end/strides must have {rank} values (one per input dimension)")
    rb, re_, rs = [], [], []
    for i, dim in enumerate(shape):
        s = strides[i]
        if s == 0:
            raise _OpProblem(f"stride 0 on dimension {i}")
        shrink = bool(o.shrinkAxisMask >> i & 1)
        if shrink and s < 0:
            raise _OpProblem(f"shrink_axis_mask with a negative stride on dimension {i} not supported")
        lo, hi = (0, dim) if s > 0 else (-1, dim - 1)

        def clamp(v: int, dim: int = dim, lo: int = lo, hi: int = hi) -> int:
            v = v + dim if v < 0 else v
            return min(max(v, lo), hi)

        b = (0 if s > 0 else dim - 1) if o.beginMask >> i & 1 else clamp(begin[i])
        if shrink:
            e = b + 1
        elif o.endMask >> i & 1:
            e = dim if s > 0 else -1
        else:
            e = clamp(begin[i] + end[i] if o.offset else end[i])
        rb.append(b)
        re_.append(e)
        rs.append(s)
    return StridedSliceAttrs(tuple(rb), tuple(re_), tuple(rs))


def read_resize(cls: Any) -> Callable[[_OpContext], ResizeAttrs]:
    """RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR, options of type `cls`."""
    def read(ctx: _OpContext):
        o = ctx.options(cls)
        size = ctx.const(1, "size").reshape(-1)
        y = ctx.tensor(0, output=True)
        if size.size != 2 or len(y.shape) != 4 or tuple(int(v) for v in size) != tuple(y.shape[1:3]):
            raise _OpProblem(f"size {size.tolist()} does not match the output shape {list(y.shape)}")
        if o.alignCorners and o.halfPixelCenters:
            raise _OpProblem("align_corners and half_pixel_centers together not supported")
        return ResizeAttrs(bool(o.alignCorners), bool(o.halfPixelCenters))
    return read


def read_pack(ctx: _OpContext) -> PackAttrs:
    o = ctx.options(S.PackOptionsT)
    if int(o.valuesCount) != len(ctx.inputs):
        raise _OpProblem(f"values_count {o.valuesCount} but {len(ctx.inputs)} inputs")
    return PackAttrs(_axis(int(o.axis), ctx.rank(0, output=True)))


def read_block(cls: Any) -> Callable[[_OpContext], BlockAttrs]:
    """DEPTH_TO_SPACE and SPACE_TO_DEPTH: the block size of their options of type `cls`."""
    def read(ctx: _OpContext):
        return BlockAttrs(_positive(ctx.options(cls).blockSize, "block_size"))
    return read


def read_batch_space(ctx: _OpContext) -> BatchSpaceAttrs:
    """SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND: constant int32 block shape [m] and paddings or
    crops [m, 2], m = rank - 2 spatial dimensions (TFLM takes 3-D and 4-D inputs)."""
    rank = ctx.rank(0)
    if rank not in (3, 4):
        raise _OpProblem(f"{rank}-D input, TFLM supports 3-D and 4-D")
    block = ctx.const(1, "block_shape").reshape(-1)
    pads = ctx.const(2, "paddings / crops")
    if block.shape != (rank - 2,) or pads.shape != (rank - 2, 2):
        raise _OpProblem(f"block shape {list(block.shape)} and paddings / crops "
                         f"{list(pads.shape)}, expected [{rank - 2}] and [{rank - 2}, 2]")
    if np.any(block < 1) or np.any(pads < 0):
        raise _OpProblem("block sizes below 1 or negative paddings / crops")
    return BatchSpaceAttrs(tuple(int(b) for b in block), tuple((int(a), int(b)) for a, b in pads))


def read_arg_axis(ctx: _OpContext) -> AxisAttrs:
    """ARG_MAX / ARG_MIN: the constant scalar axis (the output type is the output tensor's)."""
    axis = ctx.const(1, "axis").reshape(-1)
    if axis.size != 1:
        raise _OpProblem(f"axis must be a single value, has {axis.size}")
    return AxisAttrs(_axis(int(axis[0]), ctx.rank(0)))


def read_gather(ctx: _OpContext) -> GatherAttrs:
    """GATHER: axis over the params' rank, batch_dims over the indices' (TFLM's rules)."""
    o = ctx.options(S.GatherOptionsT)
    rank, coords_rank = ctx.rank(0), ctx.rank(1)
    batch_dims = int(o.batchDims)
    batch_dims = batch_dims + coords_rank if batch_dims < 0 else batch_dims
    axis = _axis(int(o.axis), rank)
    if not 0 <= batch_dims <= min(axis, coords_rank):
        raise _OpProblem(f"batch_dims {o.batchDims} out of range for axis {axis} and "
                         f"{coords_rank}-D indices")
    return GatherAttrs(axis, batch_dims)


def read_batch_matmul(ctx: _OpContext) -> BatchMatMulAttrs:
    """BATCH_MATMUL: adj_x / adj_y (asymmetric_quantize_inputs only matters to hybrid
    arithmetic, which validate refuses by the tensor types)."""
    o = ctx.options(S.BatchMatMulOptionsT)
    return BatchMatMulAttrs(bool(o.adjX), bool(o.adjY))
