"""QAT (TF-MOT, with BN folding and per-channel depthwise weights), PTQ and int8 export."""
from __future__ import annotations

import numpy as np
import pytest

from mcunet_tf import quantize
from mcunet_tf.arch import SearchSpace
from mcunet_tf.data import Preprocessing, load_digits, prepare_dataset, to_float
from mcunet_tf.keras_builder import build_keras_model
from mcunet_tf.tf_env import keras


def _space() -> SearchSpace:
    return SearchSpace(width_mult=0.5, resolution=16, base_widths=(16, 24), strides=(2, 2),
                       max_depths=(2, 1), expand_choices=(3,), kernel_choices=(3, 5),
                       depth_choices=(2,), num_classes=10)


@pytest.fixture(scope="module")
def digits():
    splits = load_digits()
    prep = Preprocessing(16, 3)
    return prepare_dataset(splits.train, prep), prepare_dataset(splits.test, prep)


@pytest.fixture(scope="module")
def float_model(digits):
    """A small network briefly trained on digits, with non-trivial BN statistics."""
    keras.utils.set_random_seed(0)
    train, _ = digits
    model = build_keras_model(_space().largest().to_network(name="qat_test"))
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(to_float(train.images), train.labels, batch_size=64, epochs=3, verbose=0)
    return model


def test_fold_batchnorm_is_exact(float_model, digits):
    _, test = digits
    folded = quantize.fold_batchnorm(float_model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    x = to_float(test.images[:32])
    ref = float_model(x, training=False).numpy()
    np.testing.assert_allclose(folded(x).numpy(), ref, atol=1e-4 * max(1, np.abs(ref).max()))


def test_quantize_model_quantizes_every_conv_per_channel(float_model):
    qat = quantize.quantize_model(float_model)
    wrapped = {w.layer.name: w for w in qat.layers if hasattr(w, "layer")}
    for layer in float_model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            weights = {w.name.split("/")[-1]: w for w in wrapped[layer.name].weights}
            # One range per output channel, not one per tensor as TF-MOT's default.
            assert weights["depthwise_kernel_min:0"].shape == (layer.depthwise_kernel.shape[2],)
        elif isinstance(layer, keras.layers.Conv2D):
            weights = {w.name.split("/")[-1]: w for w in wrapped[layer.name].weights}
            assert weights["kernel_min:0"].shape == (layer.kernel.shape[-1],), layer.name


def test_qat_and_ptq_int8_tflite_run_in_litert(float_model, digits):
    from ai_edge_litert.interpreter import Interpreter

    train, test = digits
    float_acc = quantize.keras_accuracy(float_model, test)
    assert float_acc > 0.5  # the fixture really learned something
    representative = to_float(train.images[:64])
    qat = quantize.qat_finetune(float_model, train, quantize.QATConfig(steps=10,
                                                                     batch_size=32))
    qat_acc = quantize.keras_accuracy(qat, test)
    qat_int8 = quantize.int8_from_qat(qat, representative)
    for flatbuffer in (qat_int8, quantize.int8_from_ptq(float_model, representative)):
        interpreter = Interpreter(model_content=flatbuffer)
        assert interpreter.get_input_details()[0]["dtype"] == np.int8
        assert interpreter.get_output_details()[0]["dtype"] == np.int8
        int8_acc = quantize.tflite_accuracy(flatbuffer, test)
        assert abs(int8_acc - float_acc) < 0.05, (int8_acc, float_acc, qat_acc)
    # The int8 model tracks the QAT model it came from, prediction by prediction.
    x = to_float(test.images[:100])
    agree = np.mean(np.argmax(quantize.tflite_predict(qat_int8, x), -1)
                    == np.argmax(qat.predict(x, verbose=0), -1))
    assert agree > 0.9


def test_qat_ranges_start_from_the_data_so_relu6_outputs_use_all_of_int8(float_model, digits):
    """TF-MOT's ranges start at [-6, 6]: after a short QAT a ReLU6 output would still have a
    zero point far above -128 (half the int8 levels unused, a clamp that is not the full
    range). Calibrated first, every ReLU6-fused convolution output starts at zero point -128."""
    from tflite_converter.ir import Activation
    from tflite_converter.pipeline import compile_model

    train, _ = digits
    qat = quantize.qat_finetune(float_model, train, quantize.QATConfig(steps=5, batch_size=32))
    flatbuffer = quantize.int8_from_qat(qat, to_float(train.images[:64]))
    graph = compile_model(flatbuffer).graph
    fused = [op for op in graph.ops if op.kind.name in ("CONV_2D", "DEPTHWISE_CONV_2D")
             and op.attrs.activation in (Activation.RELU6, Activation.RELU)]
    assert len(fused) >= 4
    for op in fused:
        zp = int(graph.tensors[op.outputs[0]].quant.zero_point.reshape(-1)[0])
        assert zp == -128, (op.index, zp)
    # without the calibration (TF-MOT's own start), the same short QAT leaves them higher
    raw = quantize.quantize_model(float_model)
    assert float(next(v for layer in raw.layers for v in layer.weights
                      if v.name.endswith("/output_min:0"))) == -6.0
