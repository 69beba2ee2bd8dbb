"""Every shared model that converts, built with ASan/UBSan and run against TFLM; and the
kernels' remaining -Wconversion / strict-aliasing warnings.

    python -m benchmarks.sanitize_all [--models=DIR] [--inputs=N] [--kernel_warnings]
    python -m benchmarks.fuzz --sanitize_models      (the same sweep)

For each *.tflite under the folder: convert; a refusal is reported and skipped. Otherwise the
C is built with the strict flags plus -fsanitize=address,undefined (any warning is an error,
any sanitizer report fails the run), run on N seeded random inputs and, where
benchmarks.real_inputs has a data set for the model, up to 5 real samples; the output bytes
are compared with TFLM's on the same inputs. Exit status 1 if any model fails.

`--kernel_warnings` compiles each engine/kernels/*.c alone with -Wconversion
-fstrict-aliasing -Wstrict-aliasing=2 (beyond the kernels' contract flags) and prints the
warning count per file: a report for kernel authors, never a failure.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from absl import app, flags

from benchmarks import real_inputs
from engine import catalogue
from engine.compare import host_vs_tflm
from engine.host import CC, STRICT_FLAGS, BuildError, SanitizerError
from engine.tflm import TflmModel
from tflite_converter.codegen.generate import convert_model
from tflite_converter.errors import ConversionError

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
WARNING_FLAGS = ("-Wconversion", "-fstrict-aliasing", "-Wstrict-aliasing=2")

FLAGS = flags.FLAGS


def sanitize_model(path: Path, work: Path, n_inputs: int = 3, seed: int = 0, n_real: int = 5,
                   data_dir: Optional[Path] = SHARED / "data") -> tuple[str, str]:
    """(status, detail): 'ok', 'refused' (by the converter) or a failure: 'build', 'sanitizer',
    'mismatch', 'tflm_refused' (TFLM cannot run a model we convert: reported, not a failure).
    Beside the random inputs, up to `n_real` real samples where benchmarks.real_inputs has a
    data set for the model (real data reaches value ranges random bytes rarely do)."""
    out = work / path.stem
    try:
        gm = convert_model(path, out, name="net")
    except ConversionError as e:
        return "refused", str(e).splitlines()[0]
    try:
        tflm = TflmModel(path)
    except RuntimeError as e:
        return "tflm_refused", str(e).splitlines()[0]
    try:
        real = real_inputs.real_inputs_for(path.stem, gm.inputs, data_dir, n_real)
    except (real_inputs.RealInputError, OSError) as e:
        return "real_inputs", str(e).splitlines()[0]
    real_samples = [] if real is None else list(real.samples)
    try:
        diff = host_vs_tflm(path, out, "net", n_random=n_inputs, seed=seed, extra=real_samples,
                            sanitize=True, tflm=tflm)
    except BuildError as e:
        return "build", str(e)[-2000:]
    except SanitizerError as e:
        return "sanitizer", str(e)[-2000:]
    if diff is not None:
        return "mismatch", diff
    return "ok", (f"{n_inputs} random + {len(real_samples)} real inputs, "
                  f"{len(gm.kernels)} kernels, bytes equal to TFLM")


def kernel_warnings(extra: Sequence[str] = WARNING_FLAGS) -> dict[str, int]:
    """Warnings per kernel source when compiled alone with the strict flags (minus -Werror)
    plus `extra`."""
    kdir = catalogue.KERNELS_DIR
    counts = {}
    with tempfile.TemporaryDirectory(prefix="kwarn_") as tmp:
        for src in sorted(kdir.glob("*.c")):
            flags_ = [f for f in STRICT_FLAGS if f != "-Werror"]
            proc = subprocess.run([CC, *flags_, *extra, "-O2", "-I", str(kdir), "-c", str(src),
                                   "-o", str(Path(tmp) / (src.stem + ".o"))], capture_output=True, text=True)
            counts[src.name] = len(re.findall(r": warning: ", proc.stderr))
    return counts


def main(models: Optional[Path] = None, n_inputs: int = 3, warnings: bool = False) -> int:
    models = models or SHARED / "models"
    paths = sorted(models.glob("*.tflite"))
    if not paths:
        print(f"no models under {models}: nothing to sanitize")
        return 0
    failed = 0
    with tempfile.TemporaryDirectory(prefix="sanitize_all_") as tmp:
        for path in paths:
            status, detail = sanitize_model(path, Path(tmp), n_inputs)
            failed += status not in ("ok", "refused", "tflm_refused")
            print(f"{path.stem:45s} {status:12s} {detail.splitlines()[0] if detail else ''}", flush=True)
            if status not in ("ok", "refused", "tflm_refused"):
                print(detail)
    print(f"{len(paths)} models, {failed} failed")
    if warnings:
        counts = kernel_warnings()
        print(f"kernel warnings with {' '.join(WARNING_FLAGS)}:")
        for name, n in counts.items():
            print(f"  {name:24s} {n}")
        print(f"  {'total':24s} {sum(counts.values())}")
    return 1 if failed else 0


def _main(argv: Sequence[str]) -> int:
    del argv
    return main(Path(FLAGS.models) if FLAGS.models else None, FLAGS.inputs, FLAGS.kernel_warnings)


if __name__ == "__main__":
    # defined here, not at import: benchmarks.fuzz imports this module and has its own --models
    flags.DEFINE_string("models", None, "Folder of .tflite models. Default: ../shared/models.")
    flags.DEFINE_integer("inputs", 3, "Seeded random inputs per model.")
    flags.DEFINE_bool("kernel_warnings", False, "Also report -Wconversion/strict-aliasing warnings per kernel.")
    app.run(_main)
