"""SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND (strided copies, engine/kernels/copy_nd.c) against
TFLite Micro: 4-D and 3-D inputs, square and unequal blocks, batches, crops on every side;
the refusal of a padded SPACE_TO_BATCH_ND (TFLM pads with a value it never sets)."""
from __future__ import annotations

import pytest

from tests import kernel_harness as kh
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite

# (input shape, block, paddings / crops, output shape)
S2B = [
    ((1, 6, 6, 3), [2, 2], [[0, 0], [0, 0]], (4, 3, 3, 3)),
    ((2, 6, 4, 5), [3, 2], [[0, 0], [0, 0]], (12, 2, 2, 5)),
    ((1, 8, 4), [4], [[0, 0]], (4, 2, 4)),
    ((1, 5, 5, 1), [1, 1], [[0, 0], [0, 0]], (1, 5, 5, 1)),
]
B2S = [
    ((4, 3, 3, 3), [2, 2], [[0, 0], [0, 0]], (1, 6, 6, 3)),
    ((12, 3, 2, 5), [3, 2], [[1, 2], [0, 1]], (2, 6, 3, 5)),
    ((8, 4, 4, 2), [2, 2], [[1, 1], [1, 1]], (2, 6, 6, 2)),
    ((4, 3, 4), [4], [[2, 3]], (1, 7, 4)),
    ((4, 2, 2, 1), [2, 2], [[3, 0], [0, 3]], (1, 1, 1, 1)),
]


def _model(op: str, case) -> bytes:
    shape, block, pads, out = case
    x = kh.random_qspec(kh.seeded_rng(f"{op} {case}"), shape)
    y = TensorSpec(out, scale=x.scale, zero_point=x.zero_point)
    return build_single_op_model(op, [x, kh.const_int32(block, (len(block),)),
                                      kh.const_int32(pads, (len(pads), 2))], [y])


@kh.needs_host_compiler
@pytest.mark.parametrize("case", S2B, ids=str)
def test_space_to_batch_matches_tflm(case, tmp_path):
    kh.assert_host_matches_tflm_on_random_inputs(_model("SPACE_TO_BATCH_ND", case), tmp_path)


@kh.needs_host_compiler
@pytest.mark.parametrize("case", B2S, ids=str)
def test_batch_to_space_matches_tflm(case, tmp_path):
    kh.assert_host_matches_tflm_on_random_inputs(_model("BATCH_TO_SPACE_ND", case), tmp_path)


@kh.needs_cortex_m7
@pytest.mark.parametrize("op,case", [("SPACE_TO_BATCH_ND", S2B[1]), ("BATCH_TO_SPACE_ND", B2S[1])])
def test_batch_space_on_cortex_m7(op, case, tmp_path):
    model = _model(op, case)
    samples = kh.random_int8_samples(kh.seeded_rng(op), case[0], n=1)
    kh.assert_cortex_m7_matches(kh.convert(model, tmp_path), "m", samples,
                                kh.tflm_outputs(model, samples))


def test_padded_space_to_batch_is_refused():
    model = _model("SPACE_TO_BATCH_ND", ((1, 5, 5, 1), [2, 2], [[1, 0], [0, 1]], (4, 3, 3, 1)))
    with pytest.raises(ConversionError, match="op 0 SPACE_TO_BATCH_ND.*uninitialised"):
        read_tflite(model)


def test_batch_to_space_of_a_batch_the_block_does_not_divide_is_refused():
    model = _model("BATCH_TO_SPACE_ND", ((3, 2, 2, 1), [2, 2], [[0, 0], [0, 0]], (1, 4, 4, 1)))
    with pytest.raises(ConversionError, match="op 0 BATCH_TO_SPACE_ND.*not a multiple"):
        read_tflite(model)


@pytest.mark.parametrize("block,pads,reason", [
    ([0, 2], [[0, 0], [0, 0]], "block sizes below 1"),
    ([2, 2], [[0, -1], [0, 0]], "negative paddings"),
    ([2], [[0, 0]], "expected \\[2\\] and \\[2, 2\\]"),
])
def test_bad_block_or_crops_are_refused(block, pads, reason):
    x = TensorSpec((4, 2, 2, 1), scale=0.1, zero_point=0)
    model = build_single_op_model(
        "BATCH_TO_SPACE_ND", [x, kh.const_int32(block, (len(block),)),
                              kh.const_int32(pads, (len(pads), 2))],
        [TensorSpec((1, 4, 4, 1), scale=0.1, zero_point=0)])
    with pytest.raises(ConversionError, match=f"op 0 BATCH_TO_SPACE_ND.*{reason}"):
        read_tflite(model)
