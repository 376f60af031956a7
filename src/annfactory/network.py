"""The module that the factory builds."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from annfactory.spec import NetworkSpec

__all__ = ["Network"]


class Network(nn.Module):
    """A fully connected network: each layer, then its activation, in order.

    Layers are children under their config names (``linear1``), so the state dict reads
    ``linear1.weight``, ``linear1.bias``, ... Each activation other than identity is a
    child named ``<layer>_act``, so summaries show it.

    Attributes:
        spec: The resolved spec the network was built from.
    """

    def __init__(
        self,
        spec: NetworkSpec,
        blocks: Sequence[tuple[str, nn.Module, nn.Module | None]],
    ) -> None:
        super().__init__()
        self.spec = spec
        steps: list[nn.Module] = []
        for name, layer, activation in blocks:
            self.add_module(name, layer)
            steps.append(layer)
            if activation is not None:
                self.add_module(f"{name}_act", activation)
                steps.append(activation)
        self._steps = tuple(steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self._steps:
            x = step(x)
        return x

    def extra_repr(self) -> str:
        spec = self.spec
        return f"in_features={spec.in_features}, out_features={spec.out_features}"
