"""One TinyNAS run, stage by stage, every stage resumable (``nas/search.py`` is its command).

    stage 1   search-space optimisation      stage1.json, spaces.md, flops_cdf.png
    supernet  weight-sharing training         supernet/ (checkpoints)
    stage 2   evolution on the supernet       evolution.json, evolution_curve.png, arch.json
    finetune  the chosen network alone        finetuned.weights.h5
    deploy    QAT/PTQ, int8, C, checks        model_int8.tflite, c/, deploy.json
    baseline  compound-scaled MobileNetV2     baseline/ (with --baseline)
    report                                     report.json, report.md

``state.json`` lists the stages that finished; each stage's own files let a stopped stage
continue (stage 1 per space, the supernet from its newest checkpoint, evolution per
generation and per measured accuracy). Everything random is seeded, TensorFlow runs with
op determinism, so a run resumed after a kill ends with the ``arch.json`` of an unbroken run.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Optional

from absl import logging

from mcunet_tf.arch import ArchConfig, SearchSpace
from nas.constraints import CandidateMeter
from nas.evolution import Evolution, EvolutionConfig, EvolutionResult
from nas.memory_oracle import MemoryOracle
from nas.run_files import atomic_write_json, atomic_write_text, read_json
from nas.settings import SearchInputError, SearchSettings
from nas.space_search import (
    NothingFits,
    SpaceGrid,
    optimise_spaces,
    parse_space,
    random_space,
    resolutions_for_images,
    smallest_reachable,
)

STAGES = ("stage1", "supernet", "evolution", "finetune", "deploy", "baseline", "report")


def latency_function(settings: SearchSettings):
    """Milliseconds at the MCU's clock from the QEMU-calibrated model of our kernels."""
    from nas.latency import LatencyModel

    model = LatencyModel.load(settings.mcu.qemu_cpu)
    clock = settings.mcu.clock_hz
    return lambda spec: model.predict_ms(spec, clock)


class SearchRun:
    def __init__(self, settings: SearchSettings, out_dir: Path, resume: bool = False,
                 progress: bool = True) -> None:
        self.settings, self.out, self.progress = settings, Path(out_dir), progress
        self.meter = CandidateMeter(MemoryOracle(patch=settings.patch_setting()), latency_function(settings))
        self._prepare_dir(resume)
        self.state: dict[str, Any] = read_json(self.out / "state.json")
        self._splits = None
        self._prepared: dict[int, Any] = {}

    # ---------------------------------------------------------------- run directory
    def _prepare_dir(self, resume: bool) -> None:
        config_path = self.out / "run_config.json"
        if config_path.is_file():
            try:
                saved = SearchSettings.from_config(read_json(config_path))
            except (ValueError, TypeError, KeyError) as e:
                raise SearchInputError(f"cannot read the run in {self.out} ({config_path.name}: "
                                       f"{type(e).__name__}: {e}); choose another --output_dir") from None
            if not resume:
                raise SearchInputError(
                    f"{self.out} already holds a search run: pass --resume to continue it, or "
                    f"choose another --output_dir")
            if saved.result_defining() != self.settings.result_defining():
                changed = sorted(k for k, v in self.settings.result_defining().items()
                                 if saved.result_defining().get(k) != v)
                raise SearchInputError(
                    f"--resume: {self.out} holds a run with other settings ({', '.join(changed)} "
                    f"differ); use the same flags or another --output_dir")
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(config_path, self.settings.get_config())
        if not (self.out / "state.json").is_file():
            atomic_write_json(self.out / "state.json", {"done": {}})

    def _done(self, stage: str) -> Optional[dict[str, Any]]:
        return self.state["done"].get(stage)

    def _finish(self, stage: str, summary: dict[str, Any]) -> None:
        self.state["done"][stage] = summary
        atomic_write_json(self.out / "state.json", self.state)

    # ---------------------------------------------------------------- data
    def splits(self):
        if self._splits is None:
            from nas.search_data import load_splits

            self._splits = load_splits(self.settings.dataset, self.settings.data_dir, self.settings.seed)
        return self._splits

    def prepared(self, resolution: int):
        """(train, holdout, test) resized to ``resolution`` (uint8), cached."""
        if resolution not in self._prepared:
            from mcunet_tf.data import Preprocessing, prepare_dataset

            s = self.splits()
            prep = Preprocessing(resolution, self.in_channels)
            self._prepared[resolution] = tuple(prepare_dataset(d, prep) for d in (s.train, s.holdout, s.test))
        return self._prepared[resolution]

    @property
    def in_channels(self) -> int:
        # Grayscale data keeps one input channel: the input tensor is a third of the size.
        return int(self.splits().train.image_shape[-1])

    def grid(self) -> SpaceGrid:
        s = self.splits()
        size = max(s.train.image_shape[:2])
        return SpaceGrid(self.settings.budget.widths,
                         resolutions_for_images(size, self.settings.budget.max_resolution),
                         s.num_classes, self.in_channels)

    # ---------------------------------------------------------------- stage 1
    def stage1(self) -> SearchSpace:
        from nas.flash_estimate import estimate_fits

        settings, grid = self.settings, self.grid()
        saved = self._done("stage1")
        if saved is None:
            t0 = time.perf_counter()
            arena, flash = smallest_reachable(grid, self.meter)
            if arena > settings.limits.sram_bytes or not estimate_fits(flash, settings.limits.flash_bytes):
                raise SearchInputError(
                    f"nothing in the search space fits {settings.limits.describe()}: its smallest "
                    f"network needs {arena / 1024:.1f} KiB of SRAM (peak) and {flash / 1024:.1f} KiB "
                    f"of Flash")
            try:
                result = optimise_spaces(grid, self.meter, settings.limits,
                                         settings.budget.samples_per_space, settings.seed,
                                         self.out / "stage1_partial.json", self.progress)
            except NothingFits as e:
                raise SearchInputError(str(e)) from None
            if settings.space == "search":
                picked = result.chosen
            elif settings.space == "random":
                picked = random_space(result, settings.seed)
            else:
                width, res = parse_space(settings.space)
                given = next((s for s in result.stats if (s.width_mult, s.resolution) == (width, res)), None)
                picked = (given if given is not None
                          else dataclasses.replace(result.chosen, width_mult=width, resolution=res))
            atomic_write_json(self.out / "stage1.json", result.get_config())
            atomic_write_text(self.out / "spaces.md", result.table_markdown())
            from nas import plots

            plots.flops_cdf(result, self.out / "flops_cdf.png")
            saved = {"width_mult": picked.width_mult, "resolution": picked.resolution,
                     "how": settings.space, "chosen_by_stage1": result.chosen.row(),
                     "seconds": round(time.perf_counter() - t0, 1),
                     "candidates_profiled": len(result.stats) * settings.budget.samples_per_space}
            self._finish("stage1", saved)
            logging.info("stage 1: space w%g r%d (%s)", picked.width_mult, picked.resolution, settings.space)
        return SearchSpace(width_mult=saved["width_mult"], resolution=saved["resolution"],
                           num_classes=grid.num_classes, in_channels=grid.in_channels)

    # ---------------------------------------------------------------- supernet
    def train_config(self, space: SearchSpace):
        from mcunet_tf.train import TrainConfig

        b = self.settings.budget
        return TrainConfig(width_mult=space.width_mult, resolution=space.resolution,
                           in_channels=space.in_channels, num_classes=space.num_classes,
                           batch_size=b.batch_size, largest_steps=b.largest_steps,
                           elastic_steps=b.elastic_steps, num_subnets=b.num_subnets,
                           augment=True, seed=self.settings.seed,
                           checkpoint_every=max(10, b.supernet_steps // 20))

    def supernet(self, space: SearchSpace):
        from mcunet_tf.train import SupernetTrainer, make_strategy, save_run_config

        config = self.train_config(space)
        save_run_config(self.out / "supernet", config)
        limits = self.settings.limits
        trainer = SupernetTrainer(config, make_strategy(self.settings.strategy),
                                  checkpoint_dir=self.out / "supernet", space=space,
                                  subnet_filter=lambda cfg: self.meter.measure(cfg).within(limits))
        if self._done("supernet") is None:
            t0 = time.perf_counter()
            result = trainer.train(self.splits(), progress=self.progress)
            self._finish("supernet", {"steps": result.steps_done, "resumed_from": result.resumed_from,
                                      "final_loss": result.losses[-1] if result.losses else None,
                                      "seconds": round(time.perf_counter() - t0, 1)})
        else:
            trainer.restore()
        return trainer.supernet

    # ---------------------------------------------------------------- stage 2
    def evolution(self, space: SearchSpace, supernet) -> EvolutionResult:
        from mcunet_tf import subnet
        from mcunet_tf.data import to_float

        b = self.settings.budget
        train, holdout, _ = self.prepared(space.resolution)
        calib = to_float(train.images[:b.calibration_images])
        eval_images = to_float(holdout.images[:b.eval_images])
        eval_labels = holdout.labels[:b.eval_images]

        def accuracy(cfg: ArchConfig) -> float:
            return subnet.evaluate_subnet(supernet, cfg, calib, eval_images, eval_labels).accuracy

        evo = Evolution(space, self.meter, self.settings.limits, accuracy,
                        EvolutionConfig(population=b.population, generations=b.generations,
                                        seed=self.settings.seed),
                        self.out / "evolution_state.json", self.progress)
        saved = self._done("evolution")
        result = evo.run()  # everything is cached in the state after a finished run
        if saved is None:
            atomic_write_json(self.out / "evolution.json", result.get_config())
            atomic_write_text(self.out / "arch.json", result.best.config.to_json(indent=1) + "\n")
            from nas import plots

            plots.evolution_curve(result.history, self.out / "evolution_curve.png")
            self._finish("evolution", {"best_accuracy": result.best.accuracy,
                                       "evaluations": result.evaluations,
                                       "seconds": round(result.seconds, 1)})
        return result

    # ---------------------------------------------------------------- the chosen network
    def finetune(self, supernet, arch: ArchConfig):
        """The chosen network with its inherited weights, trained alone for a while."""
        from mcunet_tf import subnet
        from mcunet_tf.data import to_float
        from nas.training import train_steps

        b = self.settings.budget
        train, _, _ = self.prepared(arch.resolution)
        weights = self.out / "finetuned.weights.h5"
        model = subnet.export_subnet(supernet, arch, to_float(train.images[:b.calibration_images]),
                                     name="searched")
        if self._done("finetune") is None:
            t0 = time.perf_counter()
            # the supernet's shared weights are a starting point, not a trained network: the
            # fine-tune takes the baseline's schedule of training from scratch (lr 0.05, cosine,
            # 5% warm-up); at lr 0.01 the chosen network stayed under-trained (README's table)
            train_steps(model, train, self.splits().flip, b.finetune_steps, b.batch_size,
                        self.settings.seed, learning_rate=0.05,
                        warmup_steps=max(1, b.finetune_steps // 20),
                        progress=self.progress, desc="fine-tuning the searched network")
            model.save_weights(str(weights))
            self._finish("finetune", {"steps": b.finetune_steps,
                                      "seconds": round(time.perf_counter() - t0, 1)})
        else:
            model.load_weights(str(weights))
        return model

    def deploy(self, model, resolution: int, out_dir: Path, stage: str, name: str) -> dict[str, Any]:
        from nas.deploy import deploy_model

        saved = self._done(stage)
        if saved is not None:
            return saved
        b, s = self.settings.budget, self.settings
        t0 = time.perf_counter()
        report = deploy_model(model, self.splits(), resolution, out_dir, s.mcu,
                              qat_steps=b.qat_steps, batch_size=b.batch_size, seed=s.seed,
                              quantization=s.quantization, name=name, verify_images=b.verify_images,
                              qemu_images=b.qemu_images if s.qemu else 0, progress=self.progress,
                              patch=s.patch_setting())
        figures = report.get_config()
        figures["seconds"] = round(time.perf_counter() - t0, 1)
        atomic_write_json(out_dir / "deploy.json", figures)
        if not report.verified:
            raise RuntimeError(f"{name}: the generated C differs from TFLite Micro "
                               f"({report.verify_summary}); see {out_dir / 'deploy.json'}")
        self._finish(stage, figures)
        return figures

    # ---------------------------------------------------------------- baseline
    def baseline(self, grid: SpaceGrid) -> Optional[dict[str, Any]]:
        if not self.settings.baseline:
            return None
        saved = self._done("baseline")
        if saved is not None:
            return saved
        from nas.baseline import choose_baseline, train_baseline

        s, b = self.settings, self.settings.budget
        latency = None if s.limits.latency_ms is None else (lambda spec: self.meter.measure(spec).latency_ms)
        choice = choose_baseline(grid.num_classes, grid.in_channels, grid.resolutions,
                                 sram_bytes=s.limits.sram_bytes, flash_bytes=s.limits.flash_bytes,
                                 latency_ms=s.limits.latency_ms, oracle=self.meter.oracle,
                                 latency=latency)
        spec = choice.spec
        train, _, _ = self.prepared(spec.resolution)
        t0 = time.perf_counter()
        model = train_baseline(spec, self.splits(), train, steps=b.training_steps,
                               batch_size=b.batch_size, seed=s.seed, progress=self.progress)
        figures = {"choice": choice.get_config(), "training_steps": b.training_steps,
                   "train_seconds": round(time.perf_counter() - t0, 1),
                   "fit": self.meter.measure(spec).get_config()}
        figures["deploy"] = self.deploy(model, spec.resolution, self.out / "baseline", "baseline_deploy",
                                        "baseline")
        self._finish("baseline", figures)
        return figures

    # ---------------------------------------------------------------- all of it
    def run(self) -> dict[str, Any]:
        from nas.report import write_report
        from nas.tf_setup import configure_tensorflow

        started = time.perf_counter()
        self.splits()
        space = self.stage1()
        configure_tensorflow(self.settings.seed)
        supernet = self.supernet(space)
        evo = self.evolution(space, supernet)
        arch = evo.best.config
        model = self.finetune(supernet, arch)
        deployed = self.deploy(model, arch.resolution, self.out, "deploy", "model")
        baseline = self.baseline(self.grid())
        report = write_report(self, arch, evo, deployed, baseline,
                              seconds=time.perf_counter() - started)
        self._finish("report", {"seconds": report["seconds"]})
        return report
