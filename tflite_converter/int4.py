"""int4 weights: TFLite's packed layout, and which ops may carry it.

TFLite (schema TensorType INT4 = 17) stores an int4 constant two values a byte, in the
tensor's row-major order, element 2i in the low nibble of byte i and element 2i + 1 in its
high nibble, each a two's-complement value in [-8, 7]; an odd count leaves the last byte's high
nibble unused (ceil(n / 2) bytes). TFLM reads it so (tensor_utils UnpackDenseInt4IntoInt8)
and runs int4 filters in CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (slot 1, the filter)
with int8 activations only, FULLY_CONNECTED with per-tensor quantization only.

The converter's IR keeps such a tensor as an int8 constant holding the unpacked values and
marks it `Tensor.packed_int4`: the planner, the specs and the folding of the input zero point
see ordinary int8 weights (CONV_2D's scratch rule adds the int4 kernels' unpacked rows), and
the emitters store the kernels' weight layouts packed again, so Flash holds half a byte a
weight: DEPTHWISE_CONV_2D in TFLite's nibble order (`pack`), CONV_2D and FULLY_CONNECTED in
the word layout (`pack_words`), which the kernels split into int8 words with two ANDs.
`int4_filters_tflite` rewrites an int8 model's filters as int4 (TF's converter cannot).
"""
from __future__ import annotations

import numpy as np

from tflite_converter.ir import OpKind
from tflite_converter.schema import S

TENSOR_TYPE_INT4 = S.TensorType.INT4  # 17
INT4_MIN, INT4_MAX = -8, 7
# The ops TFLM runs with an int4 filter, and the input slot of that filter.
FILTER_OPS = (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED)
FILTER_SLOT = 1


def packed_size(count: int) -> int:
    """Bytes of `count` int4 values."""
    return (count + 1) // 2


def pack(values: np.ndarray) -> np.ndarray:
    """Values in [-8, 7] (any integer dtype and shape, taken in row-major order) -> uint8
    bytes, two a byte, low nibble first (TFLite's INT4 layout)."""
    flat = np.asarray(values).reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < INT4_MIN or flat.max() > INT4_MAX):
        raise ValueError(f"int4 values must lie in [{INT4_MIN}, {INT4_MAX}], got "
                         f"[{flat.min()}, {flat.max()}]")
    nib = (flat & 0xF).astype(np.uint8)
    if nib.size % 2:
        nib = np.concatenate([nib, np.zeros(1, dtype=np.uint8)])
    return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8)


def pack_words(values: np.ndarray) -> np.ndarray:
    """Values in [-8, 7] (a count that is a multiple of 4, row-major) -> the word layout of
    engine/kernels/mcu_int4.h, still two a byte: each group of eight v0..v7 is four bytes,
    byte j = v_j (low nibble) | v_{4+j} (high nibble); a last group of four fills the low
    nibbles of four bytes. The kernels split a word into two int8 words with two ANDs."""
    flat = np.asarray(values).reshape(-1).astype(np.int64)
    if flat.size % 4:
        raise ValueError(f"the word layout takes whole groups of 4 values, got {flat.size}")
    pack(flat)  # the range check
    nib = (flat & 0xF).astype(np.uint8)
    nib = np.concatenate([nib, np.zeros(-nib.size % 8, dtype=np.uint8)]).reshape(-1, 2, 4)
    return (nib[:, 0, :] | (nib[:, 1, :] << 4)).reshape(-1).astype(np.uint8)


def unpack(raw: bytes | np.ndarray, count: int) -> np.ndarray:
    """The first `count` int4 values of TFLite-packed bytes, as int8 (sign-extended)."""
    b = np.frombuffer(bytes(raw), dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw
    b = b.astype(np.uint8).reshape(-1)
    if b.size < packed_size(count):
        raise ValueError(f"{b.size} bytes hold fewer than {count} int4 values")
    both = np.stack([b & 0xF, b >> 4], axis=1).reshape(-1)[:count].astype(np.int16)
    return np.where(both >= 8, both - 16, both).astype(np.int8)


# ---------------------------------------------------------------------------------------------
# Rewriting an int8 model's filters as int4


def int4_filters_tflite(flatbuffer: bytes) -> bytes:
    """An int8 .tflite with the filters of its CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
    ops rewritten as int4 (TensorType INT4, packed two a byte); TF's converter cannot write
    int4, so this rewrites the flatbuffer with the schema binding's object API.

    Per output channel c of a filter (TFLite's per-channel scales s_c, int8 values q, zero
    points 0), with m_c = max |q| over the channel:

    - the new scale is s4_c = s_c * m_c / 7 (kept s_c where m_c = 0), so the channel's largest
      weight maps to +-7;
    - the int4 values are q4 = round(q * s_c / s4_c) = round(7 q / m_c), in [-7, 7] (numpy's
      round, ties to even): the int8 weights requantized, a second rounding on top of the
      int8 one (no float weights are consulted);
    - the int32 bias b_c, whose scale is input scale * s_c, is rescaled to input scale *
      s4_c: b4_c = round(b_c * s_c / s4_c), and its stored scales are updated alike.

    FULLY_CONNECTED runs int4 per tensor only in TFLM, so a per-channel FC filter (what TF
    2.21 writes) becomes per tensor first: s4 = max_c(s_c m_c) / 7 for every row, q4 =
    round(q * s_c / s4), b4_c = round(b_c * s_c / s4), one bias scale input scale * s4.

    Only a filter that is int8, constant, zero-point 0 and read by this one op (its bias, if
    any, int32 and read by this op only) is rewritten; other ops keep their int8 filters.
    New buffers are appended for the rewritten tensors, so shared buffers stay intact; the
    int8 buffers no tensor refers to any more are emptied (their indices kept).
    """
    from tflite_converter import schema
    from tflite_converter.reader import unpack_model

    model = unpack_model(flatbuffer)
    codes = {schema.op_kind_code(k) for k in FILTER_OPS}
    fc_code = schema.op_kind_code(OpKind.FULLY_CONNECTED)
    replaced: list[int] = []
    for sub in model.subgraphs or []:
        tensors = sub.tensors or []
        uses: dict[int, int] = {}
        for op in sub.operators or []:
            for t in op.inputs if op.inputs is not None else []:
                uses[int(t)] = uses.get(int(t), 0) + 1
        for op in sub.operators or []:
            code = schema.builtin_code(model.operatorCodes[op.opcodeIndex])
            inputs = [int(t) for t in (op.inputs if op.inputs is not None else [])]
            if code not in codes or len(inputs) < 2:
                continue
            bias = inputs[2] if len(inputs) > 2 and inputs[2] >= 0 else -1
            replaced += _rewrite_filter(model, tensors, inputs[1], bias, uses, code == fc_code)
    # the int8 buffers the rewrite replaced, unless a tensor or the metadata still uses them
    referenced = {int(t.buffer) for sub in model.subgraphs or [] for t in sub.tensors or []}
    referenced |= {int(m.buffer) for m in model.metadata or []}
    for index in set(replaced) - referenced:
        model.buffers[index].data = None
    import flatbuffers

    builder = flatbuffers.Builder(len(flatbuffer) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _buffer_values(model, tensor, dtype) -> "np.ndarray | None":
    index = int(tensor.buffer)
    if index <= 0 or index >= len(model.buffers or []):
        return None
    data = model.buffers[index].data
    if data is None or len(data) == 0:
        return None
    shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
    return np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=dtype).reshape(shape)


def _new_buffer(model, payload: np.ndarray) -> int:
    from tflite_converter.schema import S

    b = S.BufferT()
    b.data = np.frombuffer(np.ascontiguousarray(payload).tobytes(), dtype=np.uint8)
    model.buffers.append(b)
    return len(model.buffers) - 1


def _rewrite_filter(model, tensors, w_index: int, b_index: int,
                    uses: dict[int, int], per_tensor_only: bool) -> list[int]:
    """int4_filters_tflite for one op (see there); leaves the op alone where a condition
    fails. Returns the indices of the buffers it replaced."""
    from tflite_converter.schema import S

    w = tensors[w_index]
    q = w.quantization
    if (int(w.type) != S.TensorType.INT8 or uses.get(w_index) != 1 or q is None
            or q.scale is None or len(q.scale) == 0 or q.zeroPoint is None
            or np.any(np.asarray(q.zeroPoint) != 0)):
        return []
    values = _buffer_values(model, w, np.int8)
    if values is None or values.ndim < 1:
        return []
    bias_t = tensors[b_index] if b_index >= 0 else None
    bias = None
    if bias_t is not None:
        if int(bias_t.type) != S.TensorType.INT32 or uses.get(b_index) != 1:
            return []
        bias = _buffer_values(model, bias_t, np.int32)
        if bias is None:
            return []
    scales = np.asarray(q.scale, dtype=np.float64).reshape(-1)
    axis = int(q.quantizedDimension) if scales.size > 1 else None
    channels = values.shape[axis] if axis is not None else 1
    moved = np.moveaxis(values, axis, 0) if axis is not None else values.reshape(1, -1)
    m = np.abs(moved.reshape(channels, -1).astype(np.int64)).max(axis=1)
    s8 = scales if axis is not None else np.repeat(scales, 1)
    s4 = np.where(m > 0, s8 * m / 7.0, s8)
    if per_tensor_only and s4.size > 1:
        s4 = np.full_like(s4, float(s4.max()))
    ratio = (s8 / s4).astype(np.float64)  # per channel: int8 step over int4 step
    rows = np.round(moved.reshape(channels, -1).astype(np.float64) * ratio[:, None])
    q4_rows = np.clip(rows, INT4_MIN, INT4_MAX).astype(np.int8).reshape(moved.shape)
    q4 = np.moveaxis(q4_rows, 0, axis) if axis is not None else q4_rows.reshape(values.shape)
    replaced = [int(w.buffer)]
    w.type = TENSOR_TYPE_INT4
    w.buffer = _new_buffer(model, pack(q4))
    new_scales = s4[:1] if per_tensor_only else s4
    q.scale = [float(np.float32(v)) for v in new_scales]
    q.zeroPoint = [0] * len(q.scale)
    if per_tensor_only:
        q.quantizedDimension = 0
    if bias_t is None or bias is None:
        return replaced
    replaced.append(int(bias_t.buffer))
    rb = ratio if ratio.size == bias.size else np.broadcast_to(ratio, bias.shape)
    b4 = np.clip(np.round(bias.astype(np.float64) * rb), -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
    bias_t.buffer = _new_buffer(model, b4)
    bq = bias_t.quantization
    if bq is not None and bq.scale is not None and len(bq.scale):
        bscale = np.asarray(bq.scale, dtype=np.float64).reshape(-1)
        new_b = bscale / rb if bscale.size == rb.size else bscale / float(rb[0])
        if per_tensor_only:
            new_b = new_b[:1]
            bq.quantizedDimension = 0
        bq.scale = [float(np.float32(v)) for v in new_b]
        bq.zeroPoint = [0] * len(bq.scale)
    return replaced
