"""SPACE_TO_BATCH_ND -> CONV_2D / DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND, the form older
exporters (and tf.nn.atrous_conv2d before the TFLite converter fused it) gave a dilated
convolution: folded into one dilated convolution where exact (passes.fold_batch_space_conv),
kept as three exact ops where not, and the C compared with TFLite Micro in both cases."""
from __future__ import annotations

import dataclasses

import pytest

from tests import kernel_harness as kh
from tests.tflite_builder import TensorSpec, build_model
from tflite_converter import passes
from tflite_converter.ir import ConvAttrs, OpKind, Pads
from tflite_converter.reader import read_tflite


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    in_shape: tuple[int, int, int, int]
    block: tuple[int, int]
    inner: kh.ConvCase  # the convolution on the sub-images (batch bh * bw * n)
    depthwise: bool = False
    crops: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))


def _inner(name: str, in_shape, block, out_c: int, **kw) -> kh.ConvCase:
    n, h, w, c = in_shape
    sub = (n * block[0] * block[1], h // block[0], w // block[1], c)
    return kh.ConvCase(name, sub, out_c, **kw)


CASES = [
    Case("same_3x3_d2", (1, 8, 8, 3), (2, 2), _inner("a", (1, 8, 8, 3), (2, 2), 4)),
    Case("valid_3x3_d2", (1, 8, 10, 3), (2, 2), _inner("b", (1, 8, 10, 3), (2, 2), 5,
                                                        padding="VALID", activation="RELU")),
    Case("same_2x3_d3x2_batch2", (2, 9, 6, 2), (3, 2), _inner("c", (2, 9, 6, 2), (3, 2), 3,
                                                              kernel=(2, 3))),
    Case("dw_same_3x3_d2", (1, 8, 8, 4), (2, 2), _inner("d", (1, 8, 8, 4), (2, 2), 8,
                                                         activation="RELU6"), depthwise=True),
    Case("inner_dilation", (1, 12, 12, 2), (2, 2), _inner("e", (1, 12, 12, 2), (2, 2), 2,
                                                          dilation=(2, 1))),
]
KEPT = [  # not folded (B2S crops, inner stride 2): the three ops run on their own
    Case("cropped", (1, 8, 8, 3), (2, 2), _inner("f", (1, 8, 8, 3), (2, 2), 4),
         crops=((1, 0), (0, 1))),
    Case("strided", (1, 8, 8, 3), (2, 2), _inner("g", (1, 8, 8, 3), (2, 2), 4, stride=(2, 2))),
]


def _model(case: Case) -> bytes:
    x, w, b, y = kh.conv_tensors(case.inner, case.depthwise, kh.seeded_rng(case.name))
    n, h, wd, c = case.in_shape
    bh, bw = case.block
    (ct, cb), (cl, cr) = case.crops
    _, oh, ow, oc = y.shape
    out = (n, oh * bh - ct - cb, ow * bw - cl - cr, oc)
    op = "DEPTHWISE_CONV_2D" if case.depthwise else "CONV_2D"
    tensors = [
        TensorSpec(case.in_shape, scale=x.scale, zero_point=x.zero_point),  # 0 input
        kh.const_int32(list(case.block), (2,)),  # 1
        kh.const_int32([[0, 0], [0, 0]], (2, 2)),  # 2 S2B paddings
        x,  # 3 S2B output
        w, b,  # 4, 5
        y,  # 6 conv output
        kh.const_int32([list(case.crops[0]), list(case.crops[1])], (2, 2)),  # 7 crops
        TensorSpec(out, scale=y.scale, zero_point=y.zero_point),  # 8 output
    ]
    ops = [("SPACE_TO_BATCH_ND", [0, 1, 2], [3]),
           (op, [3, 4, 5], [6], kh.conv_options(case.inner, case.depthwise)),
           ("BATCH_TO_SPACE_ND", [6, 1, 7], [8])]
    return build_model(tensors, ops, [0], [8])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_folded_into_one_dilated_convolution(case):
    g = passes.legalize(read_tflite(_model(case)))
    (conv,) = g.ops
    a = conv.attrs_as(ConvAttrs)
    bh, bw = case.block
    assert conv.kind is (OpKind.DEPTHWISE_CONV_2D if case.depthwise else OpKind.CONV_2D)
    assert (a.dilation_h, a.dilation_w) == (case.inner.dilation[0] * bh, case.inner.dilation[1] * bw)
    assert conv.inputs[0] == g.inputs[0] and conv.outputs[0] == g.outputs[0]
    # the sub-image's SAME pads (of the inner kernel extent) scaled by the block
    th, tw = ((k - 1) * d for k, d in zip(case.inner.kernel, case.inner.dilation))
    if case.inner.padding == "VALID":
        assert a.pads == Pads()
    else:
        assert a.pads == Pads(th // 2 * bh, (th - th // 2) * bh, tw // 2 * bw, (tw - tw // 2) * bw)


@kh.needs_host_compiler
@pytest.mark.parametrize("case", CASES + KEPT, ids=lambda c: c.name)
def test_matches_tflm(case, tmp_path):
    kh.assert_host_matches_tflm_on_random_inputs(_model(case), tmp_path)


@pytest.mark.parametrize("case", KEPT, ids=lambda c: c.name)
def test_not_folded_when_inexact(case):
    assert len(passes.legalize(read_tflite(_model(case))).ops) == 3


@kh.needs_cortex_m7
def test_folded_on_cortex_m7(tmp_path):
    case = CASES[3]
    model = _model(case)
    samples = kh.random_int8_samples(kh.seeded_rng("m7"), case.in_shape, n=1)
    kh.assert_cortex_m7_matches(kh.convert(model, tmp_path), "m", samples,
                                kh.tflm_outputs(model, samples))
