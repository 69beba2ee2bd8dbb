"""The steps of the demo pipeline (nas/demo.py is its command line): pick a network of the
MCUNet search space that fits a microcontroller by asking the converter's memory planner,
train and quantize it, and run its generated C beside TFLite Micro."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from absl import app
from tqdm import tqdm

from mcunet_tf.arch import ArchConfig, SearchSpace
from mcunet_tf.profile import profile
from nas.mcu import McuProfile
from nas.memory_oracle import MemoryOracle


def pick_architecture(space: SearchSpace, mcu: McuProfile, oracle: MemoryOracle, n: int,
                      max_macs: int, rng: np.random.Generator) -> tuple[ArchConfig, dict[str, Any]]:
    """The sampled architecture with the most MACs that fits the MCU (oracle's arena <= SRAM,
    weights estimate <= Flash) and `max_macs`."""
    best, best_info, fitting = None, None, 0
    for _ in tqdm(range(n), desc="sampling architectures", unit="arch"):
        cfg = space.sample(rng)
        mem = oracle.profile(cfg)
        macs = profile(cfg.to_network()).macs
        if mem.arena_bytes > mcu.sram_bytes or mem.flash_estimate_bytes > mcu.flash_bytes or macs > max_macs:
            continue
        fitting += 1
        if best is None or macs > best_info["macs"]:
            best, best_info = cfg, {"macs": macs, "planned_arena_bytes": mem.arena_bytes,
                                    "flash_estimate_bytes": mem.flash_estimate_bytes}
    if best is None:
        raise app.UsageError(f"none of {n} sampled architectures fits {mcu.name}")
    best_info["candidates"] = n
    best_info["fitting"] = fitting
    return best, best_info


def train_and_quantize(cfg: ArchConfig, epochs: int, seed: int) -> tuple[bytes, dict[str, Any], Any]:
    from mcunet_tf import data
    from mcunet_tf.keras_builder import build_keras_model
    from mcunet_tf.quantize import int8_from_ptq, keras_accuracy, tflite_accuracy
    from mcunet_tf.tf_env import keras, tf

    tf.keras.utils.set_random_seed(seed)
    splits = data.load_digits(seed=seed)
    prep = data.Preprocessing(cfg.resolution, channels=3)
    train, test = data.prepare_dataset(splits.train, prep), data.prepare_dataset(splits.test, prep)
    model = build_keras_model(cfg.to_network(name="demo"))
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    pipeline = data.make_pipeline(train, 64, training=True, seed=seed, augmentation=data.Augmentation(flip=False))
    model.fit(pipeline, epochs=epochs, steps_per_epoch=-(-len(train) // 64), verbose=2)
    flatbuffer = int8_from_ptq(model, data.representative_images(train, 200))
    figures = {"float_test_accuracy": keras_accuracy(model, test),
               "int8_tflite_test_accuracy": tflite_accuracy(flatbuffer, test),
               "train_images": len(train), "test_images": len(test)}
    return flatbuffer, figures, test


def quantize_images(images_uint8: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    from mcunet_tf.data import to_float

    return np.clip(np.round(to_float(images_uint8) / scale) + zero_point, -128, 127).astype(np.int8)


def run_side_by_side(flatbuffer: bytes, out: Path, test, mcu: McuProfile, use_qemu: bool,
                     qemu_images: int) -> dict[str, Any]:
    from engine import qemu
    from engine.host import HostModel
    from engine.tflm import TflmModel
    from tflite_converter.codegen.generate import convert_model

    generated = convert_model(flatbuffer, out / "c", name="demo")
    io = generated.inputs[0]
    x = quantize_images(test.images, io.scale, io.zero_point)
    ours = [o[0] for o in HostModel(generated.output_dir, "demo").run_many([[img] for img in x])]
    tflm = TflmModel(flatbuffer)
    theirs = [tflm.run([img[None]])[0] for img in tqdm(x, desc="TFLM", unit="img")]
    identical = sum(np.array_equal(a.reshape(-1), b.reshape(-1)) for a, b in zip(ours, theirs))
    preds = np.array([int(np.argmax(o)) for o in ours])
    figures: dict[str, Any] = {
        "c_test_accuracy": float(np.mean(preds == test.labels)),
        "outputs_identical_to_tflm": f"{identical}/{len(x)}",
        "our_arena_bytes": generated.arena_bytes,
        "tflm_arena_bytes": tflm.arena_used_bytes(),
    }
    if use_qemu and qemu.toolchain_available():
        k = min(qemu_images, len(x))
        for dsp in (False, True):
            r = qemu.run_on_qemu(generated.output_dir, "demo", [[img] for img in x[:k]], cpu=mcu.qemu_cpu, dsp=dsp)
            same = sum(np.array_equal(a[0].reshape(-1), b.reshape(-1)) for a, b in zip(r.outputs, theirs[:k]))
            build = "dsp" if dsp else "portable"
            figures[f"{mcu.qemu_cpu}_{build}_instructions"] = int(np.median(r.instructions_per_invoke))
            figures[f"{mcu.qemu_cpu}_{build}_identical_to_tflm"] = f"{same}/{k}"
            figures["flash_bytes_model_object"] = r.model.flash_bytes
            figures["flash_bytes_linked_image"] = r.flash_bytes
    elif use_qemu:
        figures["qemu"] = "skipped: arm-none-eabi-gcc / qemu-system-arm not installed"
    return figures
