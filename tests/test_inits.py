"""Init schemes: gains, config files, statistics against theory, and bad parameters.

Statistics follow PyTorch's ``test/nn/test_init.py``: a Kolmogorov-Smirnov test of the
drawn values against the theoretical distribution, with fixed seeds. Every tensor is
made through the public path, ``parse_run`` then ``build_network``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from scipy import stats

import annfactory
from annfactory import ConfigError, UnknownNameError, activations, inits, layers
from annfactory.inits import NONLINEARITIES
from annfactory.inits import orthogonal as orthogonal_init
from annfactory.params import REQUIRED
from layer_samples import NESTED_EXAMPLE, REQUIRED_EXAMPLES, first_shape
from specs import one_linear_layer

CONF = Path(__file__).resolve().parents[1] / "conf"
FAN_IN, FAN_OUT = 400, 600
#: Fewer than this is a rejection (PyTorch's test_init.py uses the same threshold).
P_VALUE = 1e-4
#: Init schemes that need fan_in and fan_out, so a 2-D tensor.
FAN_BASED = (
    "kaiming_normal",
    "kaiming_uniform",
    "orthogonal",
    "xavier_normal",
    "xavier_uniform",
)
#: Init schemes for a tensor of any shape of their dimensions (forget_gate fills an
#: LSTM's bias only: tests/test_sequence_layers.py).
ANY_SHAPE = [n for n, s in inits.items() if n != "default" and s.fits is None]
#: Fields of a layer config that are not the layer type's own options.
LAYER_FIELDS = ("type", "activation", "weight_init", "bias_init")


def _spec(
    weight_init: Any = "default",
    bias_init: Any = "default",
    activation: Any = "identity",
    fan_in: int = FAN_IN,
    fan_out: int = FAN_OUT,
    seed: int = 0,
    **top: Any,
) -> annfactory.RunSpec:
    """A network of one linear layer ``l1``, ``fan_in`` -> ``fan_out``."""
    return one_linear_layer(
        fan_in, fan_out, weight_init, bias_init, activation, seed=seed, **top
    )


def _drawn(spec: annfactory.RunSpec) -> tuple[np.ndarray, np.ndarray]:
    """The built layer's weight (2-D) and bias, as float64 arrays."""
    network = annfactory.build_network(spec)
    weight = network.l1.weight.detach().double().numpy()
    bias = network.l1.bias.detach().double().numpy()
    return weight, bias


def _weight(**options: Any) -> np.ndarray:
    return _drawn(_spec(**options))[0]


def _ks_pvalue(
    samples: np.ndarray, distribution: str, args: tuple[float, ...]
) -> float:
    return float(stats.kstest(samples.ravel(), distribution, args=args).pvalue)


def _assert_normal(samples: np.ndarray, mean: float, std: float) -> None:
    p_value = _ks_pvalue(samples, "norm", (mean, std))
    assert p_value > P_VALUE, f"not N({mean}, {std}^2): KS p-value {p_value:.3g}"


def _assert_uniform(samples: np.ndarray, low: float, high: float) -> None:
    assert samples.min() >= low
    assert samples.max() <= high
    p_value = _ks_pvalue(samples, "uniform", (low, high - low))
    assert p_value > P_VALUE, f"not U({low}, {high}): KS p-value {p_value:.3g}"


def _load(path: Path) -> DictConfig:
    config = OmegaConf.load(path)
    assert isinstance(config, DictConfig)
    return config


def _stems(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def _defaults(schema: Any) -> dict[str, Any]:
    return {name: param.default for name, param in schema.items()}


def _yaml_values(config: DictConfig, skip: tuple[str, ...]) -> dict[str, Any]:
    """The config's keys and values, ``???`` as ``REQUIRED``, ``null`` as None."""
    return {
        key: REQUIRED if OmegaConf.is_missing(config, key) else config[key]
        for key in config
        if key not in skip
    }


# ------------------------------------------------------------------------------------
# calculate_gain
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_calculate_gain_matches_torch(nonlinearity: str) -> None:
    expected = torch.nn.init.calculate_gain(nonlinearity)  # type: ignore[arg-type]
    assert annfactory.calculate_gain(nonlinearity) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("slope", [None, 0, 0.0, 0.01, 0.2, 1.0, 3.0])
def test_leaky_relu_gain_matches_torch(slope: float | None) -> None:
    expected = torch.nn.init.calculate_gain("leaky_relu", slope)
    assert annfactory.calculate_gain("leaky_relu", slope) == pytest.approx(
        expected, rel=1e-12
    )


def test_calculate_gain_refuses_an_unknown_nonlinearity() -> None:
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'; valid: "):
        annfactory.calculate_gain("swish")


# ------------------------------------------------------------------------------------
# Registry entries and config files agree
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", inits.names())
def test_every_init_has_a_config_file_with_its_defaults(name: str) -> None:
    path = CONF / "init" / f"{name}.yaml"
    assert path.is_file(), f"init {name!r} has no {path.relative_to(CONF.parent)}"
    config = _load(path)
    assert config.name == name
    assert _yaml_values(config, ("name",)) == _defaults(inits.get(name).params)
    # Same order as the declaration, so `--cfg job` reads like the docs.
    assert [key for key in config if key != "name"] == list(inits.get(name).params)


@pytest.mark.parametrize("stem", _stems("init"))
def test_every_init_config_file_is_a_registered_init(stem: str) -> None:
    assert stem in inits
    assert _load(CONF / "init" / f"{stem}.yaml").name == stem


@pytest.mark.parametrize("name", activations.names())
def test_every_activation_has_a_config_file_with_its_defaults(name: str) -> None:
    path = CONF / "activation" / f"{name}.yaml"
    assert path.is_file(), f"activation {name!r} has no {path.relative_to(CONF.parent)}"
    config = _load(path)
    assert config.name == name
    assert _yaml_values(config, ("name",)) == _defaults(activations.get(name).params)


@pytest.mark.parametrize("stem", _stems("activation"))
def test_every_activation_config_file_is_a_registered_activation(stem: str) -> None:
    assert stem in activations
    assert _load(CONF / "activation" / f"{stem}.yaml").name == stem


@pytest.mark.parametrize("name", layers.names())
def test_every_layer_type_has_a_config_file_with_its_defaults(name: str) -> None:
    path = CONF / "layer" / f"{name}.yaml"
    assert path.is_file(), f"layer type {name!r} has no {path.relative_to(CONF.parent)}"
    config = _load(path)
    assert config.type == name
    assert _yaml_values(config, LAYER_FIELDS) == _defaults(layers.get(name).params)
    assert all(field in config for field in LAYER_FIELDS)


@pytest.mark.parametrize("stem", _stems("layer"))
def test_every_layer_config_file_is_a_registered_layer_type_that_parses(
    stem: str,
) -> None:
    assert stem in layers
    config = _load(CONF / "layer" / f"{stem}.yaml")
    assert config.type == stem
    fields = {
        key: REQUIRED_EXAMPLES[key] if value is REQUIRED else value
        for key, value in _yaml_values(config, ()).items()
    }
    if layers.get(stem).nested:
        fields["layers"] = NESTED_EXAMPLE
    model = {"input_shape": list(first_shape(stem)), "layers": {"only": fields}}
    spec = annfactory.parse_run({"model": model})
    assert spec.network.layers[0].type == stem


# ------------------------------------------------------------------------------------
# The statistical check itself can fail
# ------------------------------------------------------------------------------------


def test_the_ks_checks_reject_a_two_percent_scale_error() -> None:
    weight = _weight(weight_init={"name": "normal", "std": 1.0})
    _assert_normal(weight, 0.0, 1.0)
    assert _ks_pvalue(weight, "norm", (0.0, 1.02)) < P_VALUE
    weight = _weight(weight_init={"name": "uniform", "a": -1.0, "b": 1.0})
    _assert_uniform(weight, -1.0, 1.0)
    assert _ks_pvalue(weight, "uniform", (-1.02, 2.04)) < P_VALUE


# ------------------------------------------------------------------------------------
# Statistics of each scheme
# ------------------------------------------------------------------------------------


def test_uniform() -> None:
    weight, bias = _drawn(
        _spec(
            weight_init={"name": "uniform", "a": -0.3, "b": 0.7},
            bias_init={"name": "uniform", "a": 2.0, "b": 2.5},
        )
    )
    _assert_uniform(weight, -0.3, 0.7)
    _assert_uniform(bias, 2.0, 2.5)


def test_uniform_defaults_to_zero_one() -> None:
    _assert_uniform(_weight(weight_init="uniform"), 0.0, 1.0)


@pytest.mark.parametrize(("mean", "std"), [(0.0, 1.0), (0.5, 2.0), (-3.0, 0.01)])
def test_normal(mean: float, std: float) -> None:
    weight, bias = _drawn(
        _spec(
            weight_init={"name": "normal", "mean": mean, "std": std},
            bias_init={"name": "normal", "mean": mean, "std": std},
        )
    )
    _assert_normal(weight, mean, std)
    _assert_normal(bias, mean, std)


def test_normal_with_zero_std_is_the_mean() -> None:
    weight = _weight(weight_init={"name": "normal", "mean": 0.75, "std": 0.0})
    assert np.all(weight == 0.75)


@pytest.mark.parametrize("value", [0.25, -2.0, 0.0])
def test_constant(value: float) -> None:
    weight, bias = _drawn(
        _spec(
            weight_init={"name": "constant", "val": value},
            bias_init={"name": "constant", "val": value},
        )
    )
    assert np.all(weight == value)
    assert np.all(bias == value)


@pytest.mark.parametrize(("name", "value"), [("zeros", 0.0), ("ones", 1.0)])
def test_zeros_and_ones(name: str, value: float) -> None:
    weight, bias = _drawn(_spec(weight_init=name, bias_init=name))
    assert weight.shape == (FAN_OUT, FAN_IN)
    assert np.all(weight == value)
    assert np.all(bias == value)


@pytest.mark.parametrize("gain", [1.0, 0.5, 3.0])
def test_xavier_normal(gain: float) -> None:
    weight = _weight(weight_init={"name": "xavier_normal", "gain": gain})
    _assert_normal(weight, 0.0, gain * math.sqrt(2.0 / (FAN_IN + FAN_OUT)))


@pytest.mark.parametrize("gain", [1.0, 0.5, 3.0])
def test_xavier_uniform(gain: float) -> None:
    weight = _weight(weight_init={"name": "xavier_uniform", "gain": gain})
    bound = gain * math.sqrt(6.0 / (FAN_IN + FAN_OUT))
    assert np.abs(weight).max() <= bound
    _assert_uniform(weight, -bound, bound)


@pytest.mark.parametrize(("mode", "fan"), [("fan_in", FAN_IN), ("fan_out", FAN_OUT)])
def test_kaiming_normal(mode: str, fan: int) -> None:
    weight = _weight(
        weight_init={"name": "kaiming_normal", "mode": mode}, activation="relu"
    )
    _assert_normal(weight, 0.0, math.sqrt(2.0) / math.sqrt(fan))


@pytest.mark.parametrize(("mode", "fan"), [("fan_in", FAN_IN), ("fan_out", FAN_OUT)])
def test_kaiming_uniform(mode: str, fan: int) -> None:
    weight = _weight(
        weight_init={"name": "kaiming_uniform", "mode": mode}, activation="relu"
    )
    bound = math.sqrt(2.0) * math.sqrt(3.0 / fan)
    assert np.abs(weight).max() <= bound
    _assert_uniform(weight, -bound, bound)


def test_kaiming_with_an_explicit_slope() -> None:
    weight = _weight(
        weight_init={
            "name": "kaiming_normal",
            "a": 0.5,
            "nonlinearity": "leaky_relu",
        }
    )
    gain = math.sqrt(2.0 / (1.0 + 0.5**2))
    _assert_normal(weight, 0.0, gain / math.sqrt(FAN_IN))


@pytest.mark.parametrize("gain", [1.0, 1.5])
def test_orthogonal_wide_matrix_has_orthogonal_rows(gain: float) -> None:
    # out_features < in_features: the rows are orthonormal, times gain.
    weight = _weight(
        weight_init={"name": "orthogonal", "gain": gain}, fan_in=250, fan_out=150
    )
    assert weight.shape == (150, 250)
    np.testing.assert_allclose(weight @ weight.T, gain**2 * np.eye(150), atol=1e-4)


def test_orthogonal_tall_matrix_has_orthogonal_columns() -> None:
    weight = _weight(
        weight_init={"name": "orthogonal", "gain": 2.0}, fan_in=150, fan_out=250
    )
    assert weight.shape == (250, 150)
    np.testing.assert_allclose(weight.T @ weight, 4.0 * np.eye(150), atol=1e-4)


@pytest.mark.parametrize(
    ("mean", "std", "a", "b"),
    [(0.0, 1.0, -2.0, 2.0), (0.5, 1.0, -1.0, 1.5), (0.0, 0.1, -0.05, 0.3)],
)
def test_trunc_normal(mean: float, std: float, a: float, b: float) -> None:
    init = {"name": "trunc_normal", "mean": mean, "std": std, "a": a, "b": b}
    # scipy's truncnorm CDF is slow: a smaller tensor keeps the test fast.
    weight, bias = _drawn(
        _spec(weight_init=init, bias_init=init, fan_in=200, fan_out=250)
    )
    for values in (weight, bias):
        assert values.min() >= a
        assert values.max() <= b
    truncated = ((a - mean) / std, (b - mean) / std, mean, std)
    p_value = _ks_pvalue(weight, "truncnorm", truncated)
    assert p_value > P_VALUE, f"not a truncated normal: KS p-value {p_value:.3g}"


def test_default_of_linear_is_torch_uniform_in_one_over_sqrt_fan_in() -> None:
    spec = _spec()
    weight_spec, bias_spec = spec.network.layers[0].parameters
    assert weight_spec.from_default
    assert bias_spec.from_default
    weight, bias = _drawn(spec)
    bound = 1.0 / math.sqrt(FAN_IN)
    assert np.abs(weight).max() <= bound
    assert np.abs(bias).max() <= bound
    _assert_uniform(weight, -bound, bound)
    _assert_uniform(bias, -bound, bound)


def test_default_of_linear_ignores_the_activation() -> None:
    # nn.Linear's own init does not depend on what follows it.
    relu = _weight(activation="relu")
    identity = _weight(activation="identity")
    np.testing.assert_array_equal(relu, identity)


@pytest.mark.parametrize("layer_type", ["batch_norm", "layer_norm"])
def test_default_of_norm_layers_is_the_identity_map(layer_type: str) -> None:
    model = {"in_features": 7, "layers": {"norm": {"type": layer_type}}}
    network = annfactory.build_network(annfactory.parse_run({"model": model}))
    torch.testing.assert_close(network.norm.weight, torch.ones(7))
    torch.testing.assert_close(network.norm.bias, torch.zeros(7))


@pytest.mark.parametrize("name", ANY_SHAPE)
def test_every_init_fills_a_weight_with_its_defaults(name: str) -> None:
    spec = _spec(weight_init=name, activation="relu", fan_in=40, fan_out=60)
    assert spec.network.layers[0].parameters[0].init.name == name
    weight = _weight(weight_init=name, activation="relu", fan_in=40, fan_out=60)
    assert weight.shape == (60, 40)
    assert np.all(np.isfinite(weight))
    # The same seed gives the same values.
    again = _weight(weight_init=name, activation="relu", fan_in=40, fan_out=60)
    np.testing.assert_array_equal(weight, again)


# ------------------------------------------------------------------------------------
# Gains default to the layer's activation
# ------------------------------------------------------------------------------------


def test_tanh_gives_xavier_normal_the_tanh_gain() -> None:
    spec = _spec(weight_init="xavier_normal", activation="tanh")
    gain = spec.network.layers[0].parameters[0].init.params["gain"]
    assert gain == pytest.approx(5.0 / 3.0)
    std = (5.0 / 3.0) * math.sqrt(2.0 / (FAN_IN + FAN_OUT))
    _assert_normal(_drawn(spec)[0], 0.0, std)


def test_tanh_gives_xavier_uniform_the_tanh_gain() -> None:
    weight = _weight(weight_init="xavier_uniform", activation="tanh")
    bound = (5.0 / 3.0) * math.sqrt(6.0 / (FAN_IN + FAN_OUT))
    _assert_uniform(weight, -bound, bound)


def test_relu_gives_kaiming_the_relu_gain() -> None:
    spec = _spec(weight_init="kaiming_normal", activation="relu")
    params = spec.network.layers[0].parameters[0].init.params
    assert params == {"a": 0.0, "mode": "fan_in", "nonlinearity": "relu"}
    _assert_normal(_drawn(spec)[0], 0.0, math.sqrt(2.0) / math.sqrt(FAN_IN))


def test_sigmoid_gives_kaiming_gain_one() -> None:
    spec = _spec(weight_init="kaiming_normal", activation="sigmoid")
    params = spec.network.layers[0].parameters[0].init.params
    assert params["nonlinearity"] == "sigmoid"
    _assert_normal(_drawn(spec)[0], 0.0, 1.0 / math.sqrt(FAN_IN))


def test_leaky_relu_slope_becomes_kaiming_a() -> None:
    spec = _spec(
        weight_init="kaiming_normal",
        activation={"name": "leaky_relu", "negative_slope": 0.2},
    )
    params = spec.network.layers[0].parameters[0].init.params
    assert params["a"] == 0.2
    assert params["nonlinearity"] == "leaky_relu"
    gain = math.sqrt(2.0 / (1.0 + 0.2**2))
    _assert_normal(_drawn(spec)[0], 0.0, gain / math.sqrt(FAN_IN))


def test_leaky_relu_default_slope_becomes_kaiming_a() -> None:
    spec = _spec(weight_init="kaiming_uniform", activation="leaky_relu")
    assert spec.network.layers[0].parameters[0].init.params["a"] == 0.01


def test_an_explicit_gain_wins_over_the_activation() -> None:
    spec = _spec(weight_init={"name": "xavier_normal", "gain": 0.5}, activation="tanh")
    assert spec.network.layers[0].parameters[0].init.params["gain"] == 0.5
    _assert_normal(_drawn(spec)[0], 0.0, 0.5 * math.sqrt(2.0 / (FAN_IN + FAN_OUT)))


def test_an_explicit_kaiming_nonlinearity_wins_over_the_activation() -> None:
    spec = _spec(
        weight_init={"name": "kaiming_normal", "nonlinearity": "linear"},
        activation="relu",
    )
    assert spec.network.layers[0].parameters[0].init.params["nonlinearity"] == "linear"
    _assert_normal(_drawn(spec)[0], 0.0, 1.0 / math.sqrt(FAN_IN))


def test_an_explicit_kaiming_slope_wins_over_the_activation() -> None:
    spec = _spec(
        weight_init={"name": "kaiming_normal", "a": 0.5},
        activation={"name": "leaky_relu", "negative_slope": 0.2},
    )
    assert spec.network.layers[0].parameters[0].init.params["a"] == 0.5


def test_the_top_level_init_takes_its_gain_from_each_layer() -> None:
    model = {
        "in_features": FAN_IN,
        "layers": {
            "hidden": {"type": "linear", "out_features": FAN_OUT, "activation": "tanh"},
            "out": {"type": "linear", "out_features": 3},
        },
    }
    spec = annfactory.parse_run({"model": model, "init": "orthogonal"})
    hidden, out = spec.network.layers
    assert hidden.weight_init.params["gain"] == pytest.approx(5.0 / 3.0)
    assert out.weight_init.params["gain"] == 1.0


#: The ``calculate_gain`` nonlinearity that matches each torch activation.
MATCHING_NONLINEARITY = {
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "selu": "selu",
}


@pytest.mark.parametrize("name", activations.names())
def test_every_activation_gives_inits_a_known_gain(name: str) -> None:
    entry = activations.get(name)
    nonlinearity, param = entry.nonlinearity(_defaults(entry.params))
    assert nonlinearity in NONLINEARITIES
    assert nonlinearity == MATCHING_NONLINEARITY.get(name, "linear")
    spec = _spec(weight_init="xavier_uniform", activation=name, fan_in=4, fan_out=4)
    gain = spec.network.layers[0].parameters[0].init.params["gain"]
    assert gain == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, param))  # type: ignore[arg-type]
    spec = _spec(weight_init="kaiming_uniform", activation=name, fan_in=4, fan_out=4)
    params = spec.network.layers[0].parameters[0].init.params
    assert params["nonlinearity"] == nonlinearity


# ------------------------------------------------------------------------------------
# Bad parameters are config errors, raised by parse_run before any tensor exists
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [(1.0, 0.0), (0.5, 0.5)])
def test_uniform_needs_a_below_b(a: float, b: float) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"^model\.layers\.l1\.weight_init: init 'uniform' needs a < b, "
        rf"got a={a:g}, b={b:g}",
    ):
        _spec(weight_init={"name": "uniform", "a": a, "b": b})


def test_normal_std_cannot_be_negative() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.l1\.bias_init\.std: -0\.1 is out of range\.\n"
        r"  Allowed: a number >= 0",
    ):
        _spec(bias_init={"name": "normal", "std": -0.1})


@pytest.mark.parametrize(("a", "b"), [(2.0, -2.0), (1.0, 1.0)])
def test_trunc_normal_needs_a_below_b(a: float, b: float) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.l1\.weight_init: init 'trunc_normal' needs a < b",
    ):
        _spec(weight_init={"name": "trunc_normal", "a": a, "b": b})


def test_trunc_normal_std_must_be_positive() -> None:
    with pytest.raises(
        ConfigError, match=r"^model\.layers\.l1\.weight_init\.std: 0\.0 is out of range"
    ):
        _spec(weight_init={"name": "trunc_normal", "std": 0.0})


@pytest.mark.parametrize(
    "name", [n for n in inits.names() if "gain" in inits.get(n).params]
)
def test_a_negative_gain_is_refused(name: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.l1\.weight_init\.gain: -1\.0 is out of range\.\n"
        r"  Allowed: a number >= 0, or null \(the gain of the layer's activation\) "
        r"\(scale factor\)\.$",
    ):
        _spec(weight_init={"name": name, "gain": -1.0})


@pytest.mark.parametrize(
    ("name", "parameter"),
    [
        (name, parameter)
        for name in inits.names()
        for parameter, declared in inits.get(name).params.items()
        if declared.kind is float
    ],
)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_are_refused(name: str, parameter: str, bad: float) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"^model\.layers\.l1\.weight_init\.{parameter}: {bad!r} is not finite",
    ):
        _spec(weight_init={"name": name, parameter: bad})


@pytest.mark.parametrize("name", ["kaiming_normal", "kaiming_uniform"])
def test_an_unknown_kaiming_mode_names_the_closest(name: str) -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.layers\.l1\.weight_init\.mode: unknown mode 'fan_inn'\. "
        r"Did you mean 'fan_in'\?\n  Valid modes: fan_in, fan_out\.",
    ):
        _spec(weight_init={"name": name, "mode": "fan_inn"})


def test_an_unknown_kaiming_nonlinearity_names_the_closest() -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.layers\.l1\.weight_init\.nonlinearity: unknown nonlinearity "
        r"'tahn'\. Did you mean 'tanh'\?",
    ):
        _spec(weight_init={"name": "kaiming_uniform", "nonlinearity": "tahn"})


def test_an_unknown_init_parameter_names_the_closest() -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.layers\.l1\.weight_init\.sdt: unknown parameter 'sdt' for "
        r"init 'normal'\. Did you mean 'std'\?",
    ):
        _spec(weight_init={"name": "normal", "sdt": 0.1})


def test_an_init_parameter_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.l1\.weight_init\.val: 'one' is not a number",
    ):
        _spec(weight_init={"name": "constant", "val": "one"})


@pytest.mark.parametrize("name", FAN_BASED)
def test_a_fan_based_init_on_a_bias_is_a_config_error(name: str) -> None:
    assert inits.get(name).min_dim == 2
    with pytest.raises(
        ConfigError,
        match=rf"^model\.layers\.l1\.bias_init: init '{name}' needs a tensor of at "
        r"least 2 dimensions; l1\.bias has shape \[600\]",
    ):
        _spec(bias_init=name)


@pytest.mark.parametrize("name", [n for n in ANY_SHAPE if n not in FAN_BASED])
def test_every_other_init_applies_to_a_bias(name: str) -> None:
    assert inits.get(name).min_dim <= 1
    bias = _drawn(_spec(bias_init=name, fan_in=4, fan_out=50))[1]
    assert bias.shape == (50,)
    assert np.all(np.isfinite(bias))


def test_a_fan_based_init_on_a_norm_weight_is_a_config_error() -> None:
    model = {
        "in_features": 5,
        "layers": {"norm": {"type": "layer_norm", "weight_init": "kaiming_normal"}},
    }
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.norm\.weight_init: init 'kaiming_normal' needs a "
        r"tensor of at least 2 dimensions; norm\.weight has shape \[5\]",
    ):
        annfactory.parse_run({"model": model})


def test_a_bad_top_level_init_is_reported_at_init() -> None:
    with pytest.raises(ConfigError, match=r"^init: init 'uniform' needs a < b"):
        _spec(init={"name": "uniform", "a": 3.0, "b": 2.0})


def test_a_bad_top_level_init_is_reported_without_a_dense_layer() -> None:
    # The top-level init applies to no layer here, but a wrong value in it is still
    # a config error, not silently accepted.
    model = {"in_features": 5, "layers": {"drop": {"type": "dropout"}}}
    with pytest.raises(ConfigError, match=r"^init: init 'uniform' needs a < b"):
        annfactory.parse_run(
            {"model": model, "init": {"name": "uniform", "a": 3.0, "b": 2.0}}
        )


@pytest.mark.parametrize("shape", [(256, 64), (64, 64), (150, 250)])
def test_orthogonal_is_the_same_on_one_thread_and_two(shape: tuple[int, int]) -> None:
    # LAPACK's QR differs in its last bits between thread counts; the init runs it
    # on one thread, so a seed gives one matrix under any launcher, and torch's
    # setting is left as it was.
    before = torch.get_num_threads()
    weights = []
    try:
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            tensor = torch.empty(shape)
            orthogonal_init(
                tensor, generator=torch.Generator().manual_seed(3), gain=1.0
            )
            assert torch.get_num_threads() == threads
            weights.append(tensor)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(weights[0], weights[1])
    assert torch.equal(weights[0], weights[2])
