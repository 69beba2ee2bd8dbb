"""Patch-based inference (tflite_converter/patch.py): windows, the rewrite, and the C it gives.

The C of every patched plan must give TFLM's bytes: a small network with every kind of op the
stage runs (strided and dilated convolutions, depthwise 5x5, a residual ADD, max and average
pooling, PAD, a requantising QUANTIZE) is converted for every split and several grids and run
on the host against the TFLM wheel. The window arithmetic is checked against brute force.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from kernel_harness import seeded_rng, weight_and_bias_specs
from tflite_builder import ModelBuilder, TensorSpec

from engine.compare import host_vs_tflm
from tflite_converter import opspec, patch
from tflite_converter.codegen.generate import generate
from tflite_converter.errors import ConversionError
from tflite_converter.ir import OpKind
from tflite_converter.patch import PatchSetting, Window
from tflite_converter.pipeline import compile_model, patch_summary, plan_extra
from tflite_converter.planner import verify_plan

SHARED = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "models"


# ---------------------------------------------------------------------------------------------
# Window arithmetic against brute force


def _rows_read(lo, hi, k, stride, dilation, pad, size):
    rows = {y * stride - pad + t * dilation for y in range(lo, hi) for t in range(k)}
    inside = [r for r in rows if 0 <= r < size]
    return (min(inside), max(inside) + 1) if inside else None


@pytest.mark.parametrize("k,stride,dilation,pad,size", [
    (3, 1, 1, 1, 9), (3, 2, 1, 0, 9), (3, 2, 1, 1, 10), (5, 1, 1, 2, 7), (3, 1, 2, 2, 11),
    (7, 2, 1, 3, 16), (1, 2, 1, 0, 8), (2, 2, 1, 0, 8), (4, 3, 1, 1, 13),
])
def test_taps_and_local_pads_match_brute_force(k, stride, dilation, pad, size):
    out = (size + 2 * pad - ((k - 1) * dilation + 1)) // stride + 1
    for lo in range(out):
        for hi in range(lo + 1, out + 1):
            a, b = patch._taps(lo, hi, k, stride, dilation, pad, size)
            read = _rows_read(lo, hi, k, stride, dilation, pad, size)
            # every row read, and no more than the hull of the taps (dilation may skip the
            # first row of it)
            assert read is not None and a <= read[0] and read[1] <= b
            assert a == max(lo * stride - pad, 0) and b == min((hi - 1) * stride - pad + (k - 1) * dilation + 1, size)
            assert dilation > 1 or read == (a, b)
            before, after = patch._local_pads(lo, hi - lo, b - a, k, stride, dilation, pad)
            # local row r' of the patch output reads local rows r'*stride - before + t*dilation:
            # the same image rows as the full layer (shifted by a), and only those
            for r in range(hi - lo):
                full = [(lo + r) * stride - pad + t * dilation for t in range(k)]
                local = [r * stride - before + t * dilation for t in range(k)]
                assert [x + a for x in local] == full
                assert all((0 <= x < b - a) == (0 <= f < size) for x, f in zip(local, full))
            assert (b - a + before + after - ((k - 1) * dilation + 1)) // stride + 1 == hi - lo


def test_grid_bounds_partition_every_row_once():
    for size in range(1, 30):
        for n in range(1, min(size, 8) + 1):
            b = patch.grid_bounds(size, n)
            assert b[0] == 0 and b[-1] == size and all(y > x for x, y in zip(b, b[1:]))


def test_window_union():
    assert Window(0, 3, 2, 5).union(Window(1, 6, 0, 4)) == Window(0, 6, 0, 5)
    assert Window(1, 2, 1, 2).union(None) == Window(1, 2, 1, 2)


# ---------------------------------------------------------------------------------------------
# A network with every stage op kind


def _network(rng, float_input: bool = False, aligned_rows: bool = False) -> bytes:
    """input 1x19x17x3 -> conv 3x3/2 SAME (RELU6) -> dw 5x5 SAME -> conv 1x1 -> ADD (residual)
    -> max pool 3x3/2 SAME -> avg pool 2x2/1 VALID -> PAD (1,2)(2,0) -> QUANTIZE
    -> conv 3x3 dilation 2 VALID -> MEAN: the stage may end after the first conv, the ADD, and
    every later op before the MEAN. `float_input`: a float32 input quantized first (the
    stage then starts after that QUANTIZE). `aligned_rows`: a 1x20x18x4 input, whose 72-byte
    rows the plan can cut into row bands (19 x 17 x 3 rows of 51 bytes it cannot)."""
    mb = ModelBuilder()
    act = lambda shape, scale, zp: mb.add_tensor(TensorSpec(shape, scale=scale, zero_point=zp))  # noqa: E731

    def conv(x, x_scale, cin, cout, k, stride, padding, out_shape, dilation=1, depthwise=False, relu6=False):
        wshape = (1, k, k, cout) if depthwise else (cout, k, k, cin)
        w, b, ws = weight_and_bias_specs(rng, wshape, 3 if depthwise else 0, x_scale, True, True)
        scale = float(x_scale * np.mean(ws) * 3.0 * k * np.sqrt(1 if depthwise else cin))
        y = act(out_shape, scale, int(rng.integers(-20, 20)))
        opts = {"padding": padding, "stride_h": stride, "stride_w": stride, "dilation_h_factor": dilation,
                "dilation_w_factor": dilation, "activation": "RELU6" if relu6 else "NONE"}
        if depthwise:
            opts["depth_multiplier"] = 1
        mb.add_op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [x, mb.add_tensor(w), mb.add_tensor(b)], [y], opts)
        return y, scale

    in_shape = (1, 20, 18, 4) if aligned_rows else (1, 19, 17, 3)
    x = act(in_shape, 0.05, -3)
    graph_input = x
    if float_input:
        graph_input = mb.add_tensor(TensorSpec(in_shape, "float32"))
        mb.add_op("QUANTIZE", [graph_input], [x])
    t1, s1 = conv(x, 0.05, in_shape[3], 8, 3, 2, "SAME", (1, 10, 9, 8), relu6=True)
    t2, s2 = conv(t1, s1, 8, 8, 5, 1, "SAME", (1, 10, 9, 8), depthwise=True)
    t3, s3 = conv(t2, s2, 8, 8, 1, 1, "SAME", (1, 10, 9, 8))
    t4 = act((1, 10, 9, 8), s1 * 1.5, 2)
    mb.add_op("ADD", [t1, t3], [t4], {"activation": "NONE"})
    t5 = act((1, 5, 5, 8), s1 * 1.5, 2)
    mb.add_op("MAX_POOL_2D", [t4], [t5], {"padding": "SAME", "stride_h": 2, "stride_w": 2,
                                          "filter_height": 3, "filter_width": 3})
    t6 = act((1, 4, 4, 8), s1 * 1.5, 2)
    mb.add_op("AVERAGE_POOL_2D", [t5], [t6], {"padding": "VALID", "stride_h": 1, "stride_w": 1,
                                              "filter_height": 2, "filter_width": 2})
    pads = mb.add_tensor(TensorSpec((4, 2), "int32", data=np.array([[0, 0], [1, 2], [2, 0], [0, 0]], np.int32)))
    t7 = act((1, 7, 6, 8), s1 * 1.5, 2)
    mb.add_op("PAD", [t6, pads], [t7])
    t8 = act((1, 7, 6, 8), s1 * 0.7, -9)
    mb.add_op("QUANTIZE", [t7], [t8])
    t9, s9 = conv(t8, s1 * 0.7, 8, 6, 3, 1, "VALID", (1, 3, 2, 6), dilation=2)
    axes = mb.add_tensor(TensorSpec((2,), "int32", data=np.array([1, 2], np.int32)))
    out = act((1, 6), s9, 0)
    mb.add_op("MEAN", [t9, axes], [out], {"keep_dims": False})
    return mb.build([graph_input], [out])


@pytest.fixture(scope="module")
def network() -> bytes:
    return _network(seeded_rng("patch network"))


def test_stage_splits_are_the_single_tensor_cuts(network):
    c = compile_model(network)
    splits = patch.stage_splits(c.graph, c.order)
    kinds = [c.graph.ops[c.order[s.n_ops - 1]].kind for s in splits]
    # not after the depthwise or the 1x1 conv (the residual's input is still needed), never
    # past the MEAN
    assert kinds == [OpKind.CONV_2D, OpKind.ADD, OpKind.MAX_POOL_2D, OpKind.AVERAGE_POOL_2D,
                     OpKind.PAD, OpKind.QUANTIZE, OpKind.CONV_2D]
    assert [s.n_ops for s in splits] == [1, 4, 5, 6, 7, 8, 9]


@pytest.mark.parametrize("split_pos,grid", [(0, (3, 3)), (1, (2, 2)), (1, (4, 4)), (2, (3, 3)), (3, (2, 2)),
                                            (4, (2, 2)), (5, (2, 2)), (6, (2, 2)), (6, (3, 3)), (1, (4, 2)),
                                            (1, (1, 3)), (2, (3, 1))])
def test_patched_c_gives_tflm_bytes(network, tmp_path, split_pos, grid):
    base = compile_model(network)
    split = patch.stage_splits(base.graph, base.order)[split_pos]
    c = compile_model(network, patch=PatchSetting("fixed", split.last_op_index, grid))
    assert c.patch is not None and c.patch.plan.grid == grid
    assert not verify_plan(c.graph, c.plan)
    writes = [op for op in c.graph.ops if op.kind is OpKind.PATCH_WRITE]
    s_shape = base.graph.tensors[split.tensor].shape
    assert len(writes) == min(grid[0], s_shape[1]) * min(grid[1], s_shape[2])
    # the split tensor is assembled in place: each band's patches in one buffer, the bands
    # at their rows of the split tensor, the source's bands at their rows of the source
    off = {t: tp.offset for t, tp in c.plan.tensors.items()}
    for op in writes:
        if op.inputs[0] >= 0:
            assert off[op.inputs[0]] == off[op.outputs[0]]
    views = [opspec.row_views(c.graph, op) for op in c.graph.ops if op.kind in (OpKind.ROW_BANDS, OpKind.ROW_JOIN)]
    # the network's input rows (17 x 3 bytes) cannot be aligned views: only the split is banded
    assert len(views) == (1 if min(grid[0], s_shape[1]) > 1 and (s_shape[2] * s_shape[3]) % 4 == 0 else 0)
    for whole, parts in views:
        assert all(off[band] == off[whole] + d for band, d in parts)
    assert c.patch.plan.macs >= c.patch.plan.macs_layer_by_layer
    # the MACs worked out from the windows alone are the rewritten graph's
    assert patch.patched_macs(base.graph, base.order, split, grid) == patch.total_macs(c.graph) == c.patch.plan.macs
    generate(c.graph, c.plan, tmp_path, name="net", order=c.order)
    assert host_vs_tflm(network, tmp_path, "net", n_random=3) is None


@pytest.mark.parametrize("split_pos,grid", [(0, (2, 2)), (3, (3, 3))])
def test_float_input_stage_starts_after_its_quantize(tmp_path, split_pos, grid):
    model = _network(seeded_rng("patch network, float input"), float_input=True)
    base = compile_model(model)
    splits = patch.stage_splits(base.graph, base.order)
    assert len(splits) == 7 and all(s.start == 1 for s in splits)
    split = splits[split_pos]
    c = compile_model(model, patch=PatchSetting("fixed", split.last_op_index, grid))
    assert c.graph.ops[c.order[0]].kind is OpKind.QUANTIZE  # layer by layer, before the patches
    generate(c.graph, c.plan, tmp_path, name="net", order=c.order)
    assert host_vs_tflm(model, tmp_path, "net") is None


@pytest.mark.parametrize("split_pos,grid", [(0, (3, 3)), (1, (4, 4)), (3, (2, 2)), (1, (3, 1))])
def test_input_row_bands_are_views_freed_as_read(tmp_path, split_pos, grid):
    """With aligned input rows the source is cut into row bands laid out as views of its rows:
    C equal to TFLM, a band placed one row off is refused by the verifier, and the rows the
    patches are past are reused before the stage ends."""
    model = _network(seeded_rng("patch network, aligned rows"), aligned_rows=True)
    base = compile_model(model)
    split = patch.stage_splits(base.graph, base.order)[split_pos]
    c = compile_model(model, patch=PatchSetting("fixed", split.last_op_index, grid))
    cut = [op for op in c.graph.ops if op.kind is OpKind.ROW_BANDS]
    assert len(cut) == 1
    whole, parts = opspec.row_views(c.graph, cut[0])
    assert len(parts) >= 2
    for band, d in parts:
        tp = c.plan.tensors[band]
        assert tp.offset == c.plan.tensors[whole].offset + d and tp.role.value == "row_view"
    assert not verify_plan(c.graph, c.plan)
    generate(c.graph, c.plan, tmp_path, name="net", order=c.order)
    assert host_vs_tflm(model, tmp_path, "net") is None
    # the first band's bytes hold something else before the last band dies
    band0, last_band = parts[0][0], parts[-1][0]
    tp0 = c.plan.tensors[band0]
    reused = [tp for t, tp in c.plan.tensors.items() if t not in (whole, band0)
              and tp.first_step > tp0.last_step and tp.first_step <= c.plan.tensors[last_band].last_step
              and tp.offset < tp0.offset + tp0.bytes and tp0.offset < tp.offset + tp.bytes]
    assert reused
    moved = dataclasses.replace(tp0, offset=tp0.offset + parts[1][1])
    bad = dataclasses.replace(c.plan, tensors={**c.plan.tensors, band0: moved})
    assert any("overlaps" in line for line in verify_plan(c.graph, bad))


def test_wrong_local_padding_is_caught(network, tmp_path, monkeypatch):
    """The end-to-end check above can fail: pads shifted by one row give other bytes."""
    real = patch._local_pads

    def shifted(lo, n_out, n_in, k, stride, dilation, pad):
        before, after = real(lo, n_out, n_in, k, stride, dilation, pad)
        return (before + 1, max(after - 1, 0)) if before == 0 and after > 0 else (before, after)

    monkeypatch.setattr(patch, "_local_pads", shifted)
    base = compile_model(network)
    split = patch.stage_splits(base.graph, base.order)[1]
    c = compile_model(network, patch=PatchSetting("fixed", split.last_op_index, (3, 3)))
    generate(c.graph, c.plan, tmp_path, name="net", order=c.order)
    assert host_vs_tflm(network, tmp_path, "net") is not None


def test_auto_never_raises_the_peak(network):
    base = compile_model(network)
    auto = compile_model(network, patch=PatchSetting("auto"))
    assert auto.layer_by_layer_arena == base.plan.arena_bytes
    assert auto.plan.arena_bytes <= base.plan.arena_bytes
    assert auto.patch_candidates  # the network has splits and they were weighed
    if auto.patch is None:
        assert all(k.arena_bytes >= base.plan.arena_bytes for k in auto.patch_candidates)
    else:
        assert auto.patch.arena_bytes == auto.plan.arena_bytes
        assert auto.patch.arena_bytes == min(k.arena_bytes for k in auto.patch_candidates)


def test_sram_limit_picks_fewest_macs_that_fit():
    mk = lambda macs, arena: patch.PatchCandidate(  # noqa: E731
        patch.PatchPlan(patch.Split(1, 0, 0), (2, 2), macs, 100), arena, arena)
    cands = [mk(150, 50), mk(120, 80), mk(110, 120)]
    assert patch.best_candidate(cands, 100) == cands[0]
    assert patch.best_candidate(cands, 100, sram_limit=90) == cands[1]
    assert patch.best_candidate(cands, 100, sram_limit=40) is None
    assert patch.best_candidate(cands, 50) is None  # nothing strictly below layer by layer


@pytest.mark.parametrize("text,reason", [
    ("3", "expected off, auto or SPLIT:N"), ("a:2", "expected off, auto"), ("3:9", r"grid N \(or R and C\) must"),
    ("3:0", "must be 1..8"), ("3:2x9", "must be 1..8"), ("3:2x", "SPLIT:RxC"), ("3:x2", "SPLIT:RxC"),
])
def test_bad_patch_flag_is_one_line(text, reason):
    with pytest.raises(ValueError, match=reason):
        PatchSetting.parse(text)


def test_patch_setting_round_trips():
    s = PatchSetting.parse("4:3")
    assert (s.mode, s.split_op, s.grid) == ("fixed", 4, (3, 3))
    assert PatchSetting.parse("4:3x2").grid == (3, 2)
    assert PatchSetting.from_config(s.get_config()) == s
    assert PatchSetting.parse(" AUTO ").mode == "auto"


def test_split_that_is_not_a_stage_end_is_refused(network):
    base = compile_model(network)
    dw = next(op for op in base.graph.ops if op.kind is OpKind.DEPTHWISE_CONV_2D)
    with pytest.raises(ConversionError, match=rf"op {dw.index} does not end a stage.*stages end at ops"):
        compile_model(network, patch=PatchSetting("fixed", dw.index, (2, 2)))


def test_patch_wholly_in_the_padding_is_refused(network):
    """PAD's output corner 2 x 2 of a 3 x 3 grid lies in its padding: no window to compute it
    from, and the refusal says which op and patch."""
    base = compile_model(network)
    pad = next(op for op in base.graph.ops if op.kind is OpKind.PAD)
    with pytest.raises(ConversionError,
                       match=rf"--patch={pad.index}:3x3: op {pad.index} PAD: patch p0_0 reads no pixel"):
        compile_model(network, patch=PatchSetting("fixed", pad.index, (3, 3)))


def _convert(*args: str) -> subprocess.CompletedProcess:
    # a subprocess: the command's absl flags would clash with other modules' in this one
    return subprocess.run([sys.executable, "-m", "tflite_converter.convert", *args],
                          capture_output=True, text=True, timeout=300, check=False)


def test_convert_cli_writes_the_patch_plan(network, tmp_path):
    model = tmp_path / "net.tflite"
    model.write_bytes(network)
    run = _convert(f"--model={model}", f"--output_dir={tmp_path / 'out'}", "--patch=auto")
    assert run.returncode == 0, run.stderr
    assert "patch-based: " in run.stdout
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    entry = plan["patch"]
    assert entry["layer_by_layer_arena_bytes"] >= plan["arena_bytes"]
    assert len(entry["candidates"]) >= 1
    if entry["chosen"] is not None:
        assert entry["chosen"]["arena_bytes"] == plan["arena_bytes"]
    bad = _convert(f"--model={model}", f"--output_dir={tmp_path / 'bad'}", "--patch=1:x")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "SPLIT:N" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_plan_json_has_no_patch_entry_by_default(network):
    assert plan_extra(compile_model(network)) == {}
    assert patch_summary(compile_model(network)) is None


@pytest.mark.skipif(not (SHARED / "tflm_person_detect.tflite").is_file(),
                    reason="../shared/models/tflm_person_detect.tflite is absent (the shared models are not here)")
def test_person_detect_patched_c_gives_tflm_bytes_at_a_lower_peak(tmp_path):
    path = SHARED / "tflm_person_detect.tflite"
    c = compile_model(path, patch=PatchSetting("auto"))
    assert c.patch is not None and c.layer_by_layer_arena is not None
    assert c.plan.arena_bytes < c.layer_by_layer_arena
    assert c.patch.plan.macs_overhead <= 0.3
    generate(c.graph, c.plan, tmp_path, name="net", order=c.order)
    assert host_vs_tflm(path, tmp_path, "net") is None


# ---------------------------------------------------------------------------------------------
# Random networks: every geometry the windows must get right


def _random_network(rng) -> bytes:
    """3 to 5 random spatial layers (CONV_2D / DEPTHWISE_CONV_2D of kernel 1-5, stride 1-2,
    dilation 1-2, SAME or VALID; MAX / AVERAGE pooling), then a MEAN the stage cannot take."""
    mb = ModelBuilder()
    h, w, c = int(rng.integers(9, 21)), int(rng.integers(9, 21)), int(rng.choice([1, 3, 4]))
    scale, zp = 0.05, int(rng.integers(-20, 20))
    x = mb.add_tensor(TensorSpec((1, h, w, c), scale=scale, zero_point=zp))
    inp = x
    for _ in range(int(rng.integers(3, 6))):
        kind = rng.choice(["CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"], p=[.4, .3, .15, .15])
        k = int(rng.integers(1, 6)) if kind != "MAX_POOL_2D" and kind != "AVERAGE_POOL_2D" else int(rng.integers(2, 4))
        stride = int(rng.integers(1, 3))
        dilation = int(rng.integers(1, 3)) if kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and stride == 1 else 1
        padding = str(rng.choice(["SAME", "VALID"]))
        eff = (k - 1) * dilation + 1
        oh = -(-h // stride) if padding == "SAME" else (h - eff) // stride + 1
        ow = -(-w // stride) if padding == "SAME" else (w - eff) // stride + 1
        if oh < 2 or ow < 2:
            continue
        if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            y = mb.add_tensor(TensorSpec((1, oh, ow, c), scale=scale, zero_point=zp))  # pools keep it
            mb.add_op(kind, [x], [y], {"padding": padding, "stride_h": stride, "stride_w": stride,
                                       "filter_height": k, "filter_width": k})
        else:
            cout = c if kind == "DEPTHWISE_CONV_2D" else int(rng.integers(2, 9))
            depthwise = kind == "DEPTHWISE_CONV_2D"
            wshape = (1, k, k, cout) if depthwise else (cout, k, k, c)
            wt, bt, ws = weight_and_bias_specs(rng, wshape, 3 if depthwise else 0, scale, True, True)
            out_scale = float(scale * np.mean(ws) * 3.0 * k * np.sqrt(1 if depthwise else c))
            zp = int(rng.integers(-10, 10))
            y = mb.add_tensor(TensorSpec((1, oh, ow, cout), scale=out_scale, zero_point=zp))
            opts = {"padding": padding, "stride_h": stride, "stride_w": stride, "dilation_h_factor": dilation,
                    "dilation_w_factor": dilation, "activation": str(rng.choice(["NONE", "RELU6"]))}
            if depthwise:
                opts["depth_multiplier"] = 1
            mb.add_op(kind, [x, mb.add_tensor(wt), mb.add_tensor(bt)], [y], opts)
            c, scale = cout, out_scale
        x, h, w = y, oh, ow
    axes = mb.add_tensor(TensorSpec((2,), "int32", data=np.array([1, 2], np.int32)))
    out = mb.add_tensor(TensorSpec((1, c), scale=scale, zero_point=0))
    mb.add_op("MEAN", [x, axes], [out], {"keep_dims": False})
    return mb.build([inp], [out])


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("PATCH_SEEDS", 10))))
def test_random_networks_patched_give_tflm_bytes(tmp_path, seed):
    rng = np.random.default_rng([seed, 14])
    model = _random_network(rng)
    base = compile_model(model)
    splits = patch.stage_splits(base.graph, base.order)
    assert splits, "every layer of these networks can run per patch"
    checked = 0
    for k, split in enumerate([splits[-1], splits[int(rng.integers(0, len(splits)))]]):
        grid = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        try:
            c = compile_model(model, patch=PatchSetting("fixed", split.last_op_index, grid))
        except ConversionError as e:
            assert "reads no pixel" in str(e)  # a patch wholly in the padding: refused, not wrong
            continue
        assert not verify_plan(c.graph, c.plan)
        assert patch.patched_macs(base.graph, base.order, split, grid) == patch.total_macs(c.graph)
        generate(c.graph, c.plan, tmp_path / str(k), name="net", order=c.order)
        assert host_vs_tflm(model, tmp_path / str(k), "net") is None, (seed, split, grid)
        checked += 1
    assert checked
