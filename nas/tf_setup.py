"""TensorFlow settings of a search run: seeded and deterministic, so that a resumed run and
an unbroken one compute the same numbers."""
from __future__ import annotations


def configure_tensorflow(seed: int) -> None:
    from mcunet_tf.tf_env import keras, tf

    keras.utils.set_random_seed(seed)
    # Same op results for the same inputs (no order-dependent float reductions); tf.data
    # pipelines of mcunet_tf.data are deterministic already.
    tf.config.experimental.enable_op_determinism()
