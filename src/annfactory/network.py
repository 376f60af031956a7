"""The module that the factory builds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import torch
from torch import nn
from torch.nn.modules import module as _module

from annfactory.blocks import Residual, add_layers
from annfactory.spec_types import NetworkSpec

__all__ = ["Network", "Residual"]

#: torch's process-wide hooks (``nn.modules.module.register_module_forward_hook`` and
#: the like), which ``nn.Module._call_impl`` reads on every call.
_GLOBAL_HOOKS: Final = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)
#: Each module's own hooks, which ``nn.Module._call_impl`` reads on every call.
_MODULE_HOOKS: Final = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def _fast_path_available() -> bool:
    """Whether this torch calls ``forward`` from ``__call__`` the way the fast path
    assumes (see :meth:`Network.forward`): checked once, at import."""
    probe = nn.Module()
    return (
        nn.Module.__call__ is getattr(nn.Module, "_wrapped_call_impl", None)
        and all(
            isinstance(getattr(_module, name, None), dict) for name in _GLOBAL_HOOKS
        )
        and all(isinstance(getattr(probe, name, None), dict) for name in _MODULE_HOOKS)
        and getattr(probe, "_compiled_call_impl", False) is None
    )


_FAST_PATH: bool = _fast_path_available()


def _called_plainly(child: nn.Module) -> bool:
    """``child(x)`` is ``nn.Module.__call__``, and the child has the hook
    dictionaries that it reads."""
    return type(child).__call__ is nn.Module.__call__ and all(
        isinstance(getattr(child, name, None), dict) for name in _MODULE_HOOKS
    )


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
        # Decided once: a child that overrides __call__ (or is not a plain
        # nn.Module) is called through it, and so are all children then.
        self._fast = _FAST_PATH and all(
            _called_plainly(self.get_submodule(name)) for name in self._order
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Calling each child's forward directly skips nn.Module.__call__'s bookkeeping,
        # which costs more than a small layer's arithmetic. Why that is safe, on the
        # pinned torch (2.13): Module.__call__ is _wrapped_call_impl, which runs
        # _compiled_call_impl if Module.compile() set one, else _call_impl; and
        # _call_impl returns forward(*args) unchanged (or _slow_forward, under
        # torch.jit.trace) unless the module has a forward, forward-pre, backward or
        # backward-pre hook, or the process has a global one. So with none of these
        # set and no tracing, child(x) is child.forward(x), which is what is called
        # here; each condition is checked on every call (summaries and diagnostics
        # add hooks at any time). torch.compile and torch.export trace this forward
        # as Python, and the tests (tests/test_network_fastpath.py) compare both,
        # ONNX export and every kind of hook with the plain __call__ path. Where this
        # torch lacks what is read here (_fast_path_available) or a child overrides
        # __call__, every child is called through __call__.
        modules = self._modules
        if (
            not self._fast
            or _module._global_forward_hooks
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
                or child._compiled_call_impl is not None
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
