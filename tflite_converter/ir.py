"""Typed Graph IR: the contract between the reader, the passes, the planner and the C emitter.

A `Graph` is a list of `Tensor`s and a list of `Op`s in execution order. Tensors are referred
to by their index in `Graph.tensors`; an op input of -1 means an absent optional input (as in
TFLite). Constants carry their data (`Tensor.data`, a read-only numpy array in the tensor's
dtype and shape); everything else lives in the arena the planner lays out.

Op attributes are small frozen dataclasses, one per family of ops, so every consumer reads
the same typed fields instead of flatbuffer option tables. Nothing here imports TensorFlow or
touches files: the NAS builds graphs of this kind in memory, thousands a second.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from typing import Optional, Sequence, TypeVar

import numpy as np


class DType(enum.Enum):
    """Tensor element types the converter knows (value: numpy dtype name)."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"
    INT8 = "int8"
    UINT8 = "uint8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"

    def __init__(self, value: str) -> None:
        # bytes per element, a plain attribute of each member: reading it costs one attribute
        # lookup (a property would build a numpy dtype per call), and the planner and the NAS
        # read it for every tensor of every candidate
        self.itemsize: int = np.dtype(value).itemsize

    @property
    def np(self) -> np.dtype:
        return np.dtype(self.value)

    @property
    def c_type(self) -> str:
        return {
            DType.FLOAT32: "float",
            DType.INT8: "int8_t",
            DType.UINT8: "uint8_t",
            DType.INT16: "int16_t",
            DType.INT32: "int32_t",
            DType.INT64: "int64_t",
            DType.BOOL: "uint8_t",
            DType.FLOAT16: "uint16_t",
        }[self]


class Padding(enum.Enum):
    SAME = "SAME"
    VALID = "VALID"


class Activation(enum.Enum):
    """Fused activation functions as TFLite names them."""

    NONE = "NONE"
    RELU = "RELU"
    RELU_N1_TO_1 = "RELU_N1_TO_1"
    RELU6 = "RELU6"
    TANH = "TANH"
    SIGN_BIT = "SIGN_BIT"


class OpKind(enum.Enum):
    """Operators the IR can describe (the names of TFLite's BuiltinOperator)."""

    CONV_2D = "CONV_2D"
    DEPTHWISE_CONV_2D = "DEPTHWISE_CONV_2D"
    FULLY_CONNECTED = "FULLY_CONNECTED"
    ADD = "ADD"
    SUB = "SUB"
    MUL = "MUL"
    AVERAGE_POOL_2D = "AVERAGE_POOL_2D"
    MAX_POOL_2D = "MAX_POOL_2D"
    MEAN = "MEAN"
    SUM = "SUM"
    RESHAPE = "RESHAPE"
    SQUEEZE = "SQUEEZE"
    EXPAND_DIMS = "EXPAND_DIMS"
    SOFTMAX = "SOFTMAX"
    LOGISTIC = "LOGISTIC"
    TANH = "TANH"
    HARD_SWISH = "HARD_SWISH"
    RELU = "RELU"
    RELU6 = "RELU6"
    LEAKY_RELU = "LEAKY_RELU"
    PRELU = "PRELU"
    PAD = "PAD"
    PADV2 = "PADV2"
    CONCATENATION = "CONCATENATION"
    SPLIT = "SPLIT"
    TRANSPOSE = "TRANSPOSE"
    STRIDED_SLICE = "STRIDED_SLICE"
    MAXIMUM = "MAXIMUM"
    MINIMUM = "MINIMUM"
    RESIZE_NEAREST_NEIGHBOR = "RESIZE_NEAREST_NEIGHBOR"
    RESIZE_BILINEAR = "RESIZE_BILINEAR"
    QUANTIZE = "QUANTIZE"
    DEQUANTIZE = "DEQUANTIZE"
    ABS = "ABS"
    DEPTH_TO_SPACE = "DEPTH_TO_SPACE"
    REDUCE_MAX = "REDUCE_MAX"
    REDUCE_MIN = "REDUCE_MIN"
    ARG_MAX = "ARG_MAX"
    ARG_MIN = "ARG_MIN"
    GATHER = "GATHER"
    SPACE_TO_DEPTH = "SPACE_TO_DEPTH"
    RSQRT = "RSQRT"
    LOG_SOFTMAX = "LOG_SOFTMAX"
    SQUARED_DIFFERENCE = "SQUARED_DIFFERENCE"
    SPACE_TO_BATCH_ND = "SPACE_TO_BATCH_ND"
    BATCH_TO_SPACE_ND = "BATCH_TO_SPACE_ND"
    BATCH_MATMUL = "BATCH_MATMUL"
    # float32 only (a model's float head or tail, codegen/ops/float32.py)
    DIV = "DIV"
    EXP = "EXP"
    LOG = "LOG"
    SQRT = "SQRT"
    # Ops whose result is a constant: the reader keeps them only until
    # passes.fold_constants replaces their outputs by constant tensors (else validate refuses).
    SHAPE = "SHAPE"
    PACK = "PACK"
    # The converter's own ops, never read from a file (tflite_converter/patch.py): write a
    # patch of the stage run patch by patch into its window of a full-width row band; read a
    # patch's window out of consecutive row bands; cut an NHWC tensor into row bands (views
    # of its bytes where the plan can) and join row bands into one tensor (the same).
    PATCH_WRITE = "PATCH_WRITE"
    PATCH_READ = "PATCH_READ"
    ROW_BANDS = "ROW_BANDS"
    ROW_JOIN = "ROW_JOIN"


# ---------------------------------------------------------------------------------------------
# Quantization and tensors


@dataclasses.dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point).

    `axis` is None for per-tensor parameters (scale and zero_point of length 1), else the
    dimension the per-channel parameters run along.
    """

    scale: np.ndarray  # float32, 1-D
    zero_point: np.ndarray  # int64, 1-D
    axis: Optional[int] = None

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    @property
    def scalar_scale(self) -> float:
        assert self.scale.size == 1, "per-channel quantization has no single scale"
        return float(self.scale[0])

    @property
    def scalar_zero_point(self) -> int:
        assert self.zero_point.size == 1 or not np.any(self.zero_point), "per-channel zero point"
        return int(self.zero_point[0])


def same_quantization(a: Optional[Quantization], b: Optional[Quantization]) -> bool:
    """The same real value for every stored value: equal scales, zero points and axis (two
    unquantized tensors count as the same; one quantized and one not, as different)."""
    if a is None or b is None:
        return a is None and b is None
    return (a.axis == b.axis and np.array_equal(a.scale, b.scale)
            and np.array_equal(a.zero_point, b.zero_point))


@dataclasses.dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: DType
    quant: Optional[Quantization] = None
    data: Optional[np.ndarray] = None  # constant contents, dtype/shape as above
    # The file stores this constant as TFLite INT4 (two values a byte, tflite_converter/int4.py):
    # `data` holds the values as int8 and the generated C keeps them packed in Flash.
    packed_int4: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def num_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the tensor's elements. Cheap (the planner calls it for every tensor of
        every plan); computed on each call, as the reader may still change `shape`."""
        return math.prod(self.shape, start=self.dtype.itemsize)


# ---------------------------------------------------------------------------------------------
# Op attributes (one class per family; every field changes the result)


@dataclasses.dataclass(frozen=True)
class Pads:
    """Explicit zero-point padding of a spatial op, in input pixels."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0


@dataclasses.dataclass(frozen=True)
class NoAttrs:
    pass


@dataclasses.dataclass(frozen=True)
class ConvAttrs:
    """CONV_2D and DEPTHWISE_CONV_2D. `pads` is what the padding mode resolves to (TFLite's
    rule: total = max((out-1)*stride + (k-1)*dilation + 1 - in, 0), the smaller half before);
    a PAD folded in by a pass adds to it."""

    padding: Padding
    stride_h: int
    stride_w: int
    dilation_h: int = 1
    dilation_w: int = 1
    activation: Activation = Activation.NONE
    pads: Pads = Pads()
    depth_multiplier: int = 1  # depthwise only


@dataclasses.dataclass(frozen=True)
class PoolAttrs:
    padding: Padding
    stride_h: int
    stride_w: int
    filter_h: int
    filter_w: int
    activation: Activation = Activation.NONE
    pads: Pads = Pads()


@dataclasses.dataclass(frozen=True)
class FullyConnectedAttrs:
    activation: Activation = Activation.NONE
    keep_num_dims: bool = False


@dataclasses.dataclass(frozen=True)
class ElementwiseAttrs:
    """ADD / SUB / MUL (binary, broadcasting)."""

    activation: Activation = Activation.NONE


@dataclasses.dataclass(frozen=True)
class ReduceAttrs:
    """MEAN / SUM / REDUCE_MAX / REDUCE_MIN over `axes` (normalised to non-negative, sorted)."""

    axes: tuple[int, ...]
    keep_dims: bool


@dataclasses.dataclass(frozen=True)
class AxisAttrs:
    """ARG_MAX / ARG_MIN: the one axis reduced (non-negative)."""

    axis: int


@dataclasses.dataclass(frozen=True)
class BatchMatMulAttrs:
    """BATCH_MATMUL: LHS [..., M, K] (stored [..., K, M] when `adj_x`) times RHS [..., K, N]
    (stored [..., N, K] when `adj_y`). The options' asymmetric_quantize_inputs concerns
    hybrid (float32 LHS) arithmetic only, which is refused; TFLM's int8 kernel ignores it."""

    adj_x: bool = False
    adj_y: bool = False


@dataclasses.dataclass(frozen=True)
class SoftmaxAttrs:
    beta: float = 1.0


@dataclasses.dataclass(frozen=True)
class LeakyReluAttrs:
    alpha: float


@dataclasses.dataclass(frozen=True)
class PadAttrs:
    """PAD / PADV2: per-dimension (before, after); the pad value is the output zero point
    for PAD, the constant third input for PADV2 (resolved to a quantized int here)."""

    paddings: tuple[tuple[int, int], ...]
    pad_value: int


@dataclasses.dataclass(frozen=True)
class ConcatAttrs:
    axis: int  # non-negative
    activation: Activation = Activation.NONE


@dataclasses.dataclass(frozen=True)
class SplitAttrs:
    axis: int  # non-negative
    num_splits: int


@dataclasses.dataclass(frozen=True)
class TransposeAttrs:
    perm: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class StridedSliceAttrs:
    """Fully resolved: begin/end/strides per dimension with masks already applied."""

    begin: tuple[int, ...]
    end: tuple[int, ...]
    strides: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class BlockAttrs:
    """DEPTH_TO_SPACE / SPACE_TO_DEPTH: the side of the square block moved between depth and
    space (at least 1)."""

    block_size: int


@dataclasses.dataclass(frozen=True)
class BatchSpaceAttrs:
    """SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND (constant inputs 1 and 2): the block per spatial
    dimension (at least 1) and per spatial dimension the (before, after) paddings (S2B) or
    crops (B2S); one spatial dimension for a 3-D input, two for 4-D."""

    block: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]

    def as_4d(self) -> tuple[int, int, int, int, int, int]:
        """(block h, block w, before h, after h, before w, after w) of the 4-D form TFLM
        extends a 3-D input to (width 1, block 1, no padding)."""
        (bh, *rest), ((t, b), *prest) = self.block, self.pads
        bw = rest[0] if rest else 1
        (left, right) = prest[0] if prest else (0, 0)
        return bh, bw, t, b, left, right

    @staticmethod
    def shape_4d(shape: Sequence[int]) -> tuple[int, int, int, int]:
        """(N, H, W, C) of a 4-D shape, (N, H, 1, C) of a 3-D one."""
        if len(shape) == 4:
            return shape[0], shape[1], shape[2], shape[3]
        return shape[0], shape[1], 1, shape[2]


@dataclasses.dataclass(frozen=True)
class GatherAttrs:
    """GATHER: `axis` of the params and `batch_dims` leading dimensions shared with the
    indices, both non-negative (resolved as TFLM resolves them)."""

    axis: int
    batch_dims: int = 0


@dataclasses.dataclass(frozen=True)
class ResizeAttrs:
    align_corners: bool = False
    half_pixel_centers: bool = False


@dataclasses.dataclass(frozen=True)
class PackAttrs:
    """PACK: stack the inputs along a new `axis` (non-negative, in the output's rank)."""

    axis: int


@dataclasses.dataclass(frozen=True)
class WindowAttrs:
    """PATCH_WRITE: where the patch (input 1) goes in the band (output), NHWC: its first row
    and first column. PATCH_READ: where the patch (output) starts in its first input band."""

    row: int
    col: int


@dataclasses.dataclass(frozen=True)
class ReshapeAttrs:
    """RESHAPE / SQUEEZE / EXPAND_DIMS: the output shape is the output tensor's shape."""


# ---------------------------------------------------------------------------------------------
# Ops and graphs

AttrsT = TypeVar("AttrsT")


@dataclasses.dataclass
class Op:
    index: int  # the op's index in the source file (for messages); stable across passes
    kind: OpKind
    inputs: list[int]  # tensor indices, -1 = absent optional input
    outputs: list[int]
    attrs: object = NoAttrs()

    def attrs_as(self, cls: type[AttrsT]) -> AttrsT:
        """The attributes, typed: the reader built them for this op's kind, so a mismatch is
        a bug in the converter, not in the model."""
        if not isinstance(self.attrs, cls):
            raise TypeError(f"{self}: attributes are {type(self.attrs).__name__}, not {cls.__name__}")
        return self.attrs

    def __str__(self) -> str:
        return f"op {self.index} {self.kind.value}"


@dataclasses.dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    name: str = "model"

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def producers(self) -> dict[int, Op]:
        return {t: op for op in self.ops for t in op.outputs}

    def consumers(self) -> dict[int, list[Op]]:
        out: dict[int, list[Op]] = {}
        for op in self.ops:
            for t in op.inputs:
                if t >= 0:
                    out.setdefault(t, []).append(op)
        return out

    def consumer_counts(self) -> dict[int, int]:
        """How many op inputs read each tensor (a tensor read twice by one op counts twice)."""
        n: dict[int, int] = {}
        for op in self.ops:
            for t in op.inputs:
                n[t] = n.get(t, 0) + 1
        return n

    def activation_tensors(self) -> list[int]:
        """Indices of non-constant tensors that some op or the graph boundary uses."""
        used: set[int] = set(self.inputs) | set(self.outputs)
        for op in self.ops:
            used.update(t for t in op.inputs if t >= 0)
            used.update(op.outputs)
        return sorted(t for t in used if not self.tensors[t].is_constant)


def same_pads(in_size: int, k: int, stride: int, dilation: int, out_size: int) -> tuple[int, int]:
    """TFLite's SAME padding for one dimension: (before, after)."""
    effective = (k - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective - in_size, 0)
    return total // 2, total - total // 2


def conv_output_size(in_size: int, k: int, stride: int, dilation: int, padding: Padding) -> int:
    effective = (k - 1) * dilation + 1
    if padding is Padding.SAME:
        return (in_size + stride - 1) // stride
    return (in_size - effective + stride) // stride


def shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"
