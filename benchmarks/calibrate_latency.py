"""Calibrate nas/latency.py on QEMU instruction counts and check it.

    python -m benchmarks.calibrate_latency            # export, measure, fit, write the table
    python -m benchmarks.calibrate_latency --check    # predicted vs measured, per model

Calibration models are int8 exports of MCUNet-space networks with random weights (widths
0.2-1.0, resolutions 32-160, 1 or 3 input channels, 10 classes, random kernel sizes, expand
ratios and depths) plus a few small pooling / softmax models for the op kinds MCUNet does
not use. Each is converted to C, built with the per-op hook (-DMCU_PROFILE_OPS) and run once
under QEMU: every op's instruction count is one fitting row of its cost class. Coefficients
are non-negative least squares on relative errors (each row divided by its measured count),
so that small ops matter as much as large ones. Exports and measurements are cached under
build/latency_calib/ (keyed by the network and by the generated C's content hash).

--check compares the model with the plain (unprofiled) invoke count on the shared real models
that convert and on held-out MCUNet-space networks never used in the fit.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from engine import qemu
from engine.model_dir import ModelDir
from nas import latency
from tflite_converter.errors import ConversionError
from tflite_converter.ir import Graph

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "latency_calib"
SHARED_MODELS = Path("/work/shared/models")
CORES = ("cortex-m7", "cortex-m4")
COMMAND = "python -m benchmarks.calibrate_latency"

# (width, resolution, in_channels, seed) of the fitted networks, and of the held-out ones
FIT_NETWORKS = [
    (0.2, 32, 3, 1), (0.3, 48, 1, 2), (0.35, 64, 3, 3), (0.4, 96, 3, 4), (0.5, 48, 3, 5),
    (0.5, 128, 1, 6), (0.6, 64, 3, 7), (0.7, 80, 3, 8), (0.75, 112, 3, 9), (0.8, 32, 1, 10),
    (0.9, 64, 3, 11), (1.0, 48, 3, 12), (1.0, 96, 3, 13), (0.25, 160, 3, 14), (0.4, 144, 1, 15),
    (0.6, 128, 3, 16), (0.3, 112, 3, 17), (0.5, 160, 3, 18),
]
HOLDOUT_NETWORKS = [
    (0.35, 96, 3, 101), (0.5, 80, 1, 102), (0.7, 64, 3, 103), (0.8, 128, 3, 104),
    (0.25, 144, 3, 105), (1.0, 64, 1, 106),
]
# (resolution, channels, pool kind, pool size, seed, hidden units): small models for what
# MCUNet networks lack: pooling, softmax, kxk convolutions on many input channels, wide
# fully-connected layers
AUX_MODELS = [(32, 8, "avg", 2, 1, 64), (48, 16, "max", 2, 2, 32), (24, 32, "avg", 3, 3, 128),
              (64, 8, "max", 3, 4, 16), (40, 24, "avg", 2, 5, 96), (16, 48, "max", 2, 6, 256)]


def arch(width: float, resolution: int, in_channels: int, seed: int):
    from mcunet_tf.arch import SearchSpace

    space = SearchSpace(width_mult=width, resolution=resolution, num_classes=10,
                        in_channels=in_channels)
    return space.sample(np.random.default_rng(seed))


def _cached_export(name: str, key: str, build: Callable[[], bytes]) -> Path:
    path = CACHE / "tflite" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.tflite"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        data = build()
        path.write_bytes(data)
    return path


def export_network(cfg: Any, name: str) -> Path:
    def build() -> bytes:
        from mcunet_tf.export import calibration_data, export_int8_tflite, randomize_weights
        from mcunet_tf.keras_builder import build_keras_model
        from mcunet_tf.tf_env import keras

        spec = cfg.to_network(name)
        keras.backend.clear_session()
        model = build_keras_model(spec, name=name)
        data = calibration_data(spec, 0, num_samples=8)
        randomize_weights(model, data, 0)
        return export_int8_tflite(model, data)

    return _cached_export(name, cfg.to_json(), build)


# fully-connected stacks (input depth, then units per layer; ReLU between): depths and unit
# counts off the 4-row / 4-byte grid too, down to a single input or output value
MLP_MODELS = [(512, 96, 96, 12), (300, 64, 33, 10), (3, 20, 7), (128, 256, 10), (40, 10, 40, 5),
              (2, 12, 20, 1), (250, 30, 2)]
# one-channel images through a strided depthwise convolution with a depth multiplier (how
# keyword-spotting front ends start): (height, width, kernel h, kernel w, multiplier, seed)
C1_DEPTHWISE_MODELS = [(36, 30, 6, 8, 8, 1), (25, 20, 5, 4, 4, 2), (30, 30, 3, 3, 8, 3),
                       (44, 36, 9, 8, 12, 4)]


def export_mlp(dims: Sequence[int]) -> Path:
    name = "mlp_" + "x".join(map(str, dims))

    def build() -> bytes:
        from mcunet_tf.export import export_int8_tflite
        from mcunet_tf.tf_env import keras

        keras.backend.clear_session()
        keras.utils.set_random_seed(len(dims))
        layers = [keras.Input((dims[0],))]
        for i, units in enumerate(dims[1:]):
            last = i == len(dims) - 2
            layers.append(keras.layers.Dense(units, activation=None if last else "relu"))
        data = np.random.default_rng(0).uniform(-1, 1, (8, dims[0])).astype(np.float32)
        return export_int8_tflite(keras.Sequential(layers), data)

    return _cached_export(name, repr(tuple(dims)), build)


def export_c1_depthwise(h: int, w: int, kh: int, kw: int, mult: int, seed: int) -> Path:
    name = f"c1dw_{h}x{w}_k{kh}x{kw}_m{mult}"

    def build() -> bytes:
        from mcunet_tf.export import export_int8_tflite
        from mcunet_tf.tf_env import keras

        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([
            keras.Input((h, w, 1)),
            keras.layers.DepthwiseConv2D((kh, kw), strides=2, padding="same",
                                         depth_multiplier=mult, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ])
        data = np.random.default_rng(seed).uniform(-1, 1, (8, h, w, 1)).astype(np.float32)
        return export_int8_tflite(model, data)

    return _cached_export(name, repr((h, w, kh, kw, mult, seed)), build)


def export_aux(resolution: int, channels: int, pool: str, size: int, seed: int,
               units: int) -> Path:
    name = f"aux_{pool}{size}_r{resolution}_c{channels}_u{units}"

    def build() -> bytes:
        from mcunet_tf.export import export_int8_tflite
        from mcunet_tf.tf_env import keras

        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        layer = keras.layers.AveragePooling2D if pool == "avg" else keras.layers.MaxPooling2D
        model = keras.Sequential([
            keras.Input((resolution, resolution, 3)),
            keras.layers.Conv2D(channels, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(2 * channels, 3, padding="same", activation="relu"),
            layer(size),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(10),
            keras.layers.Softmax(),
        ])
        rng = np.random.default_rng(seed)
        data = rng.uniform(-1, 1, (8, resolution, resolution, 3)).astype(np.float32)
        return export_int8_tflite(model, data)

    return _cached_export(name, repr((resolution, channels, pool, size, seed, units)), build)


def convert(tflite: Path) -> tuple[Graph, Path]:
    """The compiled graph (op indices as in the generated C) and its C folder."""
    from tflite_converter.codegen.generate import generate
    from tflite_converter.pipeline import compile_model

    # regenerated every time (cheap): the C must be what today's converter emits
    out = CACHE / "c" / tflite.stem
    compiled = compile_model(tflite)
    generate(compiled.graph, compiled.plan, out, name="model", order=compiled.order)
    return compiled.graph, out


def _random_inputs(model_dir: Path) -> list[list[np.ndarray]]:
    m = ModelDir.open(model_dir, "model")
    rng = np.random.default_rng(0)
    return [[rng.integers(-128, 128, t.shape, dtype=np.int64).astype(t.dtype)
             for t in m.inputs]]


def measure(model_dir: Path, cpu: str) -> dict[str, Any]:
    """{"total": plain invoke instructions, "ops": {op index: instructions (profiled)}}."""
    key = ModelDir.open(model_dir, "model").content_hash(cpu, "latency-v1")
    path = CACHE / "measure" / f"{model_dir.name}-{cpu}-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    inputs = _random_inputs(model_dir)
    plain = qemu.run_on_qemu(model_dir, "model", inputs, cpu=cpu, dsp=True)
    prof = qemu.run_on_qemu(model_dir, "model", inputs, cpu=cpu, dsp=True, profile_ops=True)
    result = {"total": plain.instructions_per_invoke[0],
              "profiled_total": prof.instructions_per_invoke[0],
              "ops": {str(k): v for k, v in sorted(prof.op_instructions[0].items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return result


# ------------------------------------------------------------------------------ fitting
def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls  # calibration only; the model itself needs no scipy

    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)  # columns of very different magnitude
    x, _ = nnls(a / scale, b)
    return x / scale


def fit(rows: dict[str, list[tuple[dict[str, float], float]]]) -> tuple[dict, dict]:
    """Coefficients per class and the fit's relative residuals per class."""
    coefficients, residuals = {}, {}
    for cls, data in sorted(rows.items()):
        names = latency.features_of(cls)
        a = np.array([[f[n] for n in names] for f, _ in data], dtype=np.float64)
        y = np.array([m for _, m in data], dtype=np.float64)
        w = 1.0 / np.maximum(y, 1.0)
        x = _nnls(a * w[:, None], y * w)
        coefficients[cls] = {n: float(v) for n, v in zip(names, x) if v != 0.0}
        rel = (a @ x - y) / np.maximum(y, 1.0)
        residuals[cls] = {"ops": len(data), "rms_pct": round(float(np.sqrt(np.mean(rel ** 2))) * 100, 2),
                          "max_abs_pct": round(float(np.max(np.abs(rel))) * 100, 2)}
    return coefficients, residuals


def calibration_models() -> list[tuple[str, Path]]:
    out = []
    for i, (w, r, c, s) in enumerate(FIT_NETWORKS):
        name = f"fit{i:02d}_w{int(w * 100)}_r{r}_c{c}"
        out.append((name, export_network(arch(w, r, c, s), name)))
    out += [(p.stem.rsplit("-", 1)[0], p) for p in (export_aux(*a) for a in AUX_MODELS)]
    out += [(p.stem.rsplit("-", 1)[0], p) for p in (export_mlp(d) for d in MLP_MODELS)]
    out += [(p.stem.rsplit("-", 1)[0], p) for p in (export_c1_depthwise(*a) for a in C1_DEPTHWISE_MODELS)]
    return out


def holdout_models() -> list[tuple[str, Path]]:
    out = []
    for i, (w, r, c, s) in enumerate(HOLDOUT_NETWORKS):
        name = f"holdout{i}_w{int(w * 100)}_r{r}_c{c}"
        out.append((name, export_network(arch(w, r, c, s), name)))
    return out


def calibrate(cores: Sequence[str] = CORES, table: Path = latency.TABLE_PATH) -> dict:
    models = calibration_models()
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "command": COMMAND,
        "note": "instructions counted by QEMU -icount shift=0 on the DSP build (per op with "
                "-DMCU_PROFILE_OPS); cycles = instructions x cycles_per_instruction, an "
                "assumption (QEMU models no timing)",
        "calibration_models": [n for n, _ in models],
        "cores": {},
    }
    for cpu in cores:
        rows: dict[str, list] = {}
        overheads = []
        for name, path in models:
            graph, cdir = convert(path)
            m = measure(cdir, cpu)
            overheads.append(m["total"] - sum(m["ops"].values()))
            for op in graph.ops:
                cls = latency.cost_class(graph, op)
                rows.setdefault(cls, []).append((latency.op_features(graph, op, cls),
                                                 float(m["ops"][str(op.index)])))
            print(f"[{cpu}] measured {name}: {m['total']} instructions", flush=True)
        coefficients, residuals = fit(rows)
        cpi, assumption = latency.CPI_ASSUMPTIONS[cpu]
        model = latency.LatencyModel(cpu, cpi, coefficients, assumption,
                                     invoke_overhead=float(max(0.0, np.median(overheads))))
        result["cores"][cpu] = {**model.get_config(), "fit_residuals": residuals}
    table.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {table}")
    return result


# ------------------------------------------------------------------------------ checking
def shared_models() -> list[tuple[str, Path]]:
    """The shared real models the converter accepts (others are reported and skipped)."""
    out = []
    for path in sorted(SHARED_MODELS.glob("*.tflite")):
        try:
            convert(path)
        except ConversionError as e:
            print(f"skip {path.name}: does not convert ({str(e).splitlines()[0]})")
            continue
        out.append((path.stem, path))
    return out


def check(cores: Sequence[str] = CORES, limit_pct: float = 10.0,
          extra: Sequence[Path] = ()) -> int:
    models = [("real", n, p) for n, p in shared_models()] + [("holdout", n, p) for n, p in holdout_models()]
    models += [("given", p.stem, p) for p in extra]
    worst: tuple[float, str] = (0.0, "")
    for cpu in cores:
        model = latency.LatencyModel.load(cpu)
        print(f"\n{cpu} (CPI {model.cycles_per_instruction})")
        print(f"{'set':8s} {'model':44s} {'predicted':>12s} {'measured':>12s} {'error':>8s}  worst class")
        for group, name, path in models:
            graph, cdir = convert(path)
            try:
                m = measure(cdir, cpu)
            except (qemu.QemuError, Exception) as e:  # a model too big for the board
                print(f"{group:8s} {name:44s} not run: {str(e).splitlines()[0][:60]}")
                continue
            pred = model.predict_instructions(graph)
            err = (pred - m["total"]) / m["total"] * 100
            blame = _worst_class(model, graph, m)
            print(f"{group:8s} {name:44s} {pred:12d} {m['total']:12d} {err:+7.1f}%  {blame}")
            if group == "given":
                _print_classes(model, graph, m)
            if abs(err) > abs(worst[0]):
                worst = (err, f"{cpu} {name}")
    print(f"\nworst: {worst[0]:+.1f}% ({worst[1]})")
    return 0 if abs(worst[0]) <= limit_pct else 1


def _print_classes(model: latency.LatencyModel, graph: Graph, m: dict) -> None:
    """Predicted and measured instructions per cost class of one network."""
    pred: dict[str, float] = {}
    meas: dict[str, float] = {}
    for index, cls, n in model.predict_ops(graph):
        pred[cls] = pred.get(cls, 0.0) + n
        meas[cls] = meas.get(cls, 0.0) + m["ops"].get(str(index), 0)
    for cls in sorted(pred, key=lambda c: -meas[c]):
        err = (pred[cls] - meas[cls]) / max(meas[cls], 1.0) * 100
        print(f"         {cls:30s} {pred[cls]:12.0f} {meas[cls]:12.0f} {err:+7.1f}%")


def _worst_class(model: latency.LatencyModel, graph: Graph, m: dict) -> str:
    """The cost class whose summed error contributes most to the network's error."""
    err: dict[str, float] = {}
    for index, cls, n in model.predict_ops(graph):
        err[cls] = err.get(cls, 0.0) + n - m["ops"].get(str(index), 0)
    cls = max(err, key=lambda c: abs(err[c]))
    return f"{cls} {err[cls] / m['total'] * 100:+.1f}%"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare predictions with QEMU counts")
    p.add_argument("--cores", nargs="+", default=list(CORES), choices=CORES)
    p.add_argument("--models", nargs="*", type=Path, default=[],
                   help="with --check: also these .tflite files, with a per-class breakdown")
    args = p.parse_args(argv)
    if not qemu.toolchain_available():
        print("arm-none-eabi-gcc / qemu-system-arm not found", file=sys.stderr)
        return 2
    if args.check:
        return check(args.cores, extra=args.models)
    calibrate(args.cores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
