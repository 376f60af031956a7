"""The forward path of ``Network``: every child called through ``nn.Module.__call__``.

Each test compares the network with a ``nn.Sequential`` of the same children under what
could see a difference: hooks on the network, on a child and global ones, autograd,
``torch.compile``, ``torch.export``, ONNX export, a child that overrides ``__call__``
and a child compiled with ``Module.compile()``.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from torch import nn

import annfactory
from annfactory import compose
from annfactory.network import Network


def _network(*overrides: str) -> Network:
    return annfactory.build_model(compose(["model=mlp", "model.depth=2", *overrides]))


def _plain(network: nn.Module) -> nn.Sequential:
    """The same children in the same order, called through ``__call__``."""
    return nn.Sequential(*[network.get_submodule(name) for name in network._order])


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randn(7, 8, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def network() -> nn.Module:
    return _network()


def test_the_network_equals_the_call_path(
    network: nn.Module, batch: torch.Tensor
) -> None:
    assert torch.equal(network(batch), _plain(network)(batch))


def test_a_forward_hook_on_a_child_runs_and_changes_the_output(
    network: nn.Module, batch: torch.Tensor
) -> None:
    before = network(batch)
    seen: list[tuple[int, ...]] = []

    def double(module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(output.shape))
        return output * 2

    handle = network.get_submodule("hidden1").register_forward_hook(double)
    try:
        after = network(batch)
        assert seen == [(7, 32)]
        assert torch.equal(after, _plain(network)(batch))
        assert not torch.equal(after, before)
    finally:
        handle.remove()
    assert torch.equal(network(batch), before)


def test_a_forward_pre_hook_on_the_network_runs(
    network: nn.Module, batch: torch.Tensor
) -> None:
    def negate(module: nn.Module, args: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
        return (-args[0],)

    handle = network.register_forward_pre_hook(negate)
    try:
        assert torch.equal(network(batch), _plain(network)(-batch))
    finally:
        handle.remove()


def test_global_forward_hooks_see_every_child(
    network: nn.Module, batch: torch.Tensor
) -> None:
    seen: list[str] = []
    names = {module: name for name, module in network.named_modules()}

    def record(module: nn.Module, args: object, output: torch.Tensor) -> None:
        seen.append(names.get(module, "?"))

    handle = nn.modules.module.register_module_forward_hook(record)
    try:
        network(batch)
    finally:
        handle.remove()
    assert seen == [*network._order, ""]


def test_full_backward_hook_on_a_child_runs(
    network: nn.Module, batch: torch.Tensor
) -> None:
    grads: list[tuple[int, ...]] = []

    def record(
        module: nn.Module, grad_in: object, grad_out: tuple[torch.Tensor]
    ) -> None:
        grads.append(tuple(grad_out[0].shape))

    handle = network.get_submodule("hidden2").register_full_backward_hook(record)
    try:
        network(batch).sum().backward()
    finally:
        handle.remove()
    assert grads == [(7, 32)]


def test_gradients_equal_the_call_path(network: nn.Module, batch: torch.Tensor) -> None:
    network(batch).square().sum().backward()
    fast = [p.grad.clone() for p in network.parameters()]  # type: ignore[union-attr]
    network.zero_grad()
    _plain(network)(batch).square().sum().backward()
    plain = [p.grad for p in network.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(fast, plain, strict=True))  # type: ignore[arg-type]


def test_torch_export_traces_every_layer(
    network: nn.Module, batch: torch.Tensor
) -> None:
    exported = torch.export.export(network.eval(), (batch,))
    targets = [str(node.target) for node in exported.graph.nodes]
    assert targets.count("aten.linear.default") == 3
    assert targets.count("aten.relu.default") == 2
    other = torch.randn(7, 8)
    assert torch.equal(exported.module()(other), network(other))


@pytest.mark.slow
def test_torch_compile_matches_eager(network: nn.Module, batch: torch.Tensor) -> None:
    compiled = torch.compile(network.eval())
    torch.testing.assert_close(compiled(batch), network(batch))


@pytest.mark.slow
def test_onnx_export_matches_eager(network: nn.Module, batch: torch.Tensor) -> None:
    import onnxruntime

    network.eval()
    program = torch.onnx.export(
        network,
        (batch,),
        dynamo=True,
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        verbose=False,
    )
    assert program is not None
    session = onnxruntime.InferenceSession(program.model_proto.SerializeToString())
    name = session.get_inputs()[0].name
    for rows in (1, 7):
        x = torch.randn(rows, 8)
        (out,) = session.run(None, {name: x.numpy()})
        torch.testing.assert_close(torch.from_numpy(out), network(x).detach())


# ------------------------------------------------------------------------------------
# Children that change how they are called
# ------------------------------------------------------------------------------------


def test_a_child_that_overrides_call_is_called_through_it(batch: torch.Tensor) -> None:
    calls: list[int] = []

    class Counted(nn.Linear):
        """A linear layer that counts its calls in ``__call__``."""

        default_inits: ClassVar[dict[str, str]] = {
            "weight": "xavier_uniform",
            "bias": "zeros",
        }

        def __init__(
            self, in_features: int, out_features: int, bias: bool = True
        ) -> None:
            super().__init__(in_features, out_features, bias)

        def __call__(self, *args: object, **kwargs: object) -> torch.Tensor:
            calls.append(1)
            return super().__call__(*args, **kwargs)  # type: ignore[no-any-return]

    annfactory.layers.register("counted_linear", Counted, weighted=True)
    network = _network("+model.layers.hidden1.type=counted_linear")
    assert isinstance(network.get_submodule("hidden1"), Counted)
    assert torch.equal(network(batch), _plain(network)(batch))
    assert len(calls) == 2


def test_a_compiled_child_runs_its_compiled_call(
    network: Network, batch: torch.Tensor
) -> None:
    expected = network(batch)
    child = network.get_submodule("hidden2")
    child.compile(backend="eager")
    compiled_calls: list[int] = []
    compiled = child._compiled_call_impl
    assert compiled is not None

    def counting(*args: object, **kwargs: object) -> torch.Tensor:
        compiled_calls.append(1)
        return compiled(*args, **kwargs)  # type: ignore[no-any-return]

    child._compiled_call_impl = counting
    torch.testing.assert_close(network(batch), expected)
    assert compiled_calls == [1]


def test_a_pre_hook_on_every_child_fires_in_order(
    network: Network, batch: torch.Tensor
) -> None:
    seen: list[str] = []
    handles = [
        network.get_submodule(name).register_forward_pre_hook(
            lambda module, args, name=name: seen.append(name)
        )
        for name in network._order
    ]
    try:
        network(batch)
    finally:
        for handle in handles:
            handle.remove()
    assert seen == list(network._order)
