"""The converter's Graph IR of an MCUNet network, built in memory without TensorFlow.

The NAS asks the converter's memory planner how much SRAM a candidate needs (MCUNet's
co-design). Exporting thousands of candidates to ``.tflite`` is out of the question, so
:func:`network_to_graph` builds directly the graph that ``load_tflite`` + ``legalize`` produce
for the int8 export of that network (``mcunet_tf/export.py``, TF 2.21's converter): the same
op kinds, op order, input order, tensor shapes, dtypes and attributes. Checked against real
exports (tests/test_memory_oracle.py), which is what makes the oracle's figure the engine's.

What the exporter produces, per layer of :class:`~mcunet_tf.network.NetworkSpec`:

- every Conv2D + BatchNorm (+ ReLU/ReLU6) is one CONV_2D (or DEPTHWISE_CONV_2D) with the BN
  folded into an int32 bias, the activation fused, SAME padding (Keras 'same' pads the smaller
  half before, which is TFLite's rule) -- weights [Cout, k, k, Cin] resp. [1, k, k, C];
- an identity shortcut is ADD(block input, projection output) without activation;
- GlobalAveragePooling2D is MEAN over axes (1, 2) without keep_dims, also at 1x1 spatial
  size (checked on exports at 2x2 and 1x1); its axes are a constant int32[2];
- the classifier is FULLY_CONNECTED with weights [classes, C] and an int32 bias; no SOFTMAX
  (the Keras model has none), no RESHAPE (MEAN already gives [1, C]).

Constants carry the right dtype and shape but no real values: the planner never reads them
and weights do not exist before training. Their ``data`` is a read-only all-zero view of
a single element, shared between graphs of the same shape, so building a graph stays cheap.
Quantization parameters only exist after calibration, so tensors carry none (``quant=None``):
this graph is for planning and size estimates, not for code generation.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from mcunet_tf.network import Activation as NetActivation
from mcunet_tf.network import LayerRole, NetworkSpec, conv_layer_name
from tflite_converter.ir import (
    Activation,
    ConvAttrs,
    DType,
    ElementwiseAttrs,
    FullyConnectedAttrs,
    Graph,
    Op,
    OpKind,
    Padding,
    Pads,
    ReduceAttrs,
    Tensor,
    same_pads,
)

# network activation -> the fused activation TFLite gives the op
_FUSED: dict[NetActivation, Activation] = {
    NetActivation.RELU6: Activation.RELU6,
    NetActivation.RELU: Activation.RELU,
    NetActivation.NONE: Activation.NONE,
}

_MEAN_ATTRS = ReduceAttrs(axes=(1, 2), keep_dims=False)
_FC_ATTRS = FullyConnectedAttrs(Activation.NONE, keep_num_dims=False)
_ADD_ATTRS = ElementwiseAttrs(Activation.NONE)

# Constant data: a read-only zero-strided view of one zero element (every element reads the
# same byte; nothing is allocated per tensor), kept by (dtype, shape) since a search builds
# many graphs from few distinct layer shapes. Frozen attrs are shared the same way. Both
# caches are bounded so a long search cannot grow them.
_CACHE_LIMIT = 20000
_zeros: dict[tuple[DType, tuple[int, ...]], np.ndarray] = {}
_conv_attrs: dict[tuple[int, int, int, Activation, bool], ConvAttrs] = {}


def _read_only_zero(dtype: DType) -> np.ndarray:
    z = np.zeros(1, dtype.np)
    z.flags.writeable = False  # views of it are read-only too
    return z


_ZERO = {DType.INT8: _read_only_zero(DType.INT8), DType.INT32: _read_only_zero(DType.INT32)}


def _zero_data(dtype: DType, shape: tuple[int, ...]) -> np.ndarray:
    key = (dtype, shape)
    data = _zeros.get(key)
    if data is None:
        if len(_zeros) >= _CACHE_LIMIT:
            _zeros.clear()
        zero = _ZERO[dtype]
        data = _zeros[key] = np.ndarray(shape, zero.dtype, zero, 0, (0,) * len(shape))
    return data


def _spatial_attrs(size: int, kernel: int, stride: int, act: Activation, depthwise: bool) -> ConvAttrs:
    """SAME-padded square convolution on a `size` x `size` input, pads as TFLite resolves them."""
    key = (size, kernel, stride, act, depthwise)
    attrs = _conv_attrs.get(key)
    if attrs is None:
        if len(_conv_attrs) >= _CACHE_LIMIT:
            _conv_attrs.clear()
        out = -(-size // stride)
        before, after = same_pads(size, kernel, stride, 1, out)
        attrs = _conv_attrs[key] = ConvAttrs(
            Padding.SAME, stride, stride, activation=act, pads=Pads(before, after, before, after),
            depth_multiplier=1,
        )
    return attrs


class _Builder:
    """Appends tensors and ops in the exporter's op order (tensor numbering is ours: the
    planner depends on op order and shapes, not on tensor indices)."""

    def __init__(self) -> None:
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []

    def activation(self, name: str, shape: tuple[int, ...]) -> int:
        i = len(self.tensors)
        self.tensors.append(Tensor(i, name, shape, DType.INT8))
        return i

    def constant(self, name: str, shape: tuple[int, ...], dtype: DType) -> int:
        i = len(self.tensors)
        self.tensors.append(Tensor(i, name, shape, dtype, None, _zero_data(dtype, shape)))
        return i

    def op(self, kind: OpKind, inputs: list[int], output: int, attrs: object) -> int:
        self.ops.append(Op(len(self.ops), kind, inputs, [output], attrs))
        return output

    def conv(self, x: int, name: str, cout: int, kernel: int, stride: int, act: NetActivation) -> int:
        _, h, _, cin = self.tensors[x].shape
        out = -(-h // stride)
        w = self.constant(f"{name}/weights", (cout, kernel, kernel, cin), DType.INT8)
        b = self.constant(f"{name}/bias", (cout,), DType.INT32)
        y = self.activation(name, (1, out, out, cout))
        attrs = _spatial_attrs(h, kernel, stride, _FUSED[act], False)
        return self.op(OpKind.CONV_2D, [x, w, b], y, attrs)

    def depthwise(self, x: int, name: str, kernel: int, stride: int, act: NetActivation) -> int:
        _, h, _, c = self.tensors[x].shape
        out = -(-h // stride)
        w = self.constant(f"{name}/weights", (1, kernel, kernel, c), DType.INT8)
        b = self.constant(f"{name}/bias", (c,), DType.INT32)
        y = self.activation(name, (1, out, out, c))
        attrs = _spatial_attrs(h, kernel, stride, _FUSED[act], True)
        return self.op(OpKind.DEPTHWISE_CONV_2D, [x, w, b], y, attrs)

    def add(self, a: int, b: int, name: str) -> int:
        y = self.activation(name, self.tensors[a].shape)
        return self.op(OpKind.ADD, [a, b], y, _ADD_ATTRS)

    def mean(self, x: int, name: str) -> int:
        axes = self.constant(f"{name}/reduction_indices", (2,), DType.INT32)
        y = self.activation(name, (1, self.tensors[x].shape[3]))
        return self.op(OpKind.MEAN, [x, axes], y, _MEAN_ATTRS)

    def fully_connected(self, x: int, name: str, units: int) -> int:
        depth = self.tensors[x].shape[1]
        w = self.constant(f"{name}/weights", (units, depth), DType.INT8)
        b = self.constant(f"{name}/bias", (units,), DType.INT32)
        y = self.activation(name, (1, units))
        return self.op(OpKind.FULLY_CONNECTED, [x, w, b], y, _FC_ATTRS)


def network_to_graph(spec: NetworkSpec, name: Optional[str] = None, int4: bool = False) -> Graph:
    """The legalized int8 Graph of `spec`'s exported ``.tflite`` (batch 1, NHWC); `int4`:
    every filter marked int4 (Tensor.packed_int4), as mcunet_tf.export.export_int4_tflite
    writes them."""
    b = _Builder()
    r = spec.resolution
    x = inp = b.activation("input", (1, r, r, spec.in_channels))
    stem = spec.first_conv
    x = b.conv(x, conv_layer_name(LayerRole.FIRST_CONV), stem.out_channels, stem.kernel, stem.stride, stem.act)
    for i, block in enumerate(spec.blocks):
        block_input = x
        if block.has_expansion:
            x = b.conv(x, conv_layer_name(LayerRole.EXPAND, i), block.mid_channels, 1, 1, block.act)
        x = b.depthwise(x, conv_layer_name(LayerRole.DEPTHWISE, i), block.kernel_size, block.stride, block.act)
        # the projection is linear (no activation), as the Keras builder makes it
        x = b.conv(x, conv_layer_name(LayerRole.PROJECT, i), block.out_channels, 1, 1, NetActivation.NONE)
        if block.residual:
            x = b.add(block_input, x, f"block{i}_add")
    if spec.feature_mix is not None:
        fm = spec.feature_mix
        x = b.conv(x, conv_layer_name(LayerRole.FEATURE_MIX), fm.out_channels, fm.kernel, fm.stride, fm.act)
    x = b.mean(x, "global_pool")
    y = b.fully_connected(x, conv_layer_name(LayerRole.CLASSIFIER), spec.num_classes)
    if int4:
        for op in b.ops:
            if op.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED):
                b.tensors[op.inputs[1]].packed_int4 = True
    return Graph(b.tensors, b.ops, [inp], [y], name=name or spec.name or "mcunet")
