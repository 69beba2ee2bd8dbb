"""benchmarks: the side-by-side run of our C and TFLM, its figures cross-checked.

One small benchmark run (module fixture) over models built here with tests/tflite_builder.py
(an int8 CONV -> RESHAPE -> FULLY_CONNECTED network, and a float32 model the converter
refuses) plus, when ../shared is present, two tiny real models. Its figures are then checked
against the engines themselves: TFLM's reported smallest arena allocates and one byte less
does not, our arena is the header's NAME_ARENA_BYTES, and so on.
"""
from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import compare, measure, real_inputs, report
from benchmarks.measure import BenchOptions, InputSet, Reference, Status
from engine import qemu
from engine.tflm import LiteRtModel, TflmModel
from tflite_converter import reader
from tflite_converter.codegen.generate import GeneratedModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tflite_builder import TensorSpec, build_model, build_single_op_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_SMALL = ("tflm_hello_world_int8", "mlperf_tiny_ad01_int8")


def _conv_fc_model(rng: np.random.Generator) -> bytes:
    """int8 CONV_2D 3x3 (per-channel) -> RESHAPE -> FULLY_CONNECTED, random weights."""
    w1 = rng.integers(-127, 128, (4, 3, 3, 2))
    w2 = rng.integers(-127, 128, (3, 4 * 4 * 4))
    w1_scales = list(rng.uniform(0.002, 0.02, 4))
    tensors = [
        TensorSpec((1, 6, 6, 2), scale=0.05, zero_point=-2, name="image"),
        TensorSpec((4, 3, 3, 2), scale=w1_scales, zero_point=0, axis=0, data=w1),
        # bias scale = input scale x weight scale, per channel
        TensorSpec((4,), "int32", scale=[0.05 * s for s in w1_scales], zero_point=0, axis=0,
                   data=rng.integers(-300, 300, 4)),
        TensorSpec((1, 4, 4, 4), scale=0.1, zero_point=3),
        TensorSpec((2,), "int32", data=[1, 64]),
        TensorSpec((1, 64), scale=0.1, zero_point=3),
        TensorSpec((3, 64), scale=0.01, zero_point=0, data=w2),
        TensorSpec((3,), "int32", scale=0.001, zero_point=0, data=rng.integers(-300, 300, 3)),
        TensorSpec((1, 3), scale=0.3, zero_point=-1, name="logits"),
    ]
    ops = [
        ("CONV_2D", [0, 1, 2], [3], {"padding": "VALID", "stride_w": 1, "stride_h": 1, "activation": "RELU"}),
        ("RESHAPE", [3, 4], [5], None),
        ("FULLY_CONNECTED", [5, 6, 7], [8], None),
    ]
    return build_model(tensors, ops, [0], [8])


def _float_model() -> bytes:
    """float32 FULLY_CONNECTED: the converter refuses float arithmetic."""
    return build_single_op_model(
        "FULLY_CONNECTED",
        [TensorSpec((1, 4), "float32"), TensorSpec((2, 4), "float32", data=np.ones((2, 4))), None],
        [TensorSpec((1, 2), "float32")])


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("models")
    built = models_dir / "built_conv_fc.tflite"
    built.write_bytes(_conv_fc_model(np.random.default_rng(3)))
    refused = models_dir / "built_float_fc.tflite"
    refused.write_bytes(_float_model())
    models = [built, refused]
    if (SHARED / "models").is_dir():
        models += [SHARED / "models" / f"{m}.tflite" for m in SHARED_SMALL]
    out = tmp_path_factory.mktemp("bench")
    options = BenchOptions(num_inputs=4, num_real=3, host_repeats=3,
                           qemu=qemu.toolchain_available(), cpus=("cortex-m7",), qemu_inputs=1,
                           data_dir=str(SHARED / "data") if (SHARED / "data").is_dir() else None)
    baseline = SHARED / "baselines" / "tflm_cortex_m7.json"
    doc, results = compare.run_benchmark(models, out, options, baseline, command="test",
                                         show_progress=False)
    return {"dir": out, "doc": doc, "results": {r.model: r for r in results}}


def _converted(bench):
    return [r for r in bench["results"].values() if r.status == Status.OK.value]


# ---------------------------------------------------------------------------------------------
# Figures cross-checked against the engines


def test_tflm_smallest_arena_is_tight(bench):
    checked = 0
    for r in _converted(bench):
        n = r.sram.tflm_smallest_bytes
        assert n is not None, r.errors
        data = Path(r.path).read_bytes()
        TflmModel(data, arena_size=n)  # allocates
        with pytest.raises(RuntimeError):
            TflmModel(data, arena_size=n - 1)
        checked += 1
    assert checked >= 1


def test_our_arena_is_the_header_macro(bench):
    for r in _converted(bench):
        model = GeneratedModel.load(r.generated_dir)
        text = model.header.read_text()
        m = re.search(rf"#define {r.c_name}_ARENA_BYTES (\d+)", text)
        assert m is not None
        assert r.sram.ours_arena_bytes == int(m.group(1)) == measure.header_arena_bytes(model)
        if r.sram.ours_static_ram_bytes is not None:  # the arena is part of the object's RAM
            assert r.sram.ours_static_ram_bytes >= r.sram.ours_arena_bytes


def test_outputs_agree_with_tflm(bench):
    for r in _converted(bench):
        a = r.agreement(Reference.TFLM, InputSet.RANDOM)
        assert a is not None and a.refused is None
        assert a.identical, (r.model, a)
        for run in r.latency.qemu:
            assert run.outputs_identical_to_tflm == run.samples
            assert all(n > 0 for n in run.instructions)


def test_tflm_plan_replica_matches_tflm_head(bench):
    """The replica behind the TFLM curve of the pictures gives TFLM's own planned arena."""
    for r in _converted(bench):
        assert r.sram.tflm_head_bytes is not None
        assert r.sram.tflm_replica_arena_bytes == r.sram.tflm_head_bytes, r.model
        assert max(r.profile.tflm_live_bytes) <= r.sram.tflm_replica_arena_bytes
        assert len(r.profile.tflm_live_bytes) == len(reader.load_tflite(r.path).ops)


def test_flash_figures_from_the_m7_object(bench):
    if not qemu.toolchain_available():
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm not installed")
    for r in _converted(bench):
        f = r.flash
        assert f.ours_model_bytes == f.ours_model_text + f.ours_model_rodata + f.ours_model_data
        # the weights are in Flash: at least the constant bytes the generator emitted, as
        # read-only data or, where the compiler folded a small table into the code, as code
        assert f.ours_model_text + f.ours_model_rodata >= GeneratedModel.load(r.generated_dir).const_bytes
        assert f.ours_image_bytes > f.ours_model_bytes


# ---------------------------------------------------------------------------------------------
# Outputs of the run


def test_patch_figures(bench):
    """Every converted model has its --patch=auto record: never above layer by layer, and
    where a split is used, its C gives TFLM's bytes (host and, where run, the Cortex-M7)."""
    for r in _converted(bench):
        p = r.patch
        assert p is not None, r.errors
        assert p.arena_bytes <= p.layer_by_layer_bytes
        assert p.layer_by_layer_without_input_bytes <= p.layer_by_layer_bytes
        if p.split_op is None:
            assert (p.arena_bytes, p.grid) == (p.layer_by_layer_bytes, None)
            continue
        assert p.arena_bytes < p.layer_by_layer_bytes and p.macs_overhead >= 0
        assert p.samples > 0 and p.identical_samples == p.samples
        if p.m7_instructions is not None:
            assert p.m7_identical is True
    text = (bench["dir"] / "results.md").read_text()
    assert "## Patch-based inference" in text


def test_results_json_keys(bench):
    doc = json.loads((bench["dir"] / report.RESULTS_JSON).read_text())
    for key in ("command", "wall_seconds", "options", "machine", "baseline", "geomean", "models"):
        assert key in doc
    for key in ("python", "packages", "tools", "cpu", "cores"):
        assert key in doc["machine"]
    assert {"numpy", "tflite-micro", "ai-edge-litert"} <= set(doc["machine"]["packages"])
    ok = [m for m in doc["models"] if m["status"] == "ok"]
    assert ok
    for m in ok:
        for section, keys in {
            "sram": ("ours_arena_bytes", "ours_lower_bound_bytes", "tflm_recorded_bytes",
                     "tflm_head_bytes", "tflm_tail_bytes", "tflm_smallest_bytes", "ratio_tflm_over_ours"),
            "flash": ("tflite_bytes", "ours_model_bytes", "ours_image_bytes", "ratio_tflm_over_ours"),
            "latency": ("host_tflm_seconds", "host_ours_seconds", "host_ratio_tflm_over_ours", "qemu"),
            "profile": ("ours_live_bytes", "tflm_live_bytes"),
        }.items():
            for k in keys:
                assert k in m[section], (section, k)
        assert m["latency"]["host_tflm_seconds"] > 0 and m["latency"]["host_ours_seconds"] > 0
        assert {(c["reference"], c["inputs"]) for c in m["correctness"]} >= {("tflm", "random"), ("litert", "random")}
    # round trip: the markdown renders the same from the json
    doc2, results2 = report.load_results(bench["dir"] / report.RESULTS_JSON)
    assert report.markdown(doc2, results2) == (bench["dir"] / report.RESULTS_MD).read_text()


def test_refused_model_listed_and_run_goes_on(bench):
    r = bench["results"]["built_float_fc"]
    assert r.status == Status.REFUSED.value
    assert r.reasons and any("FULLY_CONNECTED" in line and "float32" in line for line in r.reasons)
    assert bench["results"]["built_conv_fc"].status == Status.OK.value
    md = (bench["dir"] / report.RESULTS_MD).read_text()
    refused_section = md.split("## Refused by the converter", 1)[1]
    assert "built_float_fc" in refused_section and "float32" in refused_section


def _cells(line: str) -> list[str]:
    assert line.startswith("| ") and line.endswith(" |"), line
    return re.split(r"(?<!\\)\|", line[1:-1])


def test_markdown_tables_well_formed(bench):
    md = (bench["dir"] / report.RESULTS_MD).read_text()
    lines = md.splitlines()
    tables, i = 0, 0
    while i < len(lines):
        if not lines[i].startswith("|"):
            i += 1
            continue
        block = []
        while i < len(lines) and lines[i].startswith("|"):
            block.append(lines[i])
            i += 1
        header, sep, rows = _cells(block[0]), _cells(block[1]), block[2:]
        assert all(re.fullmatch(r"\s*-{3}:?\s*", c) for c in sep), block[1]
        assert len(sep) == len(header)
        for row in rows:
            assert len(_cells(row)) == len(header), row
        tables += 1
        assert rows
    assert tables == 6  # summary, correctness, SRAM, Flash, latency, patch-based
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "geometric mean" in summary
    for r in _converted(bench):
        assert f"| {r.model} |" in summary


def test_pictures_written(bench):
    for r in _converted(bench):
        png = bench["dir"] / f"memory_{r.model}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (bench["dir"] / "summary.png").is_file()
    assert not (bench["dir"] / "memory_built_float_fc.png").exists()


# ---------------------------------------------------------------------------------------------
# Pieces


def test_geomean():
    assert report.geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert report.geomean([None, 3.0, 0.0]) == pytest.approx(3.0)
    assert report.geomean([None]) is None


def test_compare_outputs_counts_differences():
    ours = [[np.array([1, 2, 3], np.int8)], [np.array([5, 5, 5], np.int8)]]
    ref = [[np.array([1, 2, 3], np.int8)], [np.array([5, 7, 4], np.int8)]]
    a = measure.compare_outputs(ours, ref, Reference.TFLM, InputSet.RANDOM)
    assert (a.samples, a.identical_samples, a.differing_elements, a.max_abs_diff) == (2, 1, 2, 2.0)
    assert not a.identical
    assert report.agreement_text(a).startswith("1/2 differ")


def test_replica_greedy_order():
    """Largest first at the lowest free offset: a chain a -> b -> c of 32, 16, 32 bytes
    needs 48 bytes (a and b, then b and c), not the 80 of their sum."""
    from tflite_converter.ir import DType, Graph, Op, OpKind, Tensor

    t = [Tensor(i, f"t{i}", (1, n), DType.INT8) for i, n in enumerate((32, 16, 32))]
    ops = [Op(0, OpKind.RELU, [0], [1]), Op(1, OpKind.RELU, [1], [2])]
    g = Graph(t, ops, [0], [2], "chain")
    rep = measure.replicate_tflm_plan(g)
    assert rep.arena_bytes == 48
    assert rep.live_bytes == (48, 48)


def test_read_bmp_bottom_up(tmp_path):
    """Rows stored bottom-up come back top row first; palette indices map to gray."""
    w, h = 3, 2
    rows_top_first = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    stride = 4
    pixels = b"".join(bytes(r) + b"\0" * (stride - w) for r in rows_top_first[::-1])
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    offset = 14 + 40 + len(palette)
    data = (b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
            + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, len(pixels), 0, 0, 256, 256)
            + palette + pixels)
    p = tmp_path / "x.bmp"
    p.write_bytes(data)
    np.testing.assert_array_equal(real_inputs.read_bmp(p), rows_top_first)


def test_quantize_rounds_half_away_and_saturates():
    class Spec:
        shape, dtype, scale, zero_point = (4,), "int8", 0.5, -1
    q = real_inputs.quantize(np.array([0.25, -0.25, 100.0, -100.0]), Spec())
    np.testing.assert_array_equal(q, np.array([0, -2, 127, -128], np.int8))


def test_person_images_give_tflm_reference_outputs():
    if not (SHARED / "data" / "tflm_person_detection").is_dir():
        pytest.skip(f"../shared not found at {SHARED}: person images unavailable")
    model = SHARED / "models" / "tflm_person_detect.tflite"
    tflm = TflmModel(model)
    spec = GeneratedModelSpec((1, 96, 96, 1), "int8", None, None)
    real = real_inputs.real_inputs_for("tflm_person_detect", [spec], SHARED / "data")
    outs = {name: tflm.run(s)[0].ravel().tolist() for name, s in zip(real.names, real.samples)}
    assert outs == {"person.bmp": [-113, 113], "no_person.bmp": [57, -57]}
    assert real.labels == [0, 1]  # sorted: no_person.bmp, person.bmp


def test_mnist_inputs_quantized_with_model_scale():
    if not (SHARED / "data" / "mnist").is_dir():
        pytest.skip(f"../shared not found at {SHARED}: MNIST unavailable")
    model = SHARED / "models" / "tinymaix_mnist_resnet_q.tflite"
    ref = LiteRtModel(model)
    spec = GeneratedModelSpec((1, 28, 28, 1), "int8", 1 / 255, -128)
    real = real_inputs.real_inputs_for("tinymaix_mnist_resnet_q", [spec], SHARED / "data", limit=30)
    correct = sum(int(np.argmax(ref.run(s)[0])) == lab for s, lab in zip(real.samples, real.labels))
    assert len(real.samples) == 30 and correct >= 27  # the model scores about 97%


def test_cifar10_inputs_cover_every_class_and_classify():
    if not (SHARED / "data" / "cifar10_jpeg").is_dir():
        pytest.skip(f"../shared not found at {SHARED}: CIFAR-10 unavailable")
    model = SHARED / "models" / "mlperf_tiny_ic_resnet_quant.tflite"
    tflm = TflmModel(model)
    spec = GeneratedModelSpec((1, 32, 32, 3), "int8", 1.0, -128)
    real = real_inputs.real_inputs_for("mlperf_tiny_ic_resnet_quant", [spec], SHARED / "data", limit=40)
    assert real.labels == list(range(10)) * 4  # class by class in turn
    assert all(s[0].dtype == np.int8 and s[0].shape == (1, 32, 32, 3) for s in real.samples)
    correct = sum(int(np.argmax(tflm.run(s)[0])) == lab for s, lab in zip(real.samples, real.labels))
    assert correct >= 24  # 75 of the first 100; chance is 4 of 40: a wrong pixel mapping fails
    with pytest.raises(real_inputs.RealInputError, match="zero point -128"):
        real_inputs.real_inputs_for("tinymaix_cifar10_q", [GeneratedModelSpec((1, 32, 32, 3), "int8", 1 / 255, 0)],
                                    SHARED / "data", limit=1)


class GeneratedModelSpec:
    def __init__(self, shape, dtype, scale, zero_point):
        self.shape, self.dtype, self.scale, self.zero_point = shape, dtype, scale, zero_point


def test_select_models(tmp_path, monkeypatch):
    (tmp_path / "a.tflite").write_bytes(b"x")
    (tmp_path / "b.tflite").write_bytes(b"x")
    monkeypatch.setenv("BUILD_WORKING_DIRECTORY", str(tmp_path))
    assert [p.name for p in compare.select_models(["*.tflite"])] == ["a.tflite", "b.tflite"]
    assert [p.name for p in compare.select_models([".", "a.tflite"])] == ["a.tflite", "b.tflite"]
    with pytest.raises(compare.ModelSelectionError, match="nope.tflite"):
        compare.select_models(["nope.tflite"])


def test_default_models_without_shared_are_mcunet_exports(tmp_path, monkeypatch):
    """Without ../shared the default is the project's MCUNet exports (TensorFlow is imported
    only by the export, stubbed here)."""
    monkeypatch.setenv(compare.REPO_ENV, str(tmp_path / "repo"))
    asked = []
    monkeypatch.setattr(compare, "_export_mcunet",
                        lambda names: asked.extend(names) or [tmp_path / f"{n}.tflite" for n in names])
    paths = compare.default_models()
    assert "mcunet-in0" in asked and len(paths) == len(asked)


def test_command_line(tmp_path):
    """The real command: flags, relative paths, exit status, files."""
    (tmp_path / "m.tflite").write_bytes(_conv_fc_model(np.random.default_rng(5)))
    (tmp_path / "f.tflite").write_bytes(_float_model())
    env = dict(os.environ, BUILD_WORKING_DIRECTORY=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--models=m.tflite,f.tflite", "--output_dir=out",
         "--noqemu", "--num_inputs=2", "--host_repeats=1", "--noplots"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "f: refused by the converter" in proc.stderr
    assert "| m |" in proc.stdout
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [m["status"] for m in doc["models"]] == ["ok", "refused"]
    bad = subprocess.run([sys.executable, "-m", "benchmarks.compare", "--models=m.tflite",
                          "--output_dir=out", "--cpus=cortex-m99"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "cortex-m99" in bad.stderr


def test_kernel_speed_estimated_ms_and_published_table():
    from benchmarks import kernel_speed
    from nas.latency import CPI_ASSUMPTIONS

    cpi = CPI_ASSUMPTIONS["cortex-m7"][0]
    # 216,000 instructions at 216 MHz are 1 ms per cycle of CPI
    assert abs(kernel_speed.estimated_ms(216_000, 216_000_000) - cpi) < 1e-12
    assert abs(kernel_speed.estimated_ms(280_000, 280_000_000) - cpi) < 1e-12
    vww = kernel_speed.PUBLISHED_MS["VWW"][0]
    lines = kernel_speed.published_table({vww: 2_160_000})
    rows = [ln for ln in lines if ln.split()[0] in kernel_speed.PUBLISHED_MS]
    assert [r.split()[0] for r in rows] == ["VWW"]  # only the tasks whose model was measured
    ours_f746, plumerai, ours_h7, xcube = (float(v) for v in rows[0].split()[1:])
    assert ours_f746 == round(10.0 * cpi, 2) and plumerai == 34.1 and xcube == 23.8
    assert ours_h7 < ours_f746  # the faster clock
    assert "published" in lines[-1] and "not measured here" in lines[-1]
