"""Property-based tests: any valid spec builds; any invalid one gives our error."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torchinfo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import annfactory
from annfactory import ConfigError, activations, inits

# Inits for any tensor of their dimensions (forget_gate takes an LSTM's bias only).
ALL_INITS = [name for name, scheme in inits.items() if scheme.fits is None]
FAN_FREE = sorted(name for name in ALL_INITS if inits.get(name).min_dim <= 1)
ACTIVATIONS = activations.names()

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def valid_runs(draw: st.DrawFn) -> dict[str, Any]:
    depth = draw(st.integers(1, 4))
    layers = {}
    for index in range(depth):
        bias = draw(st.booleans())
        layers[f"layer{index}"] = {
            "type": "linear",
            "out_features": draw(st.integers(1, 12)),
            "bias": bias,
            "activation": draw(st.sampled_from(ACTIVATIONS)),
            "weight_init": draw(st.sampled_from(ALL_INITS)),
            # An init for a bias that does not exist is an error of its own.
            "bias_init": draw(st.sampled_from(FAN_FREE)) if bias else "default",
        }
        if draw(st.booleans()):
            layers[f"norm{index}"] = {
                "type": draw(st.sampled_from(["layer_norm", "batch_norm"]))
            }
    return {
        "model": {
            "type": "sequential",
            "in_features": draw(st.integers(1, 12)),
            "layers": layers,
        },
        "seed": draw(st.integers(0, 2**32)),
        "batch_size": draw(st.integers(2, 6)),
        "dtype": draw(st.sampled_from(["float32", "float64"])),
    }


def _expected_params(data: dict[str, Any]) -> int:
    size, total = data["model"]["in_features"], 0
    for layer in data["model"]["layers"].values():
        if layer["type"] == "linear":
            total += size * layer["out_features"] + (
                layer["out_features"] if layer["bias"] else 0
            )
            size = layer["out_features"]
        else:
            total += 2 * size
    return total


@SETTINGS
@given(valid_runs())
def test_any_valid_spec_builds_and_runs(data: dict[str, Any]) -> None:
    spec = annfactory.parse_run(data)
    model = annfactory.build_network(spec)
    model.eval()
    dtype = getattr(torch, data["dtype"])
    x = torch.randn(data["batch_size"], data["model"]["in_features"], dtype=dtype)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (data["batch_size"], spec.network.out_features)
    assert not torch.isnan(y).any()
    expected = _expected_params(data)
    assert spec.network.num_params == expected
    assert sum(p.numel() for p in model.parameters()) == expected
    stats = torchinfo.summary(model, input_data=[x], verbose=0)
    assert stats.total_params == expected
    assert annfactory.parse_run(spec.to_dict()) == spec


#: Every bad value is tried (a parameter each), in layers of random valid networks.
BAD_VALUES = [
    ("out_features", 0),
    ("out_features", -3),
    ("out_features", 2.5),
    ("out_features", "wide"),
    ("out_features", None),
    ("bias", "yes"),
    ("type", "linearr"),
    ("type", "os.system"),
    ("type", 3),
    ("activation", "sigmod"),
    ("activation", {"name": "elu", "alpha": -1.0}),
    ("activation", {"name": "softmax", "dim": 5}),
    ("activation", {"_target_": "os.system"}),
    ("activation", ["relu"]),
    ("weight_init", "xavier_norml"),
    ("weight_init", {"name": "normal", "std": -1.0}),
    ("weight_init", {"name": "normal", "std": float("nan")}),
    ("weight_init", {"name": "uniform", "a": 1.0, "b": 0.0}),
    ("weight_init", {"name": "trunc_normal", "a": 2.0, "b": 2.0}),
    ("weight_init", {"name": "kaiming_normal", "mode": "fan_inn"}),
    ("weight_init", {"name": "normal", "sdt": 1.0}),
    ("bias_init", "kaiming_uniform"),
    ("bias_init", "orthogonal"),
    ("widht", 3),
]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda bad: f"{bad[0]}={bad[1]!r}")
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=valid_runs(), pick=st.data())
def test_any_invalid_layer_value_gives_a_config_error(
    data: dict[str, Any], bad: tuple[str, Any], pick: st.DataObject
) -> None:
    linear = [
        name
        for name, layer in data["model"]["layers"].items()
        if layer["type"] == "linear"
    ]
    name = pick.draw(st.sampled_from(linear))
    field, value = bad
    layer = data["model"]["layers"][name]
    if field == "bias_init":
        layer["bias"] = True
    layer[field] = value
    with pytest.raises(
        ConfigError, match=rf"^model\.layers\.{name}\.{field}\b"
    ) as info:
        annfactory.parse_run(data)
    assert len(str(info.value).splitlines()) <= 3


@pytest.mark.parametrize(
    "bad",
    [
        ("seed", -1),
        ("seed", 2**64),
        ("seed", "seven"),
        ("batch_size", 0),
        ("batch_size", 1.5),
        ("device", "gpu"),
        ("device", "cuda:x"),
        ("dtype", "float8"),
        ("dtype", None),
        ("colour", "red"),
    ],
    ids=lambda bad: f"{bad[0]}={bad[1]!r}",
)
def test_any_invalid_top_level_value_gives_a_config_error(bad: tuple[str, Any]) -> None:
    data = {
        "model": {
            "in_features": 2,
            "layers": {"out": {"type": "linear", "out_features": 1}},
        }
    }
    data[bad[0]] = bad[1]
    with pytest.raises(ConfigError, match=rf"^{bad[0]}: "):
        annfactory.parse_run(data)
