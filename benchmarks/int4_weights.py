"""int4 weights: an MCUNet network exported int8 and int4, our C beside TFLM for both.

    python -m benchmarks.int4_weights [--models=mcunet-in0,...] [--inputs=5] [--qemu]

For each published network (random weights, seed 0, as the other benchmarks export them:
mcunet_tf.export.reference_model_path) the int8 export and its int4 rewrite
(mcunet_tf.export.int4_reference_model_path: every CONV_2D / DEPTHWISE_CONV_2D /
FULLY_CONNECTED filter requantized to [-7, 7] and packed two a byte,
tflite_converter.int4.int4_filters_tflite) are converted and measured:

- Flash: the .tflite size (what TFLM keeps in Flash beside its own code) and our model's
  Cortex-M7 object, .text + .rodata + .data (DSP build: weights, tables and code);
- SRAM: our arena (the plan) and the model object's static RAM (.data + .bss, the arena
  included); TFLM's recorded allocation and the smallest arena with which it allocates
  (bisection to 16 bytes, x86-64 wheel). For int4, TFLM's reference kernels unpack each whole
  filter into a scratch buffer of its arena; ours unpack a row block or a channel at a time.
  The bisection runs every trial in a child process: the wheel segfaults on some arena sizes
  that are too small for mcunet-in0 (61080 and 30000 bytes, for one) instead of raising;
  a crash counts as "does not allocate";
- bit-exactness: our host build against TFLM on --inputs seeded random inputs, and with
  --qemu the Cortex-M7 DSP build on two of them, with its instructions per invoke.

With --rewrite (default ../shared/models), every .tflite there is also rewritten with int4
filters, converted and run on the host against TFLM on two random inputs (one line each:
the int8 and int4 file sizes, and "2/2", or the converter's refusal, which the int8 file
gets too when it is a float or hybrid model).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from absl import app, flags

from benchmarks.measure import header_arena_bytes
from engine import qemu
from engine.host import HostModel
from engine.tflm import TflmModel
from tflite_converter.codegen.generate import convert_model

FLAGS = flags.FLAGS

_FITS = ("import sys\nfrom engine.tflm import TflmModel\n"
         "TflmModel(open(sys.argv[1], 'rb').read(), arena_size=int(sys.argv[2]))\n")


def tflm_allocates(path: Path, size: int) -> bool:
    """Whether TFLM prepares the model in an arena of `size` bytes, in a child process."""
    repo = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.run([sys.executable, "-c", _FITS, str(path), str(size)], cwd=repo,
                          capture_output=True)
    return proc.returncode == 0


def tflm_smallest_arena(path: Path, recorded: int, granularity: int = 16) -> int:
    """The smallest arena (to `granularity` bytes) that allocates, from the recorded total."""
    lo, hi = 0, recorded
    while not tflm_allocates(path, hi):
        lo, hi = hi, hi + max(hi // 8, granularity)
    while hi - lo > granularity:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if tflm_allocates(path, mid) else (mid, hi)
    return hi


def measure(path: Path, out: Path, inputs: int, run_qemu: bool) -> dict[str, object]:
    """The table row's figures for one .tflite."""
    model = convert_model(path, out, name="net")
    tflm = TflmModel(path.read_bytes())
    shape = tuple(tflm.input_details(0)["shape"])
    rng = np.random.default_rng(0)
    samples = [[rng.integers(-128, 128, shape).astype(np.int8)] for _ in range(inputs)]
    want = [tflm.run(s) for s in samples]
    host = HostModel(out, "net")
    same = sum(all(np.array_equal(g, w) for g, w in zip(host.run(s), ws))
               for s, ws in zip(samples, want))
    recorded = tflm.arena_used_bytes()
    row: dict[str, object] = {
        "tflite": path.stat().st_size, "arena": header_arena_bytes(model),
        "tflm_recorded": recorded, "tflm_smallest": tflm_smallest_arena(path, recorded),
        "same": f"{same}/{inputs}", "ok": same == inputs,
    }
    if run_qemu and qemu.toolchain_available():
        res = qemu.run_on_qemu(out, "net", samples[:2], cpu="cortex-m7", dsp=True)
        m7_same = sum(all(np.array_equal(g, w) for g, w in zip(got, ws))
                      for got, ws in zip(res.outputs, want))
        assert res.model is not None
        row.update(flash=res.model.text + res.model.rodata + res.model.data,
                   ram=res.model.ram_bytes, m7=float(np.mean(res.instructions_per_invoke)),
                   m7_same=f"{m7_same}/{len(res.outputs)}")
        row["ok"] = bool(row["ok"]) and m7_same == len(res.outputs)
    return row


def _b(v: Optional[object]) -> str:
    return "-" if v is None else f"{int(v):,d}"  # type: ignore[call-overload]


HEADER = (f"{'network':12s} {'weights':7s} {'.tflite B':>10s} {'our Flash B':>11s} "
          f"{'our arena B':>11s} {'our RAM B':>10s} {'TFLM arena B':>12s} {'TFLM rec. B':>11s} "
          f"{'host=TFLM':>9s} {'M7 Minstr':>9s} {'M7=TFLM':>7s}")


def format_row(network: str, weights: str, r: dict[str, object]) -> str:
    m7 = r.get("m7")
    return (f"{network:12s} {weights:7s} {_b(r['tflite']):>10s} {_b(r.get('flash')):>11s} "
            f"{_b(r['arena']):>11s} {_b(r.get('ram')):>10s} {_b(r['tflm_smallest']):>12s} "
            f"{_b(r['tflm_recorded']):>11s} {str(r['same']):>9s} "
            f"{'-' if m7 is None else f'{float(m7) / 1e6:.2f}':>9s} {str(r.get('m7_same', '-')):>7s}")  # type: ignore[arg-type]


def rewrite_check(path: Path, out: Path) -> str:
    """The int4 rewrite of an int8 .tflite against TFLM on the host (two random inputs)."""
    from tflite_converter.errors import ConversionError
    from tflite_converter.int4 import int4_filters_tflite

    data = int4_filters_tflite(path.read_bytes())
    try:
        convert_model(data, out, name="net")
    except ConversionError as e:
        return f"refused: {e.problems[0]}"
    tflm, host = TflmModel(data), HostModel(out, "net")
    rng = np.random.default_rng(0)
    same = 0
    for _ in range(2):
        xs = []
        for i in range(tflm.num_inputs):
            d = tflm.input_details(i)
            dt = np.dtype(d["dtype"])
            xs.append(rng.integers(-128, 128, d["shape"]).astype(dt) if dt.kind in "iu"
                      else rng.standard_normal(d["shape"]).astype(dt))
        same += all(np.array_equal(a, b) for a, b in zip(host.run(xs), tflm.run(xs)))
    return f"{path.stat().st_size:>10,d} {len(data):>10,d} {same}/2"


def main(models: Sequence[str], inputs: int, run_qemu: bool, rewrite: Sequence[str] = ()) -> int:
    from mcunet_tf.export import int4_reference_model_path, reference_model_path

    print("bytes; our Flash = .text + .rodata + .data and our RAM = .data + .bss of the model's "
          "Cortex-M7 object (DSP build, arena included); TFLM arena = the smallest that "
          "allocates (x86-64 wheel), TFLM rec. = its recorded allocation; host=TFLM, M7=TFLM: identical "
          "output bytes on seeded random inputs")
    print(HEADER)
    ok = True
    with tempfile.TemporaryDirectory(prefix="int4_weights_") as tmp:
        for name in models:
            paths = {"int8": reference_model_path(name), "int4": int4_reference_model_path(name)}
            for kind, path in paths.items():
                r = measure(path, Path(tmp) / name / kind, inputs, run_qemu)
                ok = ok and bool(r["ok"])
                print(format_row(name, kind, r), flush=True)
        files = [f for d in rewrite if Path(d).is_dir() for f in sorted(Path(d).glob("*.tflite"))]
        if files:
            print(f"\nint4 rewrites against TFLM (host): {'model':40s} {'int8 B':>10s} {'int4 B':>10s}")
        for f in files:
            line = rewrite_check(f, Path(tmp) / "rewrite" / f.stem)
            ok = ok and (line.endswith("2/2") or line.startswith("refused"))
            print(f"  {f.stem[:40]:40s} {line}", flush=True)
    return 0 if ok else 1


def _run(argv: Sequence[str]) -> None:
    del argv
    raise SystemExit(main(FLAGS.models, FLAGS.inputs, FLAGS.qemu, FLAGS.rewrite))


if __name__ == "__main__":
    # defined only when run as the command: tests import this module beside other benchmarks
    # whose flags share these names
    flags.DEFINE_list("models", ["mcunet-in0"], "Published MCUNet networks (mcunet_tf.mcunet_configs).")
    flags.DEFINE_integer("inputs", 5, "Seeded random inputs compared with TFLM on the host.")
    flags.DEFINE_bool("qemu", True, "Also run the Cortex-M7 DSP build under QEMU (2 inputs).")
    flags.DEFINE_list("rewrite", [str(Path(__file__).resolve().parents[2] / "shared" / "models")],
                      "Folders whose .tflite files are rewritten as int4 and checked on the host.")
    app.run(_run)
