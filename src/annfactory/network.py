"""The module that the factory builds."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from annfactory.blocks import Residual, add_layers
from annfactory.spec_types import NetworkSpec

__all__ = ["Network", "Residual"]


class Network(nn.Module):
    """A network: each layer, then its activation, in order.

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
        self._order = add_layers(self, blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Each child through nn.Module.__call__ (torch's public path), so its hooks,
        # Module.compile() and tracing behave as torch documents them.
        modules = self._modules
        for name in self._order:
            x = modules[name](x)  # type: ignore[misc]
        return x

    def extra_repr(self) -> str:
        spec = self.spec
        if len(spec.input_shape) == 1 and len(spec.output_shape) == 1:
            return f"in_features={spec.in_features}, out_features={spec.out_features}"
        return f"input_shape={spec.input_shape}, output_shape={spec.output_shape}"
