"""Activation functions: the ``activation`` registry and its built-in entries.

An entry knows how to build its ``nn.Module``, its parameters, and which
``calculate_gain`` nonlinearity matches it (so inits can default their gain to the
layer's activation). torch is imported only when a module is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from annfactory.inits import Nonlinearity
from annfactory.params import Param, params_from_arguments
from annfactory.plugins import load_plugins
from annfactory.registry import EntryCoercion, Registry

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Activation", "activations"]


@dataclass(frozen=True)
class Activation:
    """An activation function.

    Args:
        build: ``build(**params) -> nn.Module``.
        params: The activation's parameters.
        nonlinearity: Maps the parameters to the ``calculate_gain`` nonlinearity that
            matches this activation, e.g. ``("leaky_relu", 0.2)``; ``("linear", None)``
            (gain 1) when there is none.
        elementwise: Maps each scalar to a scalar (softmax does not).
        doc: One line for listings.
    """

    build: Callable[..., nn.Module]
    params: Mapping[str, Param] = field(default_factory=dict)
    nonlinearity: Callable[[Mapping[str, Any]], Nonlinearity] = lambda _: (
        "linear",
        None,
    )
    elementwise: bool = True
    doc: str = ""


def _activation_of_class(
    cls: Any, /, nonlinearity: Any = None, **fields: Any
) -> Activation:
    """An :class:`Activation` for an ``nn.Module`` class; ``nonlinearity`` may be a
    fixed ``calculate_gain`` name (``"tanh"``) or a function of the parameters."""
    if isinstance(nonlinearity, str):
        fixed: Nonlinearity = (nonlinearity, None)
        fields["nonlinearity"] = lambda _: fixed
    elif nonlinearity is not None:
        fields["nonlinearity"] = nonlinearity
    return Activation(build=cast("Callable[..., nn.Module]", cls), **fields)


def _init_arguments(cls: Any, name: str) -> dict[str, Param]:
    """A class's parameters: its ``__init__`` keyword arguments with defaults."""
    return params_from_arguments(
        list(inspect.signature(cls.__init__).parameters.values())[1:],
        f"activation {name!r}",
    )


#: Registry coercion: accept an :class:`Activation` or an ``nn.Module`` class.
_activation_from: EntryCoercion[Activation] = EntryCoercion(
    kind="activation",
    entry_type=Activation,
    entry_words="an Activation",
    source_words="an nn.Module class",
    accepts=inspect.isclass,
    params_of=_init_arguments,
    make=_activation_of_class,
)

activations: Registry[Activation] = Registry(
    "activation", coerce=_activation_from, on_miss=load_plugins
)
"""The activation registry: register an ``nn.Module`` class or an ``Activation``."""


def _torch_module(class_name: str) -> Callable[..., nn.Module]:
    """A builder for ``torch.nn.<class_name>(**params)`` that imports torch lazily."""

    def build(**params: Any) -> nn.Module:
        from torch import nn

        module: nn.Module = getattr(nn, class_name)(**params)
        return module

    build.__qualname__ = build.__name__ = f"build_{class_name}"
    return build


def _fixed(name: str) -> Callable[[Mapping[str, Any]], Nonlinearity]:
    return lambda _: (name, None)


_DIM = Param(
    int, -1, "the dimension to normalize; outputs are [batch, features]", low=-2, high=1
)
_ALPHA = Param(float, 1.0, "scale of the negative saturation", low=0, low_open=True)

#: name: (torch.nn class, parameters, calculate_gain nonlinearity, elementwise, doc)
_BUILTINS: dict[str, tuple[str, dict[str, Param], Any, bool, str]] = {
    "sigmoid": ("Sigmoid", {}, _fixed("sigmoid"), True,
                "1 / (1 + exp(-x)); derivative s(1 - s) <= 0.25"),
    "tanh": ("Tanh", {}, _fixed("tanh"), True, "tanh(x); derivative 1 - tanh^2"),
    "relu": ("ReLU", {}, _fixed("relu"), True, "max(0, x); units can die"),
    "leaky_relu": ("LeakyReLU", {
        "negative_slope": Param(float, 0.01, "slope for x < 0", low=0)},
        lambda p: ("leaky_relu", p["negative_slope"]), True,
        "max(0, x) + negative_slope * min(0, x)"),
    "elu": ("ELU", {"alpha": _ALPHA}, _fixed("linear"), True,
            "x for x > 0, alpha (exp(x) - 1) otherwise"),
    "celu": ("CELU", {"alpha": _ALPHA}, _fixed("linear"), True,
             "max(0, x) + min(0, alpha (exp(x / alpha) - 1))"),
    "selu": ("SELU", {}, _fixed("selu"), True, "scaled elu, self-normalizing"),
    "gelu": ("GELU", {
        "approximate": Param(str, "none", "tanh approximation or exact",
                             choices=("none", "tanh"))}, _fixed("linear"), True,
             "x * Phi(x)"),
    "silu": ("SiLU", {}, _fixed("linear"), True, "x * sigmoid(x), also called swish"),
    "softmax": ("Softmax", {"dim": _DIM}, _fixed("linear"), False,
                "exp(x_i) / sum_j exp(x_j): probabilities"),
    "log_softmax": ("LogSoftmax", {"dim": _DIM}, _fixed("linear"), False,
                    "log of softmax"),
    "identity": ("Identity", {}, _fixed("linear"), True, "x: no activation"),
}  # fmt: skip

for _name, (_class, _params, _nonlinearity, _elementwise, _doc) in _BUILTINS.items():
    activations.register(
        _name,
        Activation(
            build=_torch_module(_class),
            params=_params,
            nonlinearity=_nonlinearity,
            elementwise=_elementwise,
            doc=_doc,
        ),
    )
