"""Deploying a trained float tf_keras network: quantize (QAT with TF-MOT, or PTQ), export the
int8 ``.tflite``, generate our C, and measure and verify what a user would ship.

Figures (keys of :meth:`DeployReport.get_config`), all accuracies on the TEST split:

- ``float_test_accuracy`` (Keras), ``int8_test_accuracy`` (ai_edge_litert on the .tflite),
  ``c_test_accuracy`` (our generated C compiled for the host); ``c_int8_same_predictions``
  ("k/n": test images where our C and ai_edge_litert pick the same class; LiteRT's optimised
  kernels may round differently from the reference kernels TFLM and our C follow);
  ``qat_keras_test_accuracy`` (the fake-quantized Keras model QAT trained; None for PTQ);
- ``tflm_identical`` ("k/n" held-out images whose int8 outputs are byte-identical between our
  C on the host and TensorFlow Lite Micro); ``verified`` only when all of at least one are
  AND, when the Cortex-M run happened, all its outputs are TFLM's too (the bytes the MCU
  computes are what ships); ``verify_summary`` says in one line what was compared or what
  differed;
- ``arena_bytes`` (our planner's one arena), ``tflm_arena_bytes`` (the smallest arena TFLM
  prepares the same .tflite with, by bisection), ``tflm_arena_recorded_bytes`` (TFLM's own
  allocation total with a generous arena), ``tflite_bytes``;
- on an emulated Cortex-M (skipped with ``qemu_skipped`` giving the reason): ``qemu_cpu``,
  ``qemu_instructions`` (median per invoke), ``qemu_identical_to_tflm``,
  ``flash_bytes_linked_image`` / ``ram_bytes_linked_image`` (the whole firmware image:
  .text + .rodata + .data / .data + .bss, harness and newlib included),
  ``flash_bytes_model_object`` / ``ram_bytes_model_object`` (the model's own object file:
  code + weights / its arena and any other state).

Files in ``out_dir``: ``{name}_float.h5`` (the whole float model, tf_keras HDF5: it reloads
with ``keras.models.load_model(path, compile=False)``; a model holding the BN-folded layers
of :mod:`mcunet_tf.quantize` needs ``custom_objects=mcunet_tf.quantize.CUSTOM_OBJECTS``),
``{name}_int8.tflite``, ``c/`` (the generated model).
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from absl import logging
from tqdm import tqdm

QUANTIZATIONS = ("qat", "ptq")
# Keys of the Cortex-M part of the report (flattened into get_config).
_QEMU_PREFIXES = ("qemu_", "flash_bytes_", "ram_bytes_")
REPRESENTATIVE_IMAGES = 200  # calibration images from the training split
HOST_CHUNK = 256  # images per host C call: a progress bar that moves, little overhead


@dataclasses.dataclass(frozen=True)
class DeployReport:
    """What deploying one network gave (see the module docstring for each figure)."""

    name: str
    quantization: str
    resolution: int
    in_channels: int
    files: dict[str, str]
    float_test_accuracy: float
    int8_test_accuracy: float
    c_test_accuracy: float
    qat_keras_test_accuracy: Optional[float]  # the fake-quantized Keras model; None for PTQ
    c_int8_same_predictions: str
    test_images: int
    tflm_identical: str
    verified: bool
    verify_summary: str
    tflm_mismatches: tuple[int, ...]  # held-out indices (first few) that differ
    arena_bytes: int
    tflm_arena_bytes: int
    tflm_arena_recorded_bytes: int  # TFLM's own allocation total with a generous arena
    tflite_bytes: int
    qat_steps: int
    qemu: dict[str, Any]  # the Cortex-M keys, or {"qemu_skipped": reason}

    def get_config(self) -> dict[str, Any]:
        config = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "qemu"}
        config["files"] = dict(self.files)
        config["tflm_mismatches"] = list(self.tflm_mismatches)
        # Flat, so that the run report reads deploy["qemu_instructions"] like the rest.
        config.update(self.qemu)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DeployReport":
        names = {f.name for f in dataclasses.fields(cls)} - {"qemu"}
        kwargs = {k: config[k] for k in names}
        kwargs["tflm_mismatches"] = tuple(kwargs["tflm_mismatches"])
        kwargs["files"] = dict(kwargs["files"])
        qemu = {k: v for k, v in config.items() if k.startswith(_QEMU_PREFIXES)}
        return cls(**kwargs, qemu=qemu)


# ------------------------------------------------------------------------ small helpers
def quantize_input(images_uint8: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Prepared uint8 images -> the int8 input tensor, as mcunet_tf.quantize.tflite_predict
    quantizes them (so the three accuracies see the same inputs)."""
    from mcunet_tf.data import to_float

    return np.clip(np.round(to_float(images_uint8) / scale + zero_point), -128, 127).astype(np.int8)


def count_identical(ours: Sequence[np.ndarray], theirs: Sequence[np.ndarray]) -> tuple[int, list[int]]:
    """How many output pairs are byte-identical, and the indices of those that are not."""
    bad = [i for i, (a, b) in enumerate(zip(ours, theirs))
           if a.dtype != b.dtype or a.tobytes() != b.reshape(a.shape).tobytes()]
    return len(ours) - len(bad), bad


def run_host(host: Any, x: np.ndarray, progress: bool, desc: str) -> list[np.ndarray]:
    """Our C on the host, the first output of each image."""
    outs: list[np.ndarray] = []
    with tqdm(total=len(x), desc=desc, unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(x), HOST_CHUNK):
            chunk = x[start:start + HOST_CHUNK]
            outs += [o[0] for o in host.run_many([[img] for img in chunk])]
            bar.update(len(chunk))
    return outs


def run_tflm(tflm: Any, x: np.ndarray, progress: bool, desc: str) -> list[np.ndarray]:
    return [tflm.run([img[None]])[0] for img in
            tqdm(x, desc=desc, unit="img", disable=not progress, dynamic_ncols=True)]


_PROBE = ("import sys; from engine.tflm import TflmModel; "
          "TflmModel(sys.argv[1], arena_size=int(sys.argv[2]))")


def tflm_smallest_arena(tflite_path: Path) -> int:
    """TFLM's smallest arena for the model (``TflmModel.smallest_arena``'s bisection), each
    trial arena prepared in a child process: the tflite-micro wheel can crash the process
    (SIGSEGV) instead of failing cleanly for some too-small arenas (seen with MobileNetV2
    w0.2 at about 3/4 of the recorded total). A crash counts as "does not fit"."""
    from engine.tflm import TflmModel

    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p))

    class IsolatedTrials(TflmModel):
        def __init__(self, model: Any, arena_size: Optional[int] = None) -> None:
            if arena_size is None:  # the generous first arena: its recorded total, in-process
                super().__init__(model)
                return
            proc = subprocess.run([sys.executable, "-c", _PROBE, str(tflite_path), str(arena_size)],
                                  capture_output=True, env=env, timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"TFLM does not prepare with {arena_size} bytes "
                                   f"(exit {proc.returncode})")

    return int(IsolatedTrials.smallest_arena(tflite_path.read_bytes()))


def quantize(model: Any, train: Any, quantization: str, qat_steps: int, batch_size: int,
             seed: int, flip: bool, progress: bool = False) -> tuple[bytes, Any]:
    """The int8 .tflite of ``model`` and the QAT Keras model (None for PTQ): TF-MOT QAT
    fine-tuning then export, or PTQ (calibration only)."""
    from mcunet_tf.data import Augmentation, representative_images
    from mcunet_tf.quantize import QATConfig, int8_from_ptq, int8_from_qat, qat_finetune

    rep = representative_images(train, REPRESENTATIVE_IMAGES)
    if quantization == "ptq":
        return int8_from_ptq(model, rep), None
    logging.info("QAT: %d steps of %d images (TF-MOT)", qat_steps, batch_size)
    # Keras's own progress bar (qat_finetune takes no callbacks): live on a terminal, one
    # summary line in a log file, where a per-step bar would print a line per step.
    verbose = (1 if sys.stdout.isatty() else 2) if progress else 0
    qat = qat_finetune(model, train, QATConfig(steps=qat_steps, batch_size=batch_size, seed=seed),
                       augmentation=Augmentation(flip=flip), verbose=verbose)
    return int8_from_qat(qat, rep), qat


def qemu_figures(c_dir: Path, name: str, x: np.ndarray, tflm: Any, cpu: str,
                 qemu_images: int) -> dict[str, Any]:
    """Run ``qemu_images`` inputs on the emulated Cortex-M (DSP build) beside TFLM."""
    from engine import qemu

    if qemu_images <= 0:
        return {"qemu_skipped": "qemu_images=0"}
    if not qemu.toolchain_available():
        return {"qemu_skipped": "arm-none-eabi-gcc / arm-none-eabi-size / qemu-system-arm not installed"}
    from engine.host import BuildError

    k = min(qemu_images, len(x))
    logging.info("%s: %d images on QEMU %s", name, k, cpu)
    try:
        r = qemu.run_on_qemu(c_dir, name, [[img] for img in x[:k]], cpu=cpu, dsp=True)
    except (BuildError, qemu.QemuError) as e:
        # Recorded, not raised: the host figures and the TFLM check above stand on their own,
        # and a long search should still write its report; the reason says what to look at.
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        logging.error("%s: the Cortex-M run failed: %s", name, e)
        return {"qemu_skipped": f"failed on {cpu}: {first}"}
    same, _ = count_identical([o[0] for o in r.outputs], run_tflm(tflm, x[:k], False, ""))
    return {"qemu_cpu": cpu,
            "qemu_instructions": int(np.median(r.instructions_per_invoke)),
            "qemu_identical_to_tflm": f"{same}/{k}",
            "flash_bytes_linked_image": int(r.flash_bytes),
            "flash_bytes_model_object": None if r.model is None else int(r.model.flash_bytes),
            "ram_bytes_linked_image": int(r.data + r.bss),
            "ram_bytes_model_object": None if r.model is None else int(r.model.ram_bytes)}


def qemu_mismatch(qemu: Mapping[str, Any]) -> Optional[str]:
    """The one-line reason when the Cortex-M outputs were not all TFLM's, else None."""
    same = qemu.get("qemu_identical_to_tflm")
    if same is None:
        return None
    k, n = (int(v) for v in same.split("/"))
    return None if k == n else f"{same} Cortex-M ({qemu.get('qemu_cpu')}) outputs identical to TFLite Micro"


# ------------------------------------------------------------------------ the deployment
def deploy_model(model: Any, splits: Any, resolution: int, out_dir: str | Path, mcu: Any, *,
                 qat_steps: int = 200, batch_size: int = 64, seed: int = 0,
                 quantization: str = "qat", name: str = "model", verify_images: int = 200,
                 qemu_images: int = 5, progress: bool = True, patch: Any = None) -> DeployReport:
    """Quantize ``model`` (a trained float tf_keras network taking ``resolution`` x
    ``resolution`` images), generate its C into ``out_dir/c`` and measure and verify it
    (see the module docstring). ``mcu``: a :class:`nas.mcu.McuProfile` (its QEMU CPU).
    ``patch``: the converter's `tflite_converter.patch.PatchSetting` (None: layer by layer),
    the one the search's oracle profiled the network with."""
    from engine.host import HostModel
    from engine.tflm import TflmModel
    from mcunet_tf.data import Preprocessing, prepare_dataset, to_float
    from mcunet_tf.quantize import keras_accuracy, tflite_accuracy, tflite_predict
    from tflite_converter.codegen.generate import convert_model

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"deploy: quantization {quantization!r}: one of {QUANTIZATIONS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    channels = int(model.input_shape[-1])
    if tuple(model.input_shape[1:3]) != (resolution, resolution):
        raise ValueError(f"deploy: {name} takes {tuple(model.input_shape[1:3])} images, "
                         f"not {resolution}x{resolution}")
    prep = Preprocessing(resolution, channels)
    train, holdout, test = (prepare_dataset(d, prep) for d in (splits.train, splits.holdout, splits.test))

    float_path = out / f"{name}_float.h5"
    model.save(str(float_path))  # whole model (tf_keras HDF5): reloads without the builder
    float_acc = keras_accuracy(model, test)
    logging.info("%s: float test accuracy %.4f; quantizing (%s)", name, float_acc, quantization)

    flatbuffer, qat_model = quantize(model, train, quantization, qat_steps, batch_size, seed,
                                     splits.flip, progress)
    # What QAT training itself reaches (fake-quantized Keras), beside the deployed int8.
    qat_acc = None if qat_model is None else keras_accuracy(qat_model, test)
    tflite_path = out / f"{name}_int8.tflite"
    tflite_path.write_bytes(flatbuffer)
    int8_acc = tflite_accuracy(flatbuffer, test)
    logging.info("%s: int8 .tflite test accuracy %.4f; generating C", name, int8_acc)

    generated = convert_model(flatbuffer, out / "c", name) if patch is None else \
        convert_model(flatbuffer, out / "c", name, patch=patch)
    io = generated.inputs[0]
    if io.scale is None or io.zero_point is None:
        raise ValueError(f"{name}: the exported model's input is not per-tensor quantized int8")
    in_scale, in_zero_point = io.scale, io.zero_point
    host = HostModel(generated.output_dir, name)
    x_test = quantize_input(test.images, in_scale, in_zero_point)
    c_out = run_host(host, x_test, progress, f"{name}: our C on the test split")
    c_pred = np.array([int(np.argmax(o.reshape(-1))) for o in c_out])
    c_acc = float(np.mean(c_pred == test.labels))
    litert_pred = np.argmax(tflite_predict(flatbuffer, to_float(test.images)), axis=-1).reshape(-1)
    same_pred = int(np.sum(litert_pred == c_pred))

    # Bit-exact check on held-out inputs the network was never trained on.
    n = min(int(verify_images), len(holdout))
    x_hold = quantize_input(holdout.images[:n], in_scale, in_zero_point)
    ours = run_host(host, x_hold, progress, f"{name}: our C on held-out inputs")
    tflm = TflmModel(flatbuffer)
    theirs = run_tflm(tflm, x_hold, progress, f"{name}: TFLite Micro on held-out inputs")
    identical, bad = count_identical(ours, theirs)
    verified = n > 0 and identical == n
    summary = (f"{identical}/{n} held-out outputs identical to TFLite Micro" if n
               else "nothing verified: no held-out images")
    (logging.info if verified else logging.error)("%s: %s", name, summary)

    tflm_arena = tflm_smallest_arena(tflite_path)
    tflm_recorded = int(tflm.arena_used_bytes())
    qemu = qemu_figures(generated.output_dir, name, x_test, tflm, mcu.qemu_cpu, int(qemu_images))
    if "qemu_skipped" in qemu:
        logging.info("%s: QEMU skipped (%s)", name, qemu["qemu_skipped"])
    on_mcu = qemu_mismatch(qemu)
    if on_mcu is not None:
        # The host build matched but the Cortex-M build (DSP paths) did not: what ships differs.
        verified = False
        summary = f"{summary}; but only {on_mcu}"
        logging.error("%s: %s", name, summary)

    return DeployReport(
        name=name, quantization=quantization, resolution=int(resolution), in_channels=channels,
        files={"float_model": str(float_path), "int8_tflite": str(tflite_path),
               "c_dir": str(generated.output_dir)},
        float_test_accuracy=float_acc, int8_test_accuracy=float(int8_acc),
        c_test_accuracy=c_acc, qat_keras_test_accuracy=qat_acc,
        c_int8_same_predictions=f"{same_pred}/{len(test)}",
        test_images=len(test), tflm_identical=f"{identical}/{n}", verified=bool(verified),
        verify_summary=summary, tflm_mismatches=tuple(bad[:10]),
        arena_bytes=int(generated.arena_bytes), tflm_arena_bytes=tflm_arena,
        tflm_arena_recorded_bytes=tflm_recorded,
        tflite_bytes=len(flatbuffer), qat_steps=int(qat_steps) if quantization == "qat" else 0,
        qemu=qemu)


__all__ = ["DeployReport", "deploy_model", "quantize_input", "count_identical", "QUANTIZATIONS"]
