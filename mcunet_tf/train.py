"""Supernet training under a ``tf.distribute`` strategy, with checkpoints and a progress bar.

Schedule (Once-for-All / MCUNet style):

1. ``largest_steps`` steps train the largest network alone;
2. then channels are sorted by importance (:meth:`Supernet.reorganize_channels`) and every
   step trains ``num_subnets`` random sub-networks (MCUNet samples 4) with their gradients
   accumulated into one update. With ``distill`` the largest network also runs every step
   (trained on the labels) and its stop-gradient predictions are soft targets for the
   sampled sub-networks (in-place distillation).

SGD with momentum, cosine learning-rate decay with linear warm-up, decoupled weight decay
on convolution / dense kernels. The sub-networks of a step come from a NumPy generator
seeded by ``(seed, step)`` and the data stream is seeded too, so a run that stops and resumes
from its last checkpoint (``tf.train.CheckpointManager``) sees the same steps.

Distribution: :func:`make_strategy` gives the default strategy (one device),
``MirroredStrategy`` (all local GPUs, or the logical CPU devices configured with
``tf.config.set_logical_device_configuration``), or ``MultiWorkerMirroredStrategy``. For
several machines set ``TF_CONFIG`` on each worker before starting it, e.g. for worker 0 of 2::

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}' \\
        python -m mcunet_tf.train --strategy=multi_worker --dataset=fashion_mnist ...

and the same command with ``"index": 1`` on host1. Every worker runs the same program; the
global batch is split across workers (the data set is sharded by element); worker 0 (the
chief) writes the real checkpoints, the others write to throw-away directories as
``MultiWorkerMirroredStrategy`` requires.

Command line (Fashion-MNIST, small space; about 5 minutes of training plus 3 of evaluation
and quantization on 2 shared CPU cores), printing and writing ``report.json``::

    python -m mcunet_tf.train --dataset=fashion_mnist \\
        --data_dir=../shared/data/fashion_mnist --width_mult=0.35 --resolution=32 \\
        --batch_size=64 --largest_steps=400 --elastic_steps=150 --num_subnets=4 \\
        --qat_steps=100 --eval_subnets=2 --out_dir=/tmp/fmnist_run

Tracing the elastic step of MCUNet's full 21-slot space (five networks unrolled, each with
``tf.cond`` / ``tf.switch_case``) takes 2-3 minutes once per run; later steps reuse it.
"""

from __future__ import annotations

import enum
import json
import os
import pathlib
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from mcunet_tf.arch import ArchConfig, SearchSpace
from mcunet_tf.data import Augmentation, DataSplits, Preprocessing, make_pipeline, prepare_dataset
from mcunet_tf.supernet import ArchTensors, Supernet, SupernetOptions
from mcunet_tf.tf_env import keras, tf


class StrategyKind(str, enum.Enum):
    DEFAULT = "default"
    MIRRORED = "mirrored"
    MULTI_WORKER = "multi_worker"


_STRATEGIES = {
    StrategyKind.DEFAULT: lambda devices: tf.distribute.get_strategy(),
    StrategyKind.MIRRORED: lambda devices: tf.distribute.MirroredStrategy(devices),
    StrategyKind.MULTI_WORKER: lambda devices: tf.distribute.MultiWorkerMirroredStrategy(),
}


def make_strategy(kind: str | StrategyKind = StrategyKind.DEFAULT,
                  devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy; ``devices`` restricts ``MirroredStrategy``."""
    return _STRATEGIES[StrategyKind(kind)](None if devices is None else list(devices))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a supernet training run (saved beside its checkpoints)."""

    width_mult: float = 0.35
    resolution: int = 32
    in_channels: int = 3
    num_classes: int = 10
    kernel_transform: bool = True
    batch_size: int = 64          # global batch, split across replicas
    largest_steps: int = 200
    elastic_steps: int = 200
    num_subnets: int = 4
    distill: bool = True
    distill_weight: float = 1.0
    learning_rate: float = 0.05   # peak, per global batch
    momentum: float = 0.9
    weight_decay: float = 4e-5
    warmup_steps: int = 20
    label_smoothing: float = 0.1
    augment: bool = True
    seed: int = 0
    checkpoint_every: int = 100

    @property
    def total_steps(self) -> int:
        return self.largest_steps + self.elastic_steps

    def space(self) -> SearchSpace:
        return SearchSpace(self.width_mult, self.resolution, num_classes=self.num_classes,
                           in_channels=self.in_channels)

    def get_config(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"TrainConfig: unknown keys {sorted(unknown)}")
        return cls(**dict(config))


@dataclass
class TrainResult:
    supernet: Supernet
    steps_done: int
    resumed_from: int
    losses: list[float] = field(default_factory=list)
    images_per_second: float = 0.0


def _kernel_like(variable: Any) -> bool:
    """Decoupled weight decay applies to conv / dense kernels only (not BN, bias, T)."""
    name = variable.name
    return "kernel" in name and "transform" not in name


SUBNET_DRAWS = 200  # draws per filtered sub-network before the last one is kept


class SupernetTrainer:
    """Owns the model, optimizer, checkpoints and traced step functions of one run."""

    def __init__(self, config: TrainConfig, strategy: tf.distribute.Strategy | None = None,
                 checkpoint_dir: str | os.PathLike[str] | None = None,
                 space: SearchSpace | None = None,
                 subnet_filter: Callable[[ArchConfig], bool] | None = None) -> None:
        """``space`` replaces MCUNet's backbone at the configuration's width / resolution
        (e.g. a reduced space for quick tests); it must agree on the class count.

        ``subnet_filter`` restricts the elastic phase's sampled sub-networks to those it
        accepts (the search passes "fits the memory limits"): the shared weights are then
        trained for the networks evolution can pick, not for the whole space."""
        self.config = config
        self.subnet_filter = subnet_filter
        self.strategy = strategy or tf.distribute.get_strategy()
        self.space = space or config.space()
        if self.space.num_classes != config.num_classes:
            raise ValueError(f"search space has {self.space.num_classes} classes, the "
                             f"training configuration {config.num_classes}")
        with self.strategy.scope():
            self.supernet = Supernet(self.space, SupernetOptions(config.kernel_transform))
            self.supernet.build_all()
            schedule = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=0.0, decay_steps=max(1, config.total_steps
                                                           - config.warmup_steps),
                warmup_target=config.learning_rate, warmup_steps=config.warmup_steps)
            self.optimizer = keras.optimizers.SGD(
                learning_rate=schedule, momentum=config.momentum, nesterov=True,
                weight_decay=config.weight_decay)
            self.optimizer.exclude_from_weight_decay(
                var_list=[v for v in self.supernet.trainable_variables if not _kernel_like(v)])
            self.optimizer.build(self.supernet.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.largest_arch = self.supernet.encode(self.space.largest())
        self._checkpoint_dir = checkpoint_dir
        self.manager = None
        if checkpoint_dir is not None:
            self.checkpoint = tf.train.Checkpoint(model=self.supernet,
                                                  optimizer=self.optimizer, step=self.step)
            self.manager = tf.train.CheckpointManager(
                self.checkpoint, _worker_checkpoint_dir(self.strategy, checkpoint_dir),
                max_to_keep=2)
        self._step_fns: dict[tuple[int, bool], Any] = {}
        # Called once per network of a step and unrolled into the step's graph: a nested
        # tf.function would be inlined anyway and measured slower to compile.
        self._grads = self._subnet_grads

    # ---------------------------------------------------------------- checkpoints
    def restore(self) -> int:
        """Restore the newest checkpoint if there is one; the step to continue from."""
        if self.manager is not None and self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_consumed()
        return int(self.step.numpy())

    def save(self) -> None:
        if self.manager is not None:
            self.manager.save(checkpoint_number=int(self.step.numpy()))

    # ---------------------------------------------------------------- sampling
    def subnets_for_step(self, step: int) -> list[ArchConfig]:
        """The step's sub-networks, drawn from a generator seeded by the step (a resumed run
        trains the same ones); with a filter, each is redrawn until it passes (after
        ``SUBNET_DRAWS`` rejections the last draw is kept, so a step never stalls)."""
        rng = np.random.default_rng([self.config.seed, step])
        out = []
        for _ in range(self.config.num_subnets):
            cfg = self.space.sample(rng)
            for _ in range(SUBNET_DRAWS - 1):
                if self.subnet_filter is None or self.subnet_filter(cfg):
                    break
                cfg = self.space.sample(rng)
            out.append(cfg)
        return out

    # ---------------------------------------------------------------- the step
    def _loss(self, labels: Any, logits: Any) -> Any:
        num_classes = self.space.num_classes
        targets = tf.one_hot(labels, num_classes)
        if self.config.label_smoothing:
            s = self.config.label_smoothing
            targets = targets * (1.0 - s) + s / num_classes
        per_example = tf.nn.softmax_cross_entropy_with_logits(targets, logits)
        return tf.nn.compute_average_loss(per_example,
                                          global_batch_size=self.config.batch_size)

    def _subnet_grads(self, images: Any, labels: Any, arch: Mapping[str, Any],
                      teacher: Any, distill_weight: Any) -> tuple[Any, Any, list[Any]]:
        """Logits, loss and gradients of one sub-network (zeros for skipped variables).

        Used for every network of a step, the largest one included.
        """
        variables = self.supernet.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.supernet(images, arch=arch, training=True)
            loss = self._loss(labels, logits)
            loss += distill_weight * tf.nn.compute_average_loss(
                tf.nn.softmax_cross_entropy_with_logits(teacher, logits),
                global_batch_size=self.config.batch_size)
        grads = tape.gradient(loss, variables)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(grads, variables)]
        return logits, loss, grads

    def _replica_step(self, images: Any, labels: Any, archs: Mapping[str, Any],
                      num_subnets: int, run_largest: bool) -> Any:
        variables = self.supernet.trainable_variables
        accumulated = [tf.zeros_like(v) for v in variables]
        total = tf.constant(0.0)
        no_teacher = tf.zeros((tf.shape(labels)[0], self.space.num_classes))
        teacher, weight = no_teacher, tf.constant(0.0)

        def add(grads: list[Any]) -> None:
            for i, g in enumerate(grads):
                accumulated[i] = accumulated[i] + g

        if run_largest:
            largest = {k: tf.constant(v) for k, v in self.largest_arch.as_dict().items()}
            logits, loss, grads = self._grads(images, labels, largest, no_teacher,
                                              tf.constant(0.0))
            add(grads)
            total += loss
            if self.config.distill and num_subnets:
                teacher = tf.stop_gradient(tf.nn.softmax(logits))
                weight = tf.constant(self.config.distill_weight, tf.float32)
        for j in range(num_subnets):
            arch = {k: v[j] for k, v in archs.items()}
            _, loss, grads = self._grads(images, labels, arch, teacher, weight)
            add(grads)
            total += loss
        self.optimizer.apply_gradients(zip(accumulated, variables))
        return total

    def _step_fn(self, num_subnets: int, run_largest: bool) -> Any:
        key = (num_subnets, run_largest)
        if key not in self._step_fns:
            strategy = self.strategy

            @tf.function
            def step(iterator: Any, archs: Mapping[str, Any]) -> Any:
                images, labels = next(iterator)
                per_replica = strategy.run(self._replica_step,
                                           args=(images, labels, archs, num_subnets,
                                                 run_largest))
                return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

            self._step_fns[key] = step
        return self._step_fns[key]

    def trace_counts(self) -> dict[str, int]:
        counts = {f"step{k}": int(f.experimental_get_tracing_count())
                  for k, f in self._step_fns.items()}
        return counts

    # ---------------------------------------------------------------- the loop
    def dataset(self, splits: DataSplits, start_step: int) -> Any:
        prep = Preprocessing(self.space.resolution, self.space.in_channels)
        train = prepare_dataset(splits.train, prep)
        aug = Augmentation(flip=splits.flip) if self.config.augment else None
        ds = make_pipeline(train, self.config.batch_size, training=True, seed=self.config.seed,
                           augmentation=aug, skip_batches=start_step)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(ds.with_options(options))

    def train(self, splits: DataSplits, stop_at: int | None = None,
              progress: bool = True) -> TrainResult:
        """Train until ``config.total_steps`` (or ``stop_at``), resuming from checkpoints."""
        cfg = self.config
        if splits.num_classes != self.space.num_classes:
            raise ValueError(f"data set {splits.name!r} has {splits.num_classes} classes, the "
                             f"search space {self.space.num_classes}")
        start = self.restore()
        end = min(cfg.total_steps, stop_at if stop_at is not None else cfg.total_steps)
        result = TrainResult(self.supernet, start, start)
        if start >= end:
            return result
        iterator = iter(self.dataset(splits, start))
        from tqdm import tqdm

        bar = tqdm(total=end, initial=start, disable=not progress, unit="step",
                   dynamic_ncols=True, desc="supernet")
        timed_images, timed_seconds = 0, 0.0
        dummy = ArchTensors.stack([self.largest_arch])
        for step in range(start, end):
            if step == cfg.largest_steps and cfg.elastic_steps > 0:
                # Entering the elastic phase: most important hidden channels first.
                self.supernet.reorganize_channels(self.optimizer)
            t0 = time.perf_counter()
            if step < cfg.largest_steps:
                loss = self._step_fn(0, True)(iterator, _constants(dummy))
            else:
                archs = ArchTensors.stack([self.supernet.encode(c)
                                           for c in self.subnets_for_step(step)])
                loss = self._step_fn(cfg.num_subnets, cfg.distill)(iterator,
                                                                   _constants(archs))
            loss = float(loss)
            elapsed = time.perf_counter() - t0
            self.step.assign_add(1)
            result.losses.append(loss)
            # The first step of each phase includes tracing: leave it out of the throughput.
            if step not in (start, cfg.largest_steps):
                timed_images += cfg.batch_size
                timed_seconds += elapsed
            ips = timed_images / timed_seconds if timed_seconds else 0.0
            bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{ips:.0f}",
                            phase="largest" if step < cfg.largest_steps else "elastic")
            bar.update(1)
            if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0:
                self.save()
        bar.close()
        self.save()
        result.steps_done = end
        result.images_per_second = timed_images / timed_seconds if timed_seconds else 0.0
        return result


def _constants(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    return {k: tf.constant(v, tf.int32) for k, v in arrays.items()}


def _worker_checkpoint_dir(strategy: Any, directory: str | os.PathLike[str]) -> str:
    """The chief writes ``directory``; other workers of a multi-worker run a temporary one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", 0)
    is_chief = task_type in (None, "chief") or (task_type == "worker" and task_id == 0)
    if is_chief:
        return str(directory)
    return tempfile.mkdtemp(prefix=f"mcunet-ckpt-worker{task_id}-")


def save_run_config(directory: str | os.PathLike[str], config: TrainConfig) -> None:
    path = pathlib.Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / "train_config.json").write_text(json.dumps(config.get_config(), indent=2))


def load_trained_supernet(directory: str | os.PathLike[str]) -> tuple[Supernet, TrainConfig]:
    """The supernet of a finished (or stopped) run, from its directory."""
    config = TrainConfig.from_config(
        json.loads((pathlib.Path(directory) / "train_config.json").read_text()))
    trainer = SupernetTrainer(config, checkpoint_dir=directory)
    trainer.restore()
    return trainer.supernet, config


# ---------------------------------------------------------------------- whole pipeline
def run_supernet_pipeline(config: TrainConfig, splits: DataSplits,
                          out_dir: str | os.PathLike[str],
                          strategy: tf.distribute.Strategy | None = None,
                          num_random_subnets: int = 2, qat_steps: int = 100,
                          calibration_images: int = 500, progress: bool = True
                          ) -> dict[str, Any]:
    """Train (or resume) a supernet, then evaluate, export and quantize sub-networks.

    For the largest, the smallest and ``num_random_subnets`` random configurations: the
    supernet's accuracy (BN recalibrated on ``calibration_images`` training images) on the
    holdout and test splits, the exported Functional model's test accuracy; for the largest
    and smallest also the QAT model's and the int8 ``.tflite`` (QAT and PTQ, run by
    ai_edge_litert) test accuracies. Writes ``report.json`` and the ``.tflite`` files.
    """
    from mcunet_tf import quantize, subnet
    from mcunet_tf.data import to_float

    out = pathlib.Path(out_dir)
    save_run_config(out, config)
    trainer = SupernetTrainer(config, strategy, checkpoint_dir=out / "checkpoints")
    t0 = time.perf_counter()
    result = trainer.train(splits, progress=progress)
    train_seconds = time.perf_counter() - t0
    supernet = trainer.supernet
    prep = Preprocessing(config.resolution, config.in_channels)
    train = prepare_dataset(splits.train, prep)
    holdout = prepare_dataset(splits.holdout, prep)
    test = prepare_dataset(splits.test, prep)
    calib = to_float(train.images[:calibration_images])
    rng = np.random.default_rng([config.seed, 10 ** 6])
    candidates = {"largest": trainer.space.largest(), "smallest": trainer.space.smallest()}
    for i in range(num_random_subnets):
        candidates[f"random{i}"] = trainer.space.sample(rng)
    report: dict[str, Any] = {
        "data": splits.summary(), "train_config": config.get_config(),
        "steps": result.steps_done, "resumed_from": result.resumed_from,
        "train_seconds": round(train_seconds, 1),
        "train_images_per_second": round(result.images_per_second, 1),
        "final_loss": result.losses[-1] if result.losses else None, "subnets": {}}
    for name, arch in candidates.items():
        holdout_eval = subnet.evaluate_subnet(supernet, arch, calib, to_float(holdout.images),
                                              holdout.labels)
        test_acc = subnet.accuracy(subnet.predict(supernet, arch, to_float(test.images)),
                                   test.labels)
        model = subnet.export_subnet(supernet, arch, name=name)
        entry: dict[str, Any] = {
            "config": arch.get_config(),
            "supernet_holdout_accuracy": holdout_eval.accuracy,
            "supernet_test_accuracy": test_acc,
            "exported_test_accuracy": quantize.keras_accuracy(model, test),
        }
        if name in ("largest", "smallest"):
            representative = calib[:200]
            ptq = quantize.int8_from_ptq(model, representative)
            (out / f"{name}_ptq_int8.tflite").write_bytes(ptq)
            entry["ptq_int8_test_accuracy"] = quantize.tflite_accuracy(ptq, test)
            qat = quantize.qat_finetune(model, train, quantize.QATConfig(
                steps=qat_steps, batch_size=config.batch_size, seed=config.seed))
            entry["qat_test_accuracy"] = quantize.keras_accuracy(qat, test)
            qat_int8 = quantize.int8_from_qat(qat, representative)
            (out / f"{name}_qat_int8.tflite").write_bytes(qat_int8)
            entry["qat_int8_test_accuracy"] = quantize.tflite_accuracy(qat_int8, test)
        report["subnets"][name] = entry
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


# ---------------------------------------------------------------------- command line
def main(argv: Sequence[str]) -> None:  # pragma: no cover - exercised by the done-when run
    from absl import flags, logging

    from engine.cli_paths import resolve_user_path
    from mcunet_tf.data import load_dataset

    del argv
    f = flags.FLAGS
    logging.set_verbosity(logging.INFO)
    splits = load_dataset(f.dataset, str(resolve_user_path(f.data_dir)) if f.data_dir else None,
                          seed=f.seed)
    config = TrainConfig(
        width_mult=f.width_mult, resolution=f.resolution, num_classes=splits.num_classes,
        batch_size=f.batch_size, largest_steps=f.largest_steps,
        elastic_steps=f.elastic_steps, num_subnets=f.num_subnets, distill=f.distill,
        learning_rate=f.learning_rate, seed=f.seed)
    report = run_supernet_pipeline(config, splits, resolve_user_path(f.out_dir),
                                   strategy=make_strategy(f.strategy),
                                   num_random_subnets=f.eval_subnets, qat_steps=f.qat_steps)
    print(json.dumps(report, indent=2))


def _define_flags() -> None:  # pragma: no cover
    from absl import flags

    flags.DEFINE_string("dataset", "digits", "digits | mnist | fashion_mnist | cifar10 | "
                        "image_folder")
    flags.DEFINE_string("data_dir", None, "directory (or tarball) of the data set")
    flags.DEFINE_string("out_dir", "supernet_run", "checkpoints, exported models, report")
    flags.DEFINE_float("width_mult", 0.35, "width multiplier of the search space")
    flags.DEFINE_integer("resolution", 32, "input resolution of the search space")
    flags.DEFINE_integer("batch_size", 64, "global batch size")
    flags.DEFINE_integer("largest_steps", 300, "steps training the largest network only")
    flags.DEFINE_integer("elastic_steps", 300, "steps sampling sub-networks")
    flags.DEFINE_integer("num_subnets", 4, "sub-networks sampled per elastic step")
    flags.DEFINE_boolean("distill", True, "distil from the largest network")
    flags.DEFINE_float("learning_rate", 0.05, "peak learning rate")
    flags.DEFINE_integer("seed", 0, "seed of data order, augmentation and sampling")
    flags.DEFINE_enum("strategy", "default", [k.value for k in StrategyKind],
                      "tf.distribute strategy (multi_worker reads TF_CONFIG)")
    flags.DEFINE_integer("eval_subnets", 2, "random sub-networks evaluated besides the "
                         "largest and smallest")
    flags.DEFINE_integer("qat_steps", 100, "QAT fine-tuning steps of each exported subnet")


def run() -> None:  # pragma: no cover
    from absl import app

    _define_flags()
    app.run(main)


if __name__ == "__main__":  # pragma: no cover
    run()
