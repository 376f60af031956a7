"""Convolutions, pooling, flatten and batch norm over channels.

Shapes and parameter counts inferred without torch agree with torch's own modules
and a real forward pass; conv weights are drawn with receptive-field fans; the
top-level ``init`` and ``activation`` groups reach convolutions; a shape that does
not fit is an error that names the layer and both shapes; hypothesis draws conv
stacks, and torch itself says which of them must build.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

import annfactory
from annfactory import ConfigError
from annfactory.layer_spec import layers_set_by_groups
from annfactory.tasks import run_named_task

#: Fewer than this is a rejection (PyTorch's test_init.py uses the same threshold).
P_VALUE = 1e-4


def _one_layer(input_shape: list[int], layer: dict[str, Any], **top: Any) -> Any:
    model = {"input_shape": input_shape, "layers": {"l1": layer}}
    return annfactory.parse_run({"model": model, **top})


def _torch_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


# ------------------------------------------------------------------------------------
# Shapes and counts against torch's own modules
# ------------------------------------------------------------------------------------

CONV_CASES = [
    ("conv2d", [3, 8, 8], {"out_channels": 4, "kernel_size": 3}),
    ("conv2d", [3, 8, 8], {"out_channels": 4, "kernel_size": 3, "stride": 2,
                           "padding": 1}),
    ("conv2d", [2, 9, 7], {"out_channels": 5, "kernel_size": [3, 5],
                           "padding": [1, 2], "stride": [2, 1]}),
    ("conv2d", [2, 9, 9], {"out_channels": 3, "kernel_size": 4, "padding": "same",
                           "dilation": 2}),
    ("conv2d", [2, 6, 6], {"out_channels": 3, "kernel_size": 2, "padding": "valid",
                           "dilation": [1, 2]}),
    ("conv2d", [6, 5, 5], {"out_channels": 9, "kernel_size": 3, "groups": 3,
                           "bias": False}),
    ("conv1d", [2, 16], {"out_channels": 4, "kernel_size": 5, "stride": 3}),
    ("conv1d", [4, 10], {"out_channels": 6, "kernel_size": 4, "padding": "same",
                         "groups": 2}),
    ("conv1d", [1, 7], {"out_channels": 2, "kernel_size": [3], "dilation": 3}),
]  # fmt: skip


@pytest.mark.parametrize(("type_", "input_shape", "options"), CONV_CASES)
def test_a_convolution_has_torchs_shapes_and_parameter_count(
    type_: str, input_shape: list[int], options: dict[str, Any]
) -> None:
    spec = _one_layer(input_shape, {"type": type_, **options})
    cls = nn.Conv1d if type_ == "conv1d" else nn.Conv2d
    reference = cls(input_shape[0], **_torch_options(options))
    assert spec.network.num_params == sum(p.numel() for p in reference.parameters())
    layer = spec.network.layers[0]
    assert [(p.name, p.shape) for p in layer.parameters] == [
        (name, tuple(p.shape)) for name, p in reference.named_parameters()
    ]
    x = torch.randn(3, *input_shape)
    expected = reference(x).shape
    assert (3, *spec.network.output_shape) == tuple(expected)
    network = annfactory.build_network(spec)
    assert network(x).shape == expected


POOL_CASES = [
    ("max_pool2d", [3, 8, 8], {"kernel_size": 2}),
    ("max_pool2d", [3, 9, 7], {"kernel_size": [3, 2], "stride": [2, 1],
                               "padding": [1, 1]}),
    ("avg_pool2d", [2, 7, 7], {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("avg_pool2d", [2, 5, 6], {"kernel_size": [5, 2]}),
    ("max_pool1d", [2, 11], {"kernel_size": 3, "stride": 2}),
    ("avg_pool1d", [4, 9], {"kernel_size": 4, "padding": 2}),
    ("adaptive_avg_pool2d", [3, 7, 5], {"output_size": 1}),
    ("adaptive_avg_pool2d", [3, 7, 5], {"output_size": [3, 2]}),
    ("flatten", [3, 4, 5], {}),
    ("flatten", [3, 4, 5], {"start_dim": 2}),
    ("flatten", [3, 4, 5], {"start_dim": 1, "end_dim": 2}),
]  # fmt: skip


@pytest.mark.parametrize(("type_", "input_shape", "options"), POOL_CASES)
def test_a_pool_or_flatten_has_torchs_output_shape(
    type_: str, input_shape: list[int], options: dict[str, Any]
) -> None:
    spec = _one_layer(input_shape, {"type": type_, **options})
    assert spec.network.num_params == 0
    name = "".join(part.capitalize() for part in type_.split("_"))  # MaxPool2d
    reference = getattr(nn, name)(**_torch_options(options))
    x = torch.randn(3, *input_shape)
    expected = reference(x).shape
    assert (3, *spec.network.output_shape) == tuple(expected)
    assert annfactory.build_network(spec)(x).shape == expected


@pytest.mark.parametrize(
    ("input_shape", "cls"),
    [([4], nn.BatchNorm1d), ([4, 6], nn.BatchNorm1d), ([4, 5, 6], nn.BatchNorm2d)],
)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_counts_as_torchs_over_channels(
    input_shape: list[int], cls: type[nn.Module], affine: bool
) -> None:
    spec = _one_layer(input_shape, {"type": "batch_norm", "affine": affine})
    reference = cls(input_shape[0], affine=affine)
    assert spec.network.num_params == sum(p.numel() for p in reference.parameters())
    network = annfactory.build_network(spec)
    assert set(network.state_dict()) == {f"l1.{k}" for k in reference.state_dict()}


# ------------------------------------------------------------------------------------
# Receptive-field fans
# ------------------------------------------------------------------------------------

#: A conv2d of 16 -> 64 channels and a 3x3 kernel: 9,216 weights,
#: fan_in = 16 * 9 = 144 and fan_out = 64 * 9 = 576.
IN_CHANNELS, OUT_CHANNELS, KERNEL = 16, 64, 3
FAN_IN, FAN_OUT = IN_CHANNELS * KERNEL**2, OUT_CHANNELS * KERNEL**2


def _conv_weight(weight_init: Any, activation: str = "identity") -> np.ndarray:
    layer = {
        "type": "conv2d",
        "out_channels": OUT_CHANNELS,
        "kernel_size": KERNEL,
        "activation": activation,
        "weight_init": weight_init,
    }
    spec = _one_layer([IN_CHANNELS, 12, 12], layer, seed=3)
    weight = annfactory.build_network(spec).l1.weight
    assert weight.shape == (OUT_CHANNELS, IN_CHANNELS, KERNEL, KERNEL)
    return weight.detach().double().numpy().ravel()


def _pvalue(samples: np.ndarray, distribution: str, args: tuple[float, ...]) -> float:
    return float(stats.kstest(samples, distribution, args=args).pvalue)


@pytest.mark.parametrize(
    ("weight_init", "activation", "distribution", "args"),
    [
        # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        ("default", "identity", "uniform", (-1 / 12, 2 / 12)),
        ("kaiming_normal", "relu", "norm", (0.0, math.sqrt(2 / FAN_IN))),
        (
            {"name": "kaiming_normal", "mode": "fan_out"},
            "relu",
            "norm",
            (0.0, math.sqrt(2 / FAN_OUT)),
        ),
        (
            "kaiming_uniform",
            "relu",
            "uniform",
            (-math.sqrt(6 / FAN_IN), 2 * math.sqrt(6 / FAN_IN)),
        ),
        (
            "xavier_normal",
            "tanh",
            "norm",
            (0.0, 5 / 3 * math.sqrt(2 / (FAN_IN + FAN_OUT))),
        ),
        (
            "xavier_uniform",
            "identity",
            "uniform",
            (-math.sqrt(6 / (FAN_IN + FAN_OUT)), 2 * math.sqrt(6 / (FAN_IN + FAN_OUT))),
        ),
    ],
    ids=["default", "kaiming_normal", "kaiming_fan_out", "kaiming_uniform",
         "xavier_normal_tanh", "xavier_uniform"],
)  # fmt: skip
def test_conv_inits_follow_the_receptive_field_fans(
    weight_init: Any, activation: str, distribution: str, args: tuple[float, ...]
) -> None:
    samples = _conv_weight(weight_init, activation)
    assert _pvalue(samples, distribution, args) > P_VALUE
    if distribution == "uniform":
        low, width = args
        assert low <= samples.min()
        assert samples.max() <= low + width


def test_the_fans_without_the_receptive_field_are_rejected() -> None:
    # The check can fail: fans of in_channels and out_channels alone (a linear
    # layer's rule applied to the conv) give a std 3x too large.
    samples = _conv_weight("kaiming_normal", "relu")
    assert _pvalue(samples, "norm", (0.0, math.sqrt(2 / IN_CHANNELS))) < P_VALUE


def test_the_conv_bias_default_takes_the_receptive_field_fan_in() -> None:
    spec = _one_layer(
        [IN_CHANNELS, 12, 12],
        {"type": "conv2d", "out_channels": OUT_CHANNELS, "kernel_size": KERNEL},
    )
    bias = spec.network.layers[0].parameters[1]
    assert (bias.name, bias.init.name) == ("bias", "uniform")
    assert bias.init.params == {"a": -1 / 12, "b": 1 / 12}
    # With groups, fan_in counts the input channels of one group.
    grouped = _one_layer(
        [16, 12, 12],
        {"type": "conv2d", "out_channels": 8, "kernel_size": 1, "groups": 4},
    )
    assert grouped.network.layers[0].parameters[1].init.params["b"] == 0.5


def test_init_report_judges_conv_weights_with_their_fans(tmp_path: Path) -> None:
    layer = {
        "type": "conv2d",
        "out_channels": OUT_CHANNELS,
        "kernel_size": KERNEL,
        "activation": "relu",
        "weight_init": "kaiming_normal",
    }
    model = {"input_shape": [IN_CHANNELS, 6, 6], "layers": {"conv": layer}}
    spec = annfactory.parse_run({"model": model})
    run_named_task(
        {"name": "init_report", "histograms": False}, spec, tmp_path, out=io.StringIO()
    )
    report = json.loads((tmp_path / "metrics.json").read_text())["init_report"]
    weight = report["conv.weight"]
    assert weight["theory"]["std"] == pytest.approx(math.sqrt(2 / FAN_IN))
    assert weight["agrees"] is True
    assert report["conv.bias"]["theory"]["kind"] == "uniform"


# ------------------------------------------------------------------------------------
# The top-level groups reach convolutions
# ------------------------------------------------------------------------------------

CNN = {
    "input_shape": [1, 8, 8],
    "layers": {
        "conv1": {"type": "conv2d", "out_channels": 4, "kernel_size": 3,
                  "padding": "same", "activation": "relu"},
        "pool": {"type": "max_pool2d", "kernel_size": 2},
        "conv2": {"type": "conv2d", "out_channels": 8, "kernel_size": 3,
                  "activation": "relu"},
        "flat": {"type": "flatten"},
        "out": {"type": "linear", "out_features": 3},
    },
}  # fmt: skip


def test_init_and_activation_reach_every_conv_layer() -> None:
    spec = annfactory.parse_run(
        {"model": CNN, "init": "kaiming_uniform", "activation": "tanh"}
    )
    layers = {layer.name: layer for layer in spec.network.layers}
    assert {n: layer.weight_init.name for n, layer in layers.items()} == {
        "conv1": "kaiming_uniform",
        "pool": "default",
        "conv2": "kaiming_uniform",
        "flat": "default",
        "out": "kaiming_uniform",
    }
    # Every hidden conv or linear layer; the output layer keeps its own.
    assert {n: layer.activation.name for n, layer in layers.items()} == {
        "conv1": "tanh",
        "pool": "identity",
        "conv2": "tanh",
        "flat": "identity",
        "out": "identity",
    }
    # The gain follows each conv's activation: tanh's 5/3.
    assert layers["conv1"].weight_init.params["nonlinearity"] == "tanh"
    assert layers_set_by_groups(CNN) == (
        ["conv1", "conv2", "out"],
        ["conv1", "conv2"],
    )


# ------------------------------------------------------------------------------------
# Input shapes in the forward task, the summary and the memory guard
# ------------------------------------------------------------------------------------


def test_the_forward_task_feeds_batches_of_the_input_shape(tmp_path: Path) -> None:
    spec = annfactory.parse_run({"model": CNN, "batch_size": 4})
    out = io.StringIO()
    metrics = run_named_task(None, spec, tmp_path, out=out)
    assert metrics["input_shape"] == [4, 1, 8, 8]
    assert metrics["output_shape"] == [4, 3]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert (saved["input_shape"], saved["output_shape"]) == ([4, 1, 8, 8], [4, 3])
    assert saved["parameters"]["conv1.weight"]["shape"] == [4, 1, 3, 3]
    summary = (tmp_path / "summary.txt").read_text()
    # Each layer's input and output shape, batch first.
    for row in (
        r"Conv2d \(conv1\)\s+\[4, 1, 8, 8\]\s+\[4, 4, 8, 8\]\s+40",
        r"MaxPool2d \(pool\)\s+\[4, 4, 8, 8\]\s+\[4, 4, 4, 4\]\s+--",
        r"Flatten \(flat\)\s+\[4, 8, 2, 2\]\s+\[4, 32\]\s+--",
    ):
        assert re.search(row, summary), summary
    assert "network: 1x8x8 -> conv1(4x8x8, relu) -> pool(4x4x4, identity)" in (
        out.getvalue()
    )


def test_the_memory_guard_counts_image_activations() -> None:
    from annfactory import factory

    spec = annfactory.parse_run({"model": CNN, "batch_size": 3})
    # Rows x (input + each layer's output, twice where an activation follows).
    values = 64 + 2 * 4 * 64 + 4 * 16 + 2 * 8 * 4 + 32 + 3
    assert factory.batch_bytes(spec) == 3 * values * 4


# ------------------------------------------------------------------------------------
# Shape errors name the layer and the shapes
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("input_shape", "layer", "key", "message"),
    [
        ([16, 8, 8], {"type": "max_pool2d", "kernel_size": 16}, r"model\.layers\.l1",
         r"'max_pool2d' cannot take the input shape \[16, 8, 8\]: kernel_size 16 > "
         r"input 8x8\."),
        ([64], {"type": "conv2d", "out_channels": 4, "kernel_size": 3},
         r"model\.layers\.l1", r"'conv2d' cannot take the input shape \[64\]: it takes "
         r"\[channels, height, width\] \(3 dimensions\), not 1"),
        ([64], {"type": "conv1d", "out_channels": 4, "kernel_size": 3},
         r"model\.layers\.l1", r"it takes \[channels, length\]"),
        ([1, 8, 8], {"type": "conv2d", "out_channels": 0, "kernel_size": 3},
         r"model\.layers\.l1\.out_channels", r"0 is out of range\.\n  Allowed: an "
         r"integer >= 1"),
        ([1, 8, 8], {"type": "conv2d", "out_channels": 2, "kernel_size": 3,
                     "dilation": 4}, r"model\.layers\.l1",
         r"kernel_size 3 with dilation 4 spans 9 > input 8x8\."),
        ([1, 4, 4], {"type": "avg_pool2d", "kernel_size": 6, "padding": 4},
         r"model\.layers\.l1", r"padding 4 is more than half of kernel_size 6"),
        ([1, 8, 8], {"type": "conv2d", "out_channels": 2, "kernel_size": 3,
                     "stride": 2, "padding": "same"}, r"model\.layers\.l1",
         r"padding 'same' needs stride 1"),
        ([3, 8, 8], {"type": "conv2d", "out_channels": 4, "kernel_size": 1,
                     "groups": 2}, r"model\.layers\.l1",
         r"groups 2 does not divide its in_channels 3"),
        ([1, 8, 8], {"type": "conv2d", "out_channels": 4, "kernel_size": [3, 3, 3]},
         r"model\.layers\.l1\.kernel_size",
         r"\[3, 3, 3\] is not a list of 2 integers >= 1"),
        ([1, 8, 8], {"type": "conv2d", "out_channels": 4, "kernel_size": 3,
                     "padding": "sme"}, r"model\.layers\.l1\.padding",
         r"unknown padding 'sme'\. Did you mean 'same'\?"),
        ([1, 8, 8], {"type": "flatten", "start_dim": 5}, r"model\.layers\.l1",
         r"start_dim 5 and end_dim -1 select no dimensions of a \[batch, 1, 8, 8\]"),
    ],
    ids=["pool-larger-than-input", "conv2d-on-vector", "conv1d-on-vector",
         "zero-out-channels", "dilated-kernel", "pool-padding", "same-strided",
         "groups", "kernel-rank", "padding-word", "flatten-dims"],
)  # fmt: skip
def test_a_shape_error_names_the_layer_and_the_shapes(
    input_shape: list[int], layer: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: .*{message}") as info:
        _one_layer(input_shape, layer)
    assert 1 <= len(str(info.value).splitlines()) <= 3


# ------------------------------------------------------------------------------------
# Property: torch decides which conv stacks are valid; ours agree
# ------------------------------------------------------------------------------------

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def conv_stacks(draw: st.DrawFn) -> tuple[list[int], dict[str, dict[str, Any]]]:
    """An input shape and up to four conv, pool and batch-norm layers with options
    drawn freely, valid or not."""
    input_shape = [draw(st.integers(1, 4)), draw(st.integers(1, 10)),
                   draw(st.integers(1, 10))]  # fmt: skip
    layers: dict[str, dict[str, Any]] = {}
    sizes = st.one_of(st.integers(1, 4), st.lists(st.integers(1, 4), min_size=2,
                                                  max_size=2))  # fmt: skip
    for index in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv2d", "max_pool2d", "avg_pool2d",
                                     "batch_norm"]))  # fmt: skip
        layer: dict[str, Any] = {"type": kind}
        if kind == "conv2d":
            layer |= {
                "out_channels": draw(st.sampled_from([1, 2, 3, 4, 6])),
                "kernel_size": draw(sizes),
                "stride": draw(st.integers(1, 3)),
                "padding": draw(st.one_of(st.integers(0, 2),
                                          st.sampled_from(["same", "valid"]))),
                "dilation": draw(st.integers(1, 2)),
                "groups": draw(st.sampled_from([1, 1, 2])),
                "bias": draw(st.booleans()),
            }  # fmt: skip
        elif kind != "batch_norm":
            layer |= {
                "kernel_size": draw(sizes),
                "stride": draw(st.one_of(st.none(), st.integers(1, 3))),
                "padding": draw(st.integers(0, 2)),
            }
        layers[f"l{index}"] = layer
    return input_shape, layers


def _torch_stack(
    input_shape: list[int], layers: dict[str, dict[str, Any]]
) -> tuple[nn.Module, torch.Tensor]:
    """The same stack built from torch's modules by hand, and its output."""
    modules: list[nn.Module] = []
    channels = input_shape[0]
    x = torch.randn(2, *input_shape)
    for layer in layers.values():
        options = _torch_options({k: v for k, v in layer.items() if k != "type"})
        if layer["type"] == "conv2d":
            module: nn.Module = nn.Conv2d(channels, **options)
            channels = options["out_channels"]
        elif layer["type"] == "batch_norm":
            module = nn.BatchNorm2d(channels)
        else:
            cls = nn.MaxPool2d if layer["type"] == "max_pool2d" else nn.AvgPool2d
            module = cls(**options)
        modules.append(module)
        x = module(x)
    return nn.Sequential(*modules), x


@SETTINGS
@given(conv_stacks())
def test_a_conv_stack_builds_exactly_when_torch_runs_it(
    stack: tuple[list[int], dict[str, dict[str, Any]]],
) -> None:
    input_shape, layers = stack
    try:
        reference, expected = _torch_stack(input_shape, layers)
    except (RuntimeError, ValueError):
        with pytest.raises(ConfigError, match=r"^model\.layers\.l\d"):
            annfactory.parse_run({"model": {"input_shape": input_shape,
                                            "layers": layers}})  # fmt: skip
        return
    spec = annfactory.parse_run({"model": {"input_shape": input_shape,
                                           "layers": layers}})  # fmt: skip
    assert (2, *spec.network.output_shape) == tuple(expected.shape)
    assert spec.network.num_params == sum(p.numel() for p in reference.parameters())
    network = annfactory.build_network(spec).eval()
    assert network(torch.randn(2, *input_shape)).shape == expected.shape


# ------------------------------------------------------------------------------------
# The README's model files
# ------------------------------------------------------------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"
MODEL_FILES = re.findall(
    r"```yaml\n# my_configs/model/(\w+)\.yaml.*?\n(.*?)```",
    README.read_text(),
    flags=re.DOTALL,
)


@pytest.mark.parametrize(("name", "text"), MODEL_FILES, ids=[n for n, _ in MODEL_FILES])
def test_the_readme_model_files_compose_and_build(
    tmp_path: Path, name: str, text: str
) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / f"{name}.yaml").write_text(text)
    cfg = annfactory.compose(
        [
            f"model={name}",
            f"hydra.searchpath=[file://{tmp_path}]",
            "init=kaiming_uniform",
        ]
    )
    model = annfactory.build_model(cfg).eval()
    spec = model.spec
    x = torch.randn(2, *spec.input_shape)
    assert model(x).shape == (2, *spec.output_shape)
    assert sum(p.numel() for p in model.parameters()) == spec.num_params


def test_the_readme_shows_a_cnn_and_a_residual_block() -> None:
    files = dict(MODEL_FILES)
    assert "type: conv2d" in files["small_cnn"]
    assert "type: residual" in files["res_cnn"]


# ------------------------------------------------------------------------------------
# The dry run scales: a 10-billion-parameter conv net on the meta device
# ------------------------------------------------------------------------------------

#: 3x1024x1024 images, a 4096-channel conv of stride 2 ([4096, 512, 512]), then a
#: linear head on the flattened 1,073,741,824 values.
CONV_10B = """\
type: sequential
input_shape: [3, 1024, 1024]
layers:
  conv: {type: conv2d, out_channels: 4096, kernel_size: 3, stride: 2, padding: 1,
         activation: relu}
  flat: {type: flatten}
  head: {type: linear, out_features: 10}
"""
CONV_10B_PARAMS = (4096 * 3 * 9 + 4096) + (10 * 4096 * 512 * 512 + 10)


def _conv_10b(tmp_path: Path) -> Path:
    (tmp_path / "cfg" / "model").mkdir(parents=True)
    (tmp_path / "cfg" / "model" / "conv10b.yaml").write_text(CONV_10B)
    return tmp_path / "cfg"


def test_the_10b_conv_net_is_counted_from_its_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annfactory import factory

    cfg = annfactory.compose(
        ["model=conv10b", f"hydra.searchpath=[file://{_conv_10b(tmp_path)}]"]
    )
    spec = annfactory.to_spec(cfg)
    assert spec.network.num_params == CONV_10B_PARAMS == 10_737_532_938
    assert [layer.output_shape for layer in spec.network.layers] == [
        (4096, 512, 512),
        (4096 * 512 * 512,),
        (10,),
    ]
    # The memory guard counts every image activation: the input, the conv's output
    # and its relu's, the flattened copy, the head's output; 5 rows in float32.
    conv = 4096 * 512 * 512
    assert factory.batch_bytes(spec) == 5 * 4 * (3 * 1024 * 1024 + 2 * conv + conv + 10)
    monkeypatch.setattr(factory, "available_bytes", lambda device: 100e9)
    with pytest.raises(
        MemoryError,
        match=r"^batch_size: the run needs 107\.4 GB: 43\.0 GB for the network's "
        r"parameters .* and 64\.5 GB for a batch of 5 rows and its activations",
    ):
        factory.check_memory(spec, factory._meta_layers(spec))


@pytest.mark.slow
def test_the_10b_conv_net_dry_runs_on_meta_in_little_memory(tmp_path: Path) -> None:
    from test_bad_inputs import run_measured

    config_dir = _conv_10b(tmp_path)
    (tmp_path / "run").mkdir()
    result = run_measured(
        ["--config-dir", str(config_dir), "model=conv10b", "device=meta"],
        tmp_path / "run" / "meta",
    )
    assert result.returncode == 0, result.stderr
    assert f"parameters={CONV_10B_PARAMS:,}" in result.stdout
    assert "input shape:  [5, 3, 1024, 1024]" in result.stdout
    assert "output shape: [5, 10]" in result.stdout
    assert "conv(4096x512x512, relu) -> flat(1073741824, identity)" in result.stdout
    assert re.search(r"Linear \(head\)\s+10,737,418,250", result.stdout)
    # Python, Hydra and torch take a few hundred MB; the parameters would take 43 GB.
    assert result.peak_rss_bytes < 1.5e9, result.peak_rss_bytes
