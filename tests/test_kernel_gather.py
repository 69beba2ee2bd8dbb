"""GATHER by constant indices (engine/kernels/gather.c) against TFLite Micro: any axis,
repeated and scalar indices, batch_dims, on the host and the emulated Cortex-M7; a GATHER of
constants folded away; refusals for what TFLM refuses or leaves undefined."""
from __future__ import annotations

import numpy as np
import pytest

from tests.kernel_harness import (
    assert_cortex_m7_matches,
    assert_host_matches_tflm_on_random_inputs,
    convert,
    needs_cortex_m7,
    needs_host_compiler,
    random_int8_samples,
    random_qspec,
    seeded_rng,
    tflm_outputs,
)
from tests.tflite_builder import ModelBuilder, TensorSpec, build_single_op_model
from tflite_converter.errors import ConversionError
from tflite_converter.ir import OpKind
from tflite_converter.reader import read_tflite

CASES = [  # (params shape, indices, axis, batch_dims)
    ((1, 10, 4), [3, 0, 9, 3], 1, 0),
    ((5, 6), [[4, 0], [1, 1]], 0, 0),
    ((2, 3, 4), [3, 1], -1, 0),
    ((1, 4, 4, 3), [2, 0], 3, 0),
    ((1, 8, 3), 5, 1, 0),
    ((2, 5, 3), [[1, 4], [0, 0]], 1, 1),
]


def _out_shape(shape, indices, axis, batch_dims):
    axis %= len(shape)
    return tuple(shape[:axis]) + np.shape(indices)[batch_dims:] + tuple(shape[axis + 1:])


def _model(shape, indices, axis, batch_dims, index_dtype="int32") -> bytes:
    x = random_qspec(seeded_rng(f"gather {shape}"), shape)
    idx = TensorSpec(np.shape(indices), index_dtype, data=np.asarray(indices))
    y = TensorSpec(_out_shape(shape, indices, axis, batch_dims), scale=x.scale, zero_point=x.zero_point)
    return build_single_op_model("GATHER", [x, idx], [y], options={"axis": axis, "batchDims": batch_dims})


@needs_host_compiler
@pytest.mark.parametrize("case", CASES, ids=str)
def test_gather_matches_tflm(case, tmp_path):
    assert_host_matches_tflm_on_random_inputs(_model(*case), tmp_path)


@needs_cortex_m7
def test_gather_on_cortex_m7(tmp_path):
    case = CASES[5]
    model = _model(*case)
    samples = random_int8_samples(seeded_rng("gather m7"), case[0], n=2)
    assert_cortex_m7_matches(convert(model, tmp_path), "m", samples, tflm_outputs(model, samples))


@needs_host_compiler
def test_gather_of_constants_folds(tmp_path):
    """An int8 table gathered by constant indices is a constant: folded, the ADD reads it."""
    mb = ModelBuilder()
    table = np.arange(-12, 12, dtype=np.int8).reshape(6, 4)
    p = mb.add_tensor(TensorSpec((6, 4), scale=0.1, zero_point=0, data=table))
    i = mb.add_tensor(TensorSpec((3,), "int32", data=[5, 0, 2]))
    g = mb.add_tensor(TensorSpec((3, 4), scale=0.1, zero_point=0))
    x = mb.add_tensor(TensorSpec((3, 4), scale=0.1, zero_point=0))
    y = mb.add_tensor(TensorSpec((3, 4), scale=0.2, zero_point=1))
    mb.add_op("GATHER", [p, i], [g], {"axis": 0})
    mb.add_op("ADD", [x, g], [y])
    model = mb.build([x], [y])
    graph = read_tflite(model)
    assert [op.kind for op in graph.ops] == [OpKind.ADD]
    assert graph.tensors[g].data.tolist() == table[[5, 0, 2]].tolist()
    assert_host_matches_tflm_on_random_inputs(model, tmp_path)


@pytest.mark.parametrize("case,message", [
    (((1, 10, 4), [3, 10], 1, 0), "index 10 outside axis 1 of size 10"),
    (((1, 10, 4), [-1], 1, 0), "index -1 outside axis 1 of size 10"),
    (((2, 5, 3), [[1, 4], [0, 0]], 0, 1), "batch_dims 1 out of range for axis 0"),
])
def test_gather_refusals(case, message):
    with pytest.raises(ConversionError, match=f"op 0 GATHER.*{message}"):
        read_tflite(_model(*case))


def test_gather_int64_indices_refused_as_tflm_does():
    with pytest.raises(ConversionError, match="op 0 GATHER.*int64 indices not supported"):
        read_tflite(_model((1, 10, 4), [1, 2], 1, 0, index_dtype="int64"))


def test_gather_non_constant_indices_refused():
    x = TensorSpec((1, 10, 4), scale=0.1, zero_point=0)
    model = build_single_op_model("GATHER", [x, TensorSpec((2,), "int32")],
                                  [TensorSpec((1, 2, 4), scale=0.1, zero_point=0)], options={"axis": 1})
    with pytest.raises(ConversionError, match="op 0 GATHER.*non-constant indices not supported"):
        read_tflite(model)
