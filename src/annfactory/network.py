"""The module that the factory builds."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules import module as _module

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
        order: list[str] = []
        for name, layer, activation in blocks:
            self.add_module(name, layer)
            order.append(name)
            if activation is not None:
                self.add_module(f"{name}_act", activation)
                order.append(f"{name}_act")
        self._order = tuple(order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Calling each child's forward directly skips nn.Module.__call__'s bookkeeping,
        # which costs more than a small layer's arithmetic. It is only skipped when
        # __call__ would do nothing else: no hooks (summaries and diagnostics register
        # them), no tracing. This is the condition torch's own _call_impl uses.
        modules = self._modules
        if (
            _module._global_forward_hooks
            or _module._global_forward_pre_hooks
            or _module._global_backward_hooks
            or _module._global_backward_pre_hooks
            or torch._C._get_tracing_state()
        ):
            for name in self._order:
                x = modules[name](x)  # type: ignore[misc]
            return x
        for name in self._order:
            child = modules[name]
            assert child is not None
            if (
                child._forward_hooks
                or child._forward_pre_hooks
                or child._backward_hooks
                or child._backward_pre_hooks
            ):
                x = child(x)
            else:
                x = child.forward(x)
        return x

    def extra_repr(self) -> str:
        spec = self.spec
        if len(spec.input_shape) == 1 and len(spec.output_shape) == 1:
            return f"in_features={spec.in_features}, out_features={spec.out_features}"
        return f"input_shape={spec.input_shape}, output_shape={spec.output_shape}"
