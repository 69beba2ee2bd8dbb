"""tflite_converter.passes: each rewrite keeps results bit-identical."""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pytest
from tflite_builder import ModelBuilder, TensorSpec, build_single_op_model

from tests.kernel_harness import assert_host_matches_tflm_on_random_inputs
from tflite_converter import passes
from tflite_converter.codegen.generate import convert_model
from tflite_converter.errors import ConversionError
from tflite_converter.ir import Activation, DType, OpKind, Pads, Quantization
from tflite_converter.reader import load_tflite, read_tflite

MODELS = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "models"


def _model(name: str) -> pathlib.Path:
    path = MODELS / name
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared/models is needed for real-model tests)")
    return path


def _q(shape, scale=0.05, zp=0, dtype="int8", **kw):
    return TensorSpec(shape, dtype, scale=scale, zero_point=zp, **kw)


def _quant(scale: float, zp: int) -> Quantization:
    return Quantization(np.array([scale], np.float32), np.array([zp], np.int64))


def _run_tflm(data: bytes, feeds: list[np.ndarray]) -> np.ndarray:
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    it = runtime.Interpreter.from_bytes(data)
    for i, f in enumerate(feeds):
        it.set_input(f, i)
    it.invoke()
    return it.get_output(0)


# ---------------------------------------------------------------------------------------------
# activation_range


@pytest.mark.parametrize("act,scale,zp,expected", [
    (Activation.NONE, 0.1, -10, (-128, 127)),
    (Activation.RELU, 0.1, -10, (-10, 127)),
    (Activation.RELU6, 0.1, -10, (-10, 50)),
    (Activation.RELU_N1_TO_1, 0.1, -10, (-20, 0)),
    (Activation.RELU6, 12.0, 0, (0, 1)),  # 6 / 12 = 0.5 rounds away from zero, not to even
    (Activation.RELU6, 0.001, -128, (-128, 127)),  # q(6) far above the int8 range: clamped
    (Activation.RELU, 0.1, 127, (127, 127)),
])
def test_activation_range_values(act, scale, zp, expected):
    assert passes.activation_range(act, _quant(scale, zp)) == expected


def test_activation_range_refuses_non_clamps():
    with pytest.raises(ValueError):
        passes.activation_range(Activation.TANH, _quant(0.1, 0))


@pytest.mark.parametrize("act,scale,zp", [("RELU6", 0.03, -100), ("RELU", 0.07, 20),
                                          ("RELU_N1_TO_1", 0.011, 3), ("RELU6", 0.047, 5)])
def test_activation_range_matches_tflm(act, scale, zp):
    """A FULLY_CONNECTED whose outputs overshoot both ways saturates exactly at the range."""
    x = np.arange(-128, 128, dtype=np.int8).reshape(256, 1)
    data = build_single_op_model(
        "FULLY_CONNECTED",
        [_q((256, 1), 1.0, 0), TensorSpec((1, 1), "int8", scale=1.0, zero_point=0, data=[[127]])],
        [_q((256, 1), scale, zp)], {"activation": act})
    y = _run_tflm(data, [x])
    lo, hi = passes.activation_range(Activation(act), _quant(scale, zp))
    assert (int(y.min()), int(y.max())) == (lo, hi)


# ---------------------------------------------------------------------------------------------
# PAD folding


def _pad_conv_model(pad_value_zp: int = 3, conv_padding: str = "VALID", extra_consumer: bool = False,
                    paddings=((0, 0), (1, 1), (1, 1), (0, 0)), op: str = "CONV_2D") -> bytes:
    rng = np.random.default_rng(7)
    mb = ModelBuilder()
    x = mb.add_tensor(_q((1, 6, 6, 3), 0.1, 3))
    p = mb.add_tensor(TensorSpec((4, 2), "int32", data=paddings))
    padded_shape = tuple(d + a + b for d, (a, b) in zip((1, 6, 6, 3), paddings))
    xp = mb.add_tensor(_q(padded_shape, 0.1, 3))
    if op == "CONV_2D":
        w = mb.add_tensor(TensorSpec((4, 3, 3, 3), scale=[0.02] * 4, zero_point=0, axis=0,
                                     data=rng.integers(-127, 128, (4, 3, 3, 3))))
        oc = 4
    else:
        w = mb.add_tensor(TensorSpec((1, 3, 3, 3), scale=[0.02] * 3, zero_point=0, axis=3,
                                     data=rng.integers(-127, 128, (1, 3, 3, 3))))
        oc = 3
    b = mb.add_tensor(TensorSpec((oc,), "int32", scale=[0.002] * oc, zero_point=0, axis=0,
                                 data=rng.integers(-100, 100, oc)))
    h = padded_shape[1] - 2 if conv_padding == "VALID" else padded_shape[1]
    wd = padded_shape[2] - 2 if conv_padding == "VALID" else padded_shape[2]
    y = mb.add_tensor(_q((1, h, wd, oc), 0.2, -1))
    if pad_value_zp == 3:
        mb.add_op("PAD", [x, p], [xp])
    else:
        v = mb.add_tensor(TensorSpec((), "int8", scale=0.1, zero_point=3, data=pad_value_zp))
        mb.add_op("PADV2", [x, p, v], [xp])
    opts = {"padding": conv_padding}
    if op == "DEPTHWISE_CONV_2D":
        opts["depth_multiplier"] = 1
    mb.add_op(op, [xp, w, b], [y], opts)
    outputs = [y]
    if extra_consumer:
        z = mb.add_tensor(_q(padded_shape, 0.1, 3))
        mb.add_op("RELU", [xp], [z])
        outputs.append(z)
    return mb.build([x], outputs)


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D"])
@pytest.mark.parametrize("conv_padding,expected", [("VALID", Pads(1, 1, 2, 0)), ("SAME", Pads(2, 2, 3, 1))])
def test_pad_folded_into_conv(op, conv_padding, expected):
    g = read_tflite(_pad_conv_model(conv_padding=conv_padding, op=op,
                                    paddings=((0, 0), (1, 1), (2, 0), (0, 0))))
    out = passes.fold_pads(g)
    assert [o.kind for o in out.ops] == [OpKind(op)]
    conv = out.ops[0]
    assert conv.inputs[0] == g.inputs[0] and conv.attrs.pads == expected
    assert len(g.ops) == 2  # the input graph is untouched


@pytest.mark.parametrize("kwargs", [dict(pad_value_zp=5), dict(extra_consumer=True)])
def test_pad_not_folded(kwargs):
    g = read_tflite(_pad_conv_model(**kwargs))
    assert len(passes.fold_pads(g).ops) == len(g.ops)


def test_padv2_with_zero_point_value_folds():
    g = read_tflite(_pad_conv_model(pad_value_zp=4))
    assert len(passes.fold_pads(g).ops) == 2  # 4 != zero point 3
    g2 = read_tflite(_pad_conv_model(pad_value_zp=3))
    assert len(passes.fold_pads(g2).ops) == 1


def test_zero_point_padding_equals_conv_padding():
    """The fact the fold relies on, checked in TFLM: PAD(zp) + VALID conv == SAME conv."""
    folded = _pad_conv_model()  # PAD 1 all round + 3x3 VALID
    rng = np.random.default_rng(7)
    mb = ModelBuilder()
    x = mb.add_tensor(_q((1, 6, 6, 3), 0.1, 3))
    w = mb.add_tensor(TensorSpec((4, 3, 3, 3), scale=[0.02] * 4, zero_point=0, axis=0,
                                 data=rng.integers(-127, 128, (4, 3, 3, 3))))
    b = mb.add_tensor(TensorSpec((4,), "int32", scale=[0.002] * 4, zero_point=0, axis=0,
                                 data=rng.integers(-100, 100, 4)))
    y = mb.add_tensor(_q((1, 6, 6, 4), 0.2, -1))
    mb.add_op("CONV_2D", [x, w, b], [y], {"padding": "SAME"})
    same = mb.build([x], [y])
    feed = np.random.default_rng(0).integers(-128, 128, (1, 6, 6, 3), dtype=np.int8)
    np.testing.assert_array_equal(_run_tflm(folded, [feed]), _run_tflm(same, [feed]))
    g = passes.fold_pads(read_tflite(folded))
    assert g.ops[0].attrs.pads == read_tflite(same).ops[0].attrs.pads == Pads(1, 1, 1, 1)


def test_mcunet_vww_pads_folded():
    g = load_tflite(_model("tinyengine_mcunet_vww.tflite"))
    out = passes.legalize(g)
    assert not any(op.kind in (OpKind.PAD, OpKind.PADV2, OpKind.TRANSPOSE) for op in out.ops)
    assert len(out.ops) == len(g.ops) - 5
    first_conv = next(op for op in out.ops if op.kind is OpKind.CONV_2D)
    assert first_conv.inputs[0] == g.ops[0].outputs[0]  # reads the QUANTIZE output directly
    assert first_conv.attrs.pads == Pads(1, 1, 1, 1)
    for op in out.ops:
        if op.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D):
            x, y = out.tensors[op.inputs[0]], out.tensors[op.outputs[0]]
            w = out.tensors[op.inputs[1]]
            p = op.attrs.pads
            eff_h = w.shape[1]
            assert (x.shape[1] + p.top + p.bottom - eff_h) // op.attrs.stride_h + 1 == y.shape[1]


# ---------------------------------------------------------------------------------------------
# QUANTIZE removal


def _quantize_chain(params: list[tuple[float, int]]) -> bytes:
    mb = ModelBuilder()
    ts = [mb.add_tensor(_q((1, 8), s, z)) for s, z in params]
    relu_out = mb.add_tensor(_q((1, 8), *params[-1]))
    for a, b in zip(ts, ts[1:]):
        mb.add_op("QUANTIZE", [a], [b])
    mb.add_op("RELU", [ts[-1]], [relu_out])
    return mb.build([ts[0]], [relu_out])


def test_identical_requantize_removed():
    g = read_tflite(_quantize_chain([(0.1, 2), (0.1, 2)]))
    out = passes.remove_quantize_noops(g)
    assert [op.kind for op in out.ops] == [OpKind.RELU]
    assert out.ops[0].inputs == [g.inputs[0]]


def test_requantize_identity_over_all_int8_removed():
    # a ratio of 0.9999 maps every int8 value to itself: proven over the 256 inputs
    g = read_tflite(_quantize_chain([(0.1, 0), (0.10001, 0)]))
    assert [op.kind for op in passes.remove_quantize_noops(g).ops] == [OpKind.RELU]


def test_lossy_requantize_pairs_kept():
    g = read_tflite(_quantize_chain([(0.1, 0), (0.05, 0), (0.1, 0)]))  # the middle clamps
    assert len(passes.remove_quantize_noops(g).ops) == 3
    g = read_tflite(_quantize_chain([(0.1, 0), (0.2, 0), (0.4, 0)]))  # rounds twice
    assert len(passes.remove_quantize_noops(g).ops) == 3


def test_requantize_pair_merged_when_exact():
    # zero-point shifts without clamping compose into one requantization exactly
    g = read_tflite(_quantize_chain([(0.1, 0), (0.2, 0), (0.2, 10)]))
    out = passes.remove_quantize_noops(g)
    tables = [passes.requantize_table(_quant(0.1, 0), _quant(0.2, 0)),
              passes.requantize_table(_quant(0.2, 0), _quant(0.2, 10))]
    composite = tables[1][tables[0] + 128]
    direct = passes.requantize_table(_quant(0.1, 0), _quant(0.2, 10))
    np.testing.assert_array_equal(composite, direct)  # round(x / 2) + 10 never clamps
    assert [op.kind for op in out.ops] == [OpKind.QUANTIZE, OpKind.RELU]
    q = out.ops[0]
    assert q.inputs == [g.inputs[0]] and out.tensors[q.outputs[0]].quant.scalar_zero_point == 10


def test_requantize_table_matches_tflm():
    src, dst = (0.1, 3), (0.07, -9)
    mb = ModelBuilder()
    a = mb.add_tensor(_q((1, 256), *src))
    b = mb.add_tensor(_q((1, 256), *dst))
    mb.add_op("QUANTIZE", [a], [b])
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    y = _run_tflm(mb.build([a], [b]), [x])
    np.testing.assert_array_equal(y.reshape(-1), passes.requantize_table(_quant(*src), _quant(*dst)))


def test_uint8_edge_quantize_kept():
    mb = ModelBuilder()
    x = mb.add_tensor(TensorSpec((1, 4), "uint8", scale=0.1, zero_point=128))
    a = mb.add_tensor(_q((1, 4), 0.1, 0))
    y = mb.add_tensor(_q((1, 4), 0.1, 0))
    mb.add_op("QUANTIZE", [x], [a])
    mb.add_op("RELU", [a], [y])
    g = passes.legalize(read_tflite(mb.build([x], [y])))
    assert [op.kind for op in g.ops] == [OpKind.QUANTIZE, OpKind.RELU]


# ---------------------------------------------------------------------------------------------
# Shape arithmetic folded to a fixed point


def _i32(shape, data=None):
    return TensorSpec(shape, "int32", data=data)


def _dynamic_batch_reshape(join: str, channels: int = 4, dynamic: bool = False,
                           expand: bool = False) -> bytes:
    """x [1,6,6,4] -> RESHAPE to [batch, 36, channels], the new shape computed at run time as
    a dynamic-batch export does: SHAPE, STRIDED_SLICE of its first (and, by a negative index,
    last) entry, then PACK of the scalars or CONCATENATION of 1-element slices. `channels` is
    the static size the file gives the reshaped tensor's last dimension, `dynamic` marks it
    -1 in the shape signatures (as `tf.reshape(x, [tf.shape(x)[0], 36, -1])` exports), and
    `expand` puts an EXPAND_DIMS between the RESHAPE and the final ABS."""
    mb = ModelBuilder()
    x = mb.add_tensor(_q((1, 6, 6, 4), 0.05, 3))
    shp = mb.add_tensor(_i32((4,)))
    mb.add_op("SHAPE", [x], [shp])
    shrink = 1 if join == "PACK" else 0
    piece = () if shrink else (1,)
    first, last = mb.add_tensor(_i32(piece)), mb.add_tensor(_i32(piece))
    mb.add_op("STRIDED_SLICE", [shp, mb.add_tensor(_i32((1,), [0])), mb.add_tensor(_i32((1,), [1])),
                                mb.add_tensor(_i32((1,), [1]))], [first], {"shrink_axis_mask": shrink})
    mb.add_op("STRIDED_SLICE", [shp, mb.add_tensor(_i32((1,), [-1])), mb.add_tensor(_i32((1,), [0])),
                                mb.add_tensor(_i32((1,), [1]))], [last],
              {"shrink_axis_mask": shrink, "end_mask": 1})
    rows = mb.add_tensor(_i32(piece, 36))
    new_shape = mb.add_tensor(_i32((3,)))
    if join == "PACK":
        mb.add_op("PACK", [first, rows, last], [new_shape], {"values_count": 3, "axis": 0})
    else:
        mb.add_op("CONCATENATION", [first, rows, last], [new_shape], {"axis": 0})
    shape = (1, 36, channels)
    signature = (-1, 36, -1) if dynamic else None
    y = mb.add_tensor(_q(shape, 0.05, 3, shape_signature=signature))
    mb.add_op("RESHAPE", [x, new_shape], [y])
    if expand:
        shape, signature = (1, 1, 36, channels), (-1, 1, 36, -1) if dynamic else None
        e = mb.add_tensor(_q(shape, 0.05, 3, shape_signature=signature))
        mb.add_op("EXPAND_DIMS", [y, mb.add_tensor(_i32((), 1))], [e])
        y = e
    z = mb.add_tensor(_q(shape, 0.05, 3, shape_signature=signature))
    mb.add_op("ABS", [y], [z])  # not a bare alias of the model input
    return mb.build([x], [z])


@pytest.mark.parametrize("join", ["PACK", "CONCATENATION"])
def test_dynamic_batch_shape_chain_folds(join, tmp_path):
    """The whole chain folds to a RESHAPE by the constant [1, 36, 4] and the C gives TFLM's
    bytes (TFLM runs the shape ops at run time)."""
    model = _dynamic_batch_reshape(join)
    g = read_tflite(model)
    assert [op.kind for op in g.ops] == [OpKind.RESHAPE, OpKind.ABS]
    assert g.tensors[g.ops[0].inputs[1]].data.tolist() == [1, 36, 4]
    assert_host_matches_tflm_on_random_inputs(model, tmp_path)


@pytest.mark.parametrize("expand", [False, True])
def test_dynamic_dimensions_accepted_where_folding_proves_them(expand, tmp_path):
    """A -1 beyond the batch in the shape signatures: the folded shape operand gives the
    RESHAPE output's static shape, and what follows derives from it; TFLM runs exactly
    those static shapes."""
    model = _dynamic_batch_reshape("PACK", dynamic=True, expand=expand)
    assert read_tflite(model).tensors[-1].shape == ((1, 1, 36, 4) if expand else (1, 36, 4))
    assert_host_matches_tflm_on_random_inputs(model, tmp_path)


def test_placeholder_dynamic_dimensions_refused_as_tflm_does():
    """The exporter's placeholder 1 for the dynamic dimension (what `tf.reshape(x,
    [tf.shape(x)[0], -1])` gives): the folded shape says 4, the file 1; TFLM refuses the
    RESHAPE, so do we, naming the tensor."""
    model = _dynamic_batch_reshape("PACK", channels=1, dynamic=True)
    with pytest.raises(ConversionError, match=r"tensor 't\d+': dynamic shape \(shape_signature \[-1, 36, -1\]\)"):
        read_tflite(model)
    pytest.importorskip("tflite_micro")
    from engine.tflm import TflmModel

    with pytest.raises(RuntimeError, match="Node RESHAPE .* failed to prepare"):
        TflmModel(model)


def test_concatenation_of_differently_quantized_constants_not_folded(tmp_path):
    """TFLM's int8 CONCATENATION copies bytes only under one quantization: other constants
    stay unfolded, and the conversion names the op."""
    mb = ModelBuilder()
    a = mb.add_tensor(TensorSpec((2,), scale=0.5, zero_point=0, data=[1, 2]))
    b = mb.add_tensor(TensorSpec((2,), scale=0.25, zero_point=0, data=[3, 4]))
    x, c, z = (mb.add_tensor(_q((4,), 0.5, 0)) for _ in range(3))
    mb.add_op("CONCATENATION", [a, b], [c], {"axis": 0})
    mb.add_op("ADD", [x, c], [z])
    model = mb.build([x], [z])
    assert [op.kind for op in read_tflite(model).ops] == [OpKind.CONCATENATION, OpKind.ADD]
    with pytest.raises(ConversionError, match="op 0 CONCATENATION.*quantization differ"):
        convert_model(model, tmp_path / "gen", name="m")


# ---------------------------------------------------------------------------------------------
# Reshape aliases and TRANSPOSE + MEAN


def test_squeeze_expand_dims_become_reshape():
    mb = ModelBuilder()
    x = mb.add_tensor(_q((1, 1, 4)))
    y = mb.add_tensor(_q((1, 4)))
    ax = mb.add_tensor(TensorSpec((), "int32", data=0))
    z = mb.add_tensor(_q((1, 1, 4)))
    mb.add_op("SQUEEZE", [x], [y], {"squeeze_dims": [1]})
    mb.add_op("EXPAND_DIMS", [y, ax], [z])
    g = passes.legalize(read_tflite(mb.build([x], [z])))
    assert [(op.kind, len(op.inputs)) for op in g.ops] == [(OpKind.RESHAPE, 1)] * 2


def _head(nchw_means: list[tuple[tuple[int, ...], bool]], c: int = 6, hw: int = 3) -> tuple[bytes, list]:
    """TRANSPOSE NHWC->NCHW then the MEANs (axes in the current tensor, keep_dims)."""
    mb = ModelBuilder()
    x = mb.add_tensor(_q((1, hw, hw, c), 0.05, 6))
    perm = mb.add_tensor(TensorSpec((4,), "int32", data=[0, 3, 1, 2]))
    shape = [1, c, hw, hw]
    t = mb.add_tensor(_q(tuple(shape), 0.05, 6))
    mb.add_op("TRANSPOSE", [x, perm], [t])
    for axes, keep in nchw_means:
        shape = [1 if i in axes else d for i, d in enumerate(shape)] if keep else \
            [d for i, d in enumerate(shape) if i not in axes]
        a = mb.add_tensor(TensorSpec((len(axes),), "int32", data=list(axes)))
        y = mb.add_tensor(_q(tuple(shape), 0.05, 6))
        mb.add_op("MEAN", [t, a], [y], {"keep_dims": keep})
        t = y
    return mb.build([x], [t]), shape


def _graph_to_tflite(g) -> bytes:
    """Serialise a graph of MEAN / RESHAPE / TRANSPOSE ops back to .tflite (for TFLM)."""
    mb = ModelBuilder()
    index = {}

    def tensor(i):
        if i not in index:
            t = g.tensors[i]
            q = t.quant
            index[i] = mb.add_tensor(TensorSpec(
                t.shape, t.dtype.value, scale=None if q is None else float(q.scale[0]),
                zero_point=None if q is None else int(q.zero_point[0]), data=t.data))
        return index[i]

    for op in g.ops:
        ins = [tensor(i) for i in op.inputs]
        outs = [tensor(i) for i in op.outputs]
        if op.kind is OpKind.MEAN:
            ins[1] = mb.add_tensor(TensorSpec((len(op.attrs.axes),), "int32", data=list(op.attrs.axes)))
            mb.add_op("MEAN", ins, outs, {"keep_dims": op.attrs.keep_dims})
        elif op.kind is OpKind.TRANSPOSE:
            p = mb.add_tensor(TensorSpec((len(op.attrs.perm),), "int32", data=list(op.attrs.perm)))
            mb.add_op("TRANSPOSE", [ins[0], p], outs)
        elif op.kind is OpKind.RESHAPE:
            s = mb.add_tensor(TensorSpec((len(g.tensors[op.outputs[0]].shape),), "int32",
                                         data=list(g.tensors[op.outputs[0]].shape)))
            mb.add_op("RESHAPE", [ins[0], s], outs)
        else:
            raise AssertionError(op.kind)
    return mb.build([tensor(i) for i in g.inputs], [tensor(i) for i in g.outputs])


@pytest.mark.parametrize("means,kinds", [
    ([((3,), False), ((2,), False)], [OpKind.MEAN, OpKind.MEAN]),            # the MCUNet head
    ([((2, 3), True)], [OpKind.MEAN, OpKind.RESHAPE]),                     # [1,C,1,1] output
    ([((2, 3), False)], [OpKind.MEAN]),
    ([((3,), True)], [OpKind.MEAN, OpKind.TRANSPOSE]),                     # H stays > 1
])
def test_transpose_mean_rewrite_is_exact(means, kinds):
    data, out_shape = _head(means)
    g = passes.legalize(read_tflite(data))
    assert [op.kind for op in g.ops] == kinds
    assert g.tensors[g.outputs[0]].shape == tuple(out_shape)
    rng = np.random.default_rng(11)
    for _ in range(5):
        feed = rng.integers(-128, 128, (1, 3, 3, 6), dtype=np.int8)
        np.testing.assert_array_equal(_run_tflm(_graph_to_tflite(g), [feed]), _run_tflm(data, [feed]))


def test_mcunet_head_rewritten():
    g = passes.legalize(load_tflite(_model("tinyengine_mcunet_vww.tflite")))
    means = [op for op in g.ops if op.kind is OpKind.MEAN]
    assert [m.attrs.axes for m in means] == [(2,), (1,)]
    assert g.tensors[means[0].inputs[0]].shape == (1, 3, 3, 160)
    assert g.tensors[means[1].outputs[0]].shape == (1, 160)
    # the axes operand agrees with the attributes
    assert [g.tensors[m.inputs[1]].data.tolist() for m in means] == [[2], [1]]


# ---------------------------------------------------------------------------------------------
# Schedule check and the whole pipeline


def test_check_schedule_rejects_bad_order():
    g = read_tflite(_quantize_chain([(0.1, 0), (0.2, 0)]))
    bad = dataclasses.replace(g, ops=list(reversed(g.ops)))
    with pytest.raises(ConversionError, match="produced by later op"):
        passes.check_schedule(bad)


@pytest.mark.parametrize("name", ["mlperf_tiny_vww_96_int8.tflite", "tflm_person_detect.tflite",
                                  "mlperf_tiny_ad_toycar_fullint_floatio.tflite",
                                  "mlperf_tiny_ic_resnet_quant.tflite"])
def test_legalize_real_models(name):
    g = load_tflite(_model(name))
    out = passes.legalize(g)
    assert [t.shape for t in (out.tensors[i] for i in out.outputs)] == \
        [t.shape for t in (g.tensors[i] for i in g.outputs)]
    assert all(op.kind not in (OpKind.SQUEEZE, OpKind.EXPAND_DIMS) for op in out.ops)
    for op in out.ops:
        if op.kind is OpKind.RESHAPE:
            assert len(op.inputs) == 1
    assert out.tensors[out.inputs[0]].dtype in (DType.INT8, DType.FLOAT32)
