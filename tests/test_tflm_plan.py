"""The TFLM offline plan (tflite_converter/tflm_plan.py, `convert --tflm_plan`): the metadata
words, the tensors that get an offset, hostile existing metadata, the independent check, and
TFLM itself running every shared model with the plan: an arena no larger than with its own
planner, smaller where our placement beats TFLM's greedy rule, outputs byte-identical."""
from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from tflite_builder import ModelBuilder, TensorSpec

from tflite_converter.errors import ConversionError
from tflite_converter.reader import unpack_model
from tflite_converter.schema import S
from tflite_converter.tflm_plan import (
    METADATA_NAME,
    ONLINE,
    check_offsets,
    plan_offsets,
    read_offline_plan,
    with_offline_plan,
)

REPO = pathlib.Path(__file__).resolve().parent.parent
Q = dict(scale=0.05, zero_point=-2)


def _chain(mb: ModelBuilder | None = None) -> tuple[ModelBuilder, bytes]:
    """ADD(x, x) -> RESHAPE (constant shape) -> ADD(r, r): tensors 0 x, 1 a, 2 shape, 3 r, 4 y."""
    mb = mb or ModelBuilder()
    x = mb.add_tensor(TensorSpec((1, 16), **Q))
    a = mb.add_tensor(TensorSpec((1, 16), **Q))
    shape = mb.add_tensor(TensorSpec((2,), "int32", data=np.array([4, 4], np.int32)))
    r = mb.add_tensor(TensorSpec((4, 4), **Q))
    y = mb.add_tensor(TensorSpec((4, 4), **Q))
    mb.add_op("ADD", [x, x], [a], {})
    mb.add_op("RESHAPE", [a, shape], [r], {"new_shape": [4, 4]})
    mb.add_op("ADD", [r, r], [y], {})
    return mb, mb.build([x], [y])


def _tflm():
    pytest.importorskip("tflite_micro", reason="tflite-micro not installed: no TFLM to run the plan")
    from engine.tflm import TflmModel

    return TflmModel


def _same_outputs(a: bytes, b: bytes) -> None:
    tflm = _tflm()
    ta, tb = tflm(a), tflm(b)
    x = np.arange(-128, 128, 16, dtype=np.int8).reshape(1, 16)
    assert [o.tobytes() for o in ta.run([x])] == [o.tobytes() for o in tb.run([x])]


def test_metadata_words_and_which_tensors_get_offsets():
    _, data = _chain()
    out, plan = with_offline_plan(data)
    words = read_offline_plan(out)
    assert words is not None and words.tolist() == plan.words().tolist()
    version, subgraphs, n, *offsets = words.tolist()
    assert (version, subgraphs, n) == (1, 1, 5)
    x, a, shape, r, y = offsets
    assert shape == ONLINE  # a constant: TFLM never plans it
    assert r == a  # the RESHAPE output views its input's bytes (TFLM's kernel skips the copy)
    assert {x, a} == {0, 16} and {a, y} == {0, 16}  # 16-byte buffers, two live per scope
    assert plan.arena_bytes == plan.lower_bound_bytes == 32 and plan.n_planned == 4
    assert check_offsets(plan) == []
    # everything but the metadata is as read: same tensors, ops and constant bytes
    before, after = unpack_model(data), unpack_model(out)
    assert [t.name for t in after.subgraphs[0].tensors] == [t.name for t in before.subgraphs[0].tensors]
    assert len(after.subgraphs[0].operators) == len(before.subgraphs[0].operators)
    for b0, b1 in zip(before.buffers, after.buffers):
        assert (b0.data is None) == (b1.data is None)
        if b0.data is not None:
            assert bytes(b0.data) == bytes(b1.data)
    _same_outputs(data, out)


def test_written_model_is_idempotent_and_keeps_other_metadata():
    _, data = _chain()
    once, _ = with_offline_plan(data)
    twice, _ = with_offline_plan(once)
    assert twice == once  # the old plan's buffer is reused, not a new one appended
    names = [m.name for m in unpack_model(once).metadata]
    assert names.count(METADATA_NAME) == 1


def _with_metadata(data: bytes, entries: list[tuple[bytes, int]], extra_buffers: list[bytes] = ()) -> bytes:
    import flatbuffers

    model = unpack_model(data)
    for raw in extra_buffers:
        model.buffers.append(S.BufferT(data=np.frombuffer(raw, np.uint8)))
    model.metadata = [S.MetadataT(name=name, buffer=index) for name, index in entries]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_hostile_existing_metadata_is_replaced_without_touching_other_buffers():
    _, data = _chain()
    model = unpack_model(data)
    shape_buffer = int(model.subgraphs[0].tensors[2].buffer)
    weights = bytes(model.buffers[shape_buffer].data)
    n = len(model.buffers)
    hostile = _with_metadata(data, [
        (METADATA_NAME, shape_buffer),  # a plan "stored" in a constant tensor's bytes
        (b"min_runtime_version", n),  # an unrelated entry, kept with its buffer
        (METADATA_NAME, 9999),  # out of range
        (METADATA_NAME, n + 1),  # a stale plan of the wrong length
    ], [b"1.5.0\0\0\0", np.array([1, 1, 3, 0, 0, 0], "<i4").tobytes()])
    out, plan = with_offline_plan(hostile)
    after = unpack_model(out)
    assert bytes(after.buffers[shape_buffer].data) == weights
    entries = [(m.name, m.buffer) for m in after.metadata]
    assert (b"min_runtime_version", n) in entries and bytes(after.buffers[n].data) == b"1.5.0\0\0\0"
    plan_entries = [b for name, b in entries if name == METADATA_NAME]
    assert plan_entries == [n + 1]  # the one free old buffer is reused
    assert len(after.buffers) == n + 2
    assert read_offline_plan(out).tolist() == plan.words().tolist()
    _same_outputs(data, out)


def test_invalid_models_are_refused():
    with pytest.raises(ConversionError):
        with_offline_plan(b"not a flatbuffer" * 4)
    _, data = _chain()
    model = unpack_model(data)
    model.subgraphs.append(model.subgraphs[0])
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(ConversionError, match="subgraphs"):
        with_offline_plan(bytes(builder.Output()))


def test_check_offsets_finds_overlapping_live_tensors():
    _, data = _chain()
    plan = plan_offsets(unpack_model(data))
    offsets = list(plan.offsets)
    offsets[0] = offsets[1]  # the input over the first ADD's output, both live at scope 1
    problems = check_offsets(dataclasses.replace(plan, offsets=tuple(offsets)))
    assert problems == [f"tensors 0 [{offsets[0]}, {offsets[0] + 16}) scopes 0..1 and 1 [{offsets[1]}, "
                        f"{offsets[1] + 16}) scopes 1..2 overlap"]  # not with r: born at scope 2
    offsets = list(plan.offsets)
    offsets[2] = 0  # a constant given an offset
    assert any("does not plan" in p for p in check_offsets(dataclasses.replace(plan, offsets=tuple(offsets))))


def test_convert_flag_writes_the_plan(tmp_path):
    _, data = _chain()
    src, dst = tmp_path / "m.tflite", tmp_path / "m_plan.tflite"
    src.write_bytes(data)
    env = dict(os.environ)
    env.pop("BUILD_WORKING_DIRECTORY", None)
    r = subprocess.run([sys.executable, "-m", "tflite_converter.convert", f"--model={src}", f"--tflm_plan={dst}"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "TFLM offline plan, 32 B for 4 tensors" in r.stdout
    assert read_offline_plan(dst.read_bytes()).tolist() == with_offline_plan(data)[1].words().tolist()


def _shared_model_names() -> list[str]:
    d = REPO.parent / "shared" / "models"
    return sorted(p.stem for p in d.glob("*.tflite")) if d.is_dir() else ["(no ../shared)"]


@pytest.mark.parametrize("name", _shared_model_names())
def test_tflm_with_our_plan_on_shared_models(shared_models, name):
    _tflm()
    from benchmarks.tflm_plan_arena import measure

    row = measure(shared_models / f"{name}.tflite")
    if row is None:
        pytest.skip(f"{name}: TFLM does not run it")
    assert row.difference is None, f"{name}: {row.difference}"
    plan = row.plan
    assert plan.arena_bytes <= plan.greedy_bytes
    # every byte our placement saves over TFLM's greedy rule comes off TFLM's arena; where that
    # rule already reaches the bound of TFLM's lifetimes (every model here but VWW) it ties
    assert row.default_arena - row.plan_arena >= plan.greedy_bytes - plan.arena_bytes
    assert row.plan_arena <= row.default_arena
    tensors = unpack_model((shared_models / f"{name}.tflite").read_bytes()).subgraphs[0].tensors
    assert all(plan.offsets[i] == ONLINE for i, t in enumerate(tensors) if t.isVariable)  # TFLM keeps them
    if name == "mlperf_tiny_vww_96_int8":
        assert row.plan_arena < row.default_arena


def test_squeeze_output_gets_its_own_bytes():
    # TFLM's SQUEEZE copies unconditionally (no same-address check as in RESHAPE): no view
    mb = ModelBuilder()
    x = mb.add_tensor(TensorSpec((1, 1, 16), **Q))
    y = mb.add_tensor(TensorSpec((1, 16), **Q))
    mb.add_op("SQUEEZE", [x], [y], {"squeeze_dims": [1]})
    _, plan = with_offline_plan(mb.build([x], [y]))
    assert plan.offsets[x] != plan.offsets[y] and all(b.view_of is None for b in plan.buffers)
    assert check_offsets(plan) == []


def test_buffers_after_the_flatbuffer_are_refused():
    mb, _ = _chain()
    with pytest.raises(ConversionError, match="after the flatbuffer"):
        with_offline_plan(mb.build([0], [4], offset_buffers=True))
