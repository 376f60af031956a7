"""Container modules that layer types build: below :mod:`annfactory.layers`, so that a
layer type's entry builds them without importing the network above it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["Residual", "add_layers"]


class Residual(nn.Module):
    """A residual block: ``x + body(x)``, or ``projection(x) + body(x)`` where the body
    changes the shape.

    The body's layers are children under their config names, each followed by its
    activation (``<layer>_act``) as in :class:`annfactory.network.Network`, so the
    state dict reads ``block.fc1.weight``; the projection, if any, is the child
    ``projection``.

    Args:
        body: The body's layers in order: ``(name, layer, activation or None)``.
        projection: A module that maps the input to the body's output shape (a
            linear layer or a 1x1 convolution), or None.
    """

    def __init__(
        self,
        body: Sequence[tuple[str, nn.Module, nn.Module | None]],
        projection: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self._order = add_layers(self, body)
        self.projection = projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        modules = self._modules
        for name in self._order:
            y = modules[name](y)  # type: ignore[misc]
        shortcut = x if self.projection is None else self.projection(x)
        return shortcut + y


def add_layers(
    module: nn.Module, layers: Sequence[tuple[str, nn.Module, nn.Module | None]]
) -> tuple[str, ...]:
    """Add each layer to ``module`` under its name, followed by its activation as
    ``<name>_act``; return the children's names in the order they run."""
    order: list[str] = []
    for name, layer, activation in layers:
        module.add_module(name, layer)
        order.append(name)
        if activation is not None:
            module.add_module(f"{name}_act", activation)
            order.append(f"{name}_act")
    return tuple(order)
