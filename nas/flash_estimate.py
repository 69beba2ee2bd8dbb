"""The search's Flash figure: bytes of the generated model's own object file (weights in the
layouts the emitters write, their per-channel tables, and the code), estimated from shapes.

What the engine stores per weight layer (the emitters' layouts; ``tests/test_flash_estimate``
checks these rules against the arrays ``generate`` writes, byte for byte):

- CONV_2D 1x1 on the matrix product: the int8 weights and 16 bytes per output channel
  (bias, multiplier, shift, rounding term: ``requant_table``);
- CONV_2D 1x1 on the register kernel (input depth 8/16/24/32): weights widened to int16 (two
  bytes each) in per-channel records, plus the same 16 bytes;
- CONV_2D kxk (im2col): each output channel's k*k*Cin weights padded to a multiple of 4,
  plus 16 bytes;
- DEPTHWISE_CONV_2D: 12 bytes per channel (bias, multiplier, shift) and its k*k taps, each
  kernel row padded to a multiple of 4 for the plane kernel, unpadded for the channel-group
  kernel (which one runs: :func:`tflite_converter.depthwise_spec.depthwise_runs_hwc`);
- FULLY_CONNECTED: depth padded to a multiple of 4 per unit, and 16 bytes per unit (the
  offset kernel's start value, multiplier, shift, rounding term);
- ADD and MEAN: a few bytes of parameters.

int4 filters (``Tensor.packed_int4`` in a graph, ``int4=True`` for a spec: what
``mcunet_tf.export.export_int4_tflite`` writes) keep the same tables and half a byte a weight
in the emitters' int4 layouts: CONV_2D (1x1 too: no register kernel) its padded rows in whole
words of eight values; DEPTHWISE_CONV_2D its int8 layout two a byte; FULLY_CONNECTED the units
padded to a multiple of 4 and 12 bytes per unit (the plain kernel's bias, multiplier, shift).
Code: the int8 fit plus ``CODE_BYTES_INT4`` once (the int4 kernels beside the int8 ones they
call), fitted on the int4 rewrites of the two shared MCUNet-style models (tinyengine_mcunet_vww,
mlperf_tiny_vww_96_int8: their objects were 2.5 and 4.4 KiB above the int8 code fit).

Code (``.text``): per op a call with its literal arguments, plus the kernels the network
instantiates. Fitted on the Cortex-M7 objects (arm-none-eabi-gcc, the engine's flags) of the
latency calibration networks (``benchmarks/calibrate_latency.py``'s exports: 26 MCUNet-space
networks, within 1.5 KiB each): ``CODE_BYTES_PER_OP`` per op, ``CODE_BYTES_IM2COL`` once for
the im2col convolution every network's stem uses (with the shared helpers), and per distinct
plane-depthwise kernel size its specialised copy. Other op kinds (graphs from elsewhere)
count their constant bytes and the conv tables' 16 bytes per channel, no code.

No TensorFlow, no code generation: thousands of candidates a second. The exact figure is the
deployed model object's ``.text + .rodata + .data`` (``nas.deploy``'s
``flash_bytes_model_object``), which every search report gives beside this estimate.
"""
from __future__ import annotations

import functools
from typing import Mapping

from mcunet_tf.network import NetworkSpec
from nas.arch_graph import _spatial_attrs
from tflite_converter import depthwise_spec
from tflite_converter.ir import Activation, ConvAttrs, Graph, Op, OpKind

# The estimate is within this fraction of the linked model object (tests/test_search.py
# checks it on every search it runs). A candidate fits a Flash limit only with this margin
# kept: an estimate just under the limit can be a model object just over it (a CIFAR-10
# search chose a network estimated at 255.1 KiB whose object linked at 256.2 KiB, over 256).
ESTIMATE_ERROR_FRACTION = 0.01


def estimate_fits(estimate_bytes: int, limit_bytes: int) -> bool:
    """Whether a network whose Flash estimate is `estimate_bytes` fits `limit_bytes` whatever
    the estimate's error (up to ESTIMATE_ERROR_FRACTION)."""
    return estimate_bytes * (1.0 + ESTIMATE_ERROR_FRACTION) <= limit_bytes

CONV_TABLE_BYTES = 16  # per output channel of a convolution or fully-connected layer
DEPTHWISE_TABLE_BYTES = 12  # per channel of a depthwise convolution
ADD_BYTES = 52
MEAN_BYTES = 64
REG_1X1_DEPTHS = (8, 16, 24, 32)  # the register pointwise kernel's input depths
CODE_BYTES_PER_OP = 67
CODE_BYTES_IM2COL = 4519
CODE_BYTES_DEPTHWISE_PLANE = {3: 2197, 5: 1961, 7: 1931}
# the offset FULLY_CONNECTED kernel's two 8-row block functions (engine/kernels/
# fully_connected.c), added after the fit: the Cortex-M7 objects of both shared VWW models
# grew by 686 and 688 bytes with them, each with one int8 FULLY_CONNECTED
CODE_BYTES_FC_BLOCKS8 = 688
_CODE_BYTES_DEPTHWISE_PLANE_OTHER = 2200

def _ceil4(n: int) -> int:
    return (n + 3) & ~3


INT4_FC_TABLE_BYTES = 12  # per unit of an int4 FULLY_CONNECTED (requant_table)
CODE_BYTES_INT4 = 3500  # the int4 kernels' code, once per network with int4 filters


def _int4_words(values: int) -> int:
    """Bytes of `values` int4 weights in the word layout (whole words of eight)."""
    return (values + 7) // 8 * 4


def conv_bytes(cout: int, kernel: int, cin: int, int4: bool = False) -> int:
    """Constant bytes of a square CONV_2D (SAME padding, as the search's networks)."""
    if int4:
        return _int4_words(cout * _ceil4(kernel * kernel * cin)) + cout * CONV_TABLE_BYTES
    if kernel == 1:
        per_weight = 2 if cin in REG_1X1_DEPTHS else 1
        return cout * (per_weight * cin + CONV_TABLE_BYTES)
    return cout * (_ceil4(kernel * kernel * cin) + CONV_TABLE_BYTES)


def depthwise_bytes(channels: int, kernel_h: int, kernel_w: int, hwc: bool,
                    int4: bool = False) -> int:
    row = kernel_w if hwc else _ceil4(kernel_w)
    if int4:
        return (channels * kernel_h * row + 1) // 2 + channels * DEPTHWISE_TABLE_BYTES
    return channels * (kernel_h * row + DEPTHWISE_TABLE_BYTES)


def fully_connected_bytes(units: int, depth: int, int4: bool = False) -> int:
    if int4:
        return _ceil4(units) * _ceil4(depth) // 2 + units * INT4_FC_TABLE_BYTES
    return units * (_ceil4(depth) + CONV_TABLE_BYTES)


def code_bytes(ops: int, im2col: bool, plane_depthwise_kernels: set[int], int4: bool = False,
               int8_fc: bool = True) -> int:
    """`int8_fc`: the network has an int8 FULLY_CONNECTED (the offset kernel's code)."""
    total = CODE_BYTES_PER_OP * ops + (CODE_BYTES_IM2COL if im2col else 0)
    total += CODE_BYTES_FC_BLOCKS8 if int8_fc else 0
    total += CODE_BYTES_INT4 if int4 else 0
    return total + sum(CODE_BYTES_DEPTHWISE_PLANE.get(k, _CODE_BYTES_DEPTHWISE_PLANE_OTHER)
                       for k in plane_depthwise_kernels)


def _other_op_bytes(graph: Graph, op: Op) -> int:
    total = 0
    for i in op.inputs:
        t = graph.tensors[i] if i >= 0 else None
        if t is not None and t.data is not None:
            total += t.nbytes
    return total


def op_const_bytes(graph: Graph, op: Op, consumers: Mapping[int, int]) -> int:
    """Constant bytes the generated C holds for `op` (`consumers`: readers per tensor)."""
    t = graph.tensors
    int4 = len(op.inputs) > 1 and op.inputs[1] >= 0 and t[op.inputs[1]].packed_int4
    if op.kind is OpKind.CONV_2D:
        w = t[op.inputs[1]].shape  # [Cout, kh, kw, Cin]
        if int4:
            return _int4_words(w[0] * _ceil4(w[1] * w[2] * w[3])) + w[0] * CONV_TABLE_BYTES
        if _pointwise(op, w):
            return conv_bytes(w[0], 1, w[3])
        return w[0] * (_ceil4(w[1] * w[2] * w[3]) + CONV_TABLE_BYTES)
    if op.kind is OpKind.DEPTHWISE_CONV_2D:
        w = t[op.inputs[1]].shape  # [1, kh, kw, C]
        return depthwise_bytes(w[3], w[1], w[2], depthwise_spec.depthwise_runs_hwc(graph, op, consumers),
                               int4)
    if op.kind is OpKind.FULLY_CONNECTED:
        w = t[op.inputs[1]].shape  # [units, depth]
        return fully_connected_bytes(w[0], w[1], int4)
    if op.kind is OpKind.ADD:
        return ADD_BYTES
    if op.kind is OpKind.MEAN:
        return MEAN_BYTES
    return _other_op_bytes(graph, op)


def _pointwise(op: Op, w: tuple[int, ...]) -> bool:
    a = op.attrs
    pads = a.pads if isinstance(a, ConvAttrs) else None
    return w[1] == w[2] == 1 and (pads is None or (pads.top, pads.bottom, pads.left,
                                                     pads.right) == (0, 0, 0, 0))


def graph_flash_bytes(graph: Graph) -> int:
    """The estimate for a legalized graph (:func:`nas.arch_graph.network_to_graph`'s, or a
    real model's)."""
    consumers: Mapping[int, int] = graph.consumer_counts()
    total, im2col, planes, int4, int8_fc = 0, False, set(), False, False
    for op in graph.ops:
        total += op_const_bytes(graph, op, consumers)
        int4 = int4 or any(i >= 0 and graph.tensors[i].packed_int4 for i in op.inputs)
        int8_fc = int8_fc or (op.kind is OpKind.FULLY_CONNECTED
                              and not graph.tensors[op.inputs[1]].packed_int4)
        if op.kind is OpKind.CONV_2D and not _pointwise(op, graph.tensors[op.inputs[1]].shape):
            im2col = True
        elif op.kind is OpKind.DEPTHWISE_CONV_2D and not depthwise_spec.depthwise_runs_hwc(graph, op, consumers):
            planes.add(graph.tensors[op.inputs[1]].shape[1])
    return total + code_bytes(len(graph.ops), im2col, planes, int4, int8_fc)


@functools.lru_cache(maxsize=1 << 16)
def _block_flash(size: int, cin: int, mid: int, cout: int, k: int, s: int, expand: bool,
                 residual: bool, int4: bool) -> tuple[int, int, int]:
    """One MBConv block on a `size` x `size` input: (constant bytes, ops, the kernel size of
    its plane depthwise kernel or 0 where the channel-group kernel runs)."""
    total, ops = 0, 2
    if expand:
        total += conv_bytes(mid, 1, cin, int4)
        ops += 1
    out = -(-size // s)
    # out of place (the channel-group kernel) when the block input also feeds the ADD
    hwc = (not expand and residual) or depthwise_spec.depthwise_prefers_hwc_shape(
        size, size, k, k, out, out, _spatial_attrs(size, k, s, Activation.NONE, True))
    total += depthwise_bytes(mid, k, k, hwc, int4) + conv_bytes(cout, 1, mid, int4)
    if residual:
        total += ADD_BYTES
        ops += 1
    return total, ops, 0 if hwc else k


def network_flash_bytes(spec: NetworkSpec, int4: bool = False) -> int:
    """``graph_flash_bytes(network_to_graph(spec))`` from the spec alone (the fast path);
    `int4`: every filter int4, as mcunet_tf.export.export_int4_tflite writes them."""
    stem = spec.first_conv
    size = -(-spec.resolution // stem.stride)
    total = conv_bytes(stem.out_channels, stem.kernel, spec.in_channels, int4)
    ops = 1
    im2col = stem.kernel != 1
    planes: set[int] = set()
    for b in spec.blocks:
        nbytes, n, plane = _block_flash(size, b.in_channels, b.mid_channels, b.out_channels, b.kernel_size,
                                        b.stride, b.has_expansion, b.residual, int4)
        total += nbytes
        ops += n
        if plane:
            planes.add(plane)
        size = -(-size // b.stride)
    fm = spec.feature_mix
    if fm is not None:
        total += conv_bytes(fm.out_channels, fm.kernel, spec.last_block_channels, int4)
        im2col = im2col or fm.kernel != 1
        ops += 1
    total += MEAN_BYTES + fully_connected_bytes(spec.num_classes, spec.feature_channels, int4)
    return total + code_bytes(ops + 2, im2col, planes, int4, int8_fc=not int4)
