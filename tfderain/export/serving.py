"""A small in-process TF Serving ``PredictionService`` for exported SavedModels.

It answers the same gRPC API as TensorFlow Serving (``tensorflow_serving.apis``:
``PredictionService/Predict`` and ``GetModelMetadata``) for one SavedModel written by
:func:`tfderain.export.savedmodel.export_savedmodel`, so clients can be developed and tested
without the TF Serving binary. It is meant for tests and local use (``export/serve.py``), bound to
127.0.0.1 by default; production serving is TF Serving itself (see ``export/README.md``).

Every request is checked before it reaches the graph, and every failure is answered with a gRPC
status rather than an exception in the server:

* unknown model name → ``NOT_FOUND``;
* unknown signature, missing or unexpected inputs, an input of the wrong dtype or an unreadable
  ``TensorProto``, and errors the graph raises for bad data (wrong rank or channels, undecodable
  image bytes) → ``INVALID_ARGUMENT`` with a one-line message;
* out of memory → ``RESOURCE_EXHAUSTED``; anything else → ``INTERNAL``.
"""

from __future__ import annotations

import os
import re
from concurrent import futures
from pathlib import Path
from typing import Any

import numpy as np
from tensorflow.core.protobuf import saved_model_pb2

from tfderain._keras import tf

try:  # the serving extra: pip install "tfderain[serving]"
    import grpc
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        model_pb2,
        predict_pb2,
        prediction_service_pb2_grpc,
    )
except ImportError as exc:  # one line instead of a traceback from deep inside an import
    raise ImportError(
        "tfderain.export.serving needs gRPC and TF Serving's API: "
        f'pip install "tfderain[serving]" ({exc})'
    ) from None

#: Model name used when none is given (TF Serving's docker image defaults to ``model``).
DEFAULT_MODEL_NAME = "tfderain"
#: Largest request or response message, in bytes.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: The default signature, used when a request names none.
DEFAULT_SIGNATURE = "serving_default"


class RequestError(Exception):
    """A request that cannot be answered; carries the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def resolve_savedmodel_dir(path: str | os.PathLike) -> tuple[Path, int]:
    """The SavedModel directory and version for a SavedModel or a versioned base directory.

    A base directory (TF Serving's ``--model_base_path``) holds numbered versions ``1/``, ``2/``…;
    the highest one with a ``saved_model.pb`` is used. A plain SavedModel directory is version 1
    unless its name is a number.
    """
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path, int(path.name) if path.name.isdigit() else 1
    if not path.is_dir():
        raise ValueError(f"{path}: no such SavedModel directory")
    versions = sorted(
        int(p.name) for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()
    )
    if not versions:
        raise ValueError(f"{path}: neither a SavedModel nor a base directory of numbered versions")
    return path / str(versions[-1]), versions[-1]


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``Predict`` and ``GetModelMetadata`` for one loaded SavedModel.

    Args:
        path: a SavedModel directory or a versioned base directory.
        model_name: the name requests must give in ``model_spec.name``.
    """

    def __init__(self, path: str | os.PathLike, model_name: str = DEFAULT_MODEL_NAME):
        self.path, self.version = resolve_savedmodel_dir(path)
        self.model_name = model_name
        self._loaded = tf.saved_model.load(os.fspath(self.path))
        self._signatures = dict(self._loaded.signatures)
        self._inputs = {
            name: fn.structured_input_signature[1] for name, fn in self._signatures.items()
        }
        self._signature_defs = _read_signature_defs(self.path)

    # ------------------------------------------------------------------------------ RPCs

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext):  # noqa: N802
        try:
            return self.predict(request)
        except RequestError as err:
            context.abort(err.code, str(err))

    def GetModelMetadata(self, request, context):  # noqa: N802
        try:
            self._check_model(request.model_spec)
            unknown = [f for f in request.metadata_field if f != "signature_def"]
            if unknown or not request.metadata_field:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"metadata_field must be ['signature_def'], got {list(request.metadata_field)}",
                )
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            self._fill_spec(response.model_spec, "")
            response.metadata["signature_def"].Pack(self._signature_defs)
            return response
        except RequestError as err:
            context.abort(err.code, str(err))

    # --------------------------------------------------------------------------- helpers

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """Answer one request (raises :class:`RequestError` for bad ones)."""
        self._check_model(request.model_spec)
        name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        if name not in self._signatures:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown signature {name!r}; known: {', '.join(sorted(self._signatures))}",
            )
        specs = self._inputs[name]
        missing = sorted(set(specs) - set(request.inputs))
        extra = sorted(set(request.inputs) - set(specs))
        if missing or extra:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"signature {name!r} takes inputs {sorted(specs)}; missing {missing}, "
                f"unexpected {extra}",
            )
        feeds = {
            key: self._tensor(name, key, request.inputs[key], spec) for key, spec in specs.items()
        }
        try:
            outputs = self._signatures[name](**feeds)
        except tf.errors.InvalidArgumentError as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, _one_line(exc.message)) from None
        except tf.errors.ResourceExhaustedError as exc:
            raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, _one_line(exc.message)) from None
        except tf.errors.OpError as exc:
            raise RequestError(grpc.StatusCode.INTERNAL, _one_line(exc.message)) from None
        except (TypeError, ValueError) as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, _one_line(str(exc))) from None

        wanted = list(request.output_filter) or sorted(outputs)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output_filter names unknown outputs {unknown}; known: {sorted(outputs)}",
            )
        response = predict_pb2.PredictResponse()
        self._fill_spec(response.model_spec, name)
        for key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key].numpy()))
        return response

    def _check_model(self, spec: model_pb2.ModelSpec) -> None:
        if spec.name != self.model_name:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"model {spec.name!r} is not served; this server serves {self.model_name!r}",
            )
        if spec.HasField("version") and spec.version.value != self.version:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"model {spec.name!r} has no version {spec.version.value} (served: {self.version})",
            )

    def _fill_spec(self, spec: model_pb2.ModelSpec, signature: str) -> None:
        spec.name = self.model_name
        spec.version.value = self.version
        if signature:
            spec.signature_name = signature

    @staticmethod
    def _tensor(signature: str, key: str, proto: Any, spec: tf.TensorSpec) -> tf.Tensor:
        """The request's ``TensorProto`` as a tensor of the dtype ``spec`` wants."""
        where = f"signature {signature!r} input {key!r}"
        expected = spec.dtype.as_datatype_enum
        if proto.dtype != expected:
            got = tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else "no dtype"
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{where} must be {spec.dtype.name}, got {got}",
            )
        try:
            array = tf.make_ndarray(proto)
        except Exception as exc:  # noqa: BLE001 - any malformed proto is the client's error
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT, f"{where}: unreadable TensorProto ({exc})"
            ) from None
        if array.dtype == object:
            array = array.astype(bytes)
        return tf.constant(np.asarray(array), dtype=spec.dtype)


def _read_signature_defs(path: Path) -> get_model_metadata_pb2.SignatureDefMap:
    """The signature defs stored in ``saved_model.pb`` (for ``GetModelMetadata``)."""
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((path / "saved_model.pb").read_bytes())
    defs = get_model_metadata_pb2.SignatureDefMap()
    for name, sig in saved.meta_graphs[0].signature_def.items():
        if not name.startswith("__"):
            defs.signature_def[name].CopyFrom(sig)
    return defs


_NOISE = re.compile(
    r"^(Graph execution error:|Detected at node|<stack traces unavailable>|\s*\[\[)"
)


def _one_line(message: str) -> str:
    """The informative part of a TensorFlow error message, on one line."""
    lines = [line.strip() for line in message.splitlines()]
    kept = [line for line in lines if line and not _NOISE.match(line)]
    text = " ".join(kept) or message.strip()
    return re.sub(r"\s*\[Op:[^\]]*\]$", "", text)


class PredictionServer:
    """A gRPC server answering ``PredictionService`` requests for one SavedModel.

    Args:
        path: a SavedModel directory or a versioned base directory.
        model_name: the name clients give in ``model_spec.name``.
        host: address to bind (loopback by default).
        port: TCP port; 0 picks a free one (see :attr:`port`).
        workers: threads answering requests.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        model_name: str = DEFAULT_MODEL_NAME,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int = 8,
    ):
        self.servicer = PredictionServicer(path, model_name)
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            self.servicer, self._server
        )
        bound = self._server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise OSError(f"cannot listen on {host}:{port}")
        self.host = host
        self.port = bound

    @property
    def address(self) -> str:
        """``host:port`` for ``grpc.insecure_channel``."""
        return f"{self.host}:{self.port}"

    def start(self) -> PredictionServer:
        self._server.start()
        return self

    def stop(self, grace: float | None = 1.0) -> None:
        self._server.stop(grace).wait()

    def wait(self) -> None:
        """Block until the server stops."""
        self._server.wait_for_termination()

    def __enter__(self) -> PredictionServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python export/serve.py DIR [--port 8500] [--model-name NAME]``: serve until stopped."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="export/serve.py",
        description="Serve an exported SavedModel over the TF Serving gRPC PredictionService API.",
    )
    parser.add_argument("directory", help="SavedModel directory or versioned base directory")
    parser.add_argument("--port", type=int, default=8500, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="model_spec.name")
    parser.add_argument("--workers", type=int, default=8, help="request threads")
    args = parser.parse_args(argv)
    try:
        server = PredictionServer(
            args.directory,
            model_name=args.model_name,
            host=args.host,
            port=args.port,
            workers=args.workers,
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server.start()
    print(
        f"Serving {server.servicer.path} as model {args.model_name!r} "
        f"version {server.servicer.version} on {server.address}",
        flush=True,
    )
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


__all__ = [
    "DEFAULT_MODEL_NAME",
    "PredictionServer",
    "PredictionServicer",
    "RequestError",
    "main",
    "resolve_savedmodel_dir",
]
