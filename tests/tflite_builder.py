"""Build small .tflite models without TensorFlow, for tests.

Models are written through the TFLite schema binding's object API (ModelT, SubGraphT, TensorT,
OperatorT, ...) and finished with the file identifier "TFL3", so they load in ai_edge_litert
and in the TFLM interpreter exactly like converter output.

    from tests.tflite_builder import TensorSpec, build_single_op_model
    data = build_single_op_model(
        "CONV_2D",
        inputs=[TensorSpec((1, 8, 8, 3), scale=0.5, zero_point=-3),
                TensorSpec((4, 3, 3, 3), scale=[0.1, 0.2, 0.3, 0.4], zero_point=0, axis=0,
                           data=weights),
                TensorSpec((4,), "int32", scale=[...], zero_point=0, axis=0, data=bias)],
        outputs=[TensorSpec((1, 8, 8, 4), scale=0.25, zero_point=1)],
        options={"padding": "SAME", "stride_w": 1, "stride_h": 1, "activation": "RELU6"})

For graphs of several ops use `ModelBuilder`: add tensors, then ops, then `build(...)`.

Options may be an object-API options instance (e.g. `schema.S.Conv2DOptionsT()`) or a dict.
Dict keys are the option class's fields in either spelling (`stride_w` or `strideW`), plus the
shorthand `activation` for `fusedActivationFunction`; enum-valued fields accept their names
("SAME", "RELU6").
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Optional, Sequence, Union

import flatbuffers
import numpy as np

from tflite_converter import int4, schema
from tflite_converter.ir import DType

S = schema.S

OpLike = Union[str, int]


@dataclasses.dataclass
class TensorSpec:
    """A tensor of a built model.

    `scale`/`zero_point` give affine quantization: scalars for per-tensor, sequences with
    `axis` for per-channel (a scalar zero point is repeated). `data` makes the tensor a
    constant (converted to `dtype`, reshaped to `shape`). `shape_signature` (with -1 for
    dynamic dimensions) is written when given. `quantized_dimension` overrides what is
    written as the axis, to build legacy or broken layouts on purpose. `int4` writes the
    tensor as TFLite INT4 (dtype int8 values in [-8, 7], the buffer packed two a byte,
    tflite_converter/int4.py).
    """

    shape: Sequence[int]
    dtype: Union[str, DType] = "int8"
    scale: Union[float, Sequence[float], None] = None
    zero_point: Union[int, Sequence[int], None] = None
    axis: Optional[int] = None
    data: Any = None
    name: Optional[str] = None
    shape_signature: Optional[Sequence[int]] = None
    quantized_dimension: Optional[int] = None
    int4: bool = False

    @property
    def dtype_enum(self) -> DType:
        return self.dtype if isinstance(self.dtype, DType) else DType(np.dtype(self.dtype).name)


def _camel(key: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)


# Option fields whose values are enums, by their object-API name.
_ENUM_FIELDS: dict[str, dict[str, int]] = {
    "padding": {p.value: c for p, c in schema.PADDING_CODES.items()},
    "fusedActivationFunction": {a.value: c for a, c in schema.ACTIVATION_CODES.items()},
}
_ALIASES = {"activation": "fusedActivationFunction", "dilation_h": "dilationHFactor",
            "dilation_w": "dilationWFactor", "filter_h": "filterHeight", "filter_w": "filterWidth"}


def op_code(op: OpLike) -> int:
    if isinstance(op, str):
        if op not in schema.BUILTIN_CODES:
            raise ValueError(f"unknown builtin operator {op!r}")
        return schema.BUILTIN_CODES[op]
    return int(op)


def make_options(op: OpLike, options: Any) -> tuple[int, Any]:
    """(BuiltinOptions type, options object) for an operator; (0, None) without options."""
    code = op_code(op)
    entry = schema.OPTIONS.get(code)
    if options is None:
        if entry is None:
            return 0, None
        options = {}
    if entry is None:
        raise ValueError(f"no options table known for {schema.op_name(code)}")
    union_type, cls = entry
    if isinstance(options, cls):
        return union_type, options
    obj = cls()
    # TFLite reads a stride or dilation of 0 as an invalid model; give the usual defaults.
    for field in ("strideW", "strideH", "dilationWFactor", "dilationHFactor", "depthMultiplier"):
        if hasattr(obj, field) and getattr(obj, field) == 0:
            setattr(obj, field, 1)
    if cls is S.SoftmaxOptionsT:
        obj.beta = 1.0
    for key, value in dict(options).items():
        name = _ALIASES.get(key, key)
        name = name if hasattr(obj, name) else _camel(name)
        if not hasattr(obj, name):
            raise ValueError(f"{cls.__name__} has no field {key!r}")
        if name in _ENUM_FIELDS and isinstance(value, str):
            value = _ENUM_FIELDS[name][value]
        elif hasattr(value, "value") and name in _ENUM_FIELDS:  # an ir.Padding / ir.Activation
            value = _ENUM_FIELDS[name][value.value]
        setattr(obj, name, value)
    return union_type, obj


class ModelBuilder:
    """Collects tensors and operators of one subgraph, then writes the .tflite bytes."""

    def __init__(self) -> None:
        self.tensors: list[TensorSpec] = []
        self.ops: list[tuple[OpLike, list[int], list[int], Any, Optional[str]]] = []

    def add_tensor(self, spec: TensorSpec) -> int:
        self.tensors.append(spec)
        return len(self.tensors) - 1

    def add_op(self, op: OpLike, inputs: Sequence[int], outputs: Sequence[int],
               options: Any = None, custom_code: Optional[str] = None) -> int:
        """Add an operator (a BuiltinOperator name or code, or "CUSTOM" with custom_code)."""
        self.ops.append((op, list(inputs), list(outputs), options, custom_code))
        return len(self.ops) - 1

    # -----------------------------------------------------------------------------------------
    def to_model(self, inputs: Sequence[int], outputs: Sequence[int]) -> "S.ModelT":
        model = S.ModelT()
        model.version = schema.SCHEMA_VERSION
        model.description = "tests.tflite_builder"
        model.buffers = [S.BufferT()]  # buffer 0: the empty buffer of every activation
        sub = S.SubGraphT()
        sub.name = "main"
        sub.tensors = [self._tensor(i, spec, model.buffers) for i, spec in enumerate(self.tensors)]
        sub.inputs = list(inputs)
        sub.outputs = list(outputs)
        codes: list[tuple[int, Optional[str]]] = []
        sub.operators = []
        for op, op_in, op_out, options, custom in self.ops:
            code = op_code(op)
            key = (code, custom)
            if key not in codes:
                codes.append(key)
            o = S.OperatorT()
            o.opcodeIndex = codes.index(key)
            o.inputs = list(op_in)
            o.outputs = list(op_out)
            if custom is None:
                o.builtinOptionsType, o.builtinOptions = make_options(code, options)
            else:
                o.customOptions = list(options or b"")
            sub.operators.append(o)
        model.operatorCodes = []
        for code, custom in codes:
            oc = S.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, schema.PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.version = 1
            if custom is not None:
                oc.customCode = custom
            model.operatorCodes.append(oc)
        model.subgraphs = [sub]
        return model

    @staticmethod
    def _tensor(index: int, spec: TensorSpec, buffers: list) -> "S.TensorT":
        dtype = spec.dtype_enum
        t = S.TensorT()
        t.name = spec.name or f"t{index}"
        t.shape = [int(d) for d in spec.shape]
        t.type = int4.TENSOR_TYPE_INT4 if spec.int4 else schema.DTYPE_TENSOR_TYPES[dtype]
        if spec.shape_signature is not None:
            t.shapeSignature = [int(d) for d in spec.shape_signature]
        t.buffer = 0
        if spec.data is not None:
            arr = np.asarray(spec.data).astype(dtype.np.newbyteorder("<"), copy=False)
            arr = arr.reshape([int(d) for d in spec.shape])
            b = S.BufferT()
            b.data = int4.pack(arr) if spec.int4 else np.frombuffer(arr.tobytes(), np.uint8)
            buffers.append(b)
            t.buffer = len(buffers) - 1
        if spec.scale is not None:
            scales = np.atleast_1d(np.asarray(spec.scale, np.float32))
            zps = np.atleast_1d(np.asarray(0 if spec.zero_point is None else spec.zero_point, np.int64))
            if zps.size == 1 and scales.size > 1:
                zps = np.repeat(zps, scales.size)
            q = S.QuantizationParametersT()
            q.scale = [float(s) for s in scales]
            q.zeroPoint = [int(z) for z in zps]
            axis = spec.quantized_dimension if spec.quantized_dimension is not None else spec.axis
            q.quantizedDimension = int(axis or 0)
            t.quantization = q
        return t

    def build(self, inputs: Sequence[int], outputs: Sequence[int], *,
              offset_buffers: bool = False) -> bytes:
        """Serialise. With `offset_buffers`, constant data is stored after the flatbuffer and
        referenced by Buffer.offset/size (the form TFLite uses for models over 2 GB)."""
        model = self.to_model(inputs, outputs)
        if not offset_buffers:
            return _finish(model)
        payloads = [np.asarray(b.data, np.uint8).tobytes() if b.data is not None else b""
                    for b in model.buffers]
        for b, p in zip(model.buffers, payloads):
            if p:
                b.data, b.offset, b.size = None, 2, len(p)  # placeholders of the final width
        head = _finish(model)
        pos = _align(len(head), 16)
        tail = b""
        for b, p in zip(model.buffers, payloads):
            if p:
                b.offset = pos + len(tail)
                tail += p + b"\0" * (_align(len(p), 16) - len(p))
        head2 = _finish(model)
        assert len(head2) == len(head), "buffer offsets changed the flatbuffer's size"
        return head2 + b"\0" * (pos - len(head2)) + tail


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _finish(model: "S.ModelT") -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=schema.FILE_IDENTIFIER)
    return bytes(builder.Output())


def build_model(tensors: Sequence[TensorSpec], ops: Sequence[tuple], inputs: Sequence[int],
                outputs: Sequence[int], **kwargs: Any) -> bytes:
    """A one-subgraph model; `ops` are (op, inputs, outputs[, options[, custom_code]])."""
    mb = ModelBuilder()
    for spec in tensors:
        mb.add_tensor(spec)
    for op in ops:
        mb.add_op(*op)
    return mb.build(inputs, outputs, **kwargs)


def build_single_op_model(op: OpLike, inputs: Sequence[Optional[TensorSpec]],
                          outputs: Sequence[TensorSpec], options: Any = None,
                          custom_code: Optional[str] = None, **kwargs: Any) -> bytes:
    """A model of one operator. Non-constant inputs become the model's inputs, in order; a
    None input is an absent optional operand (-1)."""
    mb = ModelBuilder()
    in_idx = [-1 if spec is None else mb.add_tensor(spec) for spec in inputs]
    out_idx = [mb.add_tensor(spec) for spec in outputs]
    mb.add_op(op, in_idx, out_idx, options, custom_code)
    graph_inputs = [i for i, spec in zip(in_idx, inputs) if spec is not None and spec.data is None]
    return mb.build(graph_inputs, out_idx, **kwargs)


def random_data(spec: TensorSpec, rng: np.random.Generator) -> np.ndarray:
    """Random values filling the spec's dtype range (int32 kept small, like real biases)."""
    dtype = spec.dtype_enum.np
    shape = tuple(spec.shape)
    if dtype == np.float32:
        return rng.standard_normal(shape).astype(np.float32)
    if dtype == np.int32:
        return rng.integers(-2000, 2000, shape, dtype=np.int32)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
