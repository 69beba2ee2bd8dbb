"""End to end: real .tflite models -> generated C -> output bytes identical to TFLM's.

For every model of ../shared/models the converter accepts (and the MCUNet reference exports
when they are cached), on 20 seeded random inputs that cover the whole input range:
- the host build (gcc -O2) gives TFLM's output bytes;
- the host build with -fsanitize=address,undefined runs them with no report (and the same
  bytes);
- the Cortex-M7 build under QEMU, portable kernels and DSP paths, gives the same bytes
  (and the Cortex-M4 DSP build on a few inputs).
The models the converter must refuse are checked to be refused with a clear message.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import mcunet_reference_model

from engine import qemu
from engine.host import HostModel
from tflite_converter.codegen.generate import convert_model
from tflite_converter.errors import ConversionError

SHARED_MODELS = Path(__file__).resolve().parent.parent.parent / "shared" / "models"
N_INPUTS = 20
N_INPUTS_M4 = 3

# Expected outcome per file of ../shared/models: accepted models must convert and match.
ACCEPTED = (
    "mlperf_tiny_vww_96_int8",
    "mlperf_tiny_kws_ref_model_int8",
    "mlperf_tiny_ic_resnet_quant",
    "mlperf_tiny_ad01_int8",
    "mlperf_tiny_ad_toycar_fullint_floatio",
    "tflm_person_detect",
    "tflm_micro_speech_quantized",
    "tflm_hello_world_int8",
    "tinyengine_mcunet_vww",
    "tinymaix_mnist_resnet_q",
    "tinymaix_cifar10_q",
)
REFUSED = {
    "tflm_hello_world_float": "float32 FULLY_CONNECTED not supported",
    "mlperf_tiny_kws_ref_model_float32": "hybrid model",
    "coral_keras_lstm_mnist_ptq": "UNIDIRECTIONAL_SEQUENCE_LSTM: not supported",
}
# MCUNet reference exports (mcunet_tf.export), used when already in the model cache: exporting
# them needs TensorFlow and minutes, which a converter test must not spend.
MCUNET_EXPORTS = ("mcunet-in0", "mbv2-w0.3-r64", "mcunet-in1")
# The larger published networks (67-126 M MACs): minutes under QEMU, so marked slow.
MCUNET_EXPORTS_SLOW = ("mcunet-in2", "mcunet-in3", "mcunet-in4", "mbv2-w0.35", "proxyless-w0.3")

needs_arm = pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi / qemu not installed")


def _model_path(model: str) -> Path:
    if model in MCUNET_EXPORTS or model in MCUNET_EXPORTS_SLOW:
        return mcunet_reference_model(model)
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"../shared/models not found at {SHARED_MODELS}")
    return SHARED_MODELS / f"{model}.tflite"


class _Case:
    """One converted model with its TFLM reference outputs, shared by the tests below."""

    def __init__(self, model: str, out_dir: Path):
        from engine.tflm import TflmModel, random_inputs

        self.path = _model_path(model)
        self.generated = convert_model(self.path, out_dir, name="net")
        tflm = TflmModel(self.path)
        rng = np.random.default_rng(20240)
        details = [tflm.input_details(i) for i in range(tflm.num_inputs)]
        self.inputs = [random_inputs(details, rng) for _ in range(N_INPUTS)]
        self.expected = [tflm.run(x) for x in self.inputs]

    def check(self, outputs, what: str, n: int = N_INPUTS) -> None:
        for k, (got, want) in enumerate(zip(outputs, self.expected[:n])):
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.dtype == w.dtype and g.shape == tuple(w.shape), what
                if g.tobytes() != w.tobytes():
                    diff = np.flatnonzero(g.view(np.uint8) != w.view(np.uint8))
                    pytest.fail(f"{what}: input {k}: {diff.size} output bytes differ from TFLM "
                                f"(first at byte {diff[0]})")


_CASES: dict[str, _Case] = {}


@pytest.fixture
def case(request, tmp_path_factory) -> _Case:
    model = request.param
    if model not in _CASES:
        _CASES[model] = _Case(model, tmp_path_factory.mktemp(model.replace(".", "_")))
    return _CASES[model]


ALL = [*ACCEPTED, *MCUNET_EXPORTS,
       *(pytest.param(m, marks=pytest.mark.slow) for m in MCUNET_EXPORTS_SLOW)]


@pytest.mark.parametrize("model", sorted(REFUSED))
def test_refused_clearly(model):
    path = _model_path(model)
    with pytest.raises(ConversionError) as err:
        convert_model(path, Path("/nonexistent-output-dir-never-written"), name="net")
    assert REFUSED[model] in str(err.value)
    assert all(line.startswith("op ") or line.startswith("tensor ") for line in str(err.value).splitlines())


@pytest.mark.parametrize("case", ALL, indirect=True)
def test_host_bit_exact(case):
    case.check(HostModel(case.generated.output_dir).run_many(case.inputs), "host gcc -O2")


@pytest.mark.parametrize("case", ALL, indirect=True)
def test_host_sanitizers_clean(case):
    outputs = HostModel(case.generated.output_dir, sanitize=True).run_many(case.inputs)
    case.check(outputs, "host -fsanitize=address,undefined")


@needs_arm
@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp"])
@pytest.mark.parametrize("case", ALL, indirect=True)
def test_cortex_m7_bit_exact(case, dsp):
    result = qemu.run_on_qemu(case.generated.output_dir, "net", case.inputs, cpu="cortex-m7", dsp=dsp)
    case.check(result.outputs, f"Cortex-M7 {'DSP' if dsp else 'portable'}")
    assert result.model is not None and result.model.bss >= case.generated.arena_bytes
    # The weights are in Flash (.rodata); the compiler may fold a few small per-channel arrays
    # read at literal indices into the code, hence not the exact sum.
    assert result.model.rodata >= 0.9 * case.generated.const_bytes


@needs_arm
@pytest.mark.parametrize("case", ALL, indirect=True)
def test_cortex_m4_bit_exact(case):
    result = qemu.run_on_qemu(case.generated.output_dir, "net", case.inputs[:N_INPUTS_M4],
                              cpu="cortex-m4", dsp=True)
    case.check(result.outputs, "Cortex-M4 DSP", N_INPUTS_M4)
