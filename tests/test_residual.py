"""Residual blocks: ``type: residual`` holds a nested ``layers`` mapping and gives
``x + body(x)``; nested layers get dotted names and take overrides; ``projection:
true`` maps the input where the body changes its shape, else the mismatch is an
error naming the block and both shapes; zero-initializing a block's last layer makes
it the identity; ``model=resmlp``; the torchinfo summary indents nested blocks.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import annfactory
from annfactory import ConfigError
from annfactory.layer_spec import layers_set_by_groups
from annfactory.network import Residual
from annfactory.tasks import run_named_task


def _block(**given: Any) -> dict[str, Any]:
    layers = given.pop(
        "layers",
        {
            "fc1": {"type": "linear", "out_features": 8, "activation": "relu"},
            "fc2": {"type": "linear", "out_features": 6},
        },
    )
    return {"type": "residual", "layers": layers, **given}


def _model(*blocks: tuple[str, dict[str, Any]], in_features: int = 6) -> Any:
    return {"in_features": in_features, "layers": dict(blocks)}


# ------------------------------------------------------------------------------------
# The spec: nested layers, dotted names, the saved form
# ------------------------------------------------------------------------------------


def test_a_block_holds_its_layers_and_names_their_parameters_by_path() -> None:
    spec = annfactory.parse_run({"model": _model(("block", _block()))})
    block = spec.network.layers[0]
    assert (block.type, block.input_shape, block.output_shape) == (
        "residual",
        (6,),
        (6,),
    )
    assert [layer.name for layer in block.layers] == ["fc1", "fc2"]
    assert [(p.name, p.shape) for p in block.parameters] == [
        ("fc1.weight", (8, 6)),
        ("fc1.bias", (8,)),
        ("fc2.weight", (6, 8)),
        ("fc2.bias", (6,)),
    ]
    assert spec.network.num_params == 8 * 6 + 8 + 6 * 8 + 6
    network = annfactory.build_network(spec)
    assert list(network.state_dict()) == [
        "block.fc1.weight",
        "block.fc1.bias",
        "block.fc2.weight",
        "block.fc2.bias",
    ]
    assert isinstance(network.block, Residual)
    # Saved and read back the same.
    saved = spec.to_dict()["model"]["layers"]["block"]
    assert list(saved["layers"]) == ["fc1", "fc2"]
    assert annfactory.parse_run(spec.to_dict()) == spec


def test_the_block_gives_its_input_plus_its_body() -> None:
    spec = annfactory.parse_run(
        {"model": _model(("block", _block(activation="tanh"))), "seed": 3}
    )
    network = annfactory.build_network(spec)
    block = network.block
    x = torch.randn(5, 6)
    body = block.fc2(torch.relu(block.fc1(x)))
    torch.testing.assert_close(network(x), torch.tanh(x + body))


def test_each_nested_parameter_is_seeded_from_its_whole_path() -> None:
    one = annfactory.build_network(
        annfactory.parse_run({"model": _model(("a", _block()), ("b", _block()))})
    )
    # Blocks a and b have the same layers, but each parameter its own stream.
    assert not torch.equal(one.a.fc1.weight, one.b.fc1.weight)
    other = _block(layers={"fc1": {"type": "linear", "out_features": 6}})
    two = annfactory.build_network(
        annfactory.parse_run({"model": _model(("a", _block()), ("b", other))})
    )
    # Changing block b leaves block a's weights as they were.
    torch.testing.assert_close(one.a.fc1.weight, two.a.fc1.weight, rtol=0, atol=0)


def test_a_saved_run_with_blocks_loads_with_the_same_outputs(tmp_path: Path) -> None:
    spec = annfactory.parse_run(
        {"model": _model(("block", _block()), ("norm", {"type": "batch_norm"}))}
    )
    network = annfactory.build_network(spec).eval()
    from annfactory.runs import save_run

    save_run(tmp_path, spec, network)
    loaded = annfactory.load_run(tmp_path).eval()
    x = torch.randn(4, 6)
    torch.testing.assert_close(loaded(x), network(x), rtol=0, atol=0)


# ------------------------------------------------------------------------------------
# Zero init of the last layer: the block is the identity
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "input_shape",
    [[6], [3, 5, 5]],
    ids=["vectors", "images"],
)
def test_zero_initializing_the_last_layer_makes_the_block_the_identity(
    input_shape: list[int],
) -> None:
    zero = {"weight_init": "zeros", "bias_init": "zeros"}
    if len(input_shape) == 1:
        layers = {
            "fc1": {"type": "linear", "out_features": 16, "activation": "relu"},
            "fc2": {"type": "linear", "out_features": 6, **zero},
        }
    else:
        conv = {"type": "conv2d", "kernel_size": 3, "padding": "same"}
        layers = {
            "conv1": {**conv, "out_channels": 8, "activation": "relu"},
            "norm": {"type": "batch_norm"},
            "conv2": {**conv, "out_channels": 3, **zero},
        }
    model = {"input_shape": input_shape, "layers": {"block": _block(layers=layers)}}
    network = annfactory.build_network(annfactory.parse_run({"model": model}))
    x = torch.randn(4, *input_shape)
    torch.testing.assert_close(network(x), x, rtol=0, atol=0)
    # A body that is not zero changes x: the check can fail.
    layers[next(reversed(layers))] = {
        k: v for k, v in layers[next(reversed(layers))].items() if k not in zero
    }
    model["layers"]["block"] = _block(layers=layers)
    other = annfactory.build_network(annfactory.parse_run({"model": model}))
    assert not torch.allclose(other(x), x)


def test_zeroed_blocks_of_resmlp_leave_the_network_without_them() -> None:
    zero = [
        f"init@model.layers.{block}.layers.fc2.{field}=zeros"
        for block in ("block1", "block2")
        for field in ("weight_init", "bias_init")
    ]
    network = annfactory.build_model(annfactory.compose(["model=resmlp", *zero]))
    x = torch.randn(7, 64)
    # relu(relu(h) + 0) = relu(h): each block passes its input on.
    expected = network.out(torch.relu(network.fc_in(x)))
    torch.testing.assert_close(network(x), expected, rtol=0, atol=0)


# ------------------------------------------------------------------------------------
# Projection and the shape mismatch
# ------------------------------------------------------------------------------------


def test_a_projection_maps_vectors_with_a_linear_layer() -> None:
    layers = {"fc1": {"type": "linear", "out_features": 4}}
    block = _block(layers=layers, projection=True, weight_init="orthogonal")
    spec = annfactory.parse_run({"model": _model(("block", block))})
    layer = spec.network.layers[0]
    assert layer.output_shape == (4,)
    assert [(p.name, p.shape, p.init.name) for p in layer.parameters] == [
        ("fc1.weight", (4, 6), "kaiming_uniform"),
        ("fc1.bias", (4,), "uniform"),
        ("projection.weight", (4, 6), "orthogonal"),
        ("projection.bias", (4,), "uniform"),
    ]
    network = annfactory.build_network(spec)
    projection = network.block.projection
    assert isinstance(projection, nn.Linear)
    x = torch.randn(3, 6)
    torch.testing.assert_close(network(x), projection(x) + network.block.fc1(x))


@pytest.mark.parametrize(
    ("input_shape", "conv", "stride"),
    [
        ([4, 8, 8], {"out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1},
         (2, 2)),
        ([4, 7, 9], {"out_channels": 6, "kernel_size": [3, 1], "stride": [2, 3],
                     "padding": [1, 0]}, (2, 3)),
        ([4, 8, 8], {"out_channels": 2, "kernel_size": 1}, (1, 1)),
    ],
)  # fmt: skip
def test_a_projection_maps_images_with_a_strided_1x1_convolution(
    input_shape: list[int], conv: dict[str, Any], stride: tuple[int, int]
) -> None:
    block = _block(layers={"conv": {"type": "conv2d", **conv}}, projection=True)
    model = {"input_shape": input_shape, "layers": {"block": block}}
    spec = annfactory.parse_run({"model": model})
    network = annfactory.build_network(spec)
    projection = network.block.projection
    assert isinstance(projection, nn.Conv2d)
    assert (projection.kernel_size, projection.stride) == ((1, 1), stride)
    x = torch.randn(2, *input_shape)
    assert network(x).shape == (2, *spec.network.output_shape)
    reference = nn.Conv2d(input_shape[0], conv["out_channels"], 1, stride=stride)
    count = sum(p.numel() for p in reference.parameters())
    assert spec.network.num_params == count + sum(
        p.numel() for p in network.block.conv.parameters()
    )


def test_a_shape_mismatch_without_projection_names_the_block_and_both_shapes() -> None:
    block = _block(layers={"fc1": {"type": "linear", "out_features": 4}})
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.block: residual block 'block' adds its input, of shape "
        r"\[6\], to its layers' output, of shape \[4\]: they differ\.\n"
        r"  Set \+model\.layers\.block\.projection=true \(a linear projection of the "
        r"input\), or make its last layer give the input's shape\.$",
    ):
        annfactory.parse_run({"model": _model(("block", block))})
    conv = {"type": "conv2d", "out_channels": 8, "kernel_size": 3}
    model = {"input_shape": [4, 8, 8], "layers": {"res": _block(layers={"c": conv})}}
    with pytest.raises(
        ConfigError, match=r"(?s)\[4, 8, 8\].*\[8, 6, 6\].*1x1 convolution"
    ):
        annfactory.parse_run({"model": model})


@pytest.mark.parametrize(
    ("model", "key", "message"),
    [
        ({"in_features": 6, "layers": {"b": {"type": "residual"}}},
         r"model\.layers\.b\.layers", "the residual block 'b' has no layers"),
        ({"in_features": 6, "layers": {"b": _block(layers=[1, 2])}},
         r"model\.layers\.b\.layers", "is not a mapping of layer names"),
        ({"in_features": 6, "layers": {"b": _block(
            layers={"projection": {"type": "dropout"}})}},
         r"model\.layers\.b\.layers\.projection", "taken by the block's projection"),
        ({"in_features": 6, "layers": {"b": _block(
            layers={"fc": {"type": "lineer", "out_features": 6}})}},
         r"model\.layers\.b\.layers\.fc\.type", "Did you mean 'linear'"),
        ({"in_features": 6, "layers": {"b": _block(layers={"fc": {"type": "linear"}})}},
         r"model\.layers\.b\.layers\.fc\.out_features", "needs 'out_features'"),
        ({"in_features": 6, "layers": {"b": _block(
            layers={"fc": {"type": "linear", "out_features": 2}}, projection=True)},
          }, None, None),
        ({"input_shape": [4, 8, 8], "layers": {"b": _block(
            layers={"f": {"type": "flatten"}}, projection=True)}},
         r"model\.layers\.b", r"no projection maps the input \[4, 8, 8\] to the "
         r"body's output \[256\]"),
        ({"in_features": 6, "layers": {"b": _block(weight_init="orthogonal")}},
         r"model\.layers\.b\.weight_init", "has no weight"),
    ],
    ids=["no-layers", "layers-list", "projection-name", "nested-type-typo",
         "nested-missing-size", "valid", "projection-rank", "init-without-projection"],
)  # fmt: skip
def test_bad_blocks_name_the_nested_path(
    model: dict[str, Any], key: str | None, message: str | None
) -> None:
    if key is None:
        annfactory.parse_run({"model": model})
        return
    with pytest.raises(ConfigError, match=rf"^{key}: .*{message}") as info:
        annfactory.parse_run({"model": model})
    assert len(str(info.value).splitlines()) <= 3


# ------------------------------------------------------------------------------------
# Overrides and the top-level groups reach nested layers
# ------------------------------------------------------------------------------------


def test_overrides_reach_nested_layers() -> None:
    cfg = annfactory.compose(
        [
            "model=resmlp",
            "model.layers.block1.layers.fc1.weight_init=orthogonal",
            "init@model.layers.block2.layers.fc2.weight_init=normal",
            "model.layers.block2.layers.fc2.weight_init.std=0.5",
            "model.layers.block1.layers.fc1.out_features=48",
        ]
    )
    spec = annfactory.to_spec(cfg)
    blocks = {layer.name: layer for layer in spec.network.layers}
    fc1 = blocks["block1"].layers[0]
    assert (fc1.weight_init.name, fc1.output_shape) == ("orthogonal", (48,))
    fc2 = blocks["block2"].layers[1]
    assert fc2.weight_init.to_dict() == {"name": "normal", "mean": 0.0, "std": 0.5}
    network = annfactory.build_model(cfg)
    assert network.block1.fc1.weight.shape == (48, 32)
    assert network.block2.fc2.weight.std().item() == pytest.approx(0.5, rel=0.1)


def test_init_and_activation_reach_nested_layers_but_each_blocks_last() -> None:
    spec = annfactory.to_spec(
        annfactory.compose(["model=resmlp", "init=xavier_uniform", "activation=tanh"])
    )
    rows = []
    for layer in spec.network.layers:
        rows.append((layer.name, layer.activation.name, layer.weight_init.name))
        rows += [
            (
                f"{layer.name}.{child.name}",
                child.activation.name,
                child.weight_init.name,
            )
            for child in layer.layers
        ]
    assert rows == [
        ("fc_in", "tanh", "xavier_uniform"),
        # The block's own activation (after the sum) is its own.
        ("block1", "relu", "default"),
        ("block1.fc1", "tanh", "xavier_uniform"),
        # Its last layer feeds the sum, like the network's output layer.
        ("block1.fc2", "identity", "xavier_uniform"),
        ("block2", "relu", "default"),
        ("block2.fc1", "tanh", "xavier_uniform"),
        ("block2.fc2", "identity", "xavier_uniform"),
        ("out", "identity", "xavier_uniform"),
    ]
    model = OmegaConf.to_container(annfactory.compose(["model=resmlp"]).model)
    assert layers_set_by_groups(model) == (  # type: ignore[arg-type]
        ["fc_in", "out", "block1.layers.fc1", "block1.layers.fc2",
         "block2.layers.fc1", "block2.layers.fc2"],
        ["fc_in", "block1.layers.fc1", "block2.layers.fc1"],
    )  # fmt: skip


def test_init_reaches_a_projection() -> None:
    layers = {"fc1": {"type": "linear", "out_features": 4}}
    block = _block(layers=layers, projection=True)
    spec = annfactory.parse_run(
        {"model": _model(("block", block)), "init": "kaiming_normal"}
    )
    names = {p.name: p.init.name for p in spec.network.layers[0].parameters}
    assert names["projection.weight"] == names["fc1.weight"] == "kaiming_normal"
    # A block without a projection has no weight for it: no error.
    annfactory.parse_run({"model": _model(("block", _block())), "init": "zeros"})


# ------------------------------------------------------------------------------------
# model=resmlp, the summary, training
# ------------------------------------------------------------------------------------


def test_resmlp_builds_its_blocks() -> None:
    spec = annfactory.to_spec(annfactory.compose(["model=resmlp"]))
    network = spec.network
    assert network.summary_line() == (
        "64 -> fc_in(32, relu) -> block1(32, relu) -> block2(32, relu) -> out(10, "
        "identity)"
    )
    assert network.num_params == (64 * 32 + 32) + 4 * (32 * 32 + 32) + (32 * 10 + 10)


def test_the_summary_indents_nested_layers_with_their_shapes(tmp_path: Path) -> None:
    spec = annfactory.to_spec(annfactory.compose(["model=resmlp", "batch_size=3"]))
    run_named_task(None, spec, tmp_path, out=io.StringIO())
    summary = (tmp_path / "summary.txt").read_text()
    assert re.search(r"^├─Residual \(block1\)\s+\[3, 32\]\s+\[3, 32\]", summary, re.M)
    assert re.search(
        r"^│    └─Linear \(fc1\)\s+\[3, 32\]\s+\[3, 32\]\s+1,056$", summary, re.M
    ), summary
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["parameters"]["block2.fc2.weight"]["shape"] == [32, 32]
    # A block inside a block is indented once more.
    inner = _block(layers={"fc": {"type": "linear", "out_features": 6}})
    outer = _block(layers={"inner": inner})
    nested = annfactory.parse_run({"model": _model(("outer", outer))})
    run_named_task(None, nested, tmp_path / "nested", out=io.StringIO())
    text = (tmp_path / "nested" / "summary.txt").read_text()
    assert re.search(r"^│    │    └─Linear \(fc\)\s+\[5, 6\]\s+\[5, 6\]", text, re.M)


def test_resmlp_trains_on_digits(tmp_path: Path) -> None:
    cfg = annfactory.compose(
        ["task=train", "model=resmlp", "data=digits", "task.epochs=5"]
    )
    spec = annfactory.to_spec(cfg)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    metrics = run_named_task(task, spec, tmp_path, out=io.StringIO())
    assert metrics["train"]["val_accuracy"] > 0.8
    loaded = annfactory.load_run(tmp_path)
    assert isinstance(loaded.block1, Residual)


@pytest.mark.parametrize("model", ["resmlp", "cnn"])
def test_a_meta_build_materializes_to_the_same_weights(model: str) -> None:
    from dataclasses import replace

    spec = annfactory.to_spec(annfactory.compose([f"model={model}"]))
    direct = annfactory.build_network(spec).state_dict()
    meta = annfactory.build_network(replace(spec, device="meta"))
    materialized = annfactory.materialize(meta, spec).state_dict()
    assert list(materialized) == list(direct)
    for name, tensor in direct.items():
        assert torch.equal(materialized[name], tensor), name


def test_the_memory_guard_counts_the_outputs_of_nested_layers() -> None:
    from annfactory import factory

    spec = annfactory.parse_run(
        {"model": _model(("block", _block(activation="relu"))), "batch_size": 2}
    )
    # The input (6), fc1 and its relu (8 + 8), fc2 (6), the block and its relu (6 + 6).
    assert factory.batch_bytes(spec) == 2 * 4 * (6 + 16 + 6 + 12)
