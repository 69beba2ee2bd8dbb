"""Stage 2 of TinyNAS: evolutionary search for the most accurate sub-network that fits.

As MCUNet (after Once-for-All's evolution finder): a population of networks that all fit
the limits; each generation keeps the best quarter as parents and refills the population
with children, half by mutation (every gene re-drawn with probability 0.1) and half by
uniform crossover of two parents. A child that does not fit is re-drawn, so every network
ever evaluated satisfies SRAM, Flash and (if given) latency. Accuracy comes from a callable
(the search passes the supernet with BatchNorm recalibration, on the held-out split).

Determinism and resumption: generation ``g`` draws from its own generator ``(seed, 2, g)``
and the accuracy function is deterministic, so a run resumed from the state saved after any
generation (or with the accuracies already measured in a stopped generation) reaches the
same final population as an unbroken one.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from mcunet_tf.arch import ArchConfig, SearchSpace
from nas.constraints import CandidateMeter, Fit, Limits
from nas.run_files import atomic_write_json, read_json

AccuracyFn = Callable[[ArchConfig], float]


@dataclasses.dataclass(frozen=True)
class EvolutionConfig:
    population: int = 100
    generations: int = 10
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5  # of the children; the rest come from crossover
    mutate_prob: float = 0.1
    max_draws: int = 500  # tries to draw one fitting child (or initial member)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.population < 2:
            raise ValueError(f"EvolutionConfig: population must be >= 2, got {self.population}")
        if self.generations < 1:
            raise ValueError(f"EvolutionConfig: generations must be >= 1, got {self.generations}")
        if not 0 < self.parent_ratio < 1:
            raise ValueError(f"EvolutionConfig: parent_ratio must lie in (0, 1), got {self.parent_ratio}")

    @property
    def num_parents(self) -> int:
        return max(2, int(round(self.population * self.parent_ratio)))

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "EvolutionConfig":
        return cls(**dict(config))


def network_key(cfg: ArchConfig) -> str:
    """Identifies the network a configuration builds: genes of unused slots do not matter,
    so two configurations with the same active genes share one accuracy."""
    slots = cfg.active_slots
    return json.dumps([list(cfg.depths), [cfg.kernel_sizes[s] for s in slots],
                       [cfg.expand_ratios[s] for s in slots]], separators=(",", ":"))


@dataclasses.dataclass(frozen=True)
class Scored:
    config: ArchConfig
    accuracy: float
    fit: Fit

    def get_config(self) -> dict[str, Any]:
        return {"arch": self.config.get_config(), "accuracy": self.accuracy, "fit": self.fit.get_config()}


@dataclasses.dataclass
class EvolutionResult:
    best: Scored
    top: list[Scored]  # final population, best first
    history: list[dict[str, Any]]  # per generation: best / mean accuracy, best's figures
    evaluations: int
    seconds: float

    def get_config(self) -> dict[str, Any]:
        return {"best": self.best.get_config(), "top": [s.get_config() for s in self.top],
                "history": self.history, "evaluations": self.evaluations,
                "seconds": round(self.seconds, 1)}


class NoFittingCandidates(ValueError):
    pass


class Evolution:
    """One evolution run over ``space``; ``state_path`` (JSON) makes it resumable."""

    def __init__(self, space: SearchSpace, meter: CandidateMeter, limits: Limits,
                 accuracy: AccuracyFn, config: EvolutionConfig,
                 state_path: Optional[Path] = None, progress: bool = True) -> None:
        self.space, self.meter, self.limits = space, meter, limits
        self.accuracy_fn, self.config = accuracy, config
        self.state_path, self.progress = state_path, progress
        self.accuracies: dict[str, float] = {}
        self._unsaved = 0

    # ------------------------------------------------------------ drawing fitting networks
    def _fits(self, cfg: ArchConfig) -> bool:
        return self.meter.measure(cfg).within(self.limits)

    def _draw(self, make: Callable[[], ArchConfig], what: str,
              taken: Optional[set[str]] = None) -> ArchConfig:
        """A fitting network from ``make``, preferably one whose network is not in ``taken``
        (a mutation that changed no used gene only repeats its parent); ``taken`` grows."""
        fallback = None
        for attempt in range(self.config.max_draws):
            cfg = make()
            if not self._fits(cfg):
                continue
            key = network_key(cfg)
            if taken is None or key not in taken:
                if taken is not None:
                    taken.add(key)
                return cfg
            if fallback is None:
                fallback = cfg
            if attempt >= self.config.max_draws // 10:  # few new networks near these parents
                break
        if fallback is not None:
            return fallback
        raise NoFittingCandidates(
            f"evolution: no {what} of {self.config.max_draws} draws fits {self.limits.describe()} "
            f"in space w{self.space.width_mult:g} r{self.space.resolution}")

    def initial_population(self) -> list[ArchConfig]:
        rng = np.random.default_rng([self.config.seed, 2, 0])
        taken: set[str] = set()
        return [self._draw(lambda: self.space.sample(rng), "random network", taken)
                for _ in range(self.config.population)]

    def children(self, parents: list[ArchConfig], generation: int) -> list[ArchConfig]:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, 2, generation])
        n_children = cfg.population - len(parents)
        n_mutate = int(round(n_children * cfg.mutation_ratio))
        taken = {network_key(p) for p in parents}
        out = []
        for _ in range(n_mutate):
            out.append(self._draw(lambda: self.space.mutate(
                parents[int(rng.integers(len(parents)))], rng, cfg.mutate_prob), "mutation", taken))

        def cross() -> ArchConfig:
            i, j = rng.choice(len(parents), size=2, replace=False)
            return self.space.crossover(parents[int(i)], parents[int(j)], rng)

        for _ in range(n_children - n_mutate):
            out.append(self._draw(cross, "crossover", taken))
        return out

    # ------------------------------------------------------------ accuracy, cached + saved
    def score(self, cfg: ArchConfig) -> float:
        key = network_key(cfg)
        if key not in self.accuracies:
            self.accuracies[key] = float(self.accuracy_fn(cfg))
            self._unsaved += 1
        return self.accuracies[key]

    # ------------------------------------------------------------ state
    def _signature(self) -> dict[str, Any]:
        return {"space": self.space.get_config(), "limits": self.limits.get_config(),
                "config": self.config.get_config()}

    def _save(self, generation: int, population: list[ArchConfig], history: list[dict[str, Any]],
              seconds: float) -> None:
        if self.state_path is None:
            return
        atomic_write_json(self.state_path, {
            "signature": self._signature(), "generation": generation,
            "population": [c.get_config() for c in population], "history": history,
            "accuracies": self.accuracies, "seconds": seconds})
        self._unsaved = 0

    def _load(self) -> Optional[dict[str, Any]]:
        if self.state_path is None or not self.state_path.is_file():
            return None
        state = read_json(self.state_path)
        if state.get("signature") != self._signature():
            return None
        return state

    # ------------------------------------------------------------ the loop
    def run(self) -> EvolutionResult:
        from tqdm import tqdm

        cfg = self.config
        state = self._load()
        started = time.perf_counter()
        if state is not None:
            generation = int(state["generation"])
            population = [ArchConfig.from_config(c) for c in state["population"]]
            history = list(state["history"])
            self.accuracies = {k: float(v) for k, v in state["accuracies"].items()}
            spent = float(state.get("seconds", 0.0))
        else:
            generation, history, spent = 0, [], 0.0
            population = self.initial_population()
            self._save(0, population, history, 0.0)
        bar = tqdm(total=cfg.generations, initial=generation, desc="stage 2: evolution",
                   unit="gen", disable=not self.progress, dynamic_ncols=True)
        while True:
            inner = tqdm(population, desc=f"  generation {generation}", unit="net", leave=False,
                         disable=not self.progress, dynamic_ncols=True)
            for member in inner:
                self.score(member)
                if self._unsaved >= 10:  # measured accuracies survive a kill mid-generation
                    self._save(generation, population, history, spent + time.perf_counter() - started)
            ranked = sorted(population, key=lambda c: (-self.score(c), network_key(c)))
            best = ranked[0]
            fit = self.meter.measure(best)
            accs = [self.score(c) for c in population]
            history.append({"generation": generation, "best_accuracy": self.score(best),
                            "mean_accuracy": float(np.mean(accs)), "best_fit": fit.get_config(),
                            "evaluated": len(self.accuracies)})
            lat = f" {fit.latency_ms:.1f}ms" if fit.latency_ms is not None else ""
            bar.set_postfix_str(f"best {self.score(best):.4f} (SRAM {fit.arena_bytes / 1024:.1f}K "
                                f"Flash {fit.flash_bytes / 1024:.0f}K{lat}) mean {np.mean(accs):.4f}")
            bar.update(1)
            if generation + 1 >= cfg.generations:
                break
            parents = ranked[:cfg.num_parents]
            generation += 1
            population = parents + self.children(parents, generation)
            self._save(generation, population, history, spent + time.perf_counter() - started)
        bar.close()
        seconds = spent + time.perf_counter() - started
        self._save(generation, population, history[:-1], seconds)
        top = [Scored(c, self.score(c), self.meter.measure(c)) for c in ranked]
        return EvolutionResult(top[0], top, history, len(self.accuracies), seconds)
