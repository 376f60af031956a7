"""The diagnose task: gradient flow through a deep stack, measured and judged.

Networks are composed like a command line (``annfactory.compose`` then ``to_spec``)
and run through ``run_named_task``; gradient norms and losses are recomputed here by
hand on the same built model and batch. The two documented command lines run end to
end at the bottom (marked slow).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from PIL import Image
from torch.nn import functional

import annfactory
from annfactory import ConfigError, UnknownNameError
from annfactory.factory import build_network
from annfactory.spec import RunSpec
from annfactory.tasks import run_named_task
from annfactory.tasks.diagnose import (
    FIGURE_FILE,
    FIGURE_PIXELS,
    NON_FINITE,
    DiagnoseOptions,
    parse_options,
    plot_diagnosis,
    random_labels,
)
from annfactory.tasks.forward import random_input

RunCli = Callable[..., Any]

DEEP = ["model=mlp", "model.depth=10"]
SIGMOID = [*DEEP, "activation=sigmoid", "init=xavier_normal"]
RELU = [*DEEP, "activation=relu", "init=kaiming_normal"]
LAYER_KEYS = {
    "name",
    "activation",
    "activation_mean",
    "activation_std",
    "dead_fraction",
    "nonfinite_fraction",
    "weight_grad_norm",
}
#: relu with N(0, 100^2) weights: the signal grows about 400-fold per layer and
#: overflows float32 within 20 layers.
OVERFLOWING = [
    "model=mlp", "model.depth=20", "activation=relu", "init=normal", "init.std=100"
]  # fmt: skip


def spec_of(overrides: Sequence[str]) -> RunSpec:
    return annfactory.to_spec(annfactory.compose(list(overrides)))


def diagnose(
    overrides: Sequence[str],
    output_dir: Path | None = None,
    out: io.StringIO | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The ``diagnose`` part of the task's metrics."""
    metrics = run_named_task(
        {"name": "diagnose", **options},
        spec_of(overrides),
        output_dir,
        out=out or io.StringIO(),
    )
    assert metrics["task"] == "diagnose"
    result: dict[str, Any] = metrics["diagnose"]
    return result


def model_and_batch(spec: RunSpec) -> tuple[torch.nn.Module, torch.Tensor]:
    """The network, built here in eval mode, and the task's batch of 256 rows."""
    model = build_network(spec)
    model.eval()
    x = random_input(
        dataclasses.replace(spec, batch_size=256), torch.device("cpu"), torch.float32
    )
    return model, x


# ------------------------------------------------------------------------------------
# The verdict
# ------------------------------------------------------------------------------------


def test_sigmoid_stack_vanishes_where_relu_with_kaiming_is_healthy() -> None:
    sigmoid, relu = diagnose(SIGMOID), diagnose(RELU)

    # sigmoid' <= 1/4: the gradient shrinks at every one of the 10 layers.
    assert sigmoid["grad_ratio_first_last"] < 1e-2 * relu["grad_ratio_first_last"]
    assert sigmoid["grad_ratio_first_last"] < 1e-6
    assert sigmoid["verdict"] == "vanishing"
    assert relu["verdict"] == "healthy"
    assert sigmoid["verdict_text"].startswith(
        f"vanishing: grad_ratio_first_last={sigmoid['grad_ratio_first_last']:.2g} "
        "< 0.001 (first layer's weight-gradient norm / last layer's)"
    )
    assert relu["verdict_text"].startswith("healthy: 0.001 <= grad_ratio_first_last=")
    for result in (sigmoid, relu):
        assert result["thresholds"] == {"vanishing_below": 1e-3, "exploding_above": 1e2}
        assert [row["name"] for row in result["layers"]] == [
            *(f"hidden{i}" for i in range(1, 11)),
            "out",
        ]
        assert all(set(row) == LAYER_KEYS for row in result["layers"])
        norms = [row["weight_grad_norm"] for row in result["layers"]]
        assert result["grad_ratio_first_last"] == pytest.approx(norms[0] / norms[-1])
        assert result["activation_std_last"] == result["layers"][-1]["activation_std"]
        assert result["dead_fraction_max"] == max(
            row["dead_fraction"] for row in result["layers"]
        )
    assert sigmoid["dead_fraction_max"] == 0.0  # sigmoid is never exactly 0


def test_saturated_tanh_explodes_and_thresholds_are_options() -> None:
    # N(0, 1) weights on 32 inputs saturate tanh: the chaotic regime, where the
    # backward pass grows layer by layer.
    result = diagnose([*DEEP, "activation=tanh", "init=normal"])
    assert result["verdict"] == "exploding"
    assert result["grad_ratio_first_last"] > 1e2
    assert "> 100 (first layer's" in result["verdict_text"]

    strict = diagnose(RELU, vanishing_below=0.5, exploding_above=0.9)
    assert strict["verdict"] == "vanishing"
    assert strict["thresholds"] == {"vanishing_below": 0.5, "exploding_above": 0.9}
    assert "< 0.5 (" in strict["verdict_text"]


def test_dead_relu_units_are_counted_and_stop_the_gradient() -> None:
    # A bias of -10 puts every hidden relu unit at 0 for every row.
    result = diagnose(
        [
            "model=mlp",
            "model.depth=3",
            "activation=relu",
            "init=kaiming_normal",
            "init@model.bias_init=constant",
            "model.bias_init.val=-10",
        ]
    )
    hidden, out = result["layers"][:-1], result["layers"][-1]
    assert [row["dead_fraction"] for row in hidden] == [1.0, 1.0, 1.0]
    assert all(row["activation_mean"] == row["activation_std"] == 0.0 for row in hidden)
    assert out["dead_fraction"] == 0.0  # identity: -10 everywhere, not 0
    assert result["dead_fraction_max"] == 1.0
    # No gradient reaches any weight: 0/0, reported as vanishing.
    assert all(row["weight_grad_norm"] == 0.0 for row in result["layers"])
    assert math.isnan(result["grad_ratio_first_last"])
    assert result["verdict"] == "vanishing"
    assert "both 0" in result["verdict_text"]


def test_a_healthy_relu_stack_has_no_dead_layer() -> None:
    result = diagnose(
        ["model=mlp", "model.depth=2", "activation=relu", "init=kaiming_normal"]
    )
    assert result["dead_fraction_max"] < 0.5
    assert result["verdict"] == "healthy"


# ------------------------------------------------------------------------------------
# The measures, recomputed by hand
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [SIGMOID, RELU], ids=["sigmoid", "relu"])
def test_gradient_norms_and_statistics_match_a_manual_pass(
    overrides: list[str],
) -> None:
    spec = spec_of(overrides)
    result = diagnose(overrides)
    model, x = model_and_batch(spec)
    captured: dict[str, torch.Tensor] = {}
    for layer in spec.network.layers:
        name = (
            f"{layer.name}_act" if layer.activation.name != "identity" else layer.name
        )
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, y, key=layer.name: captured.__setitem__(key, y.detach())
        )
    output = model(x)
    output.mean().backward()

    # An identity output: the default loss is the mean of the output.
    assert (result["loss"], result["loss_option"]) == ("mean", "auto")
    assert result["loss_value"] == pytest.approx(output.mean().item())
    assert result["nonfinite"] is None
    assert result["notes"] == []
    for layer, row in zip(spec.network.layers, result["layers"], strict=True):
        grad = model.get_submodule(layer.name).get_parameter("weight").grad
        assert grad is not None
        assert row["weight_grad_norm"] == pytest.approx(grad.norm().item(), rel=1e-5)
        values = captured[layer.name].double()
        assert row["activation_mean"] == pytest.approx(values.mean().item())
        assert row["activation_std"] == pytest.approx(values.std().item())
        dead = (values == 0).all(dim=0).double().mean().item()
        assert row["dead_fraction"] == dead
        assert row["nonfinite_fraction"] == 0.0


@pytest.mark.parametrize("output_activation", ["identity", "softmax", "log_softmax"])
def test_cross_entropy_is_torchs_on_the_same_logits_and_labels(
    output_activation: str,
) -> None:
    overrides = ["model=mlp", f"model.output_activation={output_activation}"]
    result = diagnose(overrides, loss="cross_entropy")
    spec = spec_of(overrides)
    model, x = model_and_batch(spec)
    logits: list[torch.Tensor] = []
    model.get_submodule("out").register_forward_hook(lambda _m, _i, y: logits.append(y))
    output = model(x)
    labels = random_labels(spec, 256, torch.device("cpu"))

    assert labels.shape == (256,)
    assert int(labels.min()) >= 0
    assert int(labels.max()) < spec.network.out_features
    assert len(set(labels.tolist())) == spec.network.out_features
    # Whatever the output layer applies, the loss is the cross-entropy of its logits.
    expected = functional.cross_entropy(logits[0], labels).item()
    assert result["loss"] == "cross_entropy"
    assert result["loss_value"] == pytest.approx(expected, rel=1e-5)
    if output_activation == "identity":
        assert result["loss_value"] == functional.cross_entropy(output, labels).item()


def _weight_grad_norms(
    model: torch.nn.Module, names: Sequence[str], loss: torch.Tensor
) -> list[float]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    norms = []
    for name in names:
        grad = model.get_submodule(name).get_parameter("weight").grad
        assert grad is not None
        norms.append(grad.double().norm().item())
    return norms


@pytest.mark.parametrize("seed", [0, 4])
def test_a_softmax_output_takes_cross_entropy_by_default(seed: int) -> None:
    # The mean of a softmax output is the constant 1/2: its gradient is rounding
    # noise, which once made seed 4 "healthy" and seed 0 "vanishing 0/0".
    overrides = ["model=demo", f"seed={seed}"]
    spec = spec_of(overrides)
    names = [layer.name for layer in spec.network.layers]
    result = diagnose(overrides)
    assert (result["loss"], result["loss_option"]) == ("cross_entropy", "auto")
    assert "log_softmax(pre-activation, dim=-1)" in result["loss_formula"]
    assert result["notes"] == []

    model, x = model_and_batch(spec)
    logits: list[torch.Tensor] = []
    model.get_submodule("out").register_forward_hook(lambda _m, _i, y: logits.append(y))
    model(x)
    labels = random_labels(spec, 256, torch.device("cpu"))
    loss = functional.cross_entropy(logits[0], labels)
    assert result["loss_value"] == pytest.approx(loss.item(), rel=1e-6)
    expected = _weight_grad_norms(model, names, loss)
    measured = [row["weight_grad_norm"] for row in result["layers"]]
    assert measured == pytest.approx(expected, rel=1e-5)
    # Real gradients, far above the noise of the mean's: the output layer gets one.
    assert measured[-1] > 1e-6

    explicit = diagnose(overrides, loss="mean")
    assert (explicit["loss"], explicit["loss_option"]) == ("mean", "mean")
    assert explicit["loss_value"] == pytest.approx(0.5)
    assert all(row["weight_grad_norm"] < 1e-8 for row in explicit["layers"])
    (note,) = explicit["notes"]
    assert note.startswith(
        "note: task.loss=mean of a softmax output is the constant 1/2"
    )
    assert "its gradient is zero" in note
    assert explicit["verdict_text"].endswith(
        "[the loss is constant: see the note above]"
    )


def test_the_mean_of_a_softmax_over_the_batch_is_one_over_the_rows() -> None:
    overrides = [
        "model=mlp", "activation@model.output_activation=softmax",
        "model.output_activation.dim=0",
    ]  # fmt: skip
    result = diagnose(overrides, loss="mean", batch_size=64)
    assert result["loss_value"] == pytest.approx(1 / 64)
    assert result["notes"][0].startswith(
        "note: task.loss=mean of a softmax output is the constant 1/64"
    )
    assert diagnose(overrides)["loss"] == "cross_entropy"


def test_a_log_softmax_output_takes_the_nll_of_its_output_by_default() -> None:
    overrides = ["model=mlp", "model.output_activation=log_softmax"]
    result = diagnose(overrides)
    spec = spec_of(overrides)
    model, x = model_and_batch(spec)
    labels = random_labels(spec, 256, torch.device("cpu"))
    assert result["loss"] == "cross_entropy"
    assert result["loss_formula"] == "nll_loss(output) against random labels"
    expected = functional.nll_loss(model(x), labels).item()
    assert result["loss_value"] == pytest.approx(expected, rel=1e-6)


def test_the_first_non_finite_layer_is_named_and_not_called_vanishing() -> None:
    result = diagnose(OVERFLOWING)
    spec = spec_of(OVERFLOWING)
    model, x = model_and_batch(spec)
    first = None
    with torch.no_grad():
        for layer in spec.network.layers:
            x = model.get_submodule(layer.name)(x)
            if layer.activation.name != "identity":
                x = model.get_submodule(f"{layer.name}_act")(x)
            if first is None and not torch.isfinite(x).all():
                first = layer.name
    assert first is not None
    assert first != spec.network.layers[0].name

    assert result["verdict"] == NON_FINITE == "non-finite"
    assert result["nonfinite"] == {"stage": "forward", "layer": first}
    assert result["verdict_text"].startswith(
        f"non-finite: the forward pass overflows at {first}: its output is the first "
        "to hold inf/NaN (the layer before, "
    )
    assert math.isnan(result["loss_value"])
    rows = result["layers"]
    index = [row["name"] for row in rows].index(first)
    assert all(row["nonfinite_fraction"] == 0 for row in rows[:index])
    assert rows[index]["nonfinite_fraction"] > 0
    assert not any(math.isfinite(row["weight_grad_norm"]) for row in rows)
    assert (
        f"{len(rows)} of {len(rows)} weight gradients non-finite"
        in (result["verdict_text"])
    )

    # The figure: log axes for activations and gradients, only finite points drawn.
    figure = plot_diagnosis(rows, "title")
    activation_axes, _dead_axes, grad_axes = figure.axes
    assert activation_axes.get_yscale() == "log"
    # Every weight gradient is NaN: no point, a red cross per layer instead.
    (crosses,) = grad_axes.get_lines()
    assert crosses.get_marker() == "x"
    assert len(crosses.get_xdata()) == len(rows)
    assert [text.get_text() for text in grad_axes.texts] == [
        "no finite nonzero weight gradient"
    ]
    std_line = activation_axes.get_lines()[0]
    assert list(std_line.get_xdata()) == list(range(1, index + 1))
    # Dead units: no point inside the shaded non-finite region (from the first
    # non-finite layer on), where a NaN row would read as "no dead units".
    (dead_line,) = _dead_axes.get_lines()
    assert list(dead_line.get_xdata()) == list(range(1, index + 1))
    for axes in figure.axes:
        for line in axes.get_lines():
            assert np.isfinite(np.asarray(line.get_ydata(), dtype=float)).all()
    assert activation_axes.get_ylim()[1] < 1e39


def test_the_same_seed_gives_the_same_metrics() -> None:
    first, again = diagnose(SIGMOID), diagnose(SIGMOID)
    assert json.dumps(first) == json.dumps(again)
    other = diagnose([*SIGMOID, "seed=1"])
    assert other["loss_value"] != first["loss_value"]


def test_batch_size_null_takes_the_top_level_batch_size() -> None:
    spec = spec_of([*DEEP, "batch_size=7"])
    metrics = run_named_task(
        {"name": "diagnose", "batch_size": None}, spec, None, out=io.StringIO()
    )
    assert metrics["output_shape"] == [7, 2]
    assert metrics["total_params"] == spec.network.num_params
    # With task.batch_size set (256 by default) the top-level one would be ignored:
    # refused, not ignored (issue 19).
    with pytest.raises(
        ConfigError, match=r"^batch_size: task 'diagnose' does not read the top-level"
    ):
        run_named_task({"name": "diagnose"}, spec, None, out=io.StringIO())


# ------------------------------------------------------------------------------------
# The report and the files
# ------------------------------------------------------------------------------------


def test_files_and_printout(tmp_path: Path) -> None:
    out = io.StringIO()
    result = diagnose(SIGMOID, tmp_path, out)

    image = imread(tmp_path / FIGURE_FILE)
    width, height = FIGURE_PIXELS
    assert image.shape == (height, width, 4)
    assert image[..., :3].std() > 0.05  # something is drawn
    assert (tmp_path / FIGURE_FILE).stat().st_size < 150_000
    for name in ("metrics.json", "spec.yaml", "weights.safetensors"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["task"] == "diagnose"
    assert saved["diagnose"]["verdict"] == "vanishing"
    assert saved["diagnose"]["grad_ratio_first_last"] == result["grad_ratio_first_last"]
    assert len(saved["diagnose"]["layers"]) == 11
    assert annfactory.load_run(tmp_path).spec.layers[0].activation.name == "sigmoid"

    text = out.getvalue()
    assert "256 random rows, eval mode" in text
    assert "loss: mean (auto), the mean of the output = " in text
    assert text.rstrip().splitlines()[-1] == result["verdict_text"]
    assert "  hidden10  sigmoid" in text
    assert text.count("\n  hidden") == 10


def test_without_an_output_dir_nothing_is_written(tmp_path: Path) -> None:
    diagnose(["model=demo"], None)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------


def test_yaml_defaults_are_the_options_defaults() -> None:
    node = annfactory.compose(["task=diagnose"]).task
    given = {key: value for key, value in node.items() if key != "name"}
    assert (
        parse_options(given, "task") == parse_options({}, "task") == DiagnoseOptions()
    )


@pytest.mark.parametrize(
    ("given", "error", "match"),
    [
        (
            {"loss": "cross_entropi"},
            UnknownNameError,
            r"task\.loss: .*Did you mean 'cross_entropy'",
        ),
        (
            {"batch_sise": 3},
            UnknownNameError,
            r"task\.batch_sise: .*Did you mean 'batch_size'",
        ),
        ({"batch_size": 0}, ConfigError, r"task\.batch_size: 0 is out of range"),
        ({"batch_size": 2.5}, ConfigError, r"task\.batch_size: 2\.5 is not an integer"),
        (
            {"vanishing_below": 0},
            ConfigError,
            r"task\.vanishing_below: 0\.0 is out of range",
        ),
        (
            {"exploding_above": -1.0},
            ConfigError,
            r"task\.exploding_above: -1\.0 is out",
        ),
        (
            {"exploding_above": "big"},
            ConfigError,
            r"task\.exploding_above: 'big' is not a number",
        ),
        (
            {"vanishing_below": 1.0, "exploding_above": 0.5},
            ConfigError,
            r"task\.vanishing_below: 1 is not below task\.exploding_above \(0\.5\)",
        ),
    ],
)
def test_bad_options_name_the_key(
    given: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        parse_options(given, "task")
    with pytest.raises(error, match=match):
        run_named_task({"name": "diagnose", **given}, spec_of(["model=demo"]), None)


def test_meta_device_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    spec = spec_of(["model=demo", "device=meta"])
    with pytest.raises(ConfigError, match=r"^device: diagnose needs values") as caught:
        run_named_task({"name": "diagnose"}, spec, tmp_path, out=io.StringIO())
    assert "Use device=cpu" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_not_a_vector_is_refused(tmp_path: Path) -> None:
    spec = spec_of(["model=demo", "~model.in_features", "+model.input_shape=[4,3]"])
    assert spec.network.output_shape == (4, 2)
    with pytest.raises(
        ConfigError,
        match=r"^model: diagnose draws one class label per row, so it needs a vector "
        r"output; the network's output shape is \[4, 2\]\.",
    ):
        run_named_task({"name": "diagnose"}, spec, tmp_path, out=io.StringIO())
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------
# The command lines of the README
# ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_one_command_diagnoses_a_sigmoid_stack(run_cli: RunCli) -> None:
    result = run_cli(
        "task=diagnose", "model=mlp", "model.depth=10", "activation=sigmoid",
        "init=xavier_normal",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "vanishing: grad_ratio_first_last=" in result.stdout
    assert (
        "< 0.001 (first layer's weight-gradient norm / last layer's)" in result.stdout
    )
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["diagnose"]["verdict"] == "vanishing"
    assert imread(result.run_dir / FIGURE_FILE).shape[:2] == FIGURE_PIXELS[::-1]


@pytest.mark.slow
def test_an_overflowing_stack_is_non_finite_through_the_command_line(
    run_cli: RunCli,
) -> None:
    # The command (depth 80, relu, N(0, 1) weights) at width 32: it overflows
    # float32 at about layer 65 instead of 37, in a tenth of the time.
    overrides = (
        "task=diagnose", "model=mlp", "model.depth=80", "model.width=32",
        "init=normal", "activation=relu",
    )  # fmt: skip
    result = run_cli(*overrides)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((result.run_dir / "metrics.json").read_text())["diagnose"]
    first = metrics["nonfinite"]["layer"]
    assert metrics["verdict"] == "non-finite"
    assert metrics["loss_value"] is None  # NaN, which JSON writes as null
    verdict = result.stdout.rstrip().splitlines()[-1]
    assert verdict.startswith(f"non-finite: the forward pass overflows at {first}:")
    assert "vanishing" not in result.stdout
    assert "dead units" not in result.stdout
    # The figure's title names the run's overrides, so a sweep's figures differ.
    title = Image.open(result.run_dir / FIGURE_FILE).text["Title"]
    assert title.splitlines()[0] == " ".join(overrides)
    assert verdict.split(";")[0] in title.replace("\n", " ")


@pytest.mark.slow
def test_one_sweep_compares_activations_and_inits(run_cli: RunCli) -> None:
    result = run_cli(
        "-m", "task=diagnose", "model=mlp", "model.depth=10",
        "activation=sigmoid,tanh,relu", "init=xavier_normal,kaiming_normal",
        timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sweep_dir = result.run_dir.parent / "multirun"
    with (sweep_dir / "summary.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 6
    ratio: dict[tuple[str, str], float] = {}
    for row in rows:
        assert row["status"] == "ok"
        words = dict(item.split("=", 1) for item in row["overrides"].split())
        key = (words["activation"], words["init"])
        ratio[key] = float(row["diagnose.grad_ratio_first_last"])
        expected = "vanishing" if key[0] == "sigmoid" else "healthy"
        assert row["diagnose.verdict"] == expected, key
        title = Image.open(sweep_dir / row["job"] / FIGURE_FILE).text["Title"]
        assert title.splitlines()[0] == row["overrides"]
    relu_kaiming = ratio["relu", "kaiming_normal"]
    for init in ("xavier_normal", "kaiming_normal"):
        assert ratio["sigmoid", init] < 1e-2 * relu_kaiming
    # The printed table shows the verdict and the ratio beside each job.
    assert "| diagnose.verdict | diagnose.grad_ratio_first_last |" in result.stdout
