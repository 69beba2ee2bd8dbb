"""Digest of the generated C of every shared model: proves a refactor changed no output byte.

    python -m benchmarks.codegen_digest --save=build/digest.json   # before the change
    python -m benchmarks.codegen_digest --check=build/digest.json  # after: lists what differs

For each `.tflite` under ../shared/models and build/models (the MCUNet networks the tests
export with `mcunet_tf.export`), or each of --models, converts it and records the SHA-256
of the generated code (`NAME.c`, `NAME.h`, `io.json`), of the plan report (`plan.json`) and of
the copied kernel folder. A refactor of the converter must leave the code digests unchanged;
one of the kernels may change the kernel digest only (its instruction counts are then checked
with `benchmarks.kernel_speed`). Models the converter refuses are recorded with their refusal.
"""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from absl import app, flags

from tflite_converter.codegen.generate import convert_model
from tflite_converter.errors import ConversionError

FLAGS = flags.FLAGS
flags.DEFINE_string("save", None, "Write the digests to this JSON file.")
flags.DEFINE_string("check", None, "Compare with the digests in this JSON file; exit 1 on a difference.")
flags.DEFINE_bool("overlap", True, "Convert as `convert --overlap` (the default); --nooverlap "
                  "compares the layer-by-layer plans.")
flags.DEFINE_list("models", None, "The .tflite files (default: every one under ../shared/models "
                  "and build/models).")

REPO = Path(__file__).resolve().parents[1]
MODEL_DIRS = (REPO.parent / "shared" / "models", REPO / "build" / "models")
# what the program runs (the C and its I/O description) and the planner's report beside it:
# a planner change may add to plan.json while the code stays byte for byte the same
CODE_FILES = ("model.c", "model.h", "io.json")
PLAN_FILES = ("plan.json",)


def _sha(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def digest(tflite: Path, overlap: bool = True) -> dict[str, str]:
    """{'code': sha, 'plan': sha, 'kernels': sha} of the generated folder, or
    {'refused': reasons}."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        try:
            convert_model(tflite, out, name="model", overlap=overlap)
        except ConversionError as e:
            return {"refused": "; ".join(str(p) for p in e.problems)}
        kernels = sorted((out / "kernels").iterdir())
        return {"code": _sha([out / f for f in CODE_FILES]), "plan": _sha([out / f for f in PLAN_FILES]),
                "kernels": _sha(kernels)}


def all_digests(models: Sequence[Path], overlap: bool = True) -> dict[str, dict[str, str]]:
    return {m.stem: digest(m, overlap) for m in models}


def differences(old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]) -> list[str]:
    lines = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a is None or b is None:
            lines.append(f"{name}: only in {'new' if a is None else 'saved'} digests")
            continue
        changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        lines.append(f"{name}: {', '.join(changed)} changed")
    return lines


def main(argv: Sequence[str]) -> Optional[int]:
    del argv
    models = ([Path(m) for m in FLAGS.models] if FLAGS.models
              else sorted(p for d in MODEL_DIRS for p in d.glob("*.tflite")))
    if not models:
        print(f"no models under {' or '.join(map(str, MODEL_DIRS))}; pass --models", file=sys.stderr)
        return 2
    digests = all_digests(models, FLAGS.overlap)
    for name, d in digests.items():
        shas = "refused" if "refused" in d else " ".join(d[k][:16] for k in ("code", "plan", "kernels"))
        print(f"{name:45s} {shas}")
    if FLAGS.save:
        Path(FLAGS.save).parent.mkdir(parents=True, exist_ok=True)
        Path(FLAGS.save).write_text(json.dumps(digests, indent=1, sort_keys=True))
    if FLAGS.check:
        diff = differences(json.loads(Path(FLAGS.check).read_text()), digests)
        print("\n".join(diff) if diff else f"identical to {FLAGS.check}")
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    app.run(main)
