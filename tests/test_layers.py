"""The shape contract of layer types: input shape and options to output and parameter
shapes, without torch; ``in_features`` as the shorthand of a vector input; default
inits from the parameters' fans; the adapter for classes that take ``in_features``."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

import annfactory
from annfactory import ConfigError, LayerType, layers
from annfactory.layers import LayerShape
from annfactory.layouts import IDS, layout_of
from layer_samples import (
    REQUIRED_EXAMPLES,
    example_node,
    example_options,
    first_shape,
    rule_options,
    shapes_taken,
)


def _sequential(layer: dict[str, Any], **model: Any) -> dict[str, Any]:
    return {"model": {"layers": {"l1": layer}, **model}}


@pytest.mark.parametrize("name", layers.names())
def test_every_required_layer_option_has_an_example(name: str) -> None:
    required = [o for o, p in layers.get(name).params.items() if p.required]
    missing = [option for option in required if option not in REQUIRED_EXAMPLES]
    assert not missing, f"add {missing} to tests/layer_samples.py REQUIRED_EXAMPLES"
    assert shapes_taken(name, example_options(name)), "no sample shape fits it"


@pytest.mark.parametrize("name", layers.names())
@pytest.mark.parametrize("flags", [True, False])
def test_the_shape_rule_matches_the_module_torch_builds(name: str, flags: bool) -> None:
    entry = layers.get(name)
    assert entry.shape is not None
    # Each boolean option (bias, affine, ...) set to ``flags``.
    options = example_options(
        name, **{k: flags for k, p in entry.params.items() if p.kind is bool}
    )
    for input_shape in shapes_taken(name, options):
        given = rule_options(name, input_shape, **options)
        shape = entry.shape(input_shape, given)
        body = {"body": []} if entry.nested else {}  # an empty body: x + x
        module = entry.build(input_shape, **given, **body).eval()
        declared = {k: tuple(v) for k, v in shape.parameters.items()}
        assert declared == {k: tuple(p.shape) for k, p in module.named_parameters()}
        if layout_of(input_shape) == IDS and "num_embeddings" in given:
            x = torch.randint(0, given["num_embeddings"], (2, *input_shape))
        else:
            x = torch.randn(2, *input_shape)
        output = module(x)
        assert tuple(output.shape) == (2, *shape.output), input_shape


def test_a_batch_norm_takes_at_most_channels_height_and_width() -> None:
    for input_shape, cls in (([4], nn.BatchNorm1d), ([4, 3], nn.BatchNorm1d),
                             ([4, 3, 2], nn.BatchNorm2d)):  # fmt: skip
        spec = annfactory.parse_run(
            _sequential({"type": "batch_norm"}, input_shape=input_shape)
        )
        network = annfactory.build_network(spec)
        assert type(network.l1) is cls
        assert network.l1.num_features == 4
        assert network(torch.randn(5, *input_shape)).shape == (5, *input_shape)
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.l1: layer type 'batch_norm' cannot take the input "
        r"shape \[2, 3, 4, 5\]: it takes \[features\], \[channels, length\] or "
        r"\[channels, height, width\], not 4 dimensions\.\n  Change its options, the "
        r"layers before it",
    ):
        annfactory.parse_run(
            _sequential({"type": "batch_norm"}, input_shape=[2, 3, 4, 5])
        )


def test_the_built_in_shape_rules_do_not_import_torch() -> None:
    # Every built-in type, on the first sample shape it takes, in one network each.
    models = {
        name: {
            "input_shape": list(first_shape(name)),
            "layers": {"only": example_node(name)},
        }
        for name in layers.names()
    }
    code = (
        "import sys, annfactory\n"
        f"models = {models!r}\n"
        "shapes = [annfactory.parse_run({'model': m}).network.output_shape"
        " for m in models.values()]\n"
        "print(len(shapes), 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [str(len(models)), "False"]


# ------------------------------------------------------------------------------------
# in_features and input_shape
# ------------------------------------------------------------------------------------


def test_in_features_is_the_shorthand_of_a_vector_input_shape() -> None:
    layer = {"type": "linear", "out_features": 2}
    short = annfactory.parse_run(_sequential(layer, in_features=3))
    long = annfactory.parse_run(_sequential(layer, input_shape=[3]))
    assert short == long
    assert short.network.input_shape == (3,)
    assert (short.network.in_features, short.network.out_features) == (3, 2)
    first = short.network.layers[0]
    assert (first.input_shape, first.output_shape) == ((3,), (2,))
    assert (first.in_features, first.out_features) == (3, 2)
    # Saved as before input shapes existed.
    assert short.to_dict()["model"]["in_features"] == 3
    assert "input_shape" not in short.to_dict()["model"]


def test_a_sample_with_more_dimensions_flows_through_the_layers() -> None:
    layers_ = {
        "norm": {"type": "layer_norm"},
        "fc": {"type": "linear", "out_features": 5, "activation": "relu"},
        "drop": {"type": "dropout"},
    }
    spec = annfactory.parse_run({"model": {"input_shape": [3, 4], "layers": layers_}})
    network = spec.network
    assert [layer.output_shape for layer in network.layers] == [(3, 4), (3, 5), (3, 5)]
    assert network.output_shape == (3, 5)
    assert network.summary_line() == (
        "3x4 -> norm(3x4, identity) -> fc(3x5, relu) -> drop(3x5, identity)"
    )
    assert network.num_params == (4 + 4) + (5 * 4 + 5)
    with pytest.raises(ValueError, match=r"input shape \[3, 4\]: in_features exists"):
        _ = network.in_features
    with pytest.raises(ValueError, match=r"output shape \[3, 5\]: out_features"):
        _ = network.layers[1].out_features
    # Saved with its input shape, and read back the same.
    assert spec.to_dict()["model"]["input_shape"] == [3, 4]
    assert annfactory.parse_run(spec.to_dict()) == spec
    model = annfactory.build_network(spec)
    assert model(torch.randn(2, 3, 4)).shape == (2, 3, 5)
    assert "input_shape=(3, 4), output_shape=(3, 5)" in repr(model)


@pytest.mark.parametrize(
    ("model", "key", "message"),
    [
        ({"input_shape": [3], "in_features": 3}, r"model\.input_shape",
         "both input_shape and in_features are given"),
        ({"input_shape": []}, r"model\.input_shape", r"\[\] is not a list of sizes"),
        ({"input_shape": 3}, r"model\.input_shape", "3 is not a list of sizes"),
        ({"input_shape": [3, 0]}, r"model\.input_shape\[1\]", "0 is out of range"),
        ({"input_shape": [3, "a"]}, r"model\.input_shape\[1\]", "'a' is not an int"),
    ],
)  # fmt: skip
def test_a_bad_input_shape_names_its_path(
    model: dict[str, Any], key: str, message: str
) -> None:
    layer = {"type": "linear", "out_features": 2}
    with pytest.raises(ConfigError, match=rf"^{key}: {message}"):
        annfactory.parse_run(_sequential(layer, **model))


# ------------------------------------------------------------------------------------
# Default inits: fans from the parameters' shapes
# ------------------------------------------------------------------------------------


def test_the_linear_bias_default_takes_the_fan_in_of_the_weight() -> None:
    default_init = layers.get("linear").default_init
    assert default_init is not None
    options = {"out_features": 5, "bias": True}
    matrix = LayerShape((5,), {"weight": (5, 16), "bias": (5,)})
    assert default_init("bias", matrix, options) == (
        "uniform",
        {"a": -0.25, "b": 0.25},
    )
    # The receptive field counts, as in torch's fan rule (a convolution's weight).
    kernel = LayerShape((5,), {"weight": (5, 4, 2, 2), "bias": (5,)})
    name, params = default_init("bias", kernel, options)
    assert (name, params["b"]) == ("uniform", 1 / math.sqrt(16))
    name, params = default_init("weight", kernel, options)
    assert (name, params["a"]) == ("kaiming_uniform", math.sqrt(5))


def test_the_linear_default_bias_bound_follows_the_input_size() -> None:
    spec = annfactory.parse_run(
        _sequential({"type": "linear", "out_features": 2}, input_shape=[7, 25])
    )
    bias = spec.network.layers[0].parameters[1]
    assert (bias.name, bias.init.name, bias.from_default) == ("bias", "uniform", True)
    assert bias.init.params == {"a": -0.2, "b": 0.2}


# ------------------------------------------------------------------------------------
# Plugins: classes that take in_features first, the weighted flag, the meta fallback
# ------------------------------------------------------------------------------------


class _Affine(nn.Module):
    """y = x W^T + b on the last dimension, registered by tests as a layer type."""

    default_inits: ClassVar[dict[str, str]] = {"weight": "ones", "bias": "zeros"}
    built = 0

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        type(self).built += 1
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


def test_a_class_that_takes_in_features_gets_the_last_dimension() -> None:
    layers.register("affine", _Affine)
    assert layers.get("affine").shape is None  # learnt on the meta device
    spec = annfactory.parse_run(
        _sequential({"type": "affine", "out_features": 2}, input_shape=[3, 4])
    )
    layer = spec.network.layers[0]
    assert layer.output_shape == (3, 2)
    assert [(p.name, p.shape) for p in layer.parameters] == [
        ("weight", (2, 4)),
        ("bias", (2,)),
    ]
    network = annfactory.build_network(spec)
    assert isinstance(network.l1, _Affine)
    torch.testing.assert_close(network(torch.ones(5, 3, 4)), torch.full((5, 3, 2), 4.0))


def test_a_class_with_a_shape_rule_is_not_built_to_learn_its_shapes() -> None:
    def rule(input_shape: tuple[int, ...], options: dict[str, Any]) -> LayerShape:
        out = options["out_features"]
        return LayerShape(
            (*input_shape[:-1], out),
            {"weight": (out, input_shape[-1]), "bias": (out,)},
        )

    class Counted(_Affine):
        built = 0

    layers.register("counted", Counted, shape=rule)
    layer = {"type": "counted", "out_features": 2}
    spec = annfactory.parse_run(_sequential(layer, in_features=3))
    assert Counted.built == 0
    assert spec.network.out_features == 2
    annfactory.build_network(spec)
    assert Counted.built == 1
    # Without a rule: once on the meta device to learn the shapes, once to build.
    layers.register("learnt", Counted)
    layer = {"type": "learnt", "out_features": 2}
    annfactory.build_network(annfactory.parse_run(_sequential(layer, in_features=3)))
    assert Counted.built == 3


@pytest.mark.parametrize("flag", ["weighted", "dense"])
def test_the_weighted_flag_lets_the_top_level_groups_reach_a_layer(flag: str) -> None:
    layers.register("affine", _Affine, **{flag: True})
    entry = layers.get("affine")
    assert (entry.weighted, entry.dense) == (True, True)
    model = {
        "in_features": 3,
        "layers": {
            "a": {"type": "affine", "out_features": 4},
            "b": {"type": "affine", "out_features": 2},
        },
    }
    spec = annfactory.parse_run({"model": model, "init": "zeros", "activation": "tanh"})
    assert [layer.weight_init.name for layer in spec.network.layers] == [
        "zeros",
        "zeros",
    ]
    assert [layer.activation.name for layer in spec.network.layers] == [
        "tanh",
        "identity",
    ]


def test_a_layer_type_takes_dense_as_the_former_name_of_weighted() -> None:
    entry = LayerType(build=nn.Identity, dense=True)
    assert entry.weighted
    assert entry == LayerType(build=nn.Identity, weighted=True)
    assert not LayerType(build=nn.Identity).dense
    assert layers.get("linear").weighted
    assert not layers.get("dropout").weighted
