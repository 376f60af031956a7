"""Layer types: the ``layer`` registry and its built-in entries.

A layer type declares its shapes with one pure function, without torch: from the
shape of its input (one sample, no batch dimension) and its options to its output's
shape and each parameter's shape (:class:`LayerShape`). So a spec is checked and
counted, and every tensor's size known, before anything is allocated. torch is
imported only when a module is built.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from annfactory.errors import RegistrationError
from annfactory.inits import fan_in_and_fan_out
from annfactory.params import REQUIRED, Param, params_from_arguments
from annfactory.plugins import load_plugins
from annfactory.registry import EntryCoercion, Registry

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "DefaultInit",
    "InitChoice",
    "LayerShape",
    "LayerType",
    "ShapeRule",
    "in_features_first",
    "layers",
]

InitChoice = tuple[str, dict[str, Any]]
"""An init scheme's name and parameters, e.g. ``("uniform", {"a": -0.5, "b": 0.5})``."""

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerShape:
    """The shapes of a layer for one input shape (no batch dimension anywhere).

    Attributes:
        output: The shape of the layer's output.
        parameters: Each parameter's path in the layer (``weight``, or
            ``block.fc1.weight`` in a child module) and its shape, in the order the
            module registers them.
    """

    output: Shape
    parameters: Mapping[str, Shape] = field(default_factory=dict)


ShapeRule = Callable[[Shape, Mapping[str, Any]], LayerShape]
"""``shape(input_shape, options) -> LayerShape``: pure, no torch. Raises ValueError
for an input shape the layer cannot take (the message says why)."""

DefaultInit = Callable[[str, LayerShape, Mapping[str, Any]], InitChoice]
"""``default_init(parameter, shape, options) -> (scheme, params)``: the layer's own
PyTorch init of ``parameter``, given the layer's :class:`LayerShape` (a bias reads its
fans from the weight's shape, as torch does). Raises LookupError if it has none."""


@dataclass(frozen=True, init=False)
class LayerType:
    """A layer type.

    Args:
        build: ``build(input_shape, **options) -> nn.Module``. Called under
            ``torch.device("meta")``; annfactory allocates and initializes the
            parameters afterwards, once each. (A class whose ``__init__`` takes
            ``in_features`` first is wrapped by :func:`in_features_first`.)
        params: The type's options (``out_features``, ``p``, ``eps``, ...).
        shape: ``shape(input_shape, options) -> LayerShape``: the output's and each
            parameter's shape, pure, without torch. None means: learn the parameters
            by building the module on the meta device, and keep the input's shape
            but for its last dimension, which ``out_features`` sets if the type has
            that option (the contract of plugin classes that take ``in_features``).
        default_init: ``default_init(parameter, shape, options)``: the layer's own
            PyTorch init of that parameter, used where the config says ``default``.
        weighted: A layer with a weight that the top-level ``init`` and
            ``activation`` groups apply to (linear; soon convolutions).
        doc: One line for listings.
        dense: The former name of ``weighted``, still accepted.
    """

    build: Callable[..., nn.Module]
    params: Mapping[str, Param]
    shape: ShapeRule | None
    default_init: DefaultInit | None
    weighted: bool
    doc: str

    def __init__(
        self,
        build: Callable[..., nn.Module],
        params: Mapping[str, Param] | None = None,
        shape: ShapeRule | None = None,
        default_init: DefaultInit | None = None,
        weighted: bool = False,
        doc: str = "",
        *,
        dense: bool | None = None,
    ) -> None:
        # A frozen dataclass sets its fields through object.__setattr__ (as the
        # generated __init__ does); this one adds the former name of ``weighted``.
        fields = {
            "build": build,
            "params": {} if params is None else params,
            "shape": shape,
            "default_init": default_init,
            "weighted": weighted if dense is None else dense,
            "doc": doc,
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @property
    def dense(self) -> bool:
        """The former name of :attr:`weighted`."""
        return self.weighted


def in_features_first(cls: Callable[..., Any]) -> Callable[..., nn.Module]:
    """``build(input_shape, **options)`` for a class built as
    ``cls(in_features, **options)``: it gets the last dimension of the input shape."""

    def build(input_shape: Shape, **options: Any) -> nn.Module:
        module: nn.Module = cls(input_shape[-1], **options)
        return module

    build.__qualname__ = build.__name__ = getattr(cls, "__name__", "build")
    build.__doc__ = cls.__doc__
    return build


def _layer_type_of_class(cls: Any, /, **fields: Any) -> LayerType:
    """A :class:`LayerType` for an ``nn.Module`` class, built as
    ``cls(in_features, **options)`` (:func:`in_features_first`); its parameters'
    shapes are learnt on the meta device (:attr:`LayerType.shape` is None), and its
    default inits come from a ``default_inits``
    class attribute mapping parameter names to init names (or ``(name, params)``
    pairs)."""
    declared: Mapping[str, Any] = getattr(cls, "default_inits", {})

    def default_init(
        parameter: str, shape: LayerShape, opts: Mapping[str, Any]
    ) -> InitChoice:
        choice = declared.get(parameter)
        if choice is None:
            raise LookupError(parameter)
        return (choice, {}) if isinstance(choice, str) else (choice[0], dict(choice[1]))

    return LayerType(
        build=in_features_first(cls),
        default_init=default_init,
        **fields,
    )


def _options_from_init(cls: type, name: str) -> dict[str, Param]:
    signature = inspect.signature(cls.__init__)  # type: ignore[misc]
    arguments = list(signature.parameters.values())[1:]
    if not arguments or arguments[0].name != "in_features":
        raise RegistrationError(
            f"layer {name!r}: __init__ must take in_features first (it is inferred)"
        )
    return params_from_arguments(arguments[1:], f"layer {name!r}")


#: Registry coercion: accept a :class:`LayerType` or an ``nn.Module`` class, whose
#: options are the ``__init__`` arguments after ``in_features`` and whose parameters'
#: shapes are learnt on the meta device.
_layer_from: EntryCoercion[LayerType] = EntryCoercion(
    kind="layer",
    entry_type=LayerType,
    entry_words="a LayerType",
    source_words="an nn.Module class",
    accepts=inspect.isclass,
    params_of=_options_from_init,
    make=_layer_type_of_class,
)

layers: Registry[LayerType] = Registry(
    "layer type", coerce=_layer_from, on_miss=load_plugins
)
"""The layer registry. Register an ``nn.Module`` class or a :class:`LayerType`."""


# ------------------------------------------------------------------------------------
# Built-in layer types.
# ------------------------------------------------------------------------------------


def _build_linear(input_shape: Shape, *, out_features: int, bias: bool) -> nn.Module:
    from torch import nn

    return nn.Linear(input_shape[-1], out_features, bias=bias)


def _linear_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    # nn.Linear maps the last dimension and keeps the others.
    out_features = options["out_features"]
    parameters: dict[str, Shape] = {"weight": (out_features, input_shape[-1])}
    if options["bias"]:
        parameters["bias"] = (out_features,)
    return LayerShape((*input_shape[:-1], out_features), parameters)


def _linear_default(
    parameter: str, shape: LayerShape, options: Mapping[str, Any]
) -> InitChoice:
    # nn.Linear.reset_parameters: kaiming_uniform(a=sqrt(5)) on the weight, which is
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias, with the
    # weight's fan_in (torch.nn.init._calculate_fan_in_and_fan_out).
    if parameter == "weight":
        return "kaiming_uniform", {
            "a": math.sqrt(5),
            "mode": "fan_in",
            "nonlinearity": "leaky_relu",
        }
    fan_in, _ = fan_in_and_fan_out(tuple(shape.parameters["weight"]))
    bound = 1.0 / math.sqrt(fan_in)
    return "uniform", {"a": -bound, "b": bound}


def _build_dropout(input_shape: Shape, *, p: float) -> nn.Module:
    from torch import nn

    return nn.Dropout(p)


def _same_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    return LayerShape(input_shape)


def _build_batch_norm(
    input_shape: Shape,
    *,
    eps: float,
    momentum: float,
    affine: bool,
    track_running_stats: bool,
) -> nn.Module:
    from torch import nn

    return nn.BatchNorm1d(
        input_shape[0],
        eps=eps,
        momentum=momentum,
        affine=affine,
        track_running_stats=track_running_stats,
    )


def _batch_norm_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    # nn.BatchNorm1d normalizes each feature of [N, C] or channel of [N, C, L].
    if len(input_shape) > 2:
        raise ValueError(
            "it takes [features] or [channels, length], "
            f"not {len(input_shape)} dimensions"
        )
    return _affine_shape(input_shape, input_shape[0], options["affine"], True)


def _build_layer_norm(
    input_shape: Shape, *, eps: float, elementwise_affine: bool, bias: bool
) -> nn.Module:
    from torch import nn

    return nn.LayerNorm(
        input_shape[-1], eps=eps, elementwise_affine=elementwise_affine, bias=bias
    )


def _layer_norm_shape(input_shape: Shape, options: Mapping[str, Any]) -> LayerShape:
    # nn.LayerNorm(normalized_shape=last dimension) normalizes over that dimension.
    affine = options["elementwise_affine"]
    return _affine_shape(input_shape, input_shape[-1], affine, options["bias"])


def _affine_shape(
    input_shape: Shape, features: int, affine: bool, bias: bool
) -> LayerShape:
    """A normalization's shapes: the input's, and a scale and shift per feature."""
    parameters: dict[str, Shape] = {}
    if affine:
        parameters["weight"] = (features,)
        if bias:
            parameters["bias"] = (features,)
    return LayerShape(input_shape, parameters)


def _norm_default(
    parameter: str, shape: LayerShape, options: Mapping[str, Any]
) -> InitChoice:
    # Normalization layers start as the identity map: weight 1, bias 0.
    return ("ones", {}) if parameter == "weight" else ("zeros", {})


def _build_standardize(input_shape: Shape) -> nn.Module:
    from annfactory.preprocessing import Standardize

    return Standardize(input_shape[-1])


def _build_destandardize(input_shape: Shape) -> nn.Module:
    from annfactory.preprocessing import Destandardize

    return Destandardize(input_shape[-1])


_EPS = Param(
    float, 1e-5, "added to the variance for numerical stability", low=0, low_open=True
)

layers.register("linear", LayerType(
    build=_build_linear,
    params={
        "out_features": Param(int, REQUIRED, "output size", low=1),
        "bias": Param(bool, True, "learn an additive bias"),
    },
    shape=_linear_shape,
    default_init=_linear_default,
    weighted=True,
    doc="y = x W^T + b (torch.nn.Linear)",
))  # fmt: skip
layers.register("dropout", LayerType(
    build=_build_dropout,
    params={"p": Param(float, 0.5, "probability of zeroing a unit (training only)",
                       low=0, high=1)},
    shape=_same_shape,
    doc="zeroes units with probability p while training (torch.nn.Dropout)",
))  # fmt: skip
layers.register("batch_norm", LayerType(
    build=_build_batch_norm,
    params={
        "eps": _EPS,
        "momentum": Param(float, 0.1, "running statistics update rate", low=0, high=1),
        "affine": Param(bool, True, "learn a scale (weight) and shift (bias)"),
        "track_running_stats": Param(bool, True, "keep running mean and variance"),
    },
    shape=_batch_norm_shape,
    default_init=_norm_default,
    doc="normalizes each feature over the batch (torch.nn.BatchNorm1d)",
))  # fmt: skip
layers.register("layer_norm", LayerType(
    build=_build_layer_norm,
    params={
        "eps": _EPS,
        "elementwise_affine": Param(bool, True, "learn a per-feature scale (weight)"),
        "bias": Param(bool, True, "learn a per-feature shift (needs the weight)"),
    },
    shape=_layer_norm_shape,
    default_init=_norm_default,
    doc="normalizes each sample over its features (torch.nn.LayerNorm)",
))  # fmt: skip
layers.register("standardize", LayerType(
    build=_build_standardize,
    shape=_same_shape,
    doc="(x - mean) / scale per feature; task=train fits the buffers on training rows",
))  # fmt: skip
layers.register("destandardize", LayerType(
    build=_build_destandardize,
    shape=_same_shape,
    doc="x * scale + mean per feature: a standardized regression output in its units",
))  # fmt: skip
