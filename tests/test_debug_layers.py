"""`convert --debug_layers`: every op's outputs of the generated C against TFLM's.

On a shared model (tinymaix_mnist_resnet_q: convolutions, a residual ADD, a RESHAPE alias,
FULLY_CONNECTED, SOFTMAX) the tool reports every op identical; with the generated C of one op
deliberately broken it names exactly that op first and exits 1; bad input is one line, exit 2.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, SHARED_DIR

from engine.host import have_compiler

MODEL = SHARED_DIR / "models" / "tinymaix_mnist_resnet_q.tflite"
N_OPS = 8  # ops of that .tflite; op 5 is the RESHAPE the plan aliases
ROW = re.compile(r"^\s*(\d+)\s+([A-Z_0-9]+)\s+(\S+)\s+(\S+)\s+(\d+)/(\d+)(.*)$")

pytestmark = [
    pytest.mark.skipif(not MODEL.is_file(), reason=f"shared model {MODEL} not found (../shared absent)"),
    pytest.mark.skipif(not have_compiler(), reason="no host C compiler"),
]


@pytest.fixture(scope="module", autouse=True)
def _needs_tflm():
    pytest.importorskip("tflite_micro", reason="tflite-micro not installed: no TFLM to compare with")


def _convert(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("BUILD_WORKING_DIRECTORY", None)
    return subprocess.run([sys.executable, "-m", "tflite_converter.convert", f"--model={MODEL}", *args],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def _rows(stdout: str) -> dict[int, tuple[str, int, int, int, str]]:
    """op index -> (kind, max |diff|, differing, total, note) of the debug table."""
    table = stdout[stdout.index("debug_layers:"):]
    rows = {}
    for line in table.splitlines():
        m = ROW.match(line)
        if m:
            rows[int(m.group(1))] = (m.group(2), int(m.group(4)), int(m.group(5)), int(m.group(6)),
                                     m.group(7).strip())
    return rows


def test_shared_model_every_op_identical(tmp_path):
    r = _convert(f"--output_dir={tmp_path / 'c'}", "--debug_layers")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = _rows(r.stdout)
    assert sorted(rows) == list(range(N_OPS)), r.stdout
    for k, (kind, max_diff, differing, total, _) in rows.items():
        assert (max_diff, differing) == (0, 0) and total > 0, (k, kind)
    # element counts are the ops' output tensors: the first conv's 14x14x12, the logits' 10
    assert rows[0][0] == "CONV_2D" and rows[0][3] == 14 * 14 * 12
    assert rows[7][0] == "SOFTMAX" and rows[7][3] == 10
    assert rows[5][0] == "RESHAPE" and "alias (no code)" in rows[5][4]
    assert r.stdout.rstrip().endswith(f"all {N_OPS} ops identical")


def _perturb_weight(source: str, op: int) -> str:
    """Add 64 to the first packed weight of op `op`'s convolution."""
    # the weights as the picked kernel packs them: blocked (wpk) or one pixel at a time (wide)
    m = re.search(rf"model_op{op}_(?:wpk|wide)\[\d+\][^=]*=\s*\{{\s*(-?\d+)", source)
    assert m, f"no weight array of op {op} in the generated C"
    w = int(m.group(1))
    return source[:m.start(1)] + str((w + 64 + 128) % 256 - 128) + source[m.end(1):]


def _perturb_output(source: str, op: int, offset: int) -> str:
    """Flip the lowest bit of the first byte op `op` wrote, right after its kernel call."""
    end = f"    MCU_OP_END({op});"
    assert source.count(end) == 1
    return source.replace(end, f"    model_arena[{offset}] ^= 1;\n{end}")


@pytest.mark.parametrize("how,op", [("weight", 2), ("output", 1)])
def test_perturbed_op_is_named_first(tmp_path, how, op):
    from tflite_converter.codegen.generate import convert_model, plan_view
    from tflite_converter.debug_layers import debug_layers, run
    from tflite_converter.pipeline import compile_model

    out = tmp_path / "c"
    convert_model(MODEL, out)
    src = (out / "model.c").read_text()
    if how == "weight":
        src = _perturb_weight(src, op)
    else:
        compiled = compile_model(MODEL)
        [target] = [o for o in compiled.graph.ops if o.index == op]
        src = _perturb_output(src, op, plan_view(compiled.plan, compiled.graph).tensor_offsets[target.outputs[0]])
    (out / "model.c").write_text(src)

    report = debug_layers(MODEL, out)
    first = report.first_difference
    assert first is not None and first.op_index == op, report.format()
    assert all(r.compared and r.differing == 0 for r in report.rows if r.op_index < op), report.format()
    if how == "output":  # exactly the flipped element, by exactly 1
        assert (first.differing, first.max_diff) == (1, 1.0), report.format()
    lines: list[str] = []
    assert run(MODEL, out, out=lines.append) == 1
    last = "\n".join(lines).splitlines()[-1]
    assert last.startswith(f"first op that differs: op {op} CONV_2D"), last

    # the same folder regenerated (unperturbed) compares clean again: the difference was the patch
    shutil.rmtree(out)
    convert_model(MODEL, out)
    assert debug_layers(MODEL, out).first_difference is None


def test_debug_input(tmp_path):
    good, wrong_shape, wrong_dtype = tmp_path / "x.npy", tmp_path / "bad_shape.npy", tmp_path / "bad_dtype.npy"
    rng = np.random.default_rng(1)
    np.save(good, rng.integers(-128, 127, size=(1, 28, 28, 1), endpoint=True).astype(np.int8))
    np.save(wrong_shape, np.zeros((1, 28, 28), np.int8))
    np.save(wrong_dtype, np.zeros((1, 28, 28, 1), np.float32))
    for bad, what in ((wrong_shape, "shape [1, 28, 28]"), (wrong_dtype, "got float32")):
        r = _convert(f"--output_dir={tmp_path / 'c'}", "--debug_layers", f"--debug_input={bad}")
        assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and "--debug_input" in err[0] and what in err[0], r.stderr
        assert "Traceback" not in r.stderr
    r = _convert(f"--output_dir={tmp_path / 'c'}", "--debug_layers", f"--debug_input={good}")
    assert r.returncode == 0 and f"input {good}" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    r = _convert(f"--output_dir={tmp_path / 'c'}", "--debug_layers", f"--debug_input={tmp_path / 'none.npy'}")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_multi_output_op_and_removed_alias(tmp_path):
    """A SPLIT (three outputs, two of them graph outputs) and an identity int8 QUANTIZE the
    passes remove (its output is read as the split's, an alias): every output compared."""
    from tests.tflite_builder import TensorSpec, build_model
    from tflite_converter.codegen.generate import convert_model
    from tflite_converter.debug_layers import debug_layers

    x = TensorSpec((1, 4, 3, 6), scale=0.2, zero_point=3)
    axis = TensorSpec((), "int32", data=np.array(3, np.int32))
    ys = [TensorSpec((1, 4, 3, 2), scale=0.2, zero_point=3) for _ in range(3)]
    z = TensorSpec((1, 4, 3, 2), scale=0.2, zero_point=3)
    model = tmp_path / "split.tflite"
    model.write_bytes(build_model([x, axis, *ys, z], [("SPLIT", [1, 0], [2, 3, 4], {"numSplits": 3}),
                                                      ("QUANTIZE", [3], [5])], inputs=[0], outputs=[2, 4, 5]))
    convert_model(model, tmp_path / "c")
    report = debug_layers(model, tmp_path / "c", seed=3)
    split = [r for r in report.rows if r.op_index == 0]
    [quant] = [r for r in report.rows if r.op_index == 1]
    assert [r.kind for r in split] == ["SPLIT"] * 3 and all(r.compared and r.total == 24 for r in split)
    assert quant.kind == "QUANTIZE" and quant.compared and "aliased (no code)" in quant.note, report.format()
    assert report.first_difference is None, report.format()
