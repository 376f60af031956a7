"""Activations: every entry builds, matches its formula, has the right gradient, and
validates its parameters with the config path in the message."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from scipy import special
from torch import nn

import annfactory
from annfactory import ConfigError, UnknownNameError, activations

Formula = Callable[..., np.ndarray]

# SELU's constants from Klambauer et al. (2017), *Self-Normalizing Neural Networks*.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _softmax(x: np.ndarray, dim: int) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=dim, keepdims=True))
    return shifted / shifted.sum(axis=dim, keepdims=True)


def _gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1.0 + np.tanh(inner))
    return 0.5 * x * (1.0 + special.erf(x / math.sqrt(2.0)))


#: Each activation's formula in numpy, independent of torch and of the registry;
#: keyword arguments are the activation's parameters, with their documented defaults
#: written out here (softmax normalizes each row of a [batch, features] output). A new
#: activation needs an entry here.
REFERENCE: dict[str, Formula] = {
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": lambda x: np.tanh(x),
    "relu": lambda x: np.maximum(x, 0.0),
    "leaky_relu": lambda x, negative_slope=0.01: np.where(x > 0, x, negative_slope * x),
    "elu": lambda x, alpha=1.0: np.where(x > 0, x, alpha * np.expm1(x)),
    "celu": lambda x, alpha=1.0: (
        np.maximum(x, 0.0) + np.minimum(0.0, alpha * np.expm1(x / alpha))
    ),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
    "gelu": _gelu,
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "softmax": lambda x, dim=-1: _softmax(x, dim),
    "log_softmax": lambda x, dim=-1: np.log(_softmax(x, dim)),
    "identity": lambda x: x,
}

#: The torch.nn class each built-in activation builds.
TORCH_CLASS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "celu": nn.CELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softmax": nn.Softmax,
    "log_softmax": nn.LogSoftmax,
    "identity": nn.Identity,
}
#: Defaults where torch's constructor has none to compare with: its ``dim=None``
#: means an implicit, deprecated choice; annfactory normalizes the last dimension.
NOT_TORCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "softmax": {"dim": -1},
    "log_softmax": {"dim": -1},
}

#: Activations with parameters other than their defaults.
WITH_PARAMETERS = [
    ("leaky_relu", {"negative_slope": 0.2}),
    ("leaky_relu", {"negative_slope": 0.0}),
    ("elu", {"alpha": 2.0}),
    ("elu", {"alpha": 0.5}),
    ("celu", {"alpha": 2.0}),
    ("celu", {"alpha": 0.5}),
    ("gelu", {"approximate": "tanh"}),
    ("softmax", {"dim": 0}),
    ("softmax", {"dim": -2}),
    ("log_softmax", {"dim": 0}),
]


def _defaults(name: str) -> dict[str, Any]:
    return {key: param.default for key, param in activations.get(name).params.items()}


def _build(name: str, **params: Any) -> nn.Module:
    return activations.get(name).build(**{**_defaults(name), **params})


def _input(rows: int = 4, columns: int = 6, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 3.0 * torch.randn(rows, columns, generator=generator, dtype=torch.float64)


def _run(activation: Any, **top: Any) -> annfactory.RunSpec:
    layer = {"type": "linear", "out_features": 4, "activation": activation}
    model = {"type": "sequential", "in_features": 3, "layers": {"l1": layer}}
    return annfactory.parse_run({"model": model, **top})


def _grad(name: str, x: torch.Tensor, **params: Any) -> torch.Tensor:
    """d activation(x) / dx, elementwise, by autograd."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_build(name, **params)(x).sum(), x)
    return grad


# ------------------------------------------------------------------------------------
# Every entry
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", activations.names())
def test_every_activation_builds_and_keeps_the_shape(name: str) -> None:
    module = _build(name)
    assert isinstance(module, nn.Module)
    x = _input()
    y = module(x)
    assert y.shape == (4, 6)
    assert y.dtype == torch.float64
    assert torch.isfinite(y).all()
    torch.testing.assert_close(x, _input())  # not changed in place


@pytest.mark.parametrize("name", activations.names())
def test_every_activation_matches_its_formula(name: str) -> None:
    assert name in REFERENCE, f"add the formula of activation {name!r} to REFERENCE"
    x = _input()
    # The reference takes its own defaults: a changed registry default fails here.
    expected = REFERENCE[name](x.numpy())
    np.testing.assert_allclose(
        _build(name)(x).numpy(), expected, rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("name", activations.names())
def test_every_default_is_torchs_or_the_documented_one(name: str) -> None:
    assert name in TORCH_CLASS, f"add the torch class of activation {name!r}"
    torch_class = TORCH_CLASS[name]
    assert type(_build(name)) is torch_class
    signature = inspect.signature(torch_class)
    for key, value in _defaults(name).items():
        assert key in signature.parameters, (name, key)
        torch_default = signature.parameters[key].default
        if torch_default is None:
            assert value == NOT_TORCH_DEFAULTS[name][key], (name, key)
        else:
            assert value == torch_default, (name, key)
            assert type(value) is type(torch_default), (name, key)


@pytest.mark.parametrize(("name", "params"), WITH_PARAMETERS)
def test_activation_parameters_change_the_function(
    name: str, params: dict[str, Any]
) -> None:
    x = _input()
    expected = REFERENCE[name](x.numpy(), **params)
    np.testing.assert_allclose(
        _build(name, **params)(x).numpy(), expected, rtol=1e-10, atol=1e-12
    )
    # ... and a different value gives a different function.
    assert not np.allclose(_build(name)(x).numpy(), expected)


@pytest.mark.parametrize("name", activations.names())
def test_the_elementwise_flag_is_true(name: str) -> None:
    module = _build(name)
    x = _input()
    permutation = torch.randperm(x.numel(), generator=torch.Generator().manual_seed(1))
    shuffled = x.flatten()[permutation].reshape(x.shape)
    commutes = torch.allclose(
        module(shuffled).flatten(), module(x).flatten()[permutation]
    )
    assert commutes == activations.get(name).elementwise
    if activations.get(name).elementwise:
        # Columns, and single elements, too.
        columns = torch.tensor([5, 0, 3, 1, 4, 2])
        torch.testing.assert_close(module(x[:, columns]), module(x)[:, columns])
        torch.testing.assert_close(module(x[2:3, 4:5]), module(x)[2:3, 4:5])


@pytest.mark.parametrize("name", activations.names())
def test_every_activation_follows_its_layer_in_the_network(name: str) -> None:
    network = annfactory.build_network(_run(name, dtype="float64"))
    x = _input(5, 3)
    hidden = x @ network.l1.weight.T + network.l1.bias
    expected = REFERENCE[name](hidden.detach().numpy())
    np.testing.assert_allclose(
        network(x).detach().numpy(), expected, rtol=1e-10, atol=1e-12
    )


def test_activation_parameters_reach_the_module() -> None:
    spec = _run({"name": "leaky_relu", "negative_slope": 0.2})
    assert spec.network.layers[0].activation.params == {"negative_slope": 0.2}
    module = annfactory.build_network(spec).l1_act
    assert isinstance(module, nn.LeakyReLU)
    assert module.negative_slope == 0.2


# ------------------------------------------------------------------------------------
# Probabilities
# ------------------------------------------------------------------------------------


def test_softmax_rows_are_probabilities() -> None:
    x = _input()
    y = _build("softmax")(x)
    assert (y > 0).all()
    assert (y < 1).all()
    torch.testing.assert_close(y.sum(dim=1), torch.ones(4, dtype=torch.float64))
    # Invariant to a shift of each row.
    torch.testing.assert_close(_build("softmax")(x + 100.0), y)


def test_softmax_over_dim_0_normalizes_columns() -> None:
    y = _build("softmax", dim=0)(_input())
    torch.testing.assert_close(y.sum(dim=0), torch.ones(6, dtype=torch.float64))


def test_log_softmax_rows_have_logsumexp_zero() -> None:
    x = _input()
    y = _build("log_softmax")(x)
    assert (y < 0).all()
    torch.testing.assert_close(
        torch.logsumexp(y, dim=1), torch.zeros(4, dtype=torch.float64)
    )
    torch.testing.assert_close(y.exp(), _build("softmax")(x))


def test_log_softmax_is_stable_for_large_inputs() -> None:
    x = torch.tensor([[1000.0, 0.0, -1000.0]], dtype=torch.float64)
    y = _build("log_softmax")(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(
        y, torch.tensor([[0.0, -1000.0, -2000.0]], dtype=torch.float64)
    )


# ------------------------------------------------------------------------------------
# Gradients
# ------------------------------------------------------------------------------------

#: -8 ... 8 in steps of 1/128: 0 is on the grid exactly.
GRID = torch.arange(-1024, 1025, dtype=torch.float64) / 128.0


def test_sigmoid_derivative() -> None:
    s = torch.sigmoid(GRID)
    grad = _grad("sigmoid", GRID)
    torch.testing.assert_close(grad, s * (1.0 - s))
    assert grad.max().item() == pytest.approx(0.25, abs=1e-15)
    assert GRID[grad.argmax()].item() == 0.0
    assert (grad <= 0.25).all()
    assert (grad > 0).all()


def test_tanh_derivative() -> None:
    grad = _grad("tanh", GRID)
    torch.testing.assert_close(grad, 1.0 - torch.from_numpy(np.tanh(GRID.numpy())) ** 2)
    assert grad.max().item() == pytest.approx(1.0, abs=1e-15)
    assert GRID[grad.argmax()].item() == 0.0
    assert (grad <= 1.0).all()


def test_relu_derivative() -> None:
    grad = _grad("relu", GRID)
    assert (grad[GRID < 0] == 0).all()
    assert (grad[GRID > 0] == 1).all()


@pytest.mark.parametrize("slope", [0.01, 0.2])
def test_leaky_relu_derivative(slope: float) -> None:
    grad = _grad("leaky_relu", GRID, negative_slope=slope)
    torch.testing.assert_close(grad[GRID < 0], torch.full_like(grad[GRID < 0], slope))
    assert (grad[GRID > 0] == 1).all()


@pytest.mark.parametrize("name", ["elu", "celu"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_is_the_negative_saturation(name: str, alpha: float) -> None:
    module = _build(name, alpha=alpha)
    far = torch.tensor([-60.0, -200.0], dtype=torch.float64)
    torch.testing.assert_close(module(far), torch.full_like(far, -alpha))
    positive = GRID[GRID > 0]
    torch.testing.assert_close(module(positive), positive)
    negative = module(GRID[GRID < 0])
    assert (negative > -alpha).all()
    assert (negative < 0).all()


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_elu_and_celu_differ_in_the_slope_just_below_zero(alpha: float) -> None:
    just_below = torch.tensor([-1e-9], dtype=torch.float64)
    # ELU: alpha * exp(x) -> alpha; CELU: exp(x / alpha) -> 1 (C1-continuous).
    assert _grad("elu", just_below, alpha=alpha).item() == pytest.approx(alpha)
    assert _grad("celu", just_below, alpha=alpha).item() == pytest.approx(1.0)


# ------------------------------------------------------------------------------------
# Parameter validation
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["elu", "celu"])
@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_alpha_must_be_positive(name: str, alpha: float) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"^model\.layers\.l1\.activation\.alpha: {alpha!r} is out of range\.\n"
        r"  Allowed: a number > 0",
    ):
        _run({"name": name, "alpha": alpha})


@pytest.mark.parametrize("dim", [2, -3, 10])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_dim_out_of_range(name: str, dim: int) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"^model\.layers\.l1\.activation\.dim: {dim} is out of range\.\n"
        r"  Allowed: an integer >= -2 and <= 1",
    ):
        _run({"name": name, "dim": dim})


def test_softmax_dim_must_be_an_integer() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.l1\.activation\.dim: 1\.0 is not an integer",
    ):
        _run({"name": "softmax", "dim": 1.0})


def test_leaky_relu_slope_cannot_be_negative() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.l1\.activation\.negative_slope: -0\.1 is out of range",
    ):
        _run({"name": "leaky_relu", "negative_slope": -0.1})


@pytest.mark.parametrize(
    ("name", "bad", "closest"),
    [("elu", "alhpa", "alpha"), ("softmax", "dims", "dim"), ("celu", "Alpha", "alpha")],
)
def test_an_unknown_parameter_names_the_closest(
    name: str, bad: str, closest: str
) -> None:
    with pytest.raises(
        UnknownNameError,
        match=rf"^model\.layers\.l1\.activation\.{bad}: unknown parameter '{bad}' for "
        rf"activation '{name}'\. Did you mean '{closest}'\?",
    ):
        _run({"name": name, bad: 1.0})


def test_a_parameter_given_to_an_activation_without_parameters() -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.layers\.l1\.activation\.inplace: unknown parameter 'inplace' "
        r"for activation 'relu'\.\n  No parameter exists\.",
    ):
        _run({"name": "relu", "inplace": True})


def test_an_unknown_choice_names_the_closest() -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.layers\.l1\.activation\.approximate: unknown approximate "
        r"'tanhh'\. Did you mean 'tanh'\?",
    ):
        _run({"name": "gelu", "approximate": "tanhh"})


def test_an_unknown_activation_names_the_closest() -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.layers\.l1\.activation: unknown activation 'sigmoud'\. "
        r"Did you mean 'sigmoid'\?",
    ):
        _run("sigmoud")


def test_an_activation_mapping_needs_a_name() -> None:
    with pytest.raises(
        ConfigError, match=r"^model\.layers\.l1\.activation\.name: no activation"
    ):
        _run({"alpha": 1.0})


def test_a_bad_mlp_hidden_activation_names_its_path() -> None:
    model = {
        "type": "mlp",
        "in_features": 3,
        "out_features": 2,
        "hidden_activation": {"name": "celu", "alpha": -2.0},
    }
    with pytest.raises(
        ConfigError,
        match=r"^model\.hidden_activation\.alpha: -2\.0 is out of range",
    ):
        annfactory.parse_run({"model": model})


def test_a_bad_top_level_activation_names_its_path() -> None:
    model = {"type": "mlp", "in_features": 3, "out_features": 2, "depth": 1}
    with pytest.raises(ConfigError, match=r"^activation\.alpha: 0\.0 is out of range"):
        annfactory.parse_run(
            {"model": model, "activation": {"name": "celu", "alpha": 0.0}}
        )


def test_a_bad_top_level_activation_is_reported_when_no_layer_takes_it() -> None:
    # With depth 0 the only layer is the output layer, which keeps its own
    # activation; a wrong top-level activation is still a config error.
    model = {"type": "mlp", "in_features": 3, "out_features": 2, "depth": 0}
    with pytest.raises(ConfigError, match=r"^activation\.alpha: 0\.0 is out of range"):
        annfactory.parse_run(
            {"model": model, "activation": {"name": "celu", "alpha": 0.0}}
        )
