"""The one place that imports TensorFlow for ``mcunet_tf`` (and anything built on it).

TF-MOT supports only Keras 2 (``tf_keras``), and TensorFlow 2.16+ binds ``tf.keras`` to
Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set *before* TensorFlow is first imported. Every
TF-using module therefore imports ``tf`` and ``keras`` from here, never directly, so the
variable is always set in time and ``tf.keras`` and ``keras`` are the same Keras 2.

    from mcunet_tf.tf_env import tf, keras
"""

from __future__ import annotations

import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    # Too late to switch tf.keras to Keras 2: say so instead of failing obscurely later.
    raise ImportError(
        "mcunet_tf.tf_env: TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set; "
        "import mcunet_tf.tf_env (or set TF_USE_LEGACY_KERAS=1) before importing tensorflow"
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# TensorFlow's C++ start-up chatter (CPU feature notices) is noise for our programs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402


def get_tf():
    """TensorFlow, imported with Keras 2 as ``tf.keras``."""
    return tf


def get_keras():
    """``tf_keras`` (Keras 2), the Keras TF-MOT can quantize."""
    return keras


__all__ = ["tf", "keras", "get_tf", "get_keras"]
