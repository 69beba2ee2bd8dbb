"""Export tf_keras.applications networks as int8 .tflite with seeded random weights.

    python -m benchmarks.keras_applications [--output_dir=build/models] [--only=mobilenet_v2_1.0_224]

Issue 14's reference for patch-based inference is MobileNetV2-1.0 at 224 x 224 (MCUNetV2's
1372 kB -> 172 kB figure): `tf_keras.applications.MobileNetV2(weights=None)`, given the same
seeded random weights and BatchNorm statistics as the MCUNet exports
(`mcunet_tf.export.randomize_weights`) and calibrated on seeded random images in [-1, 1]
(`mcunet_tf.export.export_int8_tflite`). Memory and MACs do not depend on the weights; the
outputs are compared with TFLM by whoever converts the file. Written as OUTPUT_DIR/NAME.tflite
beside the MCUNet exports, where benchmarks.patch_arena and the others find it.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parent.parent
FLAGS = flags.FLAGS


def _mobilenet_v2(alpha: float, resolution: int) -> Callable[[], object]:
    def build():
        import tf_keras as keras

        return keras.applications.MobileNetV2(input_shape=(resolution, resolution, 3), alpha=alpha,
                                              weights=None, classes=1000)
    return build


NETWORKS: dict[str, tuple[Callable[[], object], int]] = {
    "mobilenet_v2_1.0_224": (_mobilenet_v2(1.0, 224), 224),
}


def export(name: str, output_dir: Path, seed: int = 0, samples: int = 8) -> Path:
    from mcunet_tf.export import export_int8_tflite, randomize_weights

    build, resolution = NETWORKS[name]
    model = build()
    data = np.random.default_rng([seed, 1]).uniform(-1.0, 1.0, (samples, resolution, resolution, 3))
    data = data.astype(np.float32)
    randomize_weights(model, data, seed)
    path = output_dir / f"{name}.tflite"
    export_int8_tflite(model, data, path)
    return path


def main(argv: Sequence[str]) -> int:
    del argv
    names = FLAGS.only or list(NETWORKS)
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        print(f"--only: unknown {', '.join(unknown)}; known: {', '.join(NETWORKS)}", file=sys.stderr)
        return 2
    out = Path(FLAGS.output_dir)
    for name in names:
        print(f"wrote {export(name, out)}", flush=True)
    return 0


if __name__ == "__main__":
    flags.DEFINE_string("output_dir", str(REPO / "build" / "models"), "Folder of the .tflite files.")
    flags.DEFINE_multi_string("only", None, "Export only these networks.")
    app.run(main)
