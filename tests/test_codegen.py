"""The C code generator: folder layout, public API, strict C99 builds with gcc and
arm-none-eabi-gcc, two models in one program, refusals, constants.

Converter tests: no TensorFlow import here.
"""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import catalogue, host, qemu
from engine.host import HostModel
from tflite_converter import op_registry
from tflite_converter.codegen import c_writer
from tflite_converter.codegen.context import CodegenContext
from tflite_converter.codegen.generate import GeneratedModel, PlanView, convert_model, generate
from tflite_converter.errors import ConversionError
from tflite_converter.ir import (
    Activation,
    DType,
    ElementwiseAttrs,
    Graph,
    Op,
    OpKind,
    Quantization,
    ReshapeAttrs,
    Tensor,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tflite_builder import TensorSpec, build_model, build_single_op_model  # noqa: E402

ARM_FLAGS = ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard", "-O2")
needs_arm = pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi toolchain not installed")


def _q(scale: float, zp: int) -> Quantization:
    return Quantization(np.array([scale], np.float32), np.array([zp], np.int64))


def _reshape_model_bytes() -> bytes:
    return build_single_op_model(
        "RESHAPE",
        [TensorSpec((1, 2, 3, 4), scale=0.5, zero_point=1), TensorSpec((2,), "int32", data=[2, 12])],
        [TensorSpec((2, 12), scale=0.5, zero_point=1)])


def _conv_model_bytes(rng: np.random.Generator) -> bytes:
    """CONV_2D 3x3 (per-channel) -> DEPTHWISE 3x3 -> RESHAPE -> FULLY_CONNECTED."""
    w1 = rng.integers(-127, 128, (8, 3, 3, 3))
    w2 = rng.integers(-127, 128, (1, 3, 3, 8))
    w3 = rng.integers(-127, 128, (5, 4 * 4 * 8))
    tensors = [
        TensorSpec((1, 8, 8, 3), scale=0.05, zero_point=-3, name="image"),
        TensorSpec((8, 3, 3, 3), scale=list(rng.uniform(0.002, 0.02, 8)), zero_point=0, axis=0, data=w1),
        TensorSpec((8,), "int32", scale=[0.0] * 8, zero_point=0, axis=0, data=rng.integers(-500, 500, 8)),
        TensorSpec((1, 4, 4, 8), scale=0.1, zero_point=2),
        TensorSpec((1, 3, 3, 8), scale=list(rng.uniform(0.002, 0.02, 8)), zero_point=0, axis=3, data=w2),
        TensorSpec((8,), "int32", scale=[0.0] * 8, zero_point=0, axis=0, data=rng.integers(-500, 500, 8)),
        TensorSpec((1, 4, 4, 8), scale=0.2, zero_point=-5),
        TensorSpec((2,), "int32", data=[1, 128]),
        TensorSpec((1, 128), scale=0.2, zero_point=-5),
        TensorSpec((5, 128), scale=0.01, zero_point=0, data=w3),
        TensorSpec((5,), "int32", scale=0.002, zero_point=0, data=rng.integers(-500, 500, 5)),
        TensorSpec((1, 5), scale=0.3, zero_point=7, name="logits"),
    ]
    ops = [
        ("CONV_2D", [0, 1, 2], [3], {"padding": "SAME", "stride_h": 2, "stride_w": 2, "activation": "RELU6"}),
        ("DEPTHWISE_CONV_2D", [3, 4, 5], [6], {"padding": "SAME", "stride_h": 1, "stride_w": 1,
                                               "depth_multiplier": 1, "activation": "RELU"}),
        ("RESHAPE", [6, 7], [8], None),
        ("FULLY_CONNECTED", [8, 9, 10], [11], None),
    ]
    return build_model(tensors, ops, [0], [11])


def _needs_emitters(*kinds: OpKind) -> None:
    records = op_registry.records()
    missing = [k.value for k in kinds if k not in records or records[k].emit is None]
    if missing:
        pytest.skip(f"no emitter yet for {', '.join(missing)}")


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory) -> GeneratedModel:
    _needs_emitters(OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED)
    data = _conv_model_bytes(np.random.default_rng(0))
    d = tmp_path_factory.mktemp("conv")
    model = convert_model(data, d, name="netA")
    (d / "model.tflite").write_bytes(data)
    return model


# ---------------------------------------------------------------------------------------------
# Folder and API


def test_folder_layout_and_api(tmp_path):
    model = convert_model(_reshape_model_bytes(), tmp_path, name="shape_only")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["io.json", "kernels", "plan.json", "shape_only.c", "shape_only.h"]
    header = (tmp_path / "shape_only.h").read_text()
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert f"#define shape_only_ARENA_BYTES {plan['arena_bytes']}\n" in header
    assert "#define shape_only_NUM_INPUTS 1\n" in header and "#define shape_only_NUM_OUTPUTS 1\n" in header
    for decl in ("void *shape_only_input(int index);", "size_t shape_only_input_bytes(int index);",
                 "const void *shape_only_output(int index);", "size_t shape_only_output_bytes(int index);",
                 "int shape_only_invoke(void);"):
        assert decl in header
    assert model.arena_bytes == plan["arena_bytes"] == 24
    # the reshape is an alias: no code, no kernel beyond the shared header
    assert model.kernels == ()
    assert sorted(p.name for p in (tmp_path / "kernels").iterdir()) == [catalogue.COMMON_HEADER]
    assert GeneratedModel.load(tmp_path) == model


def test_api_values_at_run_time(tmp_path):
    convert_model(_reshape_model_bytes(), tmp_path, name="m")
    main = tmp_path.parent / "api_main.c"
    main.write_text("""
#include <stdio.h>
#include <string.h>
#include "m.h"
int main(void) {
    signed char *in = (signed char *)m_input(0);
    const signed char *out;
    int i;
    if (m_input(1) != NULL || m_output(1) != NULL || m_input_bytes(1) != 0) return 10;
    for (i = 0; i < 24; ++i) in[i] = (signed char)(i - 12);
    if (m_invoke() != 0) return 11;
    out = (const signed char *)m_output(0);
    for (i = 0; i < 24; ++i) if (out[i] != (signed char)(i - 12)) return 12;
    printf("%d %d %d %u %u\\n", m_ARENA_BYTES, m_NUM_INPUTS, m_NUM_OUTPUTS,
           (unsigned)m_input_bytes(0), (unsigned)m_output_bytes(0));
    return 0;
}
""")
    exe = tmp_path.parent / "api_main"
    host.compile_c(["gcc", *host.STRICT_FLAGS, "-I", str(tmp_path), str(main), str(tmp_path / "m.c"),
                    "-o", str(exe)], "api test")
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["24", "1", "1", "24", "24"]


def test_name_must_be_identifier(tmp_path):
    with pytest.raises(ConversionError, match="not a C identifier"):
        convert_model(_reshape_model_bytes(), tmp_path, name="9lives")
    with pytest.raises(ConversionError, match="not a C identifier"):
        convert_model(_reshape_model_bytes(), tmp_path, name="a-b")


def test_op_without_emitter_is_refused(tmp_path, monkeypatch):
    import tflite_converter.codegen.ops  # noqa: F401

    tensors = [Tensor(0, "a", (1, 4), DType.INT8, _q(0.1, 0)), Tensor(1, "b", (1, 4), DType.INT8, _q(0.1, 0)),
               Tensor(2, "c", (1, 4), DType.INT8, _q(0.2, 0)), Tensor(3, "d", (4,), DType.INT8, _q(0.2, 0))]
    ops = [Op(7, OpKind.ADD, [0, 1], [2], ElementwiseAttrs(Activation.NONE)),
           Op(9, OpKind.RESHAPE, [2], [3], ReshapeAttrs())]
    graph = Graph(tensors, ops, [0, 1], [3])
    op_registry.records()  # loaded, so that the deletion below sticks
    monkeypatch.delitem(op_registry._RECORDS, OpKind.ADD)
    with pytest.raises(ConversionError) as err:
        generate(graph, PlanView(12, {0: 0, 1: 4, 2: 8, 3: 8}, {}), tmp_path, name="x")
    assert str(err.value) == "op 7 ADD: no C kernel for ADD (no emitter in an op record)"
    assert not (tmp_path / "x.c").exists()


def test_emitter_refusals_are_all_reported_and_bugs_name_the_op(tmp_path, monkeypatch):
    from tflite_converter.errors import Problem

    def refuse(ctx, op):
        raise ConversionError(Problem("shape not supported", op.index, op.kind.value))

    def broken(ctx, op):
        raise KeyError("oops")

    tensors = [Tensor(i, f"t{i}", (4,), DType.INT8) for i in range(3)]
    graph = Graph(tensors, [Op(3, OpKind.RESHAPE, [0], [1], ReshapeAttrs()),
                            Op(4, OpKind.RESHAPE, [1], [2], ReshapeAttrs())], [0], [2])
    reshape = op_registry.record(OpKind.RESHAPE)
    monkeypatch.setitem(op_registry._RECORDS, OpKind.RESHAPE, dataclasses.replace(reshape, emit=refuse))
    with pytest.raises(ConversionError) as err:
        generate(graph, PlanView(4, {0: 0, 1: 0, 2: 0}, {}), tmp_path)
    assert str(err.value).splitlines() == ["op 3 RESHAPE: shape not supported",
                                           "op 4 RESHAPE: shape not supported"]
    monkeypatch.setitem(op_registry._RECORDS, OpKind.RESHAPE, dataclasses.replace(reshape, emit=broken))
    with pytest.raises(ConversionError, match="op 3 RESHAPE: C emitter failed: KeyError"):
        generate(graph, PlanView(4, {0: 0, 1: 0, 2: 0}, {}), tmp_path)


def test_missing_offset_and_scratch_are_refused(tmp_path):
    graph = Graph([Tensor(0, "a", (4,), DType.INT8), Tensor(1, "b", (2, 2), DType.INT8)],
                  [Op(0, OpKind.RESHAPE, [0], [1], ReshapeAttrs())], [0], [1])
    with pytest.raises(ConversionError, match="tensor 'b': the memory plan gives this tensor no arena offset"):
        generate(graph, PlanView(4, {0: 0}, {}), tmp_path)
    ctx = CodegenContext(graph, PlanView(4, {0: 0, 1: 0}, {}), "m")
    with pytest.raises(ConversionError, match="op 0 RESHAPE: the memory plan has no scratch buffer"):
        ctx.scratch(graph.ops[0])


def test_const_arrays_dedup_and_exact_literals():
    graph = Graph([Tensor(0, "a", (2,), DType.INT8)], [], [0], [0])
    ctx = CodegenContext(graph, PlanView(2, {0: 0}, {}), "m")
    a = ctx.const_array("w/1:0", np.array([1, -2, 3], np.int8))
    b = ctx.const_array("other", np.array([1, -2, 3], np.int8))
    c = ctx.const_array("w/1:0", np.array([1, -2, 4], np.int8))
    d = ctx.const_array("w32", np.array([1, -2, 3]), "int32_t")
    assert a == b and len({a, c, d}) == 3 and re.fullmatch(r"m_[A-Za-z0-9_]+", a)
    with pytest.raises(ValueError, match="does not fit int8_t"):
        ctx.const_array("big", np.array([200]), "int8_t")
    assert c_writer.int_literal(-(2**31)) == "(-2147483647 - 1)"
    for v in (0.1, -3.0517578125e-05, 1e-30, 123456.7):
        lit = c_writer.float_literal(v)
        assert float.fromhex(lit[:-1]) == float(np.float32(v))
    assert c_writer.identifier("conv2d/Conv2D;bias:0") == "conv2d_Conv2D_bias_0"


# ---------------------------------------------------------------------------------------------
# Builds


def test_all_kernels_compose_in_one_translation_unit(tmp_path):
    """Generated models include kernel .c files together: no two may define the same name,
    and each must build strictly with gcc and, portable and DSP, for Cortex-M."""
    kernels = sorted(catalogue.available_kernels())
    if not kernels:
        pytest.skip("no kernels yet")
    catalogue.copy_kernels(kernels, tmp_path / "kernels")
    src = tmp_path / "all.c"
    src.write_text("#define MCU_KERNEL static __attribute__((unused))\n"
                   + "".join(f'#include "kernels/{k}.c"\n' for k in kernels))
    host.compile_c(["gcc", *host.STRICT_FLAGS, "-Wvla", "-I", str(tmp_path), "-c", str(src),
                    "-o", str(tmp_path / "all.o")], "all kernels")
    if qemu.toolchain_available():
        for extra in ((), ("-DMCU_NO_DSP",)):
            host.compile_c(["arm-none-eabi-gcc", *host.STRICT_FLAGS, "-Wvla", *ARM_FLAGS, *extra,
                            "-I", str(tmp_path), "-c", str(src), "-o", str(tmp_path / "all_arm.o")],
                           "all kernels for Cortex-M7")


def test_generated_folder_compiles_strictly_with_gcc(conv_model):
    host.compile_check(conv_model.output_dir, "gcc", ("-Wvla",))
    src = conv_model.source.read_text()
    assert "malloc" not in src and "float" not in src.split("int netA_invoke")[1]


@needs_arm
def test_generated_folder_compiles_for_cortex_m(conv_model):
    for extra in ((), ("-DMCU_NO_DSP",)):
        host.compile_check(conv_model.output_dir, "arm-none-eabi-gcc", (*ARM_FLAGS, "-Wvla", *extra))


@needs_arm
def test_int8_model_needs_no_float_arithmetic(conv_model, tmp_path):
    """Built with the soft-float ABI, an int8 model must not call any float helper."""
    obj = tmp_path / "m.o"
    host.compile_c(["arm-none-eabi-gcc", *host.STRICT_FLAGS, "-mcpu=cortex-m7", "-mthumb",
                    "-mfloat-abi=soft", "-O2", "-I", str(conv_model.output_dir), "-c",
                    str(conv_model.source), "-o", str(obj)], "soft-float build")
    syms = subprocess.run(["arm-none-eabi-nm", "-u", str(obj)], capture_output=True, text=True,
                          check=True).stdout
    assert not re.search(r"__aeabi_[fd]|__(add|sub|mul|div)[sd]f3", syms), syms


@needs_arm
def test_arm_state_target_builds_the_portable_paths(conv_model, tmp_path):
    """A core with the DSP extension in ARM state (Cortex-A7, -marm) builds the model: the
    DSP paths' Thumb-2 asm is left out there (MCU_USE_DSP needs __thumb2__), where it would
    not assemble ("first transfer register must be even", Thumb-2-only immediates)."""
    obj = tmp_path / "a7.o"
    host.compile_c(["arm-none-eabi-gcc", *host.STRICT_FLAGS, "-mcpu=cortex-a7", "-marm",
                    "-mfloat-abi=soft", "-O2", "-I", str(conv_model.output_dir), "-c",
                    str(conv_model.source), "-o", str(obj)], "ARM-state build")
    syms = subprocess.run(["arm-none-eabi-nm", str(obj)], capture_output=True, text=True,
                          check=True).stdout
    assert "mcu_fco_rows8" not in syms and "mcu_fc_offset_s8" in syms


def test_only_used_kernels_are_copied(conv_model):
    copied = {p.name for p in (conv_model.output_dir / "kernels").iterdir()}
    assert {"conv2d.c", "depthwise_conv2d.c", "fully_connected.c", catalogue.COMMON_HEADER} <= copied
    for unused in ("softmax.c", "add.c", "pool.c", "copy_nd.c"):
        assert unused not in copied
    assert set(conv_model.kernels) <= {p[:-2] for p in copied if p.endswith(".c")}


def test_two_models_link_into_one_program(conv_model, tmp_path):
    """The same network generated twice under different names (plus a second, different
    network) links into one executable, and each runs as TFLM does."""
    from engine.tflm import TflmModel

    data = (conv_model.output_dir / "model.tflite").read_bytes()
    d_b = tmp_path / "b"
    convert_model(data, d_b, name="netB")
    d_c = tmp_path / "c"
    convert_model(_reshape_model_bytes(), d_c, name="netC")
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 8, 8, 3), dtype=np.int8)
    (tmp_path / "x.bin").write_bytes(x.tobytes())
    main = tmp_path / "main.c"
    main.write_text("""
#include <stdio.h>
#include <string.h>
#include "netA.h"
#include "b/netB.h"
#include "c/netC.h"
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "rb");
    size_t i;
    if (f == NULL || fread(netA_input(0), 1, netA_input_bytes(0), f) != netA_input_bytes(0)) return 3;
    fclose(f);
    memcpy(netB_input(0), netA_input(0), netB_input_bytes(0));
    memset(netC_input(0), 7, netC_input_bytes(0));
    if (netA_invoke() || netB_invoke() || netC_invoke()) return 4;
    if (memcmp(netA_output(0), netB_output(0), netA_output_bytes(0)) != 0) return 5;
    for (i = 0; i < netA_output_bytes(0); ++i) printf("%d ", ((const signed char *)netA_output(0))[i]);
    (void)argc;
    return ((const signed char *)netC_output(0))[23] == 7 ? 0 : 6;
}
""")
    exe = tmp_path / "both"
    host.compile_c(["gcc", *host.STRICT_FLAGS, "-O2", "-I", str(conv_model.output_dir), "-I", str(tmp_path),
                    str(main), str(conv_model.source), str(d_b / "netB.c"), str(d_c / "netC.c"),
                    "-o", str(exe)], "two models in one program")
    out = subprocess.run([str(exe), str(tmp_path / "x.bin")], capture_output=True, text=True)
    assert out.returncode == 0, out
    got = np.array([int(v) for v in out.stdout.split()], np.int8)
    np.testing.assert_array_equal(got, TflmModel(data).run([x])[0].reshape(-1))


def test_generated_model_matches_tflm_on_host(conv_model):
    from engine.tflm import TflmModel

    data = (conv_model.output_dir / "model.tflite").read_bytes()
    ours, ref = HostModel(conv_model.output_dir), TflmModel(data)
    rng = np.random.default_rng(6)
    for _ in range(10):
        x = [rng.integers(-128, 128, (1, 8, 8, 3), dtype=np.int8)]
        np.testing.assert_array_equal(ours.run(x)[0], ref.run(x)[0])


def test_identifier_and_is_identifier_are_one_rule():
    """c_writer.identifier makes, from any tensor name, what is_identifier accepts; the
    --name check uses the same rule with its length limit."""
    from tflite_converter.codegen import c_writer

    for text in ["a/b:0", "9lives", "", "___", "tf.conv2d;(x)", "é", "ok_name"]:
        assert c_writer.is_identifier(c_writer.identifier(text)), text
    assert not c_writer.is_identifier("9a") and not c_writer.is_identifier("a-b")
    assert c_writer.is_identifier("a" * 41, 41) and not c_writer.is_identifier("a" * 42, 41)
