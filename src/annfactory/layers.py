"""Layer types: the ``layer`` registry and its built-in entries.

A layer type knows its parameters' shapes and its own PyTorch default init without
importing torch, so a spec can be checked and counted before anything is allocated.
torch is imported only when a module is built.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from annfactory.errors import RegistrationError
from annfactory.params import REQUIRED, Param, params_from_arguments
from annfactory.plugins import load_plugins
from annfactory.registry import EntryCoercion, Registry

if TYPE_CHECKING:
    from torch import nn

__all__ = ["InitChoice", "LayerType", "layers"]

InitChoice = tuple[str, dict[str, Any]]
"""An init scheme's name and parameters, e.g. ``("uniform", {"a": -0.5, "b": 0.5})``."""

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class LayerType:
    """A layer type.

    Args:
        build: ``build(in_features, **options) -> nn.Module``. Called under
            ``torch.device("meta")``; annfactory allocates and initializes the
            parameters afterwards, once each.
        params: The type's options (``out_features``, ``p``, ``eps``, ...).
        shapes: ``shapes(in_features, options)``: each parameter's name and shape. None
            means: learn them by building the module on the meta device.
        default_init: ``default_init(parameter, in_features, options)``: the layer's own
            PyTorch init of that parameter, used where the config says ``default``.
        out_features: ``out_features(in_features, options)``: the output size.
        dense: A fully connected layer; the top-level ``init`` and ``activation``
            groups apply to it.
        doc: One line for listings.
    """

    build: Callable[..., nn.Module]
    params: Mapping[str, Param] = field(default_factory=dict)
    shapes: Callable[[int, Mapping[str, Any]], Shapes] | None = None
    default_init: Callable[[str, int, Mapping[str, Any]], InitChoice] | None = None
    out_features: Callable[[int, Mapping[str, Any]], int] = (
        lambda in_features, options: int(options.get("out_features", in_features))
    )
    dense: bool = False
    doc: str = ""


def _layer_type_of_class(cls: Any, /, **fields: Any) -> LayerType:
    """A :class:`LayerType` for an ``nn.Module`` class, built as
    ``cls(in_features, **options)``; its default inits come from a ``default_inits``
    class attribute mapping parameter names to init names (or ``(name, params)``
    pairs)."""
    declared: Mapping[str, Any] = getattr(cls, "default_inits", {})

    def default_init(
        parameter: str, in_features: int, opts: Mapping[str, Any]
    ) -> InitChoice:
        choice = declared.get(parameter)
        if choice is None:
            raise LookupError(parameter)
        return (choice, {}) if isinstance(choice, str) else (choice[0], dict(choice[1]))

    return LayerType(
        build=cast("Callable[..., nn.Module]", cls),
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


def _build_linear(in_features: int, *, out_features: int, bias: bool) -> nn.Module:
    from torch import nn

    return nn.Linear(in_features, out_features, bias=bias)


def _linear_shapes(in_features: int, options: Mapping[str, Any]) -> Shapes:
    shapes: Shapes = {"weight": (options["out_features"], in_features)}
    if options["bias"]:
        shapes["bias"] = (options["out_features"],)
    return shapes


def _linear_default(
    parameter: str, in_features: int, options: Mapping[str, Any]
) -> InitChoice:
    # nn.Linear.reset_parameters: kaiming_uniform(a=sqrt(5)) on the weight, which is
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
    if parameter == "weight":
        return "kaiming_uniform", {
            "a": math.sqrt(5),
            "mode": "fan_in",
            "nonlinearity": "leaky_relu",
        }
    bound = 1.0 / math.sqrt(in_features)
    return "uniform", {"a": -bound, "b": bound}


def _build_dropout(in_features: int, *, p: float) -> nn.Module:
    from torch import nn

    return nn.Dropout(p)


def _build_batch_norm(
    in_features: int,
    *,
    eps: float,
    momentum: float,
    affine: bool,
    track_running_stats: bool,
) -> nn.Module:
    from torch import nn

    return nn.BatchNorm1d(
        in_features,
        eps=eps,
        momentum=momentum,
        affine=affine,
        track_running_stats=track_running_stats,
    )


def _build_layer_norm(
    in_features: int, *, eps: float, elementwise_affine: bool, bias: bool
) -> nn.Module:
    from torch import nn

    return nn.LayerNorm(
        in_features, eps=eps, elementwise_affine=elementwise_affine, bias=bias
    )


def _affine_shapes(flag: str, bias_flag: str | None = None) -> Callable[..., Shapes]:
    def shapes(in_features: int, options: Mapping[str, Any]) -> Shapes:
        if not options[flag]:
            return {}
        result: Shapes = {"weight": (in_features,)}
        if bias_flag is None or options[bias_flag]:
            result["bias"] = (in_features,)
        return result

    return shapes


def _norm_default(
    parameter: str, in_features: int, options: Mapping[str, Any]
) -> InitChoice:
    # Normalization layers start as the identity map: weight 1, bias 0.
    return ("ones", {}) if parameter == "weight" else ("zeros", {})


_EPS = Param(
    float, 1e-5, "added to the variance for numerical stability", low=0, low_open=True
)

layers.register("linear", LayerType(
    build=_build_linear,
    params={
        "out_features": Param(int, REQUIRED, "output size", low=1),
        "bias": Param(bool, True, "learn an additive bias"),
    },
    shapes=_linear_shapes,
    default_init=_linear_default,
    out_features=lambda in_features, options: int(options["out_features"]),
    dense=True,
    doc="y = x W^T + b (torch.nn.Linear)",
))  # fmt: skip
layers.register("dropout", LayerType(
    build=_build_dropout,
    params={"p": Param(float, 0.5, "probability of zeroing a unit (training only)",
                       low=0, high=1)},
    shapes=lambda in_features, options: {},
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
    shapes=_affine_shapes("affine"),
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
    shapes=_affine_shapes("elementwise_affine", "bias"),
    default_init=_norm_default,
    doc="normalizes each sample over its features (torch.nn.LayerNorm)",
))  # fmt: skip
