"""Init schemes: the ``init`` registry and its built-in entries.

Each scheme fills a tensor in place from a ``torch.Generator``, wrapping
``torch.nn.init`` (never re-implementing its sampling). The parameters of a scheme are
declared as :class:`~annfactory.params.Param` objects so a config is checked before any
tensor is allocated. This module imports torch only when a scheme is applied.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from annfactory.errors import RegistrationError
from annfactory.params import AUTO, REQUIRED, Param
from annfactory.plugins import load_plugins
from annfactory.registry import Registry

if TYPE_CHECKING:
    import torch

__all__ = [
    "NONLINEARITIES",
    "InitScheme",
    "Nonlinearity",
    "calculate_gain",
    "inits",
]

Nonlinearity = tuple[str, float | None]
"""A nonlinearity as ``torch.nn.init.calculate_gain`` takes it: ``(name, param)``."""

NONLINEARITIES = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu")
"""The nonlinearities that ``calculate_gain`` knows (kaiming's ``nonlinearity``)."""


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``.

    Pure Python so that a spec can be resolved without importing torch; the tests check
    it against torch for every nonlinearity.

    ================= ====================================================
    nonlinearity      gain
    ================= ====================================================
    linear, sigmoid   :math:`1`
    tanh              :math:`\\frac{5}{3}`
    relu              :math:`\\sqrt{2}`
    leaky_relu        :math:`\\sqrt{\\frac{2}{1 + \\text{negative\\_slope}^2}}`
    selu              :math:`\\frac{3}{4}`
    ================= ====================================================
    """
    if nonlinearity in ("linear", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(
        f"unsupported nonlinearity {nonlinearity!r}; valid: {', '.join(NONLINEARITIES)}"
    )


@dataclass(frozen=True)
class InitScheme:
    """An init scheme: how to fill one parameter tensor.

    Args:
        apply: ``apply(tensor, *, generator, **params)`` fills ``tensor`` in place.
        params: The scheme's parameters.
        min_dim: The fewest tensor dimensions it works on (2 for fan-based schemes,
            which cannot apply to a 1-D bias).
        check: Cross-parameter check; returns what is wrong, or None.
        resolve_auto: Replaces ``null`` (auto) parameters from the layer's
            nonlinearity; returns the completed parameters.
        doc: One line for listings.
    """

    apply: Callable[..., None]
    params: Mapping[str, Param] = field(default_factory=dict)
    min_dim: int = 0
    check: Callable[[Mapping[str, Any]], str | None] | None = None
    resolve_auto: Callable[[dict[str, Any], Nonlinearity], dict[str, Any]] | None = None
    doc: str = ""


def _scheme_from(obj: Any, *, name: str, **options: Any) -> InitScheme:
    """Registry coercion: accept an :class:`InitScheme` or an init function.

    A function ``f(tensor, *, generator=None, p: float = 1.0, ...)`` becomes a scheme
    whose parameters are its keyword-only arguments other than ``generator``.
    """
    if isinstance(obj, InitScheme):
        if options:
            raise RegistrationError(f"init {name!r}: options given with an InitScheme")
        return obj
    if not callable(obj):
        raise RegistrationError(f"init {name!r}: expected a function or an InitScheme")
    params = dict(options.pop("params", None) or _params_from_signature(obj, name))
    doc = options.pop("doc", None) or _first_line(obj.__doc__)
    try:
        return InitScheme(apply=obj, params=params, doc=doc, **options)
    except TypeError as error:
        raise RegistrationError(f"init {name!r}: {error}") from None


def _params_from_signature(function: Callable[..., Any], name: str) -> dict[str, Param]:
    params: dict[str, Param] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if parameter.name == "generator":
            continue
        default = parameter.default
        if default is inspect.Parameter.empty:
            params[parameter.name] = Param(float, REQUIRED)
        elif isinstance(default, bool | int | float | str):
            params[parameter.name] = Param(type(default), default)
        else:
            raise RegistrationError(
                f"init {name!r}: parameter {parameter.name!r} needs a default of type "
                "bool, int, float or str (or pass params={...} to register)"
            )
    return params


def _first_line(text: str | None) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


inits: Registry[InitScheme] = Registry(
    "init", coerce=_scheme_from, on_miss=load_plugins
)
"""The init registry. Register a function ``f(tensor, *, generator, **params)``."""


# ------------------------------------------------------------------------------------
# Built-in schemes. Each wraps torch.nn.init and passes the parameter's own generator.
# ------------------------------------------------------------------------------------


def _nn_init() -> Any:
    from torch.nn import init

    return init


def uniform(
    tensor: torch.Tensor, *, generator: torch.Generator, a: float, b: float
) -> None:
    r"""Fill from :math:`\mathcal{U}(a, b)`."""
    _nn_init().uniform_(tensor, a, b, generator=generator)


def normal(
    tensor: torch.Tensor, *, generator: torch.Generator, mean: float, std: float
) -> None:
    r"""Fill from :math:`\mathcal{N}(\text{mean}, \text{std}^2)`."""
    _nn_init().normal_(tensor, mean, std, generator=generator)


def constant(tensor: torch.Tensor, *, generator: torch.Generator, val: float) -> None:
    r"""Fill with the value :math:`\text{val}`."""
    _nn_init().constant_(tensor, val)


def zeros(tensor: torch.Tensor, *, generator: torch.Generator) -> None:
    """Fill with 0."""
    _nn_init().zeros_(tensor)


def ones(tensor: torch.Tensor, *, generator: torch.Generator) -> None:
    """Fill with 1."""
    _nn_init().ones_(tensor)


def xavier_normal(
    tensor: torch.Tensor, *, generator: torch.Generator, gain: float
) -> None:
    r"""Glorot normal: :math:`\mathcal{N}(0, \text{std}^2)` with
    :math:`\text{std} = \text{gain} \sqrt{\frac{2}{\text{fan\_in} + \text{fan\_out}}}`.

    Glorot & Bengio (2010), *Understanding the difficulty of training deep feedforward
    neural networks*.
    """
    _nn_init().xavier_normal_(tensor, gain, generator=generator)


def xavier_uniform(
    tensor: torch.Tensor, *, generator: torch.Generator, gain: float
) -> None:
    r"""Glorot uniform: :math:`\mathcal{U}(-b, b)` with
    :math:`b = \text{gain} \sqrt{\frac{6}{\text{fan\_in} + \text{fan\_out}}}`.

    Glorot & Bengio (2010).
    """
    _nn_init().xavier_uniform_(tensor, gain, generator=generator)


def kaiming_normal(
    tensor: torch.Tensor,
    *,
    generator: torch.Generator,
    a: float,
    mode: str,
    nonlinearity: str,
) -> None:
    r"""He normal: :math:`\mathcal{N}(0, \text{std}^2)` with
    :math:`\text{std} = \frac{\text{gain}}{\sqrt{\text{fan\_mode}}}`.

    ``gain`` is ``calculate_gain(nonlinearity, a)``; ``mode`` picks ``fan_in``
    (preserves the forward variance) or ``fan_out`` (the backward one).
    He et al. (2015), *Delving deep into rectifiers*.
    """
    _nn_init().kaiming_normal_(tensor, a, mode, nonlinearity, generator=generator)


def kaiming_uniform(
    tensor: torch.Tensor,
    *,
    generator: torch.Generator,
    a: float,
    mode: str,
    nonlinearity: str,
) -> None:
    r"""He uniform: :math:`\mathcal{U}(-b, b)` with
    :math:`b = \text{gain} \sqrt{\frac{3}{\text{fan\_mode}}}`.

    He et al. (2015).
    """
    _nn_init().kaiming_uniform_(tensor, a, mode, nonlinearity, generator=generator)


def orthogonal(
    tensor: torch.Tensor, *, generator: torch.Generator, gain: float
) -> None:
    r"""A (semi-)orthogonal matrix scaled by :math:`\text{gain}`.

    Saxe et al. (2013), *Exact solutions to the nonlinear dynamics of learning in deep
    linear neural networks*.
    """
    _nn_init().orthogonal_(tensor, gain, generator=generator)


def trunc_normal(
    tensor: torch.Tensor,
    *,
    generator: torch.Generator,
    mean: float,
    std: float,
    a: float,
    b: float,
) -> None:
    r""":math:`\mathcal{N}(\text{mean}, \text{std}^2)` truncated to :math:`[a, b]`."""
    _nn_init().trunc_normal_(tensor, mean, std, a, b, generator=generator)


def _default(tensor: torch.Tensor, *, generator: torch.Generator) -> None:
    """The layer's own PyTorch init; resolved per layer type before anything runs."""
    raise AssertionError(
        "'default' is resolved to the layer's own init before building"
    )


def _lower_than_upper(params: Mapping[str, Any]) -> str | None:
    if params["a"] >= params["b"]:
        return f"needs a < b, got a={params['a']:g}, b={params['b']:g}"
    return None


def _gain_from_activation(params: dict[str, Any], nl: Nonlinearity) -> dict[str, Any]:
    if params["gain"] is None:
        params["gain"] = calculate_gain(*nl)
    return params


def _kaiming_from_activation(
    params: dict[str, Any], nl: Nonlinearity
) -> dict[str, Any]:
    if params["nonlinearity"] is None:
        params["nonlinearity"] = nl[0]
    if params["a"] is None:
        # The slope of a leaky_relu activation; 0 (torch's default) otherwise.
        from_activation = (
            nl[0] == "leaky_relu" and params["nonlinearity"] == "leaky_relu"
        )
        params["a"] = (0.01 if nl[1] is None else nl[1]) if from_activation else 0.0
    return params


_GAIN = Param(
    float, AUTO, "scale factor; null: the gain of the layer's activation", low=0
)
_KAIMING = {
    "a": Param(
        float, AUTO, "negative slope of a leaky_relu; null: from the activation"
    ),
    "mode": Param(
        str,
        "fan_in",
        "fan_in keeps forward variance, fan_out backward",
        choices=("fan_in", "fan_out"),
    ),
    "nonlinearity": Param(
        str, AUTO, "gain source; null: the layer's activation", choices=NONLINEARITIES
    ),
}

#: name: (function, parameters, fewest dimensions, check, auto-resolution)
_BUILTINS: dict[str, tuple[Callable[..., None], dict[str, Param], int, Any, Any]] = {
    "uniform": (uniform, {
        "a": Param(float, 0.0, "lower bound"),
        "b": Param(float, 1.0, "upper bound")}, 0, _lower_than_upper, None),
    "normal": (normal, {
        "mean": Param(float, 0.0, "mean"),
        "std": Param(float, 1.0, "standard deviation", low=0)}, 0, None, None),
    "constant": (constant, {"val": Param(float, 0.0, "the value")}, 0, None, None),
    "zeros": (zeros, {}, 0, None, None),
    "ones": (ones, {}, 0, None, None),
    "xavier_normal": (xavier_normal, {"gain": _GAIN}, 2, None, _gain_from_activation),
    "xavier_uniform": (xavier_uniform, {"gain": _GAIN}, 2, None, _gain_from_activation),
    "kaiming_normal": (kaiming_normal, _KAIMING, 2, None, _kaiming_from_activation),
    "kaiming_uniform": (kaiming_uniform, _KAIMING, 2, None, _kaiming_from_activation),
    "orthogonal": (orthogonal, {"gain": _GAIN}, 2, None, _gain_from_activation),
    "trunc_normal": (trunc_normal, {
        "mean": Param(float, 0.0, "mean before truncation"),
        "std": Param(float, 1.0, "standard deviation before truncation",
                     low=0, low_open=True),
        "a": Param(float, -2.0, "lower cut-off (absolute)"),
        "b": Param(float, 2.0, "upper cut-off (absolute)")},
        0, _lower_than_upper, None),
    "default": (_default, {}, 0, None, None),
}  # fmt: skip

for _name, (_apply, _params, _min_dim, _check, _auto) in _BUILTINS.items():
    inits.register(
        _name,
        InitScheme(
            apply=_apply,
            params=_params,
            min_dim=_min_dim,
            check=_check,
            resolve_auto=_auto,
            doc=_first_line(_apply.__doc__),
        ),
    )
