"""The model on Beam workers: where it comes from, and RunInference handlers that run it.

**Where the model comes from** (:func:`model_ref`, at pipeline construction): what the command
line's ``--model``/``--weights`` name becomes a :class:`ModelRef`, the one thing shipped to
the workers (with the file's sha256, checked there, wherever the file was read here):

* a ``.keras`` file on any Beam filesystem (``gs://…/prenet.keras``, a local path) is read by
  each worker through :class:`~apache_beam.io.filesystems.FileSystems`;
* the bundled default model, a preset name (``prenet:rain100h``, resolved here by
  :func:`tfderain.presets.resolve`, so workers never contact the preset's origin) and an
  official ``.pth`` checkpoint (converted here) become a local ``.keras`` file, which is copied
  to ``staging`` (a folder URI the workers can read, e.g. the pipeline's ``--temp_location``)
  when one is given, and otherwise travels inside the pipeline itself (its bytes are part of the
  handler: right for small models and local runners; a Dataflow job graph is limited to 10 MB,
  so stage larger models).

**Running it** (:class:`DerainModelHandler`, :class:`ScoreModelHandler`): each worker process
stages the file to a local temporary file, loads it once and shares it between its threads
(RunInference's per-process ``Shared`` handle); ``large_model=True`` keeps one copy per machine
instead (Beam's ``multi_process_shared``). Images go through :class:`tfderain.inference.Derainer`,
the processing and tiling of ``tfderain derain``.

Batching: RunInference hands over one image at a time. Running same-sized images as one network
batch was measured slower on CPU (4 images of 320×480 with the default model: 0.71–0.92× the
speed of 4 single calls on a 2-core Xeon), since convolutions are already spread over all cores
within one image and a batch only grows the working set; images above ``max_pixels`` are batched
by tile (``batch_size`` tiles per call) inside ``Derainer``. One image at a time also bounds
memory: a worker thread holds one decoded image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from tfderain import io, models, presets, saving
from tfderain._keras import keras, tf
from tfderain.beam import storage
from tfderain.data.layouts import Pair
from tfderain.density_estimation import density_estimator
from tfderain.inference import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_PIXELS,
    DEFAULT_TILE,
    Derainer,
)

#: ``--model`` value of the bundled default model.
DEFAULT_MODEL = "default"
#: Problems one image can cause while it is derained; any of them fails that image only.
IMAGE_ERRORS = (ValueError, OSError, MemoryError, tf.errors.OpError)


# ------------------------------------------------------------------------------ model source


@dataclass(frozen=True)
class ModelRef:
    """A ``.keras`` model file as workers get it: a URI to read, or the file's bytes.

    Attributes:
        name: what the user named (a path, URI, preset name or ``"default"``), for messages.
        uri: a file on a Beam filesystem, or ``None`` when ``data`` holds the file.
        data: the file's bytes when they travel with the pipeline.
        sha256: the file's digest (hex), checked by every worker; ``None`` for a ``.keras`` URI
            that was not read at construction (remote files are not downloaded to hash them).
    """

    name: str
    uri: str | None = None
    data: bytes | None = dataclasses.field(default=None, repr=False)
    sha256: str | None = None

    def fetch(self, local: str) -> None:
        """Write the model file to the local path ``local`` and check its digest."""
        if self.data is not None:
            Path(local).write_bytes(self.data)
        else:
            storage.copy_to_local(self.uri, local)
        if self.sha256 is not None:
            digest = _sha256(local)
            if digest != self.sha256:
                raise saving.ModelFileError(
                    f"{self.uri or self.name}: model file changed since the pipeline was built "
                    f"(sha256 {digest[:12]}…, expected {self.sha256[:12]}…)"
                )


#: The bundled default model file (:func:`tfderain.presets.default_model_path`).
default_model_path = presets.default_model_path


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _presets():
    """:mod:`tfderain.presets`, or ``None`` where this installation has no presets."""
    try:
        return importlib.import_module("tfderain.presets")
    except ModuleNotFoundError:
        return None


def _preset_name(text: str | None) -> str | None:
    presets = _presets()
    if text is not None and presets is not None and presets.is_preset_name(text):
        return text
    return None


def model_ref(
    model: str | None = None,
    weights: str | None = None,
    *,
    staging: str | None = None,
) -> ModelRef:
    """Resolve the command line's ``--model``/``--weights`` into what workers load.

    Args:
        model: ``None``/``"default"`` (the bundled model), a preset name, or a registered
            architecture (then ``weights`` is required, and a ``.keras`` file must hold it).
        weights: a ``.keras`` file (any Beam filesystem), an official ``.pth`` checkpoint
            (local; needs ``model``), or a preset name.
        staging: a folder URI readable by the workers; local model files are copied there as
            ``tfderain-model-<sha256[:16]>.keras`` (kept if already there).

    Raises:
        ValueError: the combination names no model (the message says why).
    """
    preset = _preset_name(weights) or _preset_name(model)
    if preset is not None:
        arch = None if model in (None, DEFAULT_MODEL, preset) else model
        path = Path(_presets().resolve(preset))
        _check_arch(path, arch, preset)
        return _ship(preset, path, staging)
    if weights is None:
        if model not in (None, DEFAULT_MODEL):
            models.spec(model)  # unknown names fail here with the list of known ones
            raise ValueError(
                f"model {model!r} needs weights: an official checkpoint (.pth), a converted "
                ".keras file or a preset name"
            )
        return _ship(DEFAULT_MODEL, default_model_path(), staging)
    weights = str(weights)
    arch = None if model in (None, DEFAULT_MODEL) else model
    if weights.endswith(".keras"):
        if storage.is_local(weights):
            path = Path(storage.normalize(weights))
            _check_arch(path, arch, weights)
            return _ship(weights, path, staging)
        return ModelRef(name=weights, uri=weights)
    if arch is None:
        raise ValueError(f"{weights}: an official checkpoint needs --model NAME")
    if not storage.is_local(weights):
        raise ValueError(
            f"{weights}: convert official checkpoints locally first (tfderain convert)"
        )
    from tfderain.convert import convert

    with tempfile.TemporaryDirectory(prefix="tfderain-") as folder:
        path = Path(folder) / f"{Path(weights).stem}.keras"
        return _ship(weights, saving.save_model(convert(arch, weights), path), staging)


def _check_arch(path: Path, arch: str | None, name: str) -> None:
    found = saving.read_metadata(path)["arch"]
    if arch is not None and arch != found:
        raise ValueError(f"{name}: holds a {found!r} model, not {arch!r}")


def _ship(name: str, path: Path, staging: str | None) -> ModelRef:
    """A local model file, copied to ``staging`` or carried as bytes."""
    digest = _sha256(path)
    if staging is None:
        return ModelRef(name=name, data=path.read_bytes(), sha256=digest)
    uri = storage.join(staging, f"tfderain-model-{digest[:16]}.keras")
    if not storage.exists(uri):
        storage.write_bytes(uri, path.read_bytes())
    return ModelRef(name=name, uri=uri, sha256=digest)


# ----------------------------------------------------------------------------- loaded model


class LoadedModel:
    """What a worker holds: the :class:`Derainer` and, for density-aware models, their
    :class:`~tfderain.density_estimation.DensityEstimator`."""

    def __init__(self, model: keras.Model, **options: Any):
        self.derainer = Derainer(model, models.spec_of(model), **options)
        self.spec = self.derainer.spec
        self.estimator = density_estimator(model, self.spec)

    def density(self, rgb: np.ndarray) -> tuple[float, str] | None:
        """``(value, level)`` of the rain density of float32 RGB (the estimator's
        :meth:`~tfderain.density_estimation.DensityEstimator.estimate_array`); ``None`` for
        models that estimate none."""
        if self.estimator is None:
            return None
        found = self.estimator.estimate_array(rgb)
        return found.value, found.level


class _Handler(ModelHandler):
    """Loads a :class:`ModelRef` once per worker process (see the module docstring)."""

    def __init__(
        self,
        ref: ModelRef,
        *,
        tile: int = DEFAULT_TILE,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        strength: float = 1.0,
        large_model: bool = False,
    ):
        super().__init__(min_batch_size=1, max_batch_size=1, large_model=large_model)
        self.ref = ref
        self.options = {
            "tile": tile,
            "max_pixels": max_pixels,
            "batch_size": batch_size,
            "strength": strength,
        }

    def load_model(self) -> LoadedModel:
        with tempfile.TemporaryDirectory(prefix="tfderain-model-") as folder:
            local = os.path.join(folder, "model.keras")
            self.ref.fetch(local)
            model = saving.load_model(local)
        return LoadedModel(model, **self.options)

    def get_metrics_namespace(self) -> str:
        return "tfderain"


@dataclass
class ImageJob:
    """One decoded image on its way through the model (``result`` or ``cause`` once run)."""

    src: str
    dest: str
    image: io.Image
    result: io.Image | None = None
    density: tuple[float, str] | None = None
    cause: str | None = None
    seconds: float = 0.0


class DerainModelHandler(_Handler):
    """RunInference handler: :class:`ImageJob` in, the same job with its result out.

    An image the model cannot process (too large for memory, a TensorFlow error) gets a
    ``cause`` instead of failing the bundle.
    """

    def run_inference(
        self,
        batch: Sequence[ImageJob],
        model: LoadedModel,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        for job in batch:
            start = time.perf_counter()
            done: dict[str, Any] = {}
            try:
                done["result"] = model.derainer.derain_image(job.image)
                done["density"] = model.density(job.image.rgb)
            except IMAGE_ERRORS as exc:
                done = {"cause": io.error_cause(exc)}
            seconds = job.seconds + time.perf_counter() - start
            out = dataclasses.replace(job, seconds=seconds, **done)
            yield PredictionResult(out, out.result)

    def get_num_bytes(self, batch: Sequence[ImageJob]) -> int:
        return sum(job.image.rgb.nbytes for job in batch)


@dataclass(frozen=True)
class PairJob:
    """One pair to score: ``index`` orders the mean like ``tfderain evaluate``; ``rainy`` and
    ``clean`` are paths or URIs; ``split`` as :attr:`tfderain.data.layouts.Pair.split`."""

    index: int
    name: str
    rainy: str
    clean: str
    split: str | None = None


class ScoreModelHandler(_Handler):
    """RunInference handler: :class:`PairJob` in, a row of scores (a dict) out.

    Scoring is :func:`tfderain.evaluation.score_pairs`, the loop of ``tfderain evaluate``; pairs
    on remote storage are first copied to local temporary files.
    """

    def __init__(
        self,
        ref: ModelRef,
        *,
        protocol: str = "A",
        output_rule: str | None = None,
        **options: Any,
    ):
        super().__init__(ref, **options)
        self.protocol = protocol
        self.output_rule = output_rule

    def run_inference(
        self,
        batch: Sequence[PairJob],
        model: LoadedModel,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        for job in batch:
            yield PredictionResult(job, self._score(job, model))

    def _score(self, job: PairJob, model: LoadedModel) -> dict[str, Any]:
        from tfderain import evaluation

        row: dict[str, Any] = {
            "index": job.index,
            "name": job.name,
            "rainy": job.rainy,
            "clean": job.clean,
        }
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="tfderain-pair-") as folder:
            staged: dict[str, str] = {}  # local copy → URI, to name the URI in causes
            try:
                rainy, clean = (
                    _local(uri, folder, side, staged)
                    for uri, side in ((job.rainy, "rainy"), (job.clean, "clean"))
                )
                pair = Pair(job.name, rainy, clean, split=job.split)
                (item,) = evaluation.score_pairs(
                    model.derainer, [pair], self.protocol, output_rule=self.output_rule
                )
            except IMAGE_ERRORS as exc:
                item = (job.name, io.error_cause(exc))
        if isinstance(item, tuple):
            cause = item[1]
            for local, uri in staged.items():
                cause = cause.replace(local, uri)
            row.update(status="failed", cause=cause)
        else:
            row.update(
                status="scored",
                psnr=item.psnr,
                ssim=item.ssim,
                input_psnr=item.input_psnr,
                input_ssim=item.input_ssim,
            )
        row["seconds"] = round(time.perf_counter() - start, 4)
        return row


def _local(uri: str, folder: str, side: str, staged: dict[str, str]) -> Path:
    """A local path of ``uri``: itself when local, else a copy in ``folder/side/``."""
    if storage.is_local(uri):
        return Path(uri)
    local = Path(folder) / side / storage.basename(uri)
    local.parent.mkdir(exist_ok=True)
    staged[str(local)] = uri
    if not storage.exists(uri):
        raise io.ImageError(uri, "no such file")
    storage.copy_to_local(uri, str(local))
    return local


__all__ = [
    "DEFAULT_MODEL",
    "DerainModelHandler",
    "ImageJob",
    "LoadedModel",
    "ModelRef",
    "PairJob",
    "ScoreModelHandler",
    "default_model_path",
    "model_ref",
]
