"""tflite_converter.reader / validate: real models read or refused, attributes round-trip."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
from tflite_builder import ModelBuilder, TensorSpec, build_model, build_single_op_model

from tflite_converter import schema
from tflite_converter.errors import ConversionError
from tflite_converter.ir import (
    Activation,
    DType,
    OpKind,
    Padding,
    Pads,
)
from tflite_converter.reader import load_tflite, read_tflite

MODELS = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "models"

ACCEPTED = {
    "mlperf_tiny_vww_96_int8.tflite": 31,
    "mlperf_tiny_kws_ref_model_int8.tflite": 13,
    "mlperf_tiny_ic_resnet_quant.tflite": 16,
    "mlperf_tiny_ad01_int8.tflite": 10,
    "mlperf_tiny_ad_toycar_fullint_floatio.tflite": 12,
    "tflm_person_detect.tflite": 31,
    "tflm_micro_speech_quantized.tflite": 4,
    "tflm_hello_world_int8.tflite": 3,
    "tinyengine_mcunet_vww.tflite": 63,
    "tinymaix_mnist_resnet_q.tflite": 8,
    "tinymaix_cifar10_q.tflite": 6,
}
REFUSED = {
    "tflm_hello_world_float.tflite":
        "op 0 FULLY_CONNECTED, tensor 'serving_default_dense_input:0': float32 FULLY_CONNECTED not supported",
    "mlperf_tiny_kws_ref_model_float32.tflite":
        "op 0 CONV_2D, tensor 'input_1': hybrid model (float32 activations with int8 weights) not supported",
    "coral_keras_lstm_mnist_ptq.tflite": "op 1 UNIDIRECTIONAL_SEQUENCE_LSTM: not supported",
}


def _model(name: str) -> pathlib.Path:
    path = MODELS / name
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared/models is needed for real-model tests)")
    return path


def test_every_shared_model_is_known():
    if not MODELS.is_dir():
        pytest.skip(f"{MODELS} not found")
    present = {p.name for p in MODELS.glob("*.tflite")}
    assert present <= set(ACCEPTED) | set(REFUSED), present - set(ACCEPTED) - set(REFUSED)


@pytest.mark.parametrize("name,num_ops", sorted(ACCEPTED.items()))
def test_accepted_models(name, num_ops):
    g = load_tflite(_model(name))
    assert g.name == pathlib.Path(name).stem
    assert len(g.ops) == num_ops
    for t in g.tensors:
        if t.is_constant:
            assert t.data.shape == t.shape and t.data.dtype == t.dtype.np
            assert not t.data.flags.writeable


@pytest.mark.parametrize("name,message", sorted(REFUSED.items()))
def test_refused_models(name, message):
    with pytest.raises(ConversionError) as e:
        load_tflite(_model(name))
    assert message in str(e.value).splitlines()[0] or message in str(e.value)
    assert all(str(p) for p in e.value.problems)


def test_float_model_lists_every_op():
    with pytest.raises(ConversionError) as e:
        load_tflite(_model("tflm_hello_world_float.tflite"))
    assert [p.op_index for p in e.value.problems] == [0, 1, 2]


def test_person_detect_old_per_channel_layout():
    g = load_tflite(_model("tflm_person_detect.tflite"))
    op = g.ops[0]
    assert op.kind is OpKind.DEPTHWISE_CONV_2D
    assert op.attrs.depth_multiplier == 8 and op.attrs.padding is Padding.SAME
    assert (op.attrs.stride_h, op.attrs.stride_w) == (2, 2)
    assert op.attrs.activation is Activation.RELU6
    # 96 -> 48 at stride 2 with a 3x3 kernel: total padding 1, the smaller half before.
    assert op.attrs.pads == Pads(0, 1, 0, 1)
    w, b = g.tensors[op.inputs[1]], g.tensors[op.inputs[2]]
    assert w.shape == (1, 3, 3, 8) and w.quant.axis == 3 and w.quant.scale.size == 8
    # the 1-D bias carries quantized_dimension 3 in the file: read along its only axis
    assert b.dtype is DType.INT32 and b.quant.axis == 0 and b.quant.scale.size == 8
    assert abs(float(w.quant.scale[0]) - 0.01635886) < 1e-7 and len(set(w.quant.scale.tolist())) == 8
    assert np.all(w.quant.zero_point == 0)


def test_mcunet_explicit_pads_and_head():
    g = load_tflite(_model("tinyengine_mcunet_vww.tflite"))
    kinds = [op.kind for op in g.ops]
    assert kinds.count(OpKind.PAD) == 4 and kinds.count(OpKind.TRANSPOSE) == 1
    pad = g.ops[1]
    assert pad.attrs.paddings == ((0, 0), (1, 1), (1, 1), (0, 0))
    assert pad.attrs.pad_value == int(g.tensors[pad.outputs[0]].quant.zero_point[0])
    mean = g.ops[59]
    assert mean.kind is OpKind.MEAN and mean.attrs.axes == (3,) and not mean.attrs.keep_dims
    assert g.ops[58].attrs.perm == (0, 3, 1, 2)
    assert g.tensors[g.inputs[0]].dtype is DType.FLOAT32


# ---------------------------------------------------------------------------------------------
# Built single-op models: every attribute reaches the IR


def _q(shape, scale=0.05, zp=0, dtype="int8", **kw):
    return TensorSpec(shape, dtype, scale=scale, zero_point=zp, **kw)


def _w(shape, axis, rng, channels=None):
    n = shape[axis]
    return TensorSpec(shape, "int8", scale=list(np.linspace(0.01, 0.02, n)), zero_point=0, axis=axis,
                      data=rng.integers(-127, 128, shape))


def _b(n, rng):
    return TensorSpec((n,), "int32", scale=[0.001] * n, zero_point=0, axis=0,
                      data=rng.integers(-500, 500, n))


def test_conv_attributes_round_trip():
    rng = np.random.default_rng(1)
    data = build_single_op_model(
        "CONV_2D", [_q((1, 9, 10, 3), zp=-5), _w((4, 3, 3, 3), 0, rng), _b(4, rng)],
        [_q((1, 4, 3, 4), zp=2)],
        {"padding": "SAME", "stride_h": 2, "stride_w": 4, "dilation_h": 2, "dilation_w": 1,
         "activation": "RELU"})
    g = read_tflite(data)
    a = g.ops[0].attrs
    assert (a.padding, a.stride_h, a.stride_w, a.dilation_h, a.dilation_w) == (Padding.SAME, 2, 4, 2, 1)
    assert a.activation is Activation.RELU
    # H: out 4, eff k 5, stride 2: total = 3*2+5-9 = 2 -> (1,1); W: out 3, k 3, stride 4:
    # total = 2*4+3-10 = 1 -> (0,1)
    assert a.pads == Pads(1, 1, 0, 1)
    w = g.tensors[g.ops[0].inputs[1]]
    assert w.quant.axis == 0 and w.quant.scale.dtype == np.float32 and w.quant.zero_point.dtype == np.int64
    assert g.tensors[g.ops[0].inputs[0]].quant.scalar_zero_point == -5


def test_depthwise_and_fc_attributes():
    rng = np.random.default_rng(2)
    data = build_single_op_model(
        "DEPTHWISE_CONV_2D", [_q((1, 5, 5, 2)), _w((1, 3, 3, 6), 3, rng), _b(6, rng)],
        [_q((1, 3, 3, 6))], {"padding": "VALID", "depth_multiplier": 3, "activation": "RELU6"})
    a = read_tflite(data).ops[0].attrs
    assert a.depth_multiplier == 3 and a.pads == Pads() and a.activation is Activation.RELU6
    data = build_single_op_model(
        "FULLY_CONNECTED", [_q((2, 3, 8)), _w((5, 8), 0, rng), _b(5, rng)], [_q((2, 3, 5))],
        {"keep_num_dims": True, "activation": "RELU_N1_TO_1"})
    a = read_tflite(data).ops[0].attrs
    assert a.keep_num_dims and a.activation is Activation.RELU_N1_TO_1


def test_reduce_pad_concat_split_transpose_softmax():
    axes = TensorSpec((2,), "int32", data=[-2, 1])
    g = read_tflite(build_single_op_model("MEAN", [_q((1, 4, 4, 8)), axes], [_q((1, 1, 1, 8))],
                                          {"keep_dims": True}))
    assert g.ops[0].attrs.axes == (1, 2) and g.ops[0].attrs.keep_dims
    pads = TensorSpec((4, 2), "int32", data=[[0, 0], [1, 2], [3, 0], [0, 0]])
    g = read_tflite(build_single_op_model("PAD", [_q((1, 4, 4, 2), zp=7), pads], [_q((1, 7, 7, 2), zp=7)]))
    assert g.ops[0].attrs.paddings == ((0, 0), (1, 2), (3, 0), (0, 0)) and g.ops[0].attrs.pad_value == 7
    value = TensorSpec((), "int8", scale=0.05, zero_point=7, data=-3)
    g = read_tflite(build_single_op_model("PADV2", [_q((1, 4, 4, 2), zp=7), pads, value],
                                          [_q((1, 7, 7, 2), zp=7)]))
    assert g.ops[0].attrs.pad_value == -3
    g = read_tflite(build_single_op_model("CONCATENATION", [_q((1, 2, 3)), _q((1, 2, 5))],
                                          [_q((1, 2, 8))], {"axis": -1}))
    assert g.ops[0].attrs.axis == 2
    axis = TensorSpec((), "int32", data=-1)
    g = read_tflite(build_single_op_model("SPLIT", [axis, _q((1, 6))], [_q((1, 3)), _q((1, 3))],
                                          {"num_splits": 2}))
    assert g.ops[0].attrs.axis == 1 and g.ops[0].attrs.num_splits == 2
    perm = TensorSpec((3,), "int32", data=[2, 0, 1])
    g = read_tflite(build_single_op_model("TRANSPOSE", [_q((2, 3, 4)), perm], [_q((4, 2, 3))]))
    assert g.ops[0].attrs.perm == (2, 0, 1)
    g = read_tflite(build_single_op_model("SOFTMAX", [_q((1, 10))], [_q((1, 10), 1 / 256, -128)],
                                          {"beta": 0.5}))
    assert g.ops[0].attrs.beta == 0.5
    g = read_tflite(build_single_op_model("LEAKY_RELU", [_q((1, 10))], [_q((1, 10))], {"alpha": 0.125}))
    assert g.ops[0].attrs.alpha == 0.125


def test_pool_resize_attributes():
    g = read_tflite(build_single_op_model("AVERAGE_POOL_2D", [_q((1, 7, 7, 4))], [_q((1, 4, 4, 4))],
                                          {"padding": "SAME", "stride_h": 2, "stride_w": 2,
                                           "filter_h": 3, "filter_w": 2}))
    a = g.ops[0].attrs
    assert (a.filter_h, a.filter_w, a.pads) == (3, 2, Pads(1, 1, 0, 1))
    size = TensorSpec((2,), "int32", data=[8, 6])
    for op in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        g = read_tflite(build_single_op_model(op, [_q((1, 4, 3, 2)), size], [_q((1, 8, 6, 2))],
                                              {"half_pixel_centers": True}))
        assert g.ops[0].attrs.half_pixel_centers and not g.ops[0].attrs.align_corners


@pytest.mark.parametrize("masks,begin,end,strides,out_shape,expect", [
    ({}, [0, 1, 2], [1, 3, 6], [1, 1, 2], (1, 2, 2), ((0, 1, 2), (1, 3, 6), (1, 1, 2))),
    ({"begin_mask": 0b010, "end_mask": 0b100}, [0, 2, -3], [1, 3, 0], [1, 1, 1], (1, 3, 3),
     ((0, 0, 3), (1, 3, 6), (1, 1, 1))),
    ({"shrink_axis_mask": 0b001}, [0, -1, 0], [1, 0, 6], [1, -1, 3], (2, 2),
     ((0, 2, 0), (1, 0, 6), (1, -1, 3))),
    ({"end_mask": 0b010}, [0, -1, 5], [1, 0, -7], [1, -1, -2], (1, 3, 3),
     ((0, 2, 5), (1, -1, -1), (1, -1, -2))),
])
def test_strided_slice_resolution(masks, begin, end, strides, out_shape, expect):
    ins = [_q((1, 3, 6))] + [TensorSpec((3,), "int32", data=v) for v in (begin, end, strides)]
    g = read_tflite(build_single_op_model("STRIDED_SLICE", ins, [_q(out_shape)], masks))
    a = g.ops[0].attrs
    assert (a.begin, a.end, a.strides) == expect
    # the resolved ranges select what TFLite selects
    interp = pytest.importorskip("ai_edge_litert.interpreter")
    it = interp.Interpreter(model_content=build_single_op_model("STRIDED_SLICE", ins, [_q(out_shape)], masks))
    it.allocate_tensors()
    x = np.arange(18, dtype=np.int8).reshape(1, 3, 6)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    idx = np.ix_(*[np.arange(b, e, s) for b, e, s in zip(a.begin, a.end, a.strides)])
    np.testing.assert_array_equal(got.reshape(-1), x[idx].reshape(-1))


def test_strided_slice_refuses_ellipsis():
    ins = [_q((1, 3, 6))] + [TensorSpec((3,), "int32", data=v) for v in ([0] * 3, [1] * 3, [1] * 3)]
    with pytest.raises(ConversionError, match="op 0 STRIDED_SLICE: ellipsis_mask not supported"):
        read_tflite(build_single_op_model("STRIDED_SLICE", ins, [_q((1, 1, 1))], {"ellipsis_mask": 2}))


def test_constant_ops_are_folded():
    mb = ModelBuilder()
    x = mb.add_tensor(_q((1, 2, 3, 4)))
    shp = mb.add_tensor(TensorSpec((4,), "int32"))
    a = mb.add_tensor(TensorSpec((), "int32", data=6))
    b = mb.add_tensor(TensorSpec((), "int32", data=4))
    packed = mb.add_tensor(TensorSpec((2,), "int32"))
    y = mb.add_tensor(_q((6, 4)))
    mb.add_op("SHAPE", [x], [shp])
    mb.add_op("PACK", [a, b], [packed], {"values_count": 2, "axis": 0})
    mb.add_op("RESHAPE", [x, packed], [y])
    g = read_tflite(mb.build([x], [y]))
    assert [op.kind for op in g.ops] == [OpKind.RESHAPE]
    assert g.tensors[shp].data.tolist() == [1, 2, 3, 4]
    assert g.tensors[packed].data.tolist() == [6, 4]


def test_unfoldable_pack_refused():
    data = build_single_op_model("PACK", [_q((2,)), _q((2,))], [_q((2, 2))], {"values_count": 2})
    with pytest.raises(ConversionError, match="op 0 PACK: supported only when all its inputs are constant"):
        read_tflite(data)


@pytest.mark.parametrize("spec,message", [
    (dict(x=TensorSpec((1, 4), "int16", scale=0.1, zero_point=0)), "int16 activations not supported"),
    (dict(x=TensorSpec((1, 4), "uint8", scale=0.1, zero_point=128)), "legacy uint8 arithmetic"),
    (dict(x=_q((1, 4), shape_signature=(1, -1))), "dynamic shape"),
])
def test_refusals_name_the_reason(spec, message):
    data = build_single_op_model("RELU", [spec["x"]], [_q((1, 4))])
    with pytest.raises(ConversionError, match=message):
        read_tflite(data)


def test_custom_op_and_subgraph_refusals():
    data = build_single_op_model("CUSTOM", [_q((1, 4))], [_q((1, 4))], custom_code="MyOp")
    with pytest.raises(ConversionError, match="op 0 CUSTOM: custom operator 'MyOp' not supported"):
        read_tflite(data)
    data = build_single_op_model("SVDF", [_q((1, 4))], [_q((1, 4))])
    with pytest.raises(ConversionError, match="op 0 SVDF: not supported"):
        read_tflite(data)


def test_all_problems_at_once():
    mb = ModelBuilder()
    x = mb.add_tensor(TensorSpec((1, 4), "float32"))
    y = mb.add_tensor(TensorSpec((1, 4), "float32"))
    z = mb.add_tensor(_q((1, 4)))
    mb.add_op("HARD_SWISH", [x], [y])  # float32 HARD_SWISH: not among the float edge ops
    mb.add_op("CUSTOM", [y], [z], None, "Foo")
    with pytest.raises(ConversionError) as e:
        read_tflite(mb.build([x], [z]))
    assert [p.op_index for p in e.value.problems] == [0, 1]


def test_uint8_edges_accepted():
    mb = ModelBuilder()
    x = mb.add_tensor(TensorSpec((1, 4), "uint8", scale=0.1, zero_point=128))
    a = mb.add_tensor(_q((1, 4), 0.1, 0))
    b = mb.add_tensor(_q((1, 4), 0.1, 0))
    y = mb.add_tensor(TensorSpec((1, 4), "uint8", scale=0.1, zero_point=128))
    mb.add_op("QUANTIZE", [x], [a])
    mb.add_op("RELU", [a], [b])
    mb.add_op("QUANTIZE", [b], [y])
    g = read_tflite(mb.build([x], [y]))
    assert [op.kind for op in g.ops] == [OpKind.QUANTIZE, OpKind.RELU, OpKind.QUANTIZE]


def test_offset_buffers_read():
    rng = np.random.default_rng(3)
    w = _w((4, 3, 3, 3), 0, rng)
    ins = [_q((1, 5, 5, 3)), w, _b(4, rng)]
    data = build_single_op_model("CONV_2D", ins, [_q((1, 3, 3, 4))], {"padding": "VALID"},
                                 offset_buffers=True)
    g = read_tflite(data)
    np.testing.assert_array_equal(g.tensors[g.ops[0].inputs[1]].data, np.asarray(w.data, np.int8))


def test_old_and_new_opcode_fields():
    """builtin code = max(deprecated_builtin_code, builtin_code)."""
    mb = ModelBuilder()
    x, y = mb.add_tensor(_q((1, 4))), mb.add_tensor(_q((1, 4)))
    mb.add_op("RELU", [x], [y])
    model = mb.to_model([x], [y])
    model.operatorCodes[0].builtinCode = 0  # as files before schema 3a: only the old field
    import flatbuffers
    fb = flatbuffers.Builder(0)
    fb.Finish(model.Pack(fb), file_identifier=b"TFL3")
    assert read_tflite(bytes(fb.Output())).ops[0].kind is OpKind.RELU


def test_shape_mismatch_refused():
    rng = np.random.default_rng(4)
    data = build_single_op_model("CONV_2D", [_q((1, 5, 5, 3)), _w((4, 3, 3, 3), 0, rng), _b(4, rng)],
                                 [_q((1, 5, 5, 4))], {"padding": "VALID"})
    with pytest.raises(ConversionError, match=r"op 0 CONV_2D, tensor 't3': shape \[1, 5, 5, 4\] does not match"):
        read_tflite(data)


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "SOFTMAX"])
def test_builder_models_run_in_interpreters(op):
    """The builder's models load and run in ai_edge_litert and TFLM with identical bytes."""
    Interpreter = pytest.importorskip("ai_edge_litert.interpreter")
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    rng = np.random.default_rng(5)
    specs = {
        "CONV_2D": ([_q((1, 6, 6, 3), 0.5, -3), _w((4, 3, 3, 3), 0, rng), _b(4, rng)],
                    [_q((1, 3, 3, 4), 0.25, 1)], {"padding": "SAME", "stride_h": 2, "stride_w": 2}),
        "DEPTHWISE_CONV_2D": ([_q((1, 6, 6, 2), 0.5, -3), _w((1, 3, 3, 4), 3, rng), _b(4, rng)],
                              [_q((1, 4, 4, 4), 0.25, 1)], {"padding": "VALID", "depth_multiplier": 2}),
        "ADD": ([_q((1, 4, 4, 3), 0.5, 1), _q((1, 1, 1, 3), 0.3, -2)], [_q((1, 4, 4, 3), 0.6, 0)],
                {"activation": "RELU"}),
        "MEAN": ([_q((1, 4, 4, 3)), TensorSpec((2,), "int32", data=[1, 2])], [_q((1, 3))], {}),
        "SOFTMAX": ([_q((1, 10), 0.1, 3)], [_q((1, 10), 1 / 256, -128)], {"beta": 1.0}),
    }
    ins, outs, opts = specs[op]
    data = build_single_op_model(op, ins, outs, opts)
    read_tflite(data)
    feeds = [rng.integers(-128, 128, s.shape, dtype=np.int8) for s in ins if s.data is None]
    it = Interpreter.Interpreter(model_content=data,
                                 experimental_op_resolver_type=Interpreter.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    for d, f in zip(it.get_input_details(), feeds):
        it.set_tensor(d["index"], f)
    it.invoke()
    ref = it.get_tensor(it.get_output_details()[0]["index"])
    micro = runtime.Interpreter.from_bytes(data)
    for i, f in enumerate(feeds):
        micro.set_input(f, i)
    micro.invoke()
    np.testing.assert_array_equal(micro.get_output(0), ref)


def test_schema_helpers():
    assert schema.op_name(schema.BuiltinOperator.CONV_2D) == "CONV_2D"
    assert schema.op_name(100000) == "BUILTIN_100000"
    assert schema.op_kind_code(OpKind.MEAN) == schema.BuiltinOperator.MEAN
    assert build_model([_q((1,)), _q((1,))], [("RELU", [0], [1])], [0], [1])[4:8] == b"TFL3"
