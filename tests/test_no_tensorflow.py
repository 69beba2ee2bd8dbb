"""A user who only converts models does not need TensorFlow: the converter, the engine's
runners, the benchmark command and the NAS's memory oracle import without it."""
from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO_ROOT

TF_FREE_MODULES = (
    "tflite_converter.convert",
    "tflite_converter.debug_layers",
    "tflite_converter.pipeline",
    "tflite_converter.codegen.generate",
    "engine.host",
    "engine.qemu",
    "engine.tflm",
    "benchmarks.compare",
    "nas.memory_oracle",
    "mcunet_tf.profile_main",
)


@pytest.mark.parametrize("module", TF_FREE_MODULES)
def test_imports_without_tensorflow(module):
    # One process per module (command-line modules each define their absl flags); any
    # `import tensorflow` on the way fails outright.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'tf_keras', 'keras'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib\n"
        f"importlib.import_module({module!r})\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]
