"""BATCH_MATMUL int8 (engine/kernels/batch_matmul.c mcu_batch_matmul_s8) against TFLite
Micro: 2-D to 5-D operands, every adj_x / adj_y combination, broadcast batch dimensions
(and ranks that differ), a constant RHS or LHS, sizes 1, 3 and 17, nonzero zero points on
both operands, on the host and on the emulated Cortex-M7 (portable and DSP builds); every
product of all int8 operand pairs for quantizations that tell TFLM's multiplier apart from
its float32-product form; kernels with one offset dropped fail; int8 exports of the TF
converter (tests/batch_matmul_patterns.py); and the refusals (what TFLM refuses, and its
int16 / float32 kernels that are not built here)."""
from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest
from conftest import REPO_ROOT

from engine import qemu, quant_ops
from engine.host import HostModel
from engine.quantization import quantize_multiplier
from engine.tflm import TflmModel
from tests import kernel_harness as kh
from tests.batch_matmul_patterns import PATTERNS
from tests.keras_patterns import export_in_child, exported_model
from tests.tflite_builder import ModelBuilder, TensorSpec, build_model, build_single_op_model
from tflite_converter import schema
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite

ARENA = 1 << 20
# (lhs shape, rhs shape, adj_x, adj_y, constant operand: None / "lhs" / "rhs")
CASES = [
    ((3, 4), (4, 5), False, False, None),
    ((2, 3, 17), (2, 17, 5), False, False, None),
    ((2, 17, 3), (2, 17, 5), True, False, None),
    ((2, 3, 17), (2, 5, 17), False, True, None),
    ((2, 17, 3), (2, 1, 17), True, True, None),
    ((1, 1, 1), (1, 1, 1), False, False, None),
    ((2, 3, 6, 8), (2, 3, 6, 8), False, True, None),
    ((3, 1, 3, 17), (1, 2, 17, 1), False, False, None),  # both sides broadcast
    ((1, 3, 17), (2, 1, 1, 17, 5), False, False, None),  # ranks 3 and 5
    ((2, 2, 1, 4, 3), (1, 2, 3, 5, 4), True, True, None),  # 5-D, both broadcast
    ((1, 2, 6, 17), (2, 17, 3), False, False, "rhs"),  # the TF export's constant RHS
    ((2, 3, 17), (5, 17), False, True, "rhs"),
    ((4, 3), (2, 4, 5), True, False, "lhs"),
]


def _out_shape(ls, rs, adj_x, adj_y) -> tuple[int, ...]:
    el = ls[:-2] + (ls[-1], ls[-2]) if adj_x else ls
    er = rs[:-2] + (rs[-1], rs[-2]) if adj_y else rs
    return tuple(np.broadcast_shapes(el[:-2], er[:-2])) + (el[-2], er[-1])


def _case_id(c) -> str:
    ls, rs, ax, ay, const = c
    return (f"{'x'.join(map(str, ls))}@{'x'.join(map(str, rs))}"
            f"{'_ax' if ax else ''}{'_ay' if ay else ''}{'_c' + const if const else ''}")


def _bmm_model(ls, rs, adj_x=False, adj_y=False, const=None, quant=None, rng=None) -> bytes:
    """One BATCH_MATMUL; `quant` (s_lhs, zp_lhs, s_rhs, zp_rhs, s_out, zp_out), else random
    with nonzero zero points and an output scale that spreads the results over int8."""
    rng = rng if rng is not None else kh.seeded_rng(f"BMM {ls} {rs} {adj_x} {adj_y} {const}")
    k = ls[-2] if adj_x else ls[-1]
    if quant is None:
        sl, sr = (float(np.float32(rng.uniform(0.005, 0.05))) for _ in range(2))
        zl, zr, zo = (int(v) for v in rng.integers(-40, 40, 3))
        so = float(np.float32(sl * sr * 90.0 * np.sqrt(k)))
        quant = (sl, zl, sr, zr, so, zo)
    sl, zl, sr, zr, so, zo = quant

    def data(shape, which):
        return rng.integers(-128, 128, shape).astype(np.int8) if const == which else None

    return build_single_op_model(
        "BATCH_MATMUL", [TensorSpec(ls, scale=sl, zero_point=zl, data=data(ls, "lhs")),
                         TensorSpec(rs, scale=sr, zero_point=zr, data=data(rs, "rhs"))],
        [TensorSpec(_out_shape(ls, rs, adj_x, adj_y), scale=so, zero_point=zo)],
        {"adj_x": adj_x, "adj_y": adj_y})


@kh.needs_host_compiler
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_batch_matmul_matches_tflm(case, tmp_path):
    model = _bmm_model(*case)
    kh.assert_host_matches_tflm_on_random_inputs(model, tmp_path, samples=3)
    assert "mcu_batch_matmul_s8(" in kh.generated_source(tmp_path / "gen")


@kh.needs_host_compiler
@pytest.mark.parametrize("case", [CASES[4], CASES[9], CASES[10], CASES[12]], ids=_case_id)
def test_sanitizer_clean(case, tmp_path):
    """-fsanitize=address,undefined: the strides never leave an operand, also at the int8
    extremes (every product saturating the output)."""
    model = _bmm_model(*case)
    d = kh.convert(model, tmp_path)
    ref = TflmModel(model)
    shapes = [s for s, c in ((case[0], "lhs"), (case[1], "rhs")) if case[4] != c]
    rng = kh.seeded_rng(f"BMM asan {case}")
    samples = [[rng.integers(-128, 128, s).astype(np.int8) for s in shapes]]
    samples += [[np.full(s, v, np.int8) for s in shapes] for v in (127, -128)]
    for got, sample in zip(HostModel(d, "m", sanitize=True).run_many(samples), samples):
        kh.assert_same_outputs(got, ref.run(sample))


@kh.needs_host_compiler
def test_same_tensor_on_both_sides(tmp_path):
    """x @ x^T (one activation as LHS and RHS, adj_y)."""
    model = build_model(
        [TensorSpec((2, 5, 7), scale=0.03, zero_point=-6),
         TensorSpec((2, 5, 5), scale=0.2, zero_point=11)],
        [("BATCH_MATMUL", [0, 0], [1], {"adj_y": True})], [0], [1])
    kh.assert_host_matches_tflm_on_random_inputs(model, tmp_path, samples=3)


def test_numpy_reference_matches_tflm():
    """quant_ops.batch_matmul_reference (the arithmetic the kernel implements) on a case
    with every kind of broadcasting and both adj flags."""
    ls, rs, ax, ay, _ = CASES[9]
    model = _bmm_model(ls, rs, ax, ay)
    g = read_tflite(model)
    lhs, rhs, y = (g.tensors[i] for i in (*g.ops[0].inputs, g.ops[0].outputs[0]))
    p = quant_ops.batch_matmul_params(float(lhs.quant.scale[0]), int(lhs.quant.zero_point[0]),
                                      float(rhs.quant.scale[0]), int(rhs.quant.zero_point[0]),
                                      float(y.quant.scale[0]), int(y.quant.zero_point[0]))
    rng = kh.seeded_rng("BMM numpy")
    x1, x2 = (rng.integers(-128, 128, s).astype(np.int8) for s in (ls, rs))
    want = TflmModel(model).run([x1, x2])[0]
    assert np.array_equal(quant_ops.batch_matmul_reference(p, x1, x2, ax, ay), want)


# Quantizations whose multiplier in double (TFLM's, as the pinned wheel computes it) and
# with the scales multiplied in float32 first (the public kernel_util.cc) differ, so that
# some of the 65,536 products of two int8 values round differently.
DOUBLE_VS_FLOAT = [
    (0.048480380326509476, -18, 0.012335674837231636, 19, 0.13477465510368347, -9),
    (0.005599805153906345, 16, 0.006878346670418978, -11, 0.004833030514419079, -10),
]


def _all_products() -> tuple[np.ndarray, np.ndarray]:
    v = np.arange(-128, 128).astype(np.int8)
    return v.reshape(256, 1), v.reshape(1, 256)


@kh.needs_host_compiler
@pytest.mark.parametrize("quant", DOUBLE_VS_FLOAT, ids=["a", "b"])
def test_multiplier_all_products_match_tflm(quant, tmp_path):
    """[256, 1] @ [1, 256]: every pair of int8 operands once. Ours and the numpy model
    equal TFLM; the float32-product multiplier would not."""
    model = _bmm_model((256, 1), (1, 256), quant=quant)
    x1, x2 = _all_products()
    want = TflmModel(model, arena_size=ARENA).run([x1, x2])[0]
    d = kh.convert(model, tmp_path)
    kh.assert_same_outputs(HostModel(d, "m").run([x1, x2]), [want])
    sl, zl, sr, zr, so, zo = quant
    p = quant_ops.batch_matmul_params(*quant)
    assert np.array_equal(quant_ops.batch_matmul_reference(p, x1, x2), want)
    m, sh = quantize_multiplier(float(np.float32(np.float32(sl) * np.float32(sr)))
                                / float(np.float32(so)))
    assert (m, sh) != (p.multiplier, p.shift)
    f32 = quant_ops.BatchMatMulParams(p.lhs_offset, p.rhs_offset, p.out_offset, m, sh)
    assert not np.array_equal(quant_ops.batch_matmul_reference(f32, x1, x2), want)


# A kernel with one term dropped (`old` -> `new` in the copied engine/kernels/batch_matmul.c)
PERTURBATIONS = {
    "no lhs offset": ("((int32_t)l[t * lk] + lo)", "((int32_t)l[t * lk] + 0 * lo)"),
    "no rhs offset": ("((int32_t)r[t * rk] + ro)", "((int32_t)r[t * rk] + 0 * ro)"),
    "no output offset": ("q[MCU_BMM_OUT_OFFSET], -128", "0 * q[MCU_BMM_OUT_OFFSET], -128"),
}


@kh.needs_host_compiler
@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbed_kernel_fails(name, tmp_path):
    """The zero points of the cases above are nonzero: a kernel that forgets one of them
    gives other bytes than TFLM (so the comparisons above would catch it)."""
    ls, rs, ax, ay, _ = CASES[2]
    model = _bmm_model(ls, rs, ax, ay)
    d = kh.convert(model, tmp_path)
    src = d / "kernels" / "batch_matmul.c"
    old, new = PERTURBATIONS[name]
    text = src.read_text()
    assert old in text
    bad = tmp_path / "bad"
    shutil.copytree(d, bad)
    (bad / "kernels" / "batch_matmul.c").write_text(text.replace(old, new))
    rng = kh.seeded_rng("BMM perturbed")
    x1, x2 = (rng.integers(-128, 128, s).astype(np.int8) for s in (ls, rs))
    want = TflmModel(model).run([x1, x2])
    kh.assert_same_outputs(HostModel(d, "m").run([x1, x2]), want)
    assert not np.array_equal(HostModel(bad, "m").run([x1, x2])[0], want[0])


@kh.needs_cortex_m7
def test_batch_matmul_on_cortex_m7(tmp_path):
    """Strided and contiguous (DSP: four taps a step, K = 17 leaves a tail of one) operands,
    broadcasting, a constant RHS; portable and DSP builds."""
    for k, case in enumerate([CASES[2], CASES[3], CASES[7], CASES[10]]):
        model = _bmm_model(*case)
        ref = TflmModel(model)
        rng = np.random.default_rng(k)
        samples = [kh.random_model_inputs(ref, rng) for _ in range(2)]
        kh.assert_cortex_m7_matches(kh.convert(model, tmp_path / str(k)), "m", samples,
                                    kh.tflm_outputs(model, samples))


# The "taps_last" variant (mcu_batch_matmul_taps_last_s8): a computed operand whose taps are
# not innermost copied taps-last into scratch the plan has free. A lone BATCH_MATMUL leaves
# no room (its arena is its operands and output), so its RHS is sliced out of a wide input
# that dies there: (2, 3, 17) @ (4, 1, 17, 5), each side broadcast over the other's batch.
WIDE = (4, 1, 60, 17)


def _bmm_after_slice(adj_x: bool, adj_y: bool) -> bytes:
    rng = kh.seeded_rng(f"BMM taps last {adj_x} {adj_y}")
    mb = ModelBuilder()
    a = mb.add_tensor(TensorSpec((2, 17, 3) if adj_x else (2, 3, 17), scale=0.02,
                                 zero_point=int(rng.integers(-30, 30))))
    x = mb.add_tensor(TensorSpec(WIDE, scale=0.03, zero_point=-4))
    end = (4, 1, 5, 17) if adj_y else (4, 1, 17, 5)
    r = mb.add_tensor(TensorSpec(end, scale=0.03, zero_point=-4))
    y = mb.add_tensor(TensorSpec((4, 2, 3, 5), scale=0.02 * 0.03 * 300, zero_point=9))
    consts = [mb.add_tensor(kh.const_int32(v)) for v in ([0, 0, 0, 0], list(end), [1, 1, 1, 1])]
    mb.add_op("STRIDED_SLICE", [x, *consts], [r])
    mb.add_op("BATCH_MATMUL", [a, r], [y], {"adj_x": adj_x, "adj_y": adj_y})
    return mb.build([a, x], [y])


@kh.needs_host_compiler
@pytest.mark.parametrize("adj", [(False, False), (True, False), (True, True)],
                         ids=["rhs", "lhs_rhs", "lhs"])
def test_taps_last_variant_matches_tflm(adj, tmp_path):
    model = _bmm_after_slice(*adj)
    d = kh.convert(model, tmp_path)
    assert "mcu_batch_matmul_taps_last_s8(" in kh.generated_source(d)
    plan = json.loads((d / "plan.json").read_text())
    want = (17 * 3 if adj[0] else 0) + (0 if adj[1] else 17 * 5)
    granted = [s for s in plan["scratch"] if s["op"] == 1]
    assert granted and granted[0]["bytes"] == want and granted[0]["min_bytes"] == 0
    ref = TflmModel(model)
    rng = np.random.default_rng(2)
    samples = [kh.random_model_inputs(ref, rng) for _ in range(3)]
    got = HostModel(d, "m").run_many(samples)
    for g, sample in zip(got, samples):
        kh.assert_same_outputs(g, ref.run(sample))
    if qemu.toolchain_available():
        kh.assert_cortex_m7_matches(d, "m", samples[:2], kh.tflm_outputs(model, samples[:2]))


# ---------------------------------------------------------------------------------------------
# The TF converter's exports


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> pathlib.Path:
    return export_in_child("tests.batch_matmul_patterns",
                           tmp_path_factory.mktemp("batch_matmul_patterns"), REPO_ROOT)


def _adj_flags(model: bytes) -> set[tuple[bool, bool]]:
    m = schema.S.ModelT.InitFromPackedBuf(model, 0)
    code = schema.BUILTIN_CODES["BATCH_MATMUL"]
    return {(bool(o.builtinOptions.adjX), bool(o.builtinOptions.adjY))
            for o in m.subgraphs[0].operators
            if schema.builtin_code(m.operatorCodes[o.opcodeIndex]) == code}


@kh.needs_host_compiler
def test_tf_exports_match_tflm(exported, tmp_path):
    """Every export on the host; two (4-D with two BATCH_MATMULs, the constant RHS) also on
    the Cortex-M7 where QEMU is installed. One test, so that parallel workers do not each
    export the models again."""
    for name in sorted(PATTERNS):
        model = exported_model(exported, name, frozenset({"BATCH_MATMUL"}))
        assert _adj_flags(model) == set(PATTERNS[name].adj), name
        kh.assert_host_matches_tflm_on_random_inputs(model, tmp_path / name, samples=6)
    if not qemu.toolchain_available():
        return
    for name in ("heads_4d", "constant_rhs"):
        model = (exported / f"{name}.tflite").read_bytes()
        ref = TflmModel(model)
        rng = np.random.default_rng(1)
        samples = [kh.random_model_inputs(ref, rng) for _ in range(2)]
        kh.assert_cortex_m7_matches(kh.convert(model, tmp_path / f"m7_{name}"), "m", samples,
                                    kh.tflm_outputs(model, samples))


# ---------------------------------------------------------------------------------------------
# Refusals


def _typed_model(lhs: TensorSpec, rhs: TensorSpec, out: TensorSpec, **options) -> bytes:
    return build_single_op_model("BATCH_MATMUL", [lhs, rhs], [out], options or None)


def _q(shape, dtype="int8", **kw) -> TensorSpec:
    zp = kw.pop("zero_point", 0)
    return TensorSpec(shape, dtype, scale=kw.pop("scale", 0.02), zero_point=zp, **kw)


_W = np.ones((4, 5), np.int8)
# (id, model, our message, TFLM refuses it too)
REFUSALS = [
    ("hybrid", _typed_model(TensorSpec((2, 3, 4), "float32"), _q((4, 5), data=_W),
                            TensorSpec((2, 3, 5), "float32")),
     r"hybrid BATCH_MATMUL .*TFLM refuses it too", True),
    ("int32 output", _typed_model(_q((2, 3, 4)), _q((4, 5)), TensorSpec((2, 3, 5), "int32")),
     r"TFLM's BATCH_MATMUL needs one type", True),
    ("rank 6", _typed_model(_q((1, 1, 1, 2, 3, 4)), _q((4, 5)), _q((1, 1, 1, 2, 3, 5))),
     r"LHS of rank 6 not supported", True),
    ("batch", _typed_model(_q((2, 3, 4)), _q((3, 4, 5)), _q((3, 3, 5))),
     r"batch dimensions .* do not broadcast", True),
    ("inner", _typed_model(_q((2, 3, 4)), _q((2, 5, 5)), _q((2, 3, 5))),
     r"different inner dimensions 4 and 5", True),
    ("inner adj_y", _typed_model(_q((2, 3, 4)), _q((2, 4, 5)), _q((2, 3, 4)), adj_y=True),
     r"different inner dimensions 4 and 5", True),
    ("output size", _typed_model(_q((2, 3, 4)), _q((2, 4, 5)), _q((2, 3, 6))),
     r"shape \[2, 3, 6\] does not match the expected \[2, 3, 5\]", True),
    ("int16", _typed_model(_q((2, 3, 4), "int16"), _q((2, 4, 5), "int16"),
                           _q((2, 3, 5), "int16")),
     r"int16 BATCH_MATMUL not supported", False),
    ("float32", _typed_model(TensorSpec((2, 3, 4), "float32"), TensorSpec((2, 4, 5), "float32"),
                             TensorSpec((2, 3, 5), "float32")),
     r"float32 BATCH_MATMUL not supported \(int8 only\)", False),
    ("per-channel rhs", _typed_model(
        _q((2, 3, 4)), TensorSpec((4, 5), scale=[0.01] * 5, zero_point=[0] * 5,
                                  quantized_dimension=1, data=_W), _q((2, 3, 5))),
     r"per-channel quantized constant operand .*first scale", False),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_with_a_reason(case):
    _name, model, message, tflm_refuses = case
    with pytest.raises(ConversionError, match=r"op 0 BATCH_MATMUL.*" + message):
        read_tflite(model)
    if tflm_refuses:
        with pytest.raises(RuntimeError):
            TflmModel(model)


def test_deep_inner_dimension_refused():
    """K products of up to 255 * 255 each: beyond 33,025 the int32 sum could overflow."""
    k = quant_ops.BATCH_MATMUL_MAX_DEPTH + 1
    model = _typed_model(_q((1, k)), _q((k, 1)), _q((1, 1)))
    with pytest.raises(ConversionError, match=r"op 0 BATCH_MATMUL.*could overflow"):
        read_tflite(model)
