"""The in-process gRPC PredictionService: concurrent clients, malformed requests, metadata."""

from __future__ import annotations

import threading

import cv2
import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tiny_models import TINY_MODELS

from tfderain import models
from tfderain._keras import keras, tf
from tfderain.export.savedmodel import export_savedmodel
from tfderain.export.serving import PredictionServer
from tfderain.metrics import quantize_output

MODEL = "derain"
CLIENTS = 8
REQUESTS_PER_CLIENT = 20


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Tiny CODE-Net (density-aware) exported as version 1 of a base directory and served."""
    keras.utils.set_random_seed(5)
    model = models.build("codenet", **TINY_MODELS["codenet"][0])
    base = tmp_path_factory.mktemp("grpc") / "codenet"
    export_savedmodel(model, base, version=1)
    with PredictionServer(base, model_name=MODEL) as server:
        yield model, server


def _request(signature: str, images, dtype=None, model: str = MODEL) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if images is not None:
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(images, dtype=dtype))
    return request


def _keras(model, rgb: np.ndarray) -> dict[str, np.ndarray]:
    out = model(tf.constant(rgb, tf.float32), training=False)
    return {"derained": np.clip(out["derained"].numpy(), 0, 1), "density": out["density"].numpy()}


def _cases(model) -> list[tuple[predict_pb2.PredictRequest, dict[str, np.ndarray], str]]:
    """Requests of every signature with the answers the Keras model gives (codenet: multiple 1)."""
    rng = np.random.default_rng(1)
    x = rng.random((2, 13, 17, 3), dtype=np.float32)
    u8 = rng.integers(0, 256, (1, 11, 7, 3), dtype=np.uint8)
    rgb = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    png = cv2.imencode(".png", rgb[..., ::-1])[1].tobytes()
    ref_u8 = _keras(model, u8 / np.float32(255))
    ref_png = _keras(model, rgb[None] / np.float32(255))
    return [
        (_request("serving_default", x), _keras(model, x), "float"),
        (
            _request("derain_uint8", u8),
            {"derained": quantize_output(ref_u8["derained"], "B"), "density": ref_u8["density"]},
            "uint8",
        ),
        (
            _request("derain_image_bytes", np.array([png], dtype=object), dtype=tf.string),
            {"derained": quantize_output(ref_png["derained"], "B"), "density": ref_png["density"]},
            "bytes",
        ),
    ]


def _check(response: predict_pb2.PredictResponse, expected: dict, kind: str) -> None:
    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    image_key = "derained_bytes" if kind == "bytes" else "derained"
    assert sorted(outputs) == ["density", image_key]
    np.testing.assert_allclose(outputs["density"], expected["density"], atol=1e-5)
    if kind == "float":
        np.testing.assert_allclose(outputs["derained"], expected["derained"], atol=1e-5)
        return
    got = outputs[image_key]
    if kind == "bytes":
        got = np.stack(
            [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[..., ::-1] for b in got]
        )
    assert got.shape == expected["derained"].shape
    assert np.abs(got.astype(int) - expected["derained"].astype(int)).max() <= 1


@pytest.mark.slow
def test_concurrent_clients_all_get_correct_answers(served):
    model, server = served
    cases = _cases(model)
    failures: list[str] = []
    answered = []

    def client(index: int) -> None:
        with grpc.insecure_channel(server.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for k in range(REQUESTS_PER_CLIENT):
                request, expected, kind = cases[(index + k) % len(cases)]
                try:
                    response = stub.Predict(request, timeout=60)
                    _check(response, expected, kind)
                    assert response.model_spec.signature_name == request.model_spec.signature_name
                    assert response.model_spec.version.value == 1
                    answered.append(kind)
                except Exception as exc:  # noqa: BLE001 - collected and reported below
                    failures.append(f"client {index} request {k} ({kind}): {exc!r}"[:500])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures[:3]
    assert len(answered) == CLIENTS * REQUESTS_PER_CLIENT


def _bad_requests():
    x = np.zeros((1, 8, 8, 3), np.float32)
    missing = _request("serving_default", None)
    extra = _request("serving_default", x)
    extra.inputs["other"].CopyFrom(tf.make_tensor_proto(x))
    broken = _request("serving_default", None)
    broken.inputs["images"].dtype = tf.float32.as_datatype_enum
    broken.inputs["images"].tensor_shape.dim.add().size = 4
    broken.inputs["images"].tensor_content = b"\x00" * 5  # 5 bytes cannot hold 4 floats
    unknown_output = _request("serving_default", x)
    unknown_output.output_filter.append("rain")
    garbage = np.array([b"definitely not an image"], dtype=object)
    return [
        ("unknown model", _request("serving_default", x, model="other"), "not served"),
        ("unknown signature", _request("derain_nothing", x), "unknown signature"),
        ("missing input", missing, "missing ['images']"),
        ("unexpected input", extra, "unexpected ['other']"),
        ("wrong dtype", _request("serving_default", x.astype(np.float64)), "must be float32"),
        ("uint8 as float", _request("derain_uint8", x), "must be uint8"),
        ("wrong rank", _request("serving_default", x[0]), "rank 4"),
        ("wrong channels", _request("derain_uint8", np.zeros((1, 4, 4, 4), np.uint8)), "channels"),
        ("garbage image", _request("derain_image_bytes", garbage, tf.string), "image file format"),
        ("broken proto", broken, "unreadable TensorProto"),
        ("unknown output", unknown_output, "output_filter"),
    ]


BAD_REQUESTS = _bad_requests()


@pytest.mark.slow
@pytest.mark.parametrize("label,request_,words", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_malformed_requests_get_invalid_argument_and_the_server_keeps_working(
    served, label, request_, words
):
    model, server = served
    with grpc.insecure_channel(server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(request_, timeout=60)
        expected = {grpc.StatusCode.INVALID_ARGUMENT}
        if label.startswith("unknown model") or label.startswith("unknown signature"):
            expected.add(grpc.StatusCode.NOT_FOUND)
        assert err.value.code() in expected, (label, err.value.code(), err.value.details())
        assert words in err.value.details(), err.value.details()
        assert "\n" not in err.value.details()
        # the next good request is still answered correctly
        request, reference, kind = _cases(model)[0]
        _check(stub.Predict(request, timeout=60), reference, kind)


@pytest.mark.slow
def test_model_metadata_lists_the_signatures(served):
    _, server = served
    with grpc.insecure_channel(server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = MODEL
        request.metadata_field.append("signature_def")
        response = stub.GetModelMetadata(request, timeout=30)
        defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(defs)
        assert sorted(defs.signature_def) == [
            "derain_image_bytes",
            "derain_uint8",
            "serving_default",
        ]
        assert sorted(defs.signature_def["serving_default"].outputs) == ["density", "derained"]
        request.model_spec.name = "other"
        with pytest.raises(grpc.RpcError) as err:
            stub.GetModelMetadata(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.slow
def test_without_the_serving_extra_the_import_names_it():
    """gRPC missing (as without ``tfderain[serving]``): one ImportError naming the extra."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['grpc'] = None\n"
        "try:\n    import tfderain.export.serving\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert 'pip install "tfderain[serving]"' in done.stdout
