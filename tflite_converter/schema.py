"""Thin access to the TFLite flatbuffer schema (the binding shipped with ai_edge_litert).

The binding `schema_py_generated` is generated code that needs only the `flatbuffers` runtime;
importing it does not import TensorFlow. Everything else in the converter reaches the schema
through this module, so the numbers of the enums (operators, tensor types, activations,
paddings) and the option classes are looked up in one place.
"""
from __future__ import annotations

from typing import Optional

from ai_edge_litert import schema_py_generated as S  # noqa: N812 (the schema, by its usual name)

from tflite_converter.ir import Activation, DType, OpKind, Padding

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3  # TFLite and TFLM run only version-3 models


def _enum_names(enum_class: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


BuiltinOperator = S.BuiltinOperator
BUILTIN_NAMES: dict[int, str] = _enum_names(S.BuiltinOperator)
BUILTIN_CODES: dict[str, int] = {name: code for code, name in BUILTIN_NAMES.items()}
TENSOR_TYPE_NAMES: dict[int, str] = _enum_names(S.TensorType)

# Only the codes below 127 fit the old int8 `deprecated_builtin_code` field; larger codes are
# written there as this placeholder and carried by `builtin_code` (schema version 3a).
PLACEHOLDER_FOR_GREATER_OP_CODES = S.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES


def builtin_code(opcode: "S.OperatorCodeT") -> int:
    """The operator code of an OperatorCode table, as TFLite resolves it.

    Files written before schema 3a set only `deprecated_builtin_code` (then `builtin_code` reads
    as its default 0 = ADD); newer files set both, with the placeholder 127 in the deprecated
    field for codes above it. The maximum of the two is the code in every case.
    """
    return max(int(opcode.builtinCode), int(opcode.deprecatedBuiltinCode))


def op_name(code: int) -> str:
    return BUILTIN_NAMES.get(code, f"BUILTIN_{code}")


TENSOR_DTYPES: dict[int, DType] = {
    S.TensorType.FLOAT32: DType.FLOAT32,
    S.TensorType.FLOAT16: DType.FLOAT16,
    S.TensorType.INT8: DType.INT8,
    S.TensorType.UINT8: DType.UINT8,
    S.TensorType.INT16: DType.INT16,
    S.TensorType.INT32: DType.INT32,
    S.TensorType.INT64: DType.INT64,
    S.TensorType.BOOL: DType.BOOL,
}
DTYPE_TENSOR_TYPES: dict[DType, int] = {v: k for k, v in TENSOR_DTYPES.items()}

ACTIVATIONS: dict[int, Activation] = {
    S.ActivationFunctionType.NONE: Activation.NONE,
    S.ActivationFunctionType.RELU: Activation.RELU,
    S.ActivationFunctionType.RELU_N1_TO_1: Activation.RELU_N1_TO_1,
    S.ActivationFunctionType.RELU6: Activation.RELU6,
    S.ActivationFunctionType.TANH: Activation.TANH,
    S.ActivationFunctionType.SIGN_BIT: Activation.SIGN_BIT,
}
ACTIVATION_CODES: dict[Activation, int] = {v: k for k, v in ACTIVATIONS.items()}

PADDINGS: dict[int, Padding] = {S.Padding.SAME: Padding.SAME, S.Padding.VALID: Padding.VALID}
PADDING_CODES: dict[Padding, int] = {v: k for k, v in PADDINGS.items()}

# BuiltinOperator code -> (BuiltinOptions union type, object-API options class) for the
# operators the converter reads or the test builder writes. Operators without options (e.g.
# LOGISTIC) are absent; the builder then writes no options table.
OPTIONS: dict[int, tuple[int, type]] = {
    S.BuiltinOperator.CONV_2D: (S.BuiltinOptions.Conv2DOptions, S.Conv2DOptionsT),
    S.BuiltinOperator.DEPTHWISE_CONV_2D: (S.BuiltinOptions.DepthwiseConv2DOptions, S.DepthwiseConv2DOptionsT),
    S.BuiltinOperator.FULLY_CONNECTED: (S.BuiltinOptions.FullyConnectedOptions, S.FullyConnectedOptionsT),
    S.BuiltinOperator.ADD: (S.BuiltinOptions.AddOptions, S.AddOptionsT),
    S.BuiltinOperator.SUB: (S.BuiltinOptions.SubOptions, S.SubOptionsT),
    S.BuiltinOperator.MUL: (S.BuiltinOptions.MulOptions, S.MulOptionsT),
    S.BuiltinOperator.DIV: (S.BuiltinOptions.DivOptions, S.DivOptionsT),
    S.BuiltinOperator.AVERAGE_POOL_2D: (S.BuiltinOptions.Pool2DOptions, S.Pool2DOptionsT),
    S.BuiltinOperator.MAX_POOL_2D: (S.BuiltinOptions.Pool2DOptions, S.Pool2DOptionsT),
    S.BuiltinOperator.MEAN: (S.BuiltinOptions.ReducerOptions, S.ReducerOptionsT),
    S.BuiltinOperator.SUM: (S.BuiltinOptions.ReducerOptions, S.ReducerOptionsT),
    S.BuiltinOperator.REDUCE_MAX: (S.BuiltinOptions.ReducerOptions, S.ReducerOptionsT),
    S.BuiltinOperator.REDUCE_MIN: (S.BuiltinOptions.ReducerOptions, S.ReducerOptionsT),
    S.BuiltinOperator.ARG_MAX: (S.BuiltinOptions.ArgMaxOptions, S.ArgMaxOptionsT),
    S.BuiltinOperator.ARG_MIN: (S.BuiltinOptions.ArgMinOptions, S.ArgMinOptionsT),
    S.BuiltinOperator.GATHER: (S.BuiltinOptions.GatherOptions, S.GatherOptionsT),
    S.BuiltinOperator.BATCH_MATMUL: (S.BuiltinOptions.BatchMatMulOptions, S.BatchMatMulOptionsT),
    S.BuiltinOperator.RESHAPE: (S.BuiltinOptions.ReshapeOptions, S.ReshapeOptionsT),
    S.BuiltinOperator.SQUEEZE: (S.BuiltinOptions.SqueezeOptions, S.SqueezeOptionsT),
    S.BuiltinOperator.EXPAND_DIMS: (S.BuiltinOptions.ExpandDimsOptions, S.ExpandDimsOptionsT),
    S.BuiltinOperator.SOFTMAX: (S.BuiltinOptions.SoftmaxOptions, S.SoftmaxOptionsT),
    S.BuiltinOperator.LEAKY_RELU: (S.BuiltinOptions.LeakyReluOptions, S.LeakyReluOptionsT),
    S.BuiltinOperator.PAD: (S.BuiltinOptions.PadOptions, S.PadOptionsT),
    S.BuiltinOperator.PADV2: (S.BuiltinOptions.PadV2Options, S.PadV2OptionsT),
    S.BuiltinOperator.CONCATENATION: (S.BuiltinOptions.ConcatenationOptions, S.ConcatenationOptionsT),
    S.BuiltinOperator.SPLIT: (S.BuiltinOptions.SplitOptions, S.SplitOptionsT),
    S.BuiltinOperator.TRANSPOSE: (S.BuiltinOptions.TransposeOptions, S.TransposeOptionsT),
    S.BuiltinOperator.STRIDED_SLICE: (S.BuiltinOptions.StridedSliceOptions, S.StridedSliceOptionsT),
    S.BuiltinOperator.MAXIMUM: (S.BuiltinOptions.MaximumMinimumOptions, S.MaximumMinimumOptionsT),
    S.BuiltinOperator.MINIMUM: (S.BuiltinOptions.MaximumMinimumOptions, S.MaximumMinimumOptionsT),
    S.BuiltinOperator.RESIZE_NEAREST_NEIGHBOR: (
        S.BuiltinOptions.ResizeNearestNeighborOptions, S.ResizeNearestNeighborOptionsT),
    S.BuiltinOperator.RESIZE_BILINEAR: (S.BuiltinOptions.ResizeBilinearOptions, S.ResizeBilinearOptionsT),
    S.BuiltinOperator.HARD_SWISH: (S.BuiltinOptions.HardSwishOptions, S.HardSwishOptionsT),
    S.BuiltinOperator.QUANTIZE: (S.BuiltinOptions.QuantizeOptions, S.QuantizeOptionsT),
    S.BuiltinOperator.DEQUANTIZE: (S.BuiltinOptions.DequantizeOptions, S.DequantizeOptionsT),
    S.BuiltinOperator.SHAPE: (S.BuiltinOptions.ShapeOptions, S.ShapeOptionsT),
    S.BuiltinOperator.PACK: (S.BuiltinOptions.PackOptions, S.PackOptionsT),
    S.BuiltinOperator.DEPTH_TO_SPACE: (S.BuiltinOptions.DepthToSpaceOptions, S.DepthToSpaceOptionsT),
    S.BuiltinOperator.SPACE_TO_DEPTH: (S.BuiltinOptions.SpaceToDepthOptions, S.SpaceToDepthOptionsT),
}


def options_class(code: int) -> Optional[type]:
    entry = OPTIONS.get(code)
    return entry[1] if entry else None


def op_kind_code(kind: OpKind) -> int:
    """The BuiltinOperator code of an IR op kind (the kinds are named after the operators)."""
    return BUILTIN_CODES[kind.value]
