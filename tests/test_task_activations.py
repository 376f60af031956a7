"""The activations task: numbers against theory, plots, options, the command line."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from matplotlib.image import imread
from omegaconf import OmegaConf

import annfactory
from annfactory import Activation, ConfigError, UnknownNameError, activations
from annfactory.spec import RunSpec
from annfactory.tasks import run_named_task
from annfactory.tasks.activations import (
    ActivationsOptions,
    overview_figure,
    parse_options,
)

#: Every elementwise activation gets a curve (the registry as the tests start).
ELEMENTWISE = [name for name, entry in activations.items() if entry.elementwise]
THE_THREE_COMMANDS = (
    ("task=activations",),
    (
        "task=activations",
        "task.names=[sigmoid,tanh,relu,elu,celu]",
        "task.range=[-20,20]",
    ),
    (
        "task=activations",
        "task.names=[celu]",
        "activation@task.params.celu=celu",
        "task.params.celu.alpha=0.001",
    ),
)
#: (height, width, RGBA) of each kind of PNG: figure size in inches x 100 dpi.
CURVE_SHAPE = (400, 1000, 4)
OVERVIEW_SHAPE = (500, 1200, 4)
BAR_CHART_SHAPE = (450, 800, 4)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_SCORES = [0.2, 0.02, 0.15, 0.15, 0.15, 0.15, 1, 3.14]
#: The default grid: 1000 points over [-8, 8]. Its step is 16/999, and 0 is not on
#: it: the points nearest to 0 are +-step/2.
LO, HI = -8.0, 8.0
STEP = (HI - LO) / 999


def sigmoid_derivative(x: float) -> float:
    s = 1 / (1 + math.exp(-x))
    return s * (1 - s)


@pytest.fixture(scope="module")
def spec() -> RunSpec:
    return annfactory.to_spec(annfactory.compose([]))


def measure(spec: RunSpec, **options: Any) -> dict[str, Any]:
    """Run the task without an output directory; return its metrics."""
    return run_named_task(
        {"name": "activations", **options}, spec, None, out=io.StringIO()
    )


@pytest.fixture(scope="module")
def default_run(
    spec: RunSpec, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], str]:
    """One run with the defaults, with files: (run directory, metrics, printed)."""
    run_dir = tmp_path_factory.mktemp("activations")
    out = io.StringIO()
    metrics = run_named_task({"name": "activations"}, spec, run_dir, out=out)
    return run_dir, metrics, out.getvalue()


def assert_png(path: Path, shape: tuple[int, int, int]) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    assert imread(path).shape == shape, path


# ------------------------------------------------------------------------------------
# Numbers against theory
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"), [("sigmoid", 0.25), ("tanh", 1.0), ("relu", 1.0)]
)
def test_max_derivative_is_the_theoretical_one_with_zero_on_the_grid(
    spec: RunSpec, name: str, expected: float
) -> None:
    # 1001 points over [-8, 8]: step 0.016, and x = 0 is a grid point.
    row = measure(spec, names=[name], points=1001)["activations"][name]
    assert row["max_derivative"] == pytest.approx(expected, abs=1e-6)


def test_default_grid_includes_zero_where_the_derivatives_peak(spec: RunSpec) -> None:
    # 1000 points over [-8, 8] miss 0 (the nearest are at +-step/2); the task adds it.
    rows = measure(spec, names=["sigmoid", "tanh", "relu"])["activations"]
    assert rows["sigmoid"]["max_derivative"] == pytest.approx(0.25, abs=1e-12)
    assert rows["sigmoid"]["max_derivative"] > sigmoid_derivative(STEP / 2)
    assert rows["tanh"]["max_derivative"] == pytest.approx(1.0, abs=1e-12)
    assert rows["relu"]["max_derivative"] == 1.0


def test_sigmoid_useful_range_is_where_its_slope_is_one_percent_of_a_quarter(
    spec: RunSpec,
) -> None:
    row = measure(spec, names=["sigmoid"])["activations"]["sigmoid"]
    # s (1 - s) = c, with c = 1% of the max derivative, gives
    # s = (1 - sqrt(1 - 4c)) / 2 and x = log(s / (1 - s)).
    c = 0.01 * row["max_derivative"]
    s = (1 - math.sqrt(1 - 4 * c)) / 2
    edge = math.log(s / (1 - s))
    assert edge == pytest.approx(-5.99, abs=0.01)
    lo, hi = row["useful_range"]
    assert edge <= lo < edge + STEP
    assert hi == pytest.approx(-lo, abs=1e-12)  # the grid is symmetric
    assert row["min"] == pytest.approx(1 / (1 + math.exp(-LO)), rel=1e-9)
    assert row["max"] == pytest.approx(1 / (1 + math.exp(-HI)), rel=1e-12)


def test_tanh_useful_range_is_about_plus_minus_three(spec: RunSpec) -> None:
    row = measure(spec, names=["tanh"])["activations"]["tanh"]
    # 1 - tanh(x)^2 = c gives |x| = atanh(sqrt(1 - c)).
    edge = -math.atanh(math.sqrt(1 - 0.01 * row["max_derivative"]))
    assert edge == pytest.approx(-2.99, abs=0.01)
    lo, hi = row["useful_range"]
    assert edge <= lo < edge + STEP
    assert hi == pytest.approx(-lo, abs=1e-12)
    assert (row["min"], row["max"]) == pytest.approx(
        (math.tanh(LO), math.tanh(HI)), abs=1e-12
    )


def test_relu_is_useful_only_for_positive_inputs(spec: RunSpec) -> None:
    row = measure(spec, names=["relu"])["activations"]["relu"]
    # The derivative is 0 for x <= 0 (a dead unit passes no gradient), 1 above.
    assert row["useful_range"] == pytest.approx([STEP / 2, HI], abs=1e-12)
    assert (row["min"], row["max"]) == (0.0, HI)


@pytest.mark.parametrize("name", ["identity", "leaky_relu"])
def test_linear_pieces_are_useful_over_the_whole_range(
    spec: RunSpec, name: str
) -> None:
    # identity: slope 1 everywhere; leaky_relu: slope 0.01 = exactly 1% for x < 0.
    row = measure(spec, names=[name], range=[-7, 3])["activations"][name]
    assert row["useful_range"] == [-7.0, 3.0]
    assert row["max_derivative"] == 1.0


@pytest.mark.parametrize("name", ["elu", "celu"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_elu_and_celu_saturate_at_minus_alpha(
    spec: RunSpec, name: str, alpha: float
) -> None:
    options = {"names": [name], "range": [-60, 5], "points": 2001}
    row = measure(spec, **options, params={name: {"name": name, "alpha": alpha}})[
        "activations"
    ][name]
    assert row["min"] == pytest.approx(-alpha, abs=1e-12)
    assert row["max"] == 5.0
    # For x < 0, elu' = alpha e^x (up to alpha just left of 0) and celu' = e^(x/alpha)
    # (up to 1); both are 1 for x > 0.
    top = max(1.0, alpha) if name == "elu" else 1.0
    step = 65 / 2000
    assert row["max_derivative"] == pytest.approx(top, rel=alpha * step)
    threshold = 0.01 * row["max_derivative"]
    edge = math.log(threshold / alpha) if name == "elu" else alpha * math.log(threshold)
    assert edge - 1e-9 <= row["useful_range"][0] < edge + step


def test_celu_alpha_changes_the_curve(spec: RunSpec) -> None:
    default = measure(spec, names=["celu"])["activations"]["celu"]
    sharp = measure(spec, names=["celu"], params={"celu": {"alpha": 0.001}})[
        "activations"
    ]["celu"]
    assert default["min"] == pytest.approx(math.expm1(LO), abs=1e-12)
    assert sharp["min"] == pytest.approx(-0.001, abs=1e-12)
    # celu' = exp(x) for alpha = 1: 1% of its max (1, at 0) at x = log(0.01).
    edge = math.log(0.01)
    assert edge - 1e-9 <= default["useful_range"][0] < edge + STEP
    # celu is differentiable at 0 with slope 1 (exp(x / alpha) there), so the sharp
    # one's useful range starts at the grid's 0.
    assert sharp["useful_range"][0] == pytest.approx(0.0, abs=1e-12)


def test_softmax_probabilities_are_exp_over_sum_exp(default_run: Any) -> None:
    _, metrics, printed = default_run
    softmax = metrics["softmax"]
    total = sum(math.exp(score) for score in DEFAULT_SCORES)
    expected = [math.exp(score) / total for score in DEFAULT_SCORES]
    assert softmax["scores"] == DEFAULT_SCORES
    assert softmax["probabilities"] == pytest.approx(expected, abs=1e-12)
    assert softmax["sum"] == pytest.approx(1.0, abs=1e-12)
    assert max(softmax["probabilities"]) == softmax["probabilities"][-1]
    assert "softmax(dim=-1) of the scores:" in printed
    assert "sum: 1.000000" in printed


def test_log_softmax_is_reported_on_the_scores(spec: RunSpec) -> None:
    metrics = measure(spec, names=["log_softmax"], scores=[1, 2, 3])
    log_total = math.log(sum(math.exp(score) for score in (1, 2, 3)))
    row = metrics["log_softmax"]
    assert row["log_probabilities"] == pytest.approx(
        [score - log_total for score in (1, 2, 3)], abs=1e-12
    )
    assert row["exp_sum"] == pytest.approx(1.0, abs=1e-12)
    assert metrics["activations"] == {}
    assert "softmax" not in metrics


def test_dim_zero_is_the_score_vector_too(spec: RunSpec) -> None:
    metrics = measure(
        spec, names=["softmax"], scores=[0, 0], params={"softmax": {"dim": 0}}
    )
    assert metrics["softmax"]["probabilities"] == [0.5, 0.5]


def test_a_registered_elementwise_activation_is_included_by_default(
    spec: RunSpec,
) -> None:
    activations.register("softplus", torch.nn.Softplus)
    rows = measure(spec)["activations"]
    assert set(rows) == {*ELEMENTWISE, "softplus"}
    # softplus' = sigmoid: its max at the range's end, 1% of that at log(c / (1 - c)).
    top = 1 / (1 + math.exp(-HI))
    assert rows["softplus"]["max_derivative"] == pytest.approx(top, abs=1e-12)
    c = 0.01 * top
    edge = math.log(c / (1 - c))
    assert edge - 1e-6 <= rows["softplus"]["useful_range"][0] < edge + STEP


# ------------------------------------------------------------------------------------
# Files and the printed table
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_elementwise_activation_gets_a_png_and_a_metrics_entry(
    default_run: Any, name: str
) -> None:
    run_dir, metrics, printed = default_run
    assert_png(run_dir / f"activation_{name}.png", CURVE_SHAPE)
    row = metrics["activations"][name]
    assert set(row) == {"min", "max", "max_derivative", "useful_range"}
    assert row["min"] <= row["max"]
    lo, hi = row["useful_range"]
    assert LO <= lo < hi <= HI
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["activations"][name] == row
    assert re.search(rf"^  {name}(\(.*\))? ", printed, flags=re.MULTILINE)


def test_overview_and_bar_chart_pngs(default_run: Any) -> None:
    run_dir, metrics, _ = default_run
    assert_png(run_dir / "activations_overview.png", OVERVIEW_SHAPE)
    assert_png(run_dir / "softmax.png", BAR_CHART_SHAPE)
    assert not (run_dir / "log_softmax.png").exists()
    expected = {f"activation_{name}.png" for name in ELEMENTWISE} | {
        "activations_overview.png",
        "softmax.png",
        "metrics.json",
    }
    assert {path.name for path in run_dir.iterdir()} == expected
    assert metrics["task"] == "activations"


def test_the_overview_tells_every_curve_apart_in_both_panels(spec: RunSpec) -> None:
    options = parse_options({}, "task")
    assert options.range == (LO, HI)
    figure = overview_figure(options)
    function_axes, derivative_axes = figure.axes
    assert figure.get_suptitle() == "activations on [-8, 8]"
    assert function_axes.get_xlim()[0] <= LO
    assert HI <= function_axes.get_xlim()[1] < 10
    described = [entry.describe() for entry in options.curves]
    for axes in (function_axes, derivative_axes):
        legend = axes.get_legend()
        assert legend is not None
        labels = [text.get_text() for text in legend.get_texts()]
        assert [label.partition(" (= ")[0] for label in labels] == described
        # elu and celu coincide for alpha = 1: the legend says so ...
        assert "elu(alpha=1) (= celu(alpha=1))" in labels
        lines = axes.get_lines()[: len(described)]
        # ... and no two curves share their color, line style and marker.
        looks = {(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in lines}
        assert len(looks) == len(described)
        # Every line keeps its legend free: it stays below the legend's bottom edge.
        figure.canvas.draw()
        box = legend.get_window_extent().transformed(axes.transData.inverted())
        for line in lines:
            x, y = line.get_xdata(), line.get_ydata()
            inside = (x >= box.x0) & (x <= box.x1)
            assert (y[inside] < box.y0).all(), line.get_label()


def test_a_wide_range_is_an_option(spec: RunSpec) -> None:
    options = parse_options({"names": ["sigmoid"], "range": [-20, 20]}, "task")
    figure = overview_figure(options)
    assert figure.get_suptitle() == "activations on [-20, 20]"
    row = measure(spec, names=["sigmoid"], range=[-20, 20])["activations"]["sigmoid"]
    assert row["min"] == pytest.approx(1 / (1 + math.exp(20)), rel=1e-9)


def test_table_has_a_header_and_a_row_per_activation(default_run: Any) -> None:
    _, metrics, printed = default_run
    lines = printed.splitlines()
    assert lines[0].startswith("activations on [-8, 8], 1000 points")
    assert lines[1].split() == [
        "activation",
        "min",
        "max",
        "max",
        "derivative",
        "useful",
        "range",
    ]
    assert "  sigmoid " in printed
    assert "[-5.982, 5.982]" in printed
    rows = lines[2 : 2 + len(ELEMENTWISE)]
    assert [row.split()[0].partition("(")[0] for row in rows] == ELEMENTWISE
    assert "celu(alpha=1)" in rows[0]
    assert lines[2 + len(ELEMENTWISE)] == "softmax(dim=-1) of the scores:"
    assert list(metrics["activations"]) == ELEMENTWISE


def test_no_output_directory_means_no_plots(
    spec: RunSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    run_named_task({"name": "activations", "names": ["relu"]}, spec, None, out=out)
    assert list(tmp_path.iterdir()) == []
    assert "plots:" not in out.getvalue()


# ------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------


def test_config_file_defaults_and_a_slot_per_activation_with_parameters() -> None:
    cfg = annfactory.compose(["task=activations"])
    node = OmegaConf.to_container(cfg.task, resolve=True)
    assert isinstance(node, dict)
    assert node["names"] is None
    assert node["range"] == [LO, HI]
    assert node["points"] == 1000
    assert node["scores"] == DEFAULT_SCORES
    # activation@task.params.<name>=<name> needs no '+' for any of them.
    assert set(node["params"]) == {
        name for name, entry in activations.items() if entry.params
    }
    options = parse_options({k: v for k, v in node.items() if k != "name"}, "task")
    assert isinstance(options, ActivationsOptions)
    assert [spec.name for spec in options.curves] == ELEMENTWISE
    assert [spec.name for spec in options.vectors] == ["softmax"]


def test_the_third_command_composes_and_sets_alpha(spec: RunSpec) -> None:
    cfg = annfactory.compose(list(THE_THREE_COMMANDS[2]))
    node = OmegaConf.to_container(cfg.task, resolve=True)
    assert isinstance(node, dict)
    options = parse_options({k: v for k, v in node.items() if k != "name"}, "task")
    assert [spec.describe() for spec in options.curves] == ["celu(alpha=0.001)"]
    assert options.vectors == ()


def test_params_may_omit_the_name_or_be_a_name(spec: RunSpec) -> None:
    options = parse_options(
        {"names": ["celu", "elu"], "params": {"celu": {"alpha": 0.5}, "elu": "elu"}},
        "task",
    )
    assert [spec.describe() for spec in options.curves] == [
        "celu(alpha=0.5)",
        "elu(alpha=1)",
    ]


def _not_elementwise() -> None:
    activations.register(
        "pairwise",
        Activation(build=lambda: torch.nn.Softmax(dim=-1), elementwise=False),
    )


BAD_OPTIONS = [
    (
        {"names": ["sigmoid", "tanh", "rleu"]},
        UnknownNameError,
        r"^task\.names\[2\]: unknown activation 'rleu'\. Did you mean 'relu'\?",
    ),
    ({"names": []}, ConfigError, r"^task\.names: the list of activations is empty"),
    ({"names": "relu"}, ConfigError, r"^task\.names: 'relu' is not a list"),
    ({"names": ["relu", 3]}, ConfigError, r"^task\.names\[1\]: 3 is not an act"),
    ({"names": ["relu", "relu"]}, ConfigError, r"^task\.names\[1\]: 'relu' is liste"),
    ({"range": [5, 1]}, ConfigError, r"^task\.range: lo 5 is not below hi 1\."),
    ({"range": [1, 1]}, ConfigError, r"^task\.range: lo 1 is not below hi 1\."),
    ({"range": [0]}, ConfigError, r"^task\.range: \[0\] is not two numbers"),
    ({"range": [0, 1, 2]}, ConfigError, r"^task\.range: .* is not two numbers"),
    ({"range": [True, 2]}, ConfigError, r"^task\.range: .* is not two numbers"),
    ({"range": "0,1"}, ConfigError, r"^task\.range: '0,1' is not two numbers"),
    ({"range": None}, ConfigError, r"^task\.range: None is not two numbers"),
    ({"range": [0, math.inf]}, ConfigError, r"^task\.range: .* is not finite"),
    ({"range": [math.nan, 1]}, ConfigError, r"^task\.range: .* is not finite"),
    ({"range": [-1e308, 1e308]}, ConfigError, r"^task\.range: .* is not finite"),
    ({"points": 1}, ConfigError, r"^task\.points: 1 is out of range"),
    ({"points": 10**7}, ConfigError, r"^task\.points: 10000000 is out of range"),
    ({"points": 2.5}, ConfigError, r"^task\.points: 2\.5 is not an integer"),
    ({"scores": []}, ConfigError, r"^task\.scores: the score vector is empty"),
    ({"scores": 3}, ConfigError, r"^task\.scores: 3 is not a list"),
    ({"scores": [1, math.nan]}, ConfigError, r"^task\.scores\[1\]: nan is not a fin"),
    ({"scores": [1, "a"]}, ConfigError, r"^task\.scores\[1\]: 'a' is not a finite"),
    ({"scores": [0] * 1001}, ConfigError, r"^task\.scores: 1001 scores are too many"),
    (
        {"nmes": ["relu"]},
        UnknownNameError,
        r"^task\.nmes: unknown key 'nmes' for task 'activations'\. "
        r"Did you mean 'names'\?",
    ),
    (
        {"params": {"celu": {"name": "celu", "alpha": 0}}},
        ConfigError,
        r"^task\.params\.celu\.alpha: 0\.0 is out of range",
    ),
    (
        {"params": {"celu": {"name": "celu", "alhpa": 1}}},
        UnknownNameError,
        r"^task\.params\.celu\.alhpa: unknown parameter 'alhpa'.*"
        r"Did you mean 'alpha'\?",
    ),
    (
        {"params": {"cleu": {"name": "celu"}}},
        UnknownNameError,
        r"^task\.params\.cleu: unknown activation 'cleu'\. Did you mean 'celu'\?",
    ),
    (
        {"params": {"celu": {"name": "elu"}}},
        ConfigError,
        r"^task\.params\.celu\.name: 'elu' does not match the key",
    ),
    (
        {"params": {"celu": "elu"}},
        ConfigError,
        r"^task\.params\.celu: 'elu' does not match the key",
    ),
    (
        {"params": {"celu": {"_target_": "os.system"}}},
        ConfigError,
        r"^task\.params\.celu\._target_: configs name registered entries",
    ),
    (
        {"params": {"softmax": {"dim": 1}}},
        ConfigError,
        r"^task\.params\.softmax\.dim: dim 1 does not exist",
    ),
    # An entry for an activation that is not reported is checked all the same.
    (
        {"names": ["relu"], "params": {"elu": {"alpha": -1}}},
        ConfigError,
        r"^task\.params\.elu\.alpha: -1\.0 is out of range",
    ),
    ({"params": [1]}, ConfigError, r"^task\.params: \[1\] is not a mapping"),
]


@pytest.mark.parametrize(("options", "error", "match"), BAD_OPTIONS)
def test_bad_options_name_their_path(
    spec: RunSpec,
    tmp_path: Path,
    options: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        run_named_task({"name": "activations", **options}, spec, tmp_path)
    assert list(tmp_path.iterdir()) == []  # checked before any work


def test_an_activation_that_is_not_elementwise_has_no_curve(spec: RunSpec) -> None:
    _not_elementwise()
    with pytest.raises(
        ConfigError,
        match=r"^task\.names\[0\]: activation 'pairwise' is not elementwise.*\n"
        r".*softmax or log_softmax \(reported on task\.scores\)",
    ):
        measure(spec, names=["pairwise"])
    # Not listed by default either.
    assert "pairwise" not in measure(spec, points=2)["activations"]


# ------------------------------------------------------------------------------------
# The command line (slow: each starts Python, torch and matplotlib)
# ------------------------------------------------------------------------------------


def _cli_metrics(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    metrics: dict[str, Any] = json.loads((result.run_dir / "metrics.json").read_text())
    return metrics


def _curve_pngs(run_dir: Path) -> set[str]:
    return {path.name for path in run_dir.glob("activation_*.png")}


@pytest.mark.slow
def test_cli_default_command(run_cli: Any) -> None:
    result = run_cli(*THE_THREE_COMMANDS[0])
    metrics = _cli_metrics(result)
    assert set(metrics["activations"]) == set(ELEMENTWISE)
    assert _curve_pngs(result.run_dir) == {f"activation_{n}.png" for n in ELEMENTWISE}
    assert_png(result.run_dir / "activations_overview.png", OVERVIEW_SHAPE)
    assert_png(result.run_dir / "softmax.png", BAR_CHART_SHAPE)
    assert metrics["softmax"]["sum"] == pytest.approx(1.0, abs=1e-12)
    assert "max derivative  useful range" in result.stdout
    assert "[-5.982, 5.982]" in result.stdout
    assert "sum: 1.000000" in result.stdout


@pytest.mark.slow
def test_cli_names_and_range(run_cli: Any) -> None:
    result = run_cli(*THE_THREE_COMMANDS[1])
    metrics = _cli_metrics(result)
    names = ["sigmoid", "tanh", "relu", "elu", "celu"]
    assert list(metrics["activations"]) == names
    assert _curve_pngs(result.run_dir) == {f"activation_{n}.png" for n in names}
    for name in names:
        assert_png(result.run_dir / f"activation_{name}.png", CURVE_SHAPE)
    assert metrics["activations"]["relu"]["max_derivative"] == 1.0
    assert "softmax" not in metrics
    rows = [line.split()[0] for line in result.stdout.splitlines()[2:7]]
    assert rows == ["sigmoid", "tanh", "relu", "elu(alpha=1)", "celu(alpha=1)"]


@pytest.mark.slow
def test_cli_celu_with_a_small_alpha(run_cli: Any) -> None:
    result = run_cli(*THE_THREE_COMMANDS[2])
    metrics = _cli_metrics(result)
    assert metrics["activations"]["celu"]["min"] == pytest.approx(-0.001, abs=1e-12)
    assert _curve_pngs(result.run_dir) == {"activation_celu.png"}
    assert "celu(alpha=0.001)" in result.stdout


@pytest.mark.slow
def test_cli_bad_name_names_the_path_and_the_closest_name(run_cli: Any) -> None:
    result = run_cli("task=activations", "task.names=[sigmoid,rleu]")
    assert result.returncode != 0
    assert "task.names[1]: unknown activation 'rleu'. Did you mean 'relu'?" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert not _curve_pngs(result.run_dir)
