"""Build a generated model folder for a Cortex-M board and run it under QEMU.

The image is the model (`NAME.c` with its kernels), the harness `runtime/cortexm_main.c`
and the start-up `runtime/cortexm_startup.c`, linked with `runtime/mps2.ld` and newlib's
semihosting library (rdimon). Inputs are read and outputs written through semihosting
files, so one image serves any number of samples. Each invoke is timed with SysTick; under
`-icount shift=0` instructions = ticks x INSTRUCTIONS_PER_TICK (checked by
`calibrate()` on loops of known length). With `profile_ops=True` the image is built with
-DMCU_PROFILE_OPS and each op of the invoke is timed too (`QemuResult.op_instructions`,
what nas/latency.py is calibrated on).

Sizes come from `arm-none-eabi-size -A` (per section): Flash = .isr_vector + .text +
.rodata + exception tables + init arrays + .data (its load image); RAM = .data + .bss. The
same figures for the model alone (`NAME.o`: its code, weights and arena) are given too, as
the harness and newlib stdio are not part of what a firmware would embed.
"""
from __future__ import annotations

import dataclasses
import enum
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from engine import catalogue
from engine.host import STRICT_FLAGS, BuildError, compile_c
from engine.model_dir import ModelDir, build_root

ARM_CC = "arm-none-eabi-gcc"
ARM_SIZE = "arm-none-eabi-size"
QEMU = "qemu-system-arm"
INSTRUCTIONS_PER_TICK = 40  # 1 ns per instruction, SysTick at 25 MHz (40 ns per tick)
RAM_BYTES = 4 * 1024 * 1024
FLASH_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Board:
    machine: str
    cpu_flags: tuple[str, ...]


class Cpu(enum.Enum):
    CORTEX_M7 = "cortex-m7"
    CORTEX_M4 = "cortex-m4"


BOARDS: dict[Cpu, Board] = {
    Cpu.CORTEX_M7: Board("mps2-an500", ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard")),
    Cpu.CORTEX_M4: Board("mps2-an386", ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")),
}

OPT_FLAGS = ("-O2", "-ffunction-sections", "-fdata-sections")
LINK_FLAGS = ("-nostartfiles", "--specs=rdimon.specs", "-Wl,--gc-sections")
# -lm: the float32 head and tail kernels call expf / logf / tanhf (engine/kernels/float_*.c)
LINK_LIBS = ("-Wl,--start-group", "-lc", "-lm", "-lrdimon", "-lgcc", "-Wl,--end-group")
# Sections that occupy code memory; .data is counted once, as its load image.
_FLASH_CODE = re.compile(r"^\.(isr_vector|text|ARM\.extab|ARM\.exidx|init_array|fini_array|preinit_array)")


class QemuError(RuntimeError):
    """The image did not run to completion (fault, timeout, bad output)."""


@dataclasses.dataclass(frozen=True)
class SectionSizes:
    text: int  # code (and vectors, exception tables)
    rodata: int  # constants: the weights
    data: int
    bss: int

    @property
    def flash_bytes(self) -> int:
        return self.text + self.rodata + self.data

    @property
    def ram_bytes(self) -> int:
        return self.data + self.bss


@dataclasses.dataclass(frozen=True)
class QemuResult:
    outputs: list[list[np.ndarray]]  # per sample, per model output
    instructions_per_invoke: list[int]  # per sample
    text: int  # of the whole image (harness and newlib included)
    data: int
    bss: int
    flash_bytes: int  # text + rodata + data of the whole image
    rodata: int = 0
    model: SectionSizes | None = None  # the model's own object file (code, weights, arena)
    # per sample, op index -> instructions (only with profile_ops=True)
    op_instructions: list[dict[int, int]] = dataclasses.field(default_factory=list)


def section_sizes(path: Path) -> SectionSizes:
    """Sizes by section kind from `arm-none-eabi-size -A` of an ELF or object file."""
    proc = subprocess.run([ARM_SIZE, "-A", str(path)], capture_output=True, text=True, check=True)
    text = rodata = data = bss = 0
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith(".") or not parts[1].isdigit():
            continue
        name, size = parts[0], int(parts[1])
        if name.startswith(".rodata"):
            rodata += size
        elif name.startswith(".data"):
            data += size
        elif name.startswith(".bss") or name == "COMMON":
            bss += size
        elif _FLASH_CODE.match(name):
            text += size
    return SectionSizes(text, rodata, data, bss)


def _cpu(cpu: str | Cpu) -> Cpu:
    try:
        return cpu if isinstance(cpu, Cpu) else Cpu(cpu)
    except ValueError:
        raise ValueError(f"unknown cpu '{cpu}': one of {[c.value for c in Cpu]}") from None


def toolchain_available() -> bool:
    return all(shutil.which(t) for t in (ARM_CC, ARM_SIZE, QEMU))


@dataclasses.dataclass(frozen=True)
class Image:
    elf: Path
    model_object: Path
    board: Board


def build_image(model_dir: str | os.PathLike[str], name: str | None = None, cpu: str | Cpu = "cortex-m7",
                dsp: bool = True, harness: str = "cortexm_main.c", profile_ops: bool = False) -> Image:
    """Compile and link the model for the board (cached by content hash)."""
    model = ModelDir.open(model_dir, name)
    board = BOARDS[_cpu(cpu)]
    flags = (*STRICT_FLAGS, *board.cpu_flags, *OPT_FLAGS, *(() if dsp else ("-DMCU_NO_DSP",)),
             *(("-DMCU_PROFILE_OPS",) if profile_ops else ()))
    runtime = [catalogue.runtime_source(f) for f in
               (harness, "cortexm_startup.c", "cortexm.h", "mps2.ld")]
    key = model.content_hash(ARM_CC, " ".join(flags), " ".join(LINK_FLAGS), *runtime)
    out = build_root() / f"arm-{model.name}-{key}"
    elf, obj = out / "app.elf", out / f"{model.name}.o"
    if elf.is_file() and obj.is_file():
        return Image(elf, obj, board)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix="build."))
    try:
        inc = ["-I", str(model.path), "-I", str(catalogue.RUNTIME_DIR)]
        objs = []
        for src in (model.source, runtime[0], runtime[1]):
            o = tmp / (src.stem + ".o")
            compile_c([ARM_CC, *flags, f"-DMCU_MODEL={model.name}", *inc, "-c", str(src), "-o", str(o)],
                      f"{src.name} for {board.machine}")
            objs.append(o)
        try:
            compile_c([ARM_CC, *board.cpu_flags, *LINK_FLAGS, "-T", str(runtime[3]),
                       *map(str, objs), *LINK_LIBS, "-o", str(tmp / "app.elf")],
                      f"image of '{model.name}' for {board.machine}")
        except BuildError as e:
            if "MCU_RAM_OVERFLOW" in str(e) or "overflowed" in str(e):
                raise BuildError(f"model '{model.name}' does not fit {board.machine} "
                                 f"({RAM_BYTES // 1024} KiB RAM, {FLASH_BYTES // 1024} KiB code):\n{e}") from None
            raise
        os.replace(tmp / f"{model.source.stem}.o", obj)
        os.replace(tmp / "app.elf", elf)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Image(elf, obj, board)


def run_elf(image: Image, workdir: Path, timeout: float = 600.0) -> str:
    """Run an image under QEMU in `workdir` (semihosting files are relative to it)."""
    cmd = [QEMU, "-M", image.board.machine, "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-icount", "shift=0",
           "-kernel", str(image.elf)]
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise QemuError(f"QEMU timed out after {timeout:.0f} s running {image.elf}") from e
    if "MCU_FAULT" in proc.stdout or proc.returncode != 0:
        raise QemuError(f"QEMU run of {image.elf} failed (exit {proc.returncode}):\n"
                        f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def run_on_qemu(model_dir: str | os.PathLike[str], name: str | None = None,
                inputs: Sequence[Sequence[np.ndarray]] = (), cpu: str | Cpu = "cortex-m7",
                dsp: bool = True, timeout: float = 600.0, profile_ops: bool = False) -> QemuResult:
    """Run the model on each sample of `inputs` (a list of per-input arrays) on the board;
    `profile_ops` also times each op (QemuResult.op_instructions)."""
    model = ModelDir.open(model_dir, name)
    image = build_image(model_dir, model.name, cpu, dsp, profile_ops=profile_ops)
    with tempfile.TemporaryDirectory(prefix="mcu_qemu_") as tmp:
        work = Path(tmp)
        (work / "mcu_inputs.bin").write_bytes(model.pack_samples(inputs))
        stdout = run_elf(image, work, timeout)
        ticks = {}
        for m in re.finditer(r"^MCU_INVOKE (\d+) (-?\d+) (\d+)$", stdout, re.MULTILINE):
            sample, status, t = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if status != 0:
                raise QemuError(f"{model.name}_invoke returned {status} on sample {sample}")
            ticks[sample] = t
        op_ticks: dict[int, dict[int, int]] = {}
        for m in re.finditer(r"^MCU_OP (\d+) (\d+) (\d+)$", stdout, re.MULTILINE):
            op_ticks.setdefault(int(m.group(1)), {})[int(m.group(2))] = int(m.group(3))
        done = re.search(r"^MCU_DONE (\d+)$", stdout, re.MULTILINE)
        if done is None or int(done.group(1)) != len(inputs) or len(ticks) != len(inputs):
            raise QemuError(f"the harness did not finish {len(inputs)} samples:\n{stdout[-2000:]}")
        outputs = model.unpack_outputs((work / "mcu_outputs.bin").read_bytes(), len(inputs))
    whole = section_sizes(image.elf)
    return QemuResult(outputs=outputs,
                      instructions_per_invoke=[ticks[i] * INSTRUCTIONS_PER_TICK for i in range(len(inputs))],
                      text=whole.text, data=whole.data, bss=whole.bss, flash_bytes=whole.flash_bytes,
                      rodata=whole.rodata, model=section_sizes(image.model_object),
                      op_instructions=[{op: t * INSTRUCTIONS_PER_TICK for op, t in op_ticks.get(i, {}).items()}
                                       for i in range(len(inputs))] if profile_ops else [])


def calibrate(cpu: str | Cpu = "cortex-m7", timeout: float = 120.0) -> list[tuple[int, int]]:
    """(instructions executed, SysTick ticks) for loops of known length on the board."""
    board = BOARDS[_cpu(cpu)]
    runtime = [catalogue.runtime_source(f) for f in ("cortexm_calibrate.c", "cortexm_startup.c", "mps2.ld")]
    with tempfile.TemporaryDirectory(prefix="mcu_cal_") as tmp:
        elf = Path(tmp) / "cal.elf"
        compile_c([ARM_CC, *STRICT_FLAGS, *board.cpu_flags, *OPT_FLAGS, *LINK_FLAGS,
                   "-I", str(catalogue.RUNTIME_DIR), "-T", str(runtime[2]),
                   str(runtime[0]), str(runtime[1]), *LINK_LIBS, "-o", str(elf)], "calibration image")
        out = run_elf(Image(elf, elf, board), Path(tmp), timeout)
    return [(2 * int(m.group(1)), int(m.group(2)))
            for m in re.finditer(r"^MCU_CALIBRATE (\d+) (\d+)$", out, re.MULTILINE)]
