"""Python mirrors of the kernels' C constants hold the C values.

The converter, the engine and the search size buffers, lay out tables and pick kernels from
Python copies of `#define`s in engine/kernels/*.c and *.h (the pixel block of the CONV_2D
core, the row blocks of the packed weights, the requantisation table's stride and modes, the
broadcast / copy / reduce ranks...). This test reads the `#define`s from the C sources (a small
parser: object-like and function-like macros, line continuations, integer expressions over
other macros) and requires every mirror to equal its macro, so that changing either side
alone fails here.
"""
from __future__ import annotations

import ast
import importlib
import operator
import pathlib
import re

import pytest

KERNELS_DIR = pathlib.Path(__file__).resolve().parent.parent / "engine" / "kernels"

# (Python module, attribute path, kernel source, C integer expression over its macros)
MIRRORS = [
    ("tflite_converter.conv2d_spec", "CONV_PIXEL_BLOCK", "mcu_matmul_s8.h", "MCU_MM_NP"),
    ("tflite_converter.codegen.ops._conv_common", "CONV_ROW_BLOCK", "mcu_matmul_s8.h", "MCU_MM_RB"),
    ("tflite_converter.codegen.ops._conv_common", "WIDE_ROW_BLOCK", "mcu_matmul_s8.h", "MCU_MM_WIDE_RB"),
    ("tflite_converter.codegen.ops._conv_common", "FC_ROW_BLOCK", "fully_connected.c", "MCU_FC_RB"),
    ("tflite_converter.codegen.ops._conv_common", "CONV_RQ_STRIDE", "mcu_matmul_s8.h", "MCU_RQ_STRIDE"),
    ("tflite_converter.codegen.ops._conv_common", "ConvRequantMode.GENERIC", "mcu_matmul_s8.h",
     "MCU_RQ_GENERIC"),
    ("tflite_converter.codegen.ops._conv_common", "ConvRequantMode.FAST", "mcu_matmul_s8.h",
     "MCU_RQ_FAST"),
    ("tflite_converter.codegen.ops._conv_common", "ConvRequantMode.FAST_FULL", "mcu_matmul_s8.h",
     "MCU_RQ_FAST_FULL"),
    ("tflite_converter.codegen.ops._common", "BCAST_DIMS", "mcu_broadcast.h", "MCU_BCAST_DIMS"),
    ("tflite_converter.codegen.ops._common", "COPY_DIMS", "copy_nd.c", "MCU_COPY_DIMS"),
    ("tflite_converter.codegen.ops._common", "REDUCE_DIMS", "mcu_reduce.h", "MCU_REDUCE_DIMS"),
    ("tflite_converter.codegen.ops.depthwise_conv2d", "BAND4_CHANNELS", "depthwise_conv2d.c",
     "MCU_DW_BAND4"),
    # the taps of a stored kernel row are rounded up to a multiple of ROW_MULTIPLE: MCU_DW_ROW
    # of 1 tap is one multiple (test_row_multiple_is_mcu_dw_row checks every width)
    ("tflite_converter.codegen.ops.depthwise_conv2d", "ROW_MULTIPLE", "depthwise_conv2d.c",
     "MCU_DW_ROW(1)"),
    ("tflite_converter.codegen.ops.fully_connected", "FCO_ROW_BLOCK", "fully_connected.c",
     "MCU_FCO_RB"),
    # Q's low bytes are 127 - x: x EOR 0x7F, in both halfwords of the flip constant
    ("tflite_converter.codegen.ops.fully_connected", "_Q_OFFSET", "fully_connected.c",
     "MCU_FCO_Q_FLIP & 0xFFFF"),
    ("tflite_converter.codegen.ops.fully_connected", "_Q_OFFSET", "fully_connected.c",
     "MCU_FCO_Q_FLIP >> 16"),
    ("engine.quant_ops", "AddParams.left_shift", "add.c", "MCU_ADD_LEFT_SHIFT"),
    # the int4 kernels: rows unpacked at a time (conv2d.c), the depthwise stack buffer
    ("tflite_converter.conv2d_spec", "CONV_INT4_ROWS", "mcu_matmul_s8.h", "MCU_MM_RB"),
    ("tflite_converter.codegen.ops.depthwise_conv2d", "DW_S4_MAX", "depthwise_conv2d.c",
     "MCU_DW_S4_MAX"),
    # the Flash estimate's bytes per CONV_2D output channel: MCU_RQ_STRIDE int32s
    ("nas.flash_estimate", "CONV_TABLE_BYTES", "mcu_matmul_s8.h", "4 * MCU_RQ_STRIDE"),
]


# ---------------------------------------------------------------------------------------------
# A small C preprocessor subset: #define lines and integer expressions


class Macro:
    """One `#define`: its parameters (None for an object-like macro) and its body."""

    def __init__(self, params: list[str] | None, body: str):
        self.params, self.body = params, body


_DEFINE = re.compile(r"^\s*#\s*define\s+([A-Za-z_]\w*)(\(([^)]*)\))?(.*)$")


def c_defines(path: pathlib.Path) -> dict[str, list[Macro]]:
    """Every `#define` of a C source by name (a name defined in several #if branches has
    several entries); backslash continuations joined, comments dropped."""
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = text.replace("\\\n", " ")
    defines: dict[str, list[Macro]] = {}
    for line in text.splitlines():
        m = _DEFINE.match(line)
        if not m:
            continue
        params = None if m.group(2) is None else [p.strip() for p in m.group(3).split(",") if p.strip()]
        defines.setdefault(m.group(1), []).append(Macro(params, m.group(4).strip()))
    return defines


_INT_LITERAL = re.compile(r"\b(0[xX][0-9A-Fa-f]+|\d+)[uUlL]*\b")
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitAnd: operator.and_,
           ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.Mod: operator.mod}
_UNARYOPS = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}


def _expand(expr: str, defines: dict[str, list[Macro]], depth: int = 0) -> str:
    """Replace macro uses (object-like and function-like) by their bodies, recursively."""
    if depth > 20:
        raise ValueError(f"macro expansion too deep in {expr!r}")
    out, pos = [], 0
    for m in re.finditer(r"\b[A-Za-z_]\w*", expr):
        name = m.group(0)
        if m.start() < pos:
            continue
        out.append(expr[pos:m.start()])
        pos = m.end()
        if name not in defines:
            raise KeyError(f"{name} is not #defined")
        macros = defines[name]
        assert len(macros) == 1, f"{name} has {len(macros)} #defines (#if branches?)"
        macro = macros[0]
        body = macro.body
        if macro.params is not None:
            # the argument list: balanced parentheses after the name
            rest = expr[pos:]
            assert rest.lstrip().startswith("("), f"{name} used without arguments"
            start = pos + rest.index("(")
            level, i = 0, start
            while True:
                level += {"(": 1, ")": -1}.get(expr[i], 0)
                if level == 0:
                    break
                i += 1
            args = [a.strip() for a in expr[start + 1:i].split(",")]
            assert len(args) == len(macro.params), f"{name} takes {len(macro.params)} arguments"
            body = re.sub(r"\b(" + "|".join(map(re.escape, macro.params)) + r")\b",
                          lambda a, args=args, params=macro.params: "(" + args[params.index(a.group(1))] + ")",
                          body)
            pos = i + 1
        out.append("(" + _expand(body, defines, depth + 1) + ")")
    out.append(expr[pos:])
    return "".join(out)


def _eval(node: ast.AST) -> int:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval(node.left), _eval(node.right))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.FloorDiv):
        a, b = _eval(node.left), _eval(node.right)
        q = abs(a) // abs(b)  # C division truncates toward zero
        return q if (a >= 0) == (b >= 0) else -q
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARYOPS:
        return _UNARYOPS[type(node.op)](_eval(node.operand))
    raise ValueError(f"not a simple integer expression: {ast.dump(node)}")


def c_value(expr: str, defines: dict[str, list[Macro]]) -> int:
    """The value of an integer C expression over the given macros (literals with u/U/l/L
    suffixes, + - * / % << >> & | ^ ~ and parentheses)."""
    text = _expand(expr, defines)
    text = _INT_LITERAL.sub(lambda m: str(int(m.group(1), 0) if not re.fullmatch(r"0\d+", m.group(1))
                                          else int(m.group(1), 8)), text)
    text = text.replace("/", "//")
    return _eval(ast.parse(text, mode="eval"))


def python_value(module: str, attr_path: str):
    obj = importlib.import_module(module)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


_DEFINES_CACHE: dict[str, dict[str, list[Macro]]] = {}


def kernel_defines(c_file: str) -> dict[str, list[Macro]]:
    if c_file not in _DEFINES_CACHE:
        _DEFINES_CACHE[c_file] = c_defines(KERNELS_DIR / c_file)
    return _DEFINES_CACHE[c_file]


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module,attr,c_file,c_expr", MIRRORS,
                         ids=[f"{a}={c}" for _, a, _, c in MIRRORS])
def test_python_mirror_equals_c_define(module, attr, c_file, c_expr):
    py = python_value(module, attr)
    c = c_value(c_expr, kernel_defines(c_file))
    assert int(py) == c, f"{module}.{attr} = {py!r} but {c_file}: {c_expr} = {c}"


def test_row_multiple_is_mcu_dw_row():
    """depthwise_conv2d.py pads each stored kernel row to a multiple of ROW_MULTIPLE taps,
    the kernel steps rows by MCU_DW_ROW(k_w): the same for every kernel width."""
    from tflite_converter.codegen.ops.depthwise_conv2d import ROW_MULTIPLE

    defines = kernel_defines("depthwise_conv2d.c")
    for k_w in range(1, 65):
        assert c_value(f"MCU_DW_ROW({k_w})", defines) == -(-k_w // ROW_MULTIPLE) * ROW_MULTIPLE, k_w


def test_add_fast_variant_bits_are_the_kernels():
    """AddFastParams.variant, passed to mcu_add_fast_s8 / mcu_sub_fast_s8 as `variant`, sets
    add.c's bits MCU_ADDF_R1 (input 1 has a rounding step), MCU_ADDF_R2 (input 2) and
    MCU_ADDF_FULL (activation range all of int8)."""
    from engine.quant_ops import AddFastParams

    defines = kernel_defines("add.c")

    def variant(in1_rs, in2_rs, act_min, act_max):
        return AddFastParams(0, 0, 0, in1_rs, 0, 0, 0, in2_rs, 0, 0, 0, act_min, act_max).variant

    r1, r2, full = (c_value(n, defines) for n in ("MCU_ADDF_R1", "MCU_ADDF_R2", "MCU_ADDF_FULL"))
    assert variant(0, 0, -100, 127) == 0
    assert variant(1, 0, -100, 127) == r1
    assert variant(0, 3, -128, 100) == r2
    assert variant(0, 0, -128, 127) == full
    assert variant(2, 1, -128, 127) == r1 | r2 | full


def test_parser_reads_expressions_and_function_macros(tmp_path):
    """The little preprocessor itself: suffixes, hex, continuations, comments, nesting,
    C division, function-like macros; a macro defined in two #if branches is refused."""
    src = tmp_path / "k.h"
    src.write_text("#define A 3 /* three */\n"
                   "#define B (A * 4u) // twelve\n"
                   "#define C 0x10 \\\n  + B\n"
                   "#  define ROUND(x, m) (((x) + (m) - 1) / (m) * (m))\n"
                   "#define NEG (-7 / 2)\n"
                   "#if X\n#define TWICE 1\n#else\n#define TWICE 2\n#endif\n")
    d = c_defines(src)
    assert c_value("A", d) == 3 and c_value("B", d) == 12 and c_value("C", d) == 28
    assert c_value("ROUND(B + 1, A)", d) == 15 and c_value("NEG", d) == -3
    with pytest.raises(AssertionError, match="2 #defines"):
        c_value("TWICE", d)
    with pytest.raises(KeyError):
        c_value("MISSING", d)


def test_every_mirrored_macro_is_defined_once():
    """Each macro a mirror names exists in its file, outside any #if alternative."""
    for _, _, c_file, c_expr in MIRRORS:
        defines = kernel_defines(c_file)
        for name in re.findall(r"\b[A-Za-z_]\w*", c_expr):
            assert len(defines.get(name, [])) == 1, f"{c_file}: {name}"
