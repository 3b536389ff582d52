"""Model registry: every architecture registers its builders here by name.

A builder is a function returning a functional ``keras.Model`` that maps float32 RGB images in
[0, 1] (NHWC, dynamic height and width) to a dict of outputs; ``"derained"`` is always present.
Each registration also declares what the rest of the library needs to know about the model:
the spatial multiple its input must have, how the official checkpoint's keys map to Keras
layers, how to recover the constructor config from an official checkpoint and, for density-aware
models, how to read their ``"density"`` output as a value and a level.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from tfderain import density
from tfderain._keras import keras
from tfderain.metrics import PROTOCOLS
from tfderain.processing import Processor

StateDict = Mapping[str, np.ndarray]

#: Modules of this package that hold shared code rather than architectures.
_NOT_ARCHITECTURES = {"blocks"}

#: Models for phones (:attr:`ModelSpec.phone`) have fewer parameters than this at their paper
#: config.
PHONE_PARAMS = 5_000_000

#: Rain-density levels, indexed by the level a ``density_decoder`` returns.
DENSITY_LEVELS = density.DENSITY_LEVELS


class Tiny(NamedTuple):
    """A model's reduced config, for tests, examples and quick experiments.

    Attributes:
        config: builder overrides that make the model small (tiny widths, few blocks), so that
            building it and a forward pass take a fraction of a second.
        patch_size: side of the square inputs it is smoke-tested on: a multiple of the model's
            ``multiple`` that the reduced model accepts (usually 32).
    """

    config: Mapping[str, Any]
    patch_size: int = 32


class ConversionError(ValueError):
    """A checkpoint does not fit the model; the message lists every problem found.

    Raised by a registry entry's ``infer_config`` and by :mod:`tfderain.convert`.
    """


@dataclass(frozen=True)
class ModelSpec:
    """What the library knows about one registered model.

    Attributes:
        name: registry name (``tfderain derain --model NAME``).
        builder: returns the functional Keras model; its defaults are the paper config.
        multiple: height and width must be multiples of this (inference pads to it).
        halo: pixels of context each side that an output pixel depends on noticeably; tiles
            overlap by at least this much.
        key_map: ``{keras_layer_name: official_module_prefix}``, or a function of the config
            returning that table (see :mod:`tfderain.convert.mapping`).
        infer_config: recovers builder kwargs from an official state dict's shapes.
        outputs: names of the dict outputs.
        density_aware: the model predicts a rain density (output ``"density"``).
        density_decoder: reads one image's ``"density"`` output (that image's slice of the
            batch) as ``(value, level)``: a continuous density in [0, 1] on the model's own scale
            (0 the lightest rain it expresses) and an index into :data:`DENSITY_LEVELS`
            (0 light, 1 medium, 2 heavy). Set for every density-aware model.
        density_size: side of the square input the density estimate was trained for; density
            estimation resizes the whole image to it. ``None``: the image is used at its own
            size (padded to ``multiple``).
        output_rule: how the official test script turns the float output into 8 bits before
            scoring: ``"round"`` (``img_as_ubyte``, MPRNet/Restormer style) or ``"truncate"``
            (``np.uint8(255 * x)``, PReNet's ``test_PReNet.py``); see
            :func:`tfderain.processing.round_output`.
        protocol: the evaluation protocol of the architecture's official scores
            (:mod:`tfderain.metrics`): ``"A"`` (PReNet's ``statistic/*.m``, the default) or
            ``"B"`` (``evaluate_PSNR_SSIM.m`` shipped by MPRNet and Restormer); what
            ``tfderain evaluate`` uses unless ``--protocol`` is given.
        ignore_keys: official state-dict keys (or prefixes ending in ``.``) that the converter
            skips on purpose (modules the official forward never uses, extra names of a shared
            tensor), or a function of the config returning them.
        description: one line for ``tfderain models``.
        qat_recipe: the model's quantization-aware fine-tune where it differs from the
            exporter's defaults (:class:`tfderain.export.options.QATSettings`): any of
            ``steps``, ``batch_size`` (patches per step) and ``patch_size`` (their side), set
            where a longer or wider fine-tune was measured to keep the int8 file within the
            export targets (``export/REPORT.md``).
        tiny: the model's reduced config (:class:`Tiny`), for tests, examples and quick
            experiments; ``None`` for the few networks that have no small variant (fixed
            widths and a fixed input size).
        phone: the paper config is small enough for phones (fewer than :data:`PHONE_PARAMS`
            parameters; checked by ``tests/test_export_qat.py``): the export report quantizes
            it to ``int8`` and ``qat`` besides the float formats, and the QAT tests export it
            at its ``tiny`` config.
    """

    name: str
    builder: Callable[..., keras.Model]
    multiple: int = 1
    halo: int = 32
    key_map: Mapping[str, str] | Callable[..., Mapping[str, str]] | None = None
    infer_config: Callable[[StateDict], dict[str, Any]] | None = None
    outputs: tuple[str, ...] = ("derained",)
    density_aware: bool = False
    density_decoder: Callable[[np.ndarray], tuple[float, int]] | None = None
    density_size: int | None = None
    output_rule: str = "round"
    protocol: str = "A"
    ignore_keys: tuple[str, ...] | Callable[..., tuple[str, ...]] = ()
    description: str = ""
    qat_recipe: Mapping[str, int] = field(default_factory=dict)
    tiny: Tiny | None = None
    phone: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"model {self.name!r}: protocol must be one of {', '.join(PROTOCOLS)}; "
                f"got {self.protocol!r}"
            )

    @property
    def processor(self) -> Processor:
        """The model's processing around the network (:class:`tfderain.processing.Processor`):
        padding, tile halo, output rule and density input."""
        return Processor(
            multiple=int(self.multiple),
            halo=int(self.halo),
            output_rule=self.output_rule,
            density_size=self.density_size,
        )

    def key_table(self, **config: Any) -> Mapping[str, str]:
        """The converter key table for a model built with ``config``."""
        if self.key_map is None:
            raise ValueError(f"model {self.name!r} has no official checkpoint key map")
        return self.key_map(**config) if callable(self.key_map) else self.key_map

    def ignored_keys(self, **config: Any) -> tuple[str, ...]:
        """Official keys the converter skips on purpose, for a model built with ``config``."""
        return self.ignore_keys(**config) if callable(self.ignore_keys) else self.ignore_keys


_REGISTRY: dict[str, ModelSpec] = {}
_loaded = False


def register(name: str, **spec: Any) -> Callable[[Callable[..., keras.Model]], Callable]:
    """Class-free registration decorator: ``@register("prenet", halo=80, key_map=...)``."""

    def decorate(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(name=name, builder=builder, **spec)
        return builder

    return decorate


def _load_all() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in pkgutil.iter_modules(__path__):
            if module.name not in _NOT_ARCHITECTURES and not module.name.startswith("_"):
                importlib.import_module(f"{__name__}.{module.name}")


def names() -> list[str]:
    """Sorted names of all registered models."""
    _load_all()
    return sorted(_REGISTRY)


def spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered as ``name``; a clear error for unknown names."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(names())}") from None


@dataclass(frozen=True)
class Identity:
    """What a model built by the registry is: read with :func:`identity`.

    Attributes:
        arch: the registry name it was built from.
        config: the full builder config (paper defaults completed with the overrides).
        source: where its weights came from, where known (e.g. ``preset``, ``sha256``,
            ``license``); carried into the files saved or exported from it.
    """

    arch: str
    config: Mapping[str, Any]
    source: Mapping[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> ModelSpec:
        """The registry entry of :attr:`arch`."""
        return spec(self.arch)


#: Models built by :func:`build`, keyed weakly so that a dropped model is forgotten.
_IDENTITIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def identity(model: keras.Model) -> Identity | None:
    """The :class:`Identity` of a model built by :func:`build` (``None`` for any other model).

    This is where the rest of a model's bundle lives (``../shared/DESIGN.md``, "A model is one
    object"): :func:`build`, :func:`tfderain.load_model` (a ``.keras`` file, an official
    checkpoint, a preset) and :func:`tfderain.build_model` return the plain functional
    ``keras.Model``, and its architecture name, full config and weight source are this
    :class:`Identity`; ``identity(model).spec.processor`` is its processing (padding multiple,
    tile halo, output rule, density input). The registry holds it in a weak map keyed by the
    model object (nothing is set on the Keras model; the entry goes with the model), so a copy
    made outside tfderain (``keras.models.clone_model``, ``keras.models.load_model``, TFMOT's
    ``quantize_apply``) has none. CONTRIBUTING.md, "Design decisions", says why.
    """
    try:
        return _IDENTITIES.get(model)
    except TypeError:  # not weakly referenceable: not one of ours
        return None


def require_identity(model: keras.Model, purpose: str) -> Identity:
    """:func:`identity`, or a ``ValueError`` saying that ``purpose`` needs a registry model."""
    found = identity(model)
    if found is None:
        name = getattr(model, "name", type(model).__name__)
        raise ValueError(
            f"only models built by tfderain (build_model, load_model, a converted checkpoint or "
            f"a preset) can be used for {purpose}; {name!r} is not one"
        )
    return found


def with_source(model: keras.Model, **source: Any) -> keras.Model:
    """Record where ``model``'s weights came from (merged into its :class:`Identity`)."""
    found = require_identity(model, "recording a weight source")
    _IDENTITIES[model] = Identity(found.arch, found.config, {**found.source, **source})
    return model


#: The entry used for Keras models the registry did not build: no multiple, default halo.
UNREGISTERED = ModelSpec(name="unregistered", builder=None)  # type: ignore[arg-type]


def spec_of(model: keras.Model) -> ModelSpec:
    """The registry entry ``model`` was built from; :data:`UNREGISTERED` for other models."""
    found = identity(model)
    return UNREGISTERED if found is None else spec(found.arch)


def build(name: str, **config: Any) -> keras.Model:
    """Build the registered model ``name``; ``config`` overrides the paper defaults."""
    builder = spec(name).builder
    full = full_config(builder, config)
    model = builder(**full)
    _IDENTITIES[model] = Identity(name, full)
    return model


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` itself if it computes in float32, else the same architecture built again under
    the float32 policy with its weights cast to float32 (for saving and exporting a
    mixed-precision model); the identity is kept."""
    dtypes = {getattr(layer, "compute_dtype", "float32") for layer in model.layers}
    dtypes |= {v.dtype.name for v in model.variables}
    if dtypes <= {"float32"}:
        return model
    found = require_identity(model, "a float32 copy")
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        clean = build(found.arch, **found.config)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    clean.set_weights([np.asarray(w, np.float32) for w in model.get_weights()])
    _IDENTITIES[clean] = found
    return clean


def full_config(builder: Callable[..., Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` completed with the builder's defaults; unknown keys are an error."""
    params = inspect.signature(builder).parameters
    unknown = sorted(set(config) - set(params))
    if unknown:
        known = ", ".join(p for p in params)
        raise ValueError(f"unknown config key(s) {', '.join(unknown)}; known: {known}")
    full = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    full.update(config)
    return full


__all__ = [
    "DENSITY_LEVELS",
    "PHONE_PARAMS",
    "UNREGISTERED",
    "ConversionError",
    "Identity",
    "ModelSpec",
    "Tiny",
    "build",
    "float32_copy",
    "identity",
    "names",
    "register",
    "require_identity",
    "spec",
    "spec_of",
    "with_source",
]
