"""Images per second of supernet training steps on this machine.

Measures the two phases of :class:`mcunet_tf.train.SupernetTrainer` separately on
synthetic data of the search space's resolution (data loading is not what is measured):

* ``largest``: one forward/backward of the largest network per step;
* ``elastic``: the largest network (distillation teacher) plus ``num_subnets`` random
  sub-networks per step, gradients accumulated, one update.

Reported: training images per second (global batch / step time) and network-images per
second (images x networks run per step), after warm-up steps that include tracing; the
tracing time of each phase is reported too.

    python -m benchmarks.supernet_throughput --width_mult=0.35 --resolution=32
"""

from __future__ import annotations

import json
import time

import numpy as np
from absl import app, flags

flags.DEFINE_float("width_mult", 0.35, "width multiplier of the search space")
flags.DEFINE_integer("resolution", 32, "input resolution")
flags.DEFINE_integer("batch_size", 64, "global batch size")
flags.DEFINE_integer("num_subnets", 4, "sub-networks per elastic step")
flags.DEFINE_integer("steps", 20, "timed steps per phase")
FLAGS = flags.FLAGS


def _synthetic_splits(resolution: int, count: int):
    from mcunet_tf.data import DataSplits, ImageDataset

    rng = np.random.default_rng(0)
    ds = ImageDataset(rng.integers(0, 256, (count, resolution, resolution, 3), dtype=np.uint8),
                      rng.integers(0, 10, count), tuple(str(i) for i in range(10)))
    return DataSplits("synthetic", ds, ds.take(8), ds.take(8), flip=True)


def measure(width_mult: float, resolution: int, batch_size: int, num_subnets: int,
            steps: int) -> dict:
    from mcunet_tf.train import SupernetTrainer, TrainConfig

    warmup = 2
    config = TrainConfig(width_mult=width_mult, resolution=resolution, num_classes=10,
                         batch_size=batch_size, largest_steps=warmup + steps,
                         elastic_steps=warmup + steps, num_subnets=num_subnets,
                         distill=True, warmup_steps=1, checkpoint_every=0)
    splits = _synthetic_splits(resolution, 4 * batch_size)
    trainer = SupernetTrainer(config)
    report = {"config": config.get_config()}
    boundaries = {"largest": (0, warmup, warmup + steps),
                  "elastic": (warmup + steps, 2 * warmup + steps, 2 * (warmup + steps))}
    for phase, (_start, timed_from, end) in boundaries.items():
        t0 = time.perf_counter()
        trainer.train(splits, stop_at=timed_from, progress=False)
        trace_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        trainer.train(splits, stop_at=end, progress=False)
        seconds = time.perf_counter() - t1
        nets = 1 if phase == "largest" else num_subnets + 1
        report[phase] = {
            "first_steps_seconds_incl_tracing": round(trace_seconds, 1),
            "images_per_second": round(steps * batch_size / seconds, 1),
            "network_images_per_second": round(steps * batch_size * nets / seconds, 1),
            "networks_per_step": nets,
        }
    return report


def main(argv) -> None:
    del argv
    print(json.dumps(measure(FLAGS.width_mult, FLAGS.resolution, FLAGS.batch_size,
                             FLAGS.num_subnets, FLAGS.steps), indent=2))


if __name__ == "__main__":
    app.run(main)
