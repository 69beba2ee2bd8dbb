"""Our generated C beside TFLM on the same inputs: the one comparison the benchmarks share.

`host_vs_tflm` builds a generated model folder for the host (optionally with ASan/UBSan),
runs seeded random inputs (`engine.tflm.random_inputs`, every integer value reachable) plus
any samples the caller adds, and compares every output byte with TFLM's. It returns None
when all are equal, else where the first difference is; build and sanitizer failures raise
as `engine.host` raises them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from engine.host import HostModel
from engine.tflm import TflmModel, random_inputs

Sample = Sequence[np.ndarray]


def first_difference(ours: Sequence[Sample], want: Sequence[Sample]) -> Optional[str]:
    """None when every output of every sample has the same dtype, shape and bytes."""
    for k, (got, ref) in enumerate(zip(ours, want)):
        for i, (g, w) in enumerate(zip(got, ref)):
            g, w = np.asarray(g), np.asarray(w)
            if g.dtype != w.dtype or g.shape != w.shape or g.tobytes() != w.tobytes():
                return f"sample {k} output {i} differs from TFLM"
    return None


def host_vs_tflm(model: bytes | str | os.PathLike[str], c_dir: Path, name: str,
                 n_random: int = 2, seed: int = 0, extra: Sequence[Sample] = (),
                 sanitize: bool = False, tflm: Optional[TflmModel] = None) -> Optional[str]:
    """Compare the host build of `c_dir` (model `name`) with TFLM running `model`."""
    tflm = tflm or TflmModel(model)
    details = [tflm.input_details(i) for i in range(tflm.num_inputs)]
    rng = np.random.default_rng(seed)
    samples = [random_inputs(details, rng) for _ in range(n_random)] + list(extra)
    ours = HostModel(c_dir, name, sanitize=sanitize).run_many(samples)
    return first_difference(ours, [tflm.run(s) for s in samples])
