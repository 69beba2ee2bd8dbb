"""``mcunet-profile`` / ``bazel run //mcunet_tf:profile``: print a network's analytic profile.

    mcunet-profile --config=../shared/mcunet_configs/mcunet-10fps_imagenet.json

``--config`` accepts an MCUNet released JSON, an ``ArchConfig`` JSON or a ``NetworkSpec``
JSON. Prints one JSON object with ``macs``, ``params``, ``peak_activation_bytes`` (int8
unless ``--activation_bits``), the peak layer, and, when the network is a point of MCUNet's
search space, its ``arch_config``. Relative paths are taken from the directory the user ran
the command in (also under ``bazel run``). No TensorFlow needed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from absl import app, flags, logging

from engine.cli_paths import resolve_user_path
from mcunet_tf.mcunet_configs import MCUNetConfigError, load_config
from mcunet_tf.profile import profile

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "MCUNet / ArchConfig / NetworkSpec JSON file.")
flags.DEFINE_integer("activation_bits", 8, "Bits per stored activation for the peak.")
flags.DEFINE_boolean("per_layer", False, "Also print every layer's figures.")
flags.DEFINE_integer("indent", 2, "JSON indentation (0 for one line).")
flags.mark_flag_as_required("config")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    path = resolve_user_path(FLAGS.config)
    logging.info("profiling %s", path)
    try:
        loaded = load_config(path)
    except (OSError, json.JSONDecodeError, MCUNetConfigError, ValueError, KeyError) as err:
        print(f"mcunet-profile: cannot read {path}: {err}", file=sys.stderr)
        return 1
    result = profile(loaded.spec, activation_bits=FLAGS.activation_bits)
    out: dict[str, Any] = {"config": str(path), "name": loaded.spec.name, "format": loaded.format.value,
           "resolution": loaded.spec.resolution}
    out.update(result.to_dict(per_layer=FLAGS.per_layer))
    if loaded.arch is not None:
        out["arch_config"] = loaded.arch.get_config()
    print(json.dumps(out, indent=FLAGS.indent or None))
    return 0


def run() -> None:
    """Console-script entry point (``mcunet-profile``)."""
    app.run(main)


if __name__ == "__main__":
    run()
