"""End-to-end tests of ``scripts/run.py``: every documented command line, its output
files and printout, and the messages that bad input gets.

Each test starts Python subprocesses through the ``run_cli`` fixture, so all of them
are marked slow. Runs that fail in validation never import torch and take well under
a second; runs that build a network take two to three.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import annfactory
from annfactory.spec import DTYPES
from annfactory.tasks.forward import random_input

pytestmark = pytest.mark.slow

RunCli = Callable[..., Any]

CONF = Path(__file__).resolve().parents[1] / "conf"

#: The demo network: (in_features, out_features) of linear1, linear2 and out.
DEMO_SIZES = {"linear1": (3, 3), "linear2": (3, 2), "out": (2, 2)}
DEMO_PARAMS = sum(n_in * n_out + n_out for n_in, n_out in DEMO_SIZES.values())
DEMO_KEYS = [f"{layer}.{kind}" for layer in DEMO_SIZES for kind in ("weight", "bias")]
DEMO_ACTIVATIONS = {"linear1": "Sigmoid", "linear2": "ReLU", "out": "Softmax"}


# ------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------


def succeeded(result: Any) -> Any:
    """``result`` after checking the command exited 0 (stderr shown otherwise)."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def read_metrics(directory: Path) -> dict[str, Any]:
    metrics: dict[str, Any] = json.loads((directory / "metrics.json").read_text())
    return metrics


def read_spec(directory: Path) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((directory / "spec.yaml").read_text())
    return spec


def api_parameters(overrides: Sequence[str]) -> dict[str, torch.Tensor]:
    """The parameters that the Python API builds for the same overrides."""
    model = annfactory.build_model(annfactory.compose(list(overrides)))
    return {name: tensor.detach() for name, tensor in model.state_dict().items()}


def statistics(tensor: torch.Tensor) -> tuple[float, float]:
    values = tensor.double()
    return values.mean().item(), values.std().item()


def assert_matches_api(metrics: dict[str, Any], overrides: Sequence[str]) -> None:
    """The CLI's parameter statistics are those of the API's model."""
    expected = api_parameters(overrides)
    assert list(metrics["parameters"]) == list(expected)
    for name, tensor in expected.items():
        row = metrics["parameters"][name]
        assert row["shape"] == list(tensor.shape), name
        mean, std = statistics(tensor)
        assert row["mean"] == pytest.approx(mean, abs=1e-6), name
        assert row["std"] == pytest.approx(std, abs=1e-6), name


def printed_output(stdout: str) -> list[list[float]]:
    """The rows of the output tensor that the run printed."""
    match = re.search(r"^output:\n(tensor\(.*?\]\])", stdout, re.S | re.M)
    assert match is not None, stdout
    rows = re.findall(r"\[([^\[\]]+)\]", match.group(1))
    return [[float(value) for value in row.split(",")] for row in rows]


def assert_parameter_table(stdout: str, parameters: dict[str, Any]) -> None:
    """Every parameter has a printed row with its shape, init, mean and std."""
    lines = stdout[stdout.index("\nparameters:\n") :].splitlines()
    for name, row in parameters.items():
        cells = [
            str(row["shape"]),
            row["init"],
            "n/a" if row["mean"] is None else f"{row['mean']:.4f}",
            "n/a" if row["std"] is None else f"{row['std']:.4f}",
        ]
        matching = [line for line in lines if line.split()[:1] == [name]]
        assert len(matching) == 1, (name, lines)
        assert all(cell in matching[0] for cell in cells), (cells, matching[0])


def expected_demo_shapes() -> dict[str, list[int]]:
    shapes = {}
    for layer, (n_in, n_out) in DEMO_SIZES.items():
        shapes[f"{layer}.weight"] = [n_out, n_in]
        shapes[f"{layer}.bias"] = [n_out]
    return shapes


def group_options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


# ------------------------------------------------------------------------------------
# The documented command lines
# ------------------------------------------------------------------------------------


def test_demo_run_writes_and_prints_the_reference_network(run_cli: RunCli) -> None:
    result = succeeded(run_cli("model=demo"))
    metrics = read_metrics(result.run_dir)

    assert isinstance(metrics["total_params"], int)
    assert metrics["total_params"] == DEMO_PARAMS == 26
    assert metrics["trainable_params"] == DEMO_PARAMS
    assert metrics["input_shape"] == [5, DEMO_SIZES["linear1"][0]]
    assert metrics["output_shape"] == [5, DEMO_SIZES["out"][1]]
    assert (metrics["seed"], metrics["device"], metrics["dtype"]) == (
        0,
        "cpu",
        "float32",
    )
    parameters = metrics["parameters"]
    assert list(parameters) == DEMO_KEYS
    assert {name: row["shape"] for name, row in parameters.items()} == (
        expected_demo_shapes()
    )
    assert parameters["linear1.weight"]["init"].startswith("xavier_normal")
    assert parameters["linear2.weight"]["init"].startswith("kaiming_normal")
    assert parameters["out.weight"]["init"].startswith("default:")
    for layer in DEMO_SIZES:
        assert parameters[f"{layer}.bias"]["init"].startswith("default:")
    # Softmax over two classes: every row sums to 1, so the mean output is 1/2.
    assert metrics["output_mean"] == pytest.approx(0.5, abs=1e-6)

    summary = (result.run_dir / "summary.txt").read_text()
    assert f"Total params: {DEMO_PARAMS}" in summary
    # 5 rows through 26 weights and biases: 130 multiply-adds, counted exactly.
    assert "\nTotal mult-adds: 130\n" in summary
    for layer, activation in DEMO_ACTIVATIONS.items():
        assert re.search(rf"Linear \({layer}\)", summary), layer
        assert re.search(rf"{activation} \({layer}_act\)", summary), activation

    spec = read_spec(result.run_dir)
    assert list(spec["model"]["layers"]) == list(DEMO_SIZES)
    assert [layer["out_features"] for layer in spec["model"]["layers"].values()] == [
        n_out for _, n_out in DEMO_SIZES.values()
    ]

    stdout = result.stdout
    assert re.search(r"^input shape:\s+\[5, 3\]$", stdout, re.M)
    assert re.search(r"^output shape:\s+\[5, 2\]$", stdout, re.M)
    assert summary.strip() in stdout
    assert (result.run_dir / "run.log").read_text() == stdout
    assert_parameter_table(stdout, parameters)
    rows = printed_output(stdout)
    assert len(rows) == 5
    assert all(len(row) == 2 for row in rows)
    for row in rows:
        assert sum(row) == pytest.approx(1.0, abs=2e-4)

    # The API builds the same weights and, on the same input, the same output.
    assert_matches_api(metrics, ["model=demo"])
    run_spec = annfactory.to_spec(annfactory.compose(["model=demo"]))
    model = annfactory.build_network(run_spec)
    x = random_input(run_spec, torch.device("cpu"), torch.float32)
    with torch.inference_mode():
        expected = model(x)
    assert torch.tensor(rows).numpy() == pytest.approx(expected.numpy(), abs=1e-4)
    # spec.yaml is a complete spec: it rebuilds the same network.
    rebuilt = annfactory.build_network(annfactory.parse_run(spec))
    for name, tensor in rebuilt.state_dict().items():
        assert parameters[name]["mean"] == pytest.approx(statistics(tensor)[0])


def test_top_level_init_replaces_every_linear_weight_init(run_cli: RunCli) -> None:
    overrides = ["model=demo", "init=kaiming_uniform"]
    result = succeeded(run_cli(*overrides))
    parameters = read_metrics(result.run_dir)["parameters"]

    for layer in DEMO_SIZES:
        assert parameters[f"{layer}.weight"]["init"].startswith("kaiming_uniform")
        assert parameters[f"{layer}.bias"]["init"].startswith("default:")
    # Kaiming's gain follows each layer's own activation.
    assert "nonlinearity=sigmoid" in parameters["linear1.weight"]["init"]
    assert "nonlinearity=relu" in parameters["linear2.weight"]["init"]
    assert_matches_api(read_metrics(result.run_dir), overrides)
    # U(-bound, bound), bound = gain * sqrt(3 / fan_in).
    tensors = api_parameters(overrides)
    for layer in DEMO_SIZES:
        init = parameters[f"{layer}.weight"]["init"]
        nonlinearity = re.search(r"nonlinearity=(\w+)", init)
        assert nonlinearity is not None, init
        gain = torch.nn.init.calculate_gain(nonlinearity.group(1))
        weight = tensors[f"{layer}.weight"]
        bound = gain * math.sqrt(3 / weight.shape[1])
        assert weight.abs().max().item() <= bound, layer


def test_init_parameter_override(run_cli: RunCli) -> None:
    overrides = ["model=demo", "init=normal", "init.std=0.02"]
    result = succeeded(run_cli(*overrides))
    parameters = read_metrics(result.run_dir)["parameters"]

    for layer in DEMO_SIZES:
        row = parameters[f"{layer}.weight"]
        assert row["init"] == "normal(mean=0, std=0.02)"
        # Four to nine numbers: only the order of magnitude is meaningful.
        assert 0.2 * 0.02 < row["std"] < 3 * 0.02
        assert parameters[f"{layer}.bias"]["init"].startswith("default:")
    assert "normal(mean=0, std=0.02)" in result.stdout
    assert_matches_api(read_metrics(result.run_dir), overrides)


@pytest.mark.parametrize(
    "override",
    [
        "init@model.layers.linear1.weight_init=orthogonal",
        "model.layers.linear1.weight_init=orthogonal",
    ],
    ids=["group-at-package", "plain-value"],
)
def test_one_layer_override_changes_only_that_parameter(
    run_cli: RunCli, override: str
) -> None:
    result = succeeded(run_cli("model=demo", override))
    parameters = read_metrics(result.run_dir)["parameters"]
    plain = api_parameters(["model=demo"])

    changed = parameters["linear1.weight"]
    assert changed["init"].startswith("orthogonal")
    assert (changed["mean"], changed["std"]) != statistics(plain["linear1.weight"])
    # An orthogonal 3x3 matrix has squared norm trace(W W^T) = 3; with n = 9 entries,
    # that is (n - 1) * std^2 + n * mean^2.
    n = math.prod(changed["shape"])
    squared_norm = (n - 1) * changed["std"] ** 2 + n * changed["mean"] ** 2
    assert squared_norm == pytest.approx(DEMO_SIZES["linear1"][1], rel=1e-5)
    for name, tensor in plain.items():
        if name != "linear1.weight":
            row = parameters[name]
            assert (row["mean"], row["std"]) == statistics(tensor), name
            assert not row["init"].startswith("orthogonal"), name
    assert_matches_api(
        read_metrics(result.run_dir),
        ["model=demo", "init@model.layers.linear1.weight_init=orthogonal"],
    )


def test_bias_init_override(run_cli: RunCli) -> None:
    result = succeeded(run_cli("model=demo", "init@model.layers.out.bias_init=zeros"))
    parameters = read_metrics(result.run_dir)["parameters"]

    assert parameters["out.bias"]["init"] == "zeros"
    assert parameters["out.bias"]["mean"] == 0.0
    assert parameters["out.bias"]["std"] == 0.0
    for name, tensor in api_parameters(["model=demo"]).items():
        if name != "out.bias":
            row = parameters[name]
            assert (row["mean"], row["std"]) == statistics(tensor), name


def test_activation_override_with_a_parameter(run_cli: RunCli) -> None:
    result = succeeded(
        run_cli(
            "model=demo",
            "activation@model.layers.linear1.activation=elu",
            "model.layers.linear1.activation.alpha=0.5",
        )
    )
    assert "linear1(3, elu(alpha=0.5))" in result.stdout
    summary = (result.run_dir / "summary.txt").read_text()
    assert re.search(r"ELU \(linear1_act\)", summary)
    assert "Sigmoid" not in summary
    layers = read_spec(result.run_dir)["model"]["layers"]
    assert layers["linear1"]["activation"] == {"name": "elu", "alpha": 0.5}
    assert layers["linear2"]["activation"] == {"name": "relu"}
    assert read_metrics(result.run_dir)["total_params"] == DEMO_PARAMS


def test_mlp_with_sizes_activation_and_init(run_cli: RunCli) -> None:
    in_features, width, depth, out_features = 8, 64, 3, 2
    result = succeeded(
        run_cli(
            "model=mlp",
            f"model.in_features={in_features}",
            f"model.width={width}",
            f"model.depth={depth}",
            f"model.out_features={out_features}",
            "activation=tanh",
            "init=xavier_uniform",
        )
    )
    metrics = read_metrics(result.run_dir)
    expected_total = (
        (in_features * width + width)
        + (depth - 1) * (width * width + width)
        + (width * out_features + out_features)
    )
    assert metrics["total_params"] == expected_total
    assert metrics["input_shape"] == [5, in_features]
    assert metrics["output_shape"] == [5, out_features]
    hidden = [f"hidden{index}" for index in range(1, depth + 1)]
    parameters = metrics["parameters"]
    assert list(parameters) == [
        f"{layer}.{kind}" for layer in [*hidden, "out"] for kind in ("weight", "bias")
    ]
    tanh_gain = 5 / 3
    for layer in hidden:
        assert parameters[f"{layer}.weight"]["init"] == (
            f"xavier_uniform(gain={tanh_gain:.6g})"
        )
    # The output layer keeps its identity activation, so its gain is 1.
    assert parameters["out.weight"]["init"] == "xavier_uniform(gain=1)"
    # U(-b, b) has std b / sqrt(3), b = gain * sqrt(6 / (fan_in + fan_out)); the
    # 64x64 matrices have enough entries for a 5% check.
    for layer in hidden[1:]:
        bound = tanh_gain * math.sqrt(6 / (width + width))
        assert parameters[f"{layer}.weight"]["std"] == pytest.approx(
            bound / math.sqrt(3), rel=0.05
        )
    network_line = result.stdout.splitlines()[0]
    # The hidden layers read the same, so the line folds them into one entry.
    assert f" -> hidden1..hidden{depth}({width}, tanh) x{depth} -> " in network_line
    assert f"out({out_features}, identity)" in network_line
    summary = (result.run_dir / "summary.txt").read_text()
    assert f"Total params: {expected_total:,}" in summary
    assert summary.count("Tanh") == depth


def test_seed_batch_size_device_dtype(run_cli: RunCli) -> None:
    args = ("model=demo", "seed=7", "batch_size=16", "device=cpu", "dtype=float64")
    first = succeeded(run_cli(*args))
    metrics = read_metrics(first.run_dir)

    assert metrics["seed"] == 7
    assert metrics["input_shape"] == [16, DEMO_SIZES["linear1"][0]]
    assert metrics["output_shape"] == [16, DEMO_SIZES["out"][1]]
    assert (metrics["device"], metrics["dtype"]) == ("cpu", "float64")
    assert "dtype=torch.float64" in first.stdout
    rows = printed_output(first.stdout)
    assert len(rows) == 16
    for row in rows:
        assert sum(row) == pytest.approx(1.0, abs=2e-4)
    assert_matches_api(metrics, ["model=demo", "seed=7", "dtype=float64"])
    seed_zero = api_parameters(["model=demo"])
    for name, tensor in seed_zero.items():
        assert metrics["parameters"][name]["mean"] != pytest.approx(
            statistics(tensor)[0], abs=1e-6
        ), name

    second = succeeded(run_cli(*args))
    assert read_metrics(second.run_dir) == metrics
    assert second.stdout == first.stdout


def test_multirun_sweeps_the_top_level_init(run_cli: RunCli) -> None:
    chosen = ["xavier_normal", "kaiming_normal", "kaiming_uniform"]
    result = succeeded(run_cli("-m", "model=demo", f"init={','.join(chosen)}"))
    sweep_dir = result.run_dir.parent / "multirun"

    jobs = sorted(path.name for path in sweep_dir.iterdir() if path.is_dir())
    assert jobs == [str(index) for index in range(len(chosen))]
    biases = []
    for index, init in enumerate(chosen):
        job_dir = sweep_dir / str(index)
        assert (job_dir / "summary.txt").is_file()
        assert (job_dir / "spec.yaml").is_file()
        # Each job's run.log holds that job's report alone.
        log = (job_dir / "run.log").read_text()
        assert log.startswith("network: 3 -> linear1(3, sigmoid)")
        assert log.count("network: ") == 1
        assert re.search(rf"^  linear1\.weight\s+\[3, 3\]\s+{init}\(", log, re.M)
        parameters = read_metrics(job_dir)["parameters"]
        # The top-level init applies to every linear layer's weight, out included.
        for layer in DEMO_SIZES:
            assert parameters[f"{layer}.weight"]["init"].startswith(f"{init}("), (
                index,
                layer,
            )
        biases.append({k: v for k, v in parameters.items() if k.endswith(".bias")})
        # The job's one line in the sweep (its report is in run.log).
        assert f"#{index} model=demo init={init}: ok total_params=26" in result.stdout
    # Each parameter draws from its own generator: biases do not move with the init.
    assert biases[0] == biases[1] == biases[2]
    xavier = read_metrics(sweep_dir / "0")["parameters"]
    assert f"gain={math.sqrt(2):.6g}" in xavier["linear2.weight"]["init"]


def test_cfg_job_prints_the_composed_config_only(run_cli: RunCli) -> None:
    result = succeeded(run_cli("--cfg", "job"))
    cfg = yaml.safe_load(result.stdout)

    assert set(cfg) == {
        "model", "task", "seed", "batch_size", "device", "dtype", "compile"
    }  # fmt: skip
    assert cfg["task"] == {"name": "forward"}
    assert (cfg["seed"], cfg["batch_size"], cfg["device"], cfg["dtype"]) == (
        0,
        5,
        "cpu",
        "float32",
    )
    assert list(cfg["model"]["layers"]) == list(DEMO_SIZES)
    # Nothing ran: no network was built and no outputs were written.
    assert "Total params" not in result.stdout
    assert not (result.run_dir / "metrics.json").exists()


def test_help_lists_config_groups_and_their_options(run_cli: RunCli) -> None:
    result = succeeded(run_cli("--help"))
    listed = dict(
        re.findall(r"^(model|init|activation|layer): (.+)$", result.stdout, re.M)
    )
    assert set(listed) == {"model", "init", "activation", "layer"}
    for group, options in listed.items():
        assert options.split(", ") == group_options(group), group
    assert "xavier_normal" in listed["init"].split(", ")
    assert {"demo", "mlp"} <= set(listed["model"].split(", "))
    assert "python scripts/run.py model=demo" in result.stdout
    assert not (result.run_dir / "metrics.json").exists()


def test_meta_device_reports_shapes_only(run_cli: RunCli) -> None:
    result = succeeded(run_cli("model=demo", "device=meta"))
    metrics = read_metrics(result.run_dir)

    assert "shapes only" in result.stdout
    assert "tensor(" not in result.stdout
    assert metrics["total_params"] == DEMO_PARAMS
    assert metrics["output_shape"] == [5, DEMO_SIZES["out"][1]]
    assert "output_mean" not in metrics
    parameters = metrics["parameters"]
    assert {name: row["shape"] for name, row in parameters.items()} == (
        expected_demo_shapes()
    )
    for name, row in parameters.items():
        assert row["mean"] is None, name
        assert row["std"] is None, name
    assert_parameter_table(result.stdout, parameters)
    assert (
        f"Total params: {DEMO_PARAMS}" in (result.run_dir / "summary.txt").read_text()
    )


# ------------------------------------------------------------------------------------
# Bad input: a short message, no traceback, non-zero exit
# ------------------------------------------------------------------------------------

_VALID_DTYPES = ", ".join(sorted(DTYPES))

#: (arguments, config path, the bad value as the message shows it, closest valid
#: name or None, further fragments the message must contain)
BAD_INPUTS = [
    pytest.param(
        ["init=xavier_norml"], "init", "'xavier_norml'", "xavier_normal", (), id="init"
    ),
    pytest.param(["model=dmeo"], "model", "'dmeo'", "demo", (), id="model"),
    pytest.param(
        ["init=normal", "init.sdt=0.1"], "init.sdt", "'sdt'", "std", (), id="init-param"
    ),
    pytest.param(
        ["init@model.layers.linear1.weight_init=kaiming_normall"],
        "init@model.layers.linear1.weight_init",
        "'kaiming_normall'",
        "kaiming_normal",
        (),
        id="init-at-package",
    ),
    pytest.param(
        ["model.layers.linear1.weight_init=xavier_norml"],
        "model.layers.linear1.weight_init",
        "'xavier_norml'",
        "xavier_normal",
        (),
        id="init-plain-value",
    ),
    pytest.param(
        ["model.layers.linear1.type=linearr"],
        "model.layers.linear1.type",
        "'linearr'",
        "linear",
        (),
        id="layer-type",
    ),
    pytest.param(
        ["init@model.layers.out.bias_init=kaiming_normal"],
        "model.layers.out.bias_init",
        "'kaiming_normal'",
        None,
        ("out.bias", f"[{DEMO_SIZES['out'][1]}]"),
        id="fan-init-on-bias",
    ),
    pytest.param(
        ["model.layers.linear1.out_features=0"],
        "model.layers.linear1.out_features",
        "0 is out of range",
        None,
        (">= 1",),
        id="out-features-zero",
    ),
    pytest.param(
        ["model.layers.linear1.out_features=2.5"],
        "model.layers.linear1.out_features",
        "2.5 is not an integer",
        None,
        (),
        id="out-features-float",
    ),
    pytest.param(
        ["model=mlp", "model.depth=-1"],
        "model.depth",
        "-1 is out of range",
        None,
        (">= 0",),
        id="mlp-depth",
    ),
    pytest.param(
        ["model=mlp", "model.width=0"],
        "model.width",
        "0 is out of range",
        None,
        (">= 1",),
        id="mlp-width",
    ),
    pytest.param(["device=gpu"], "device", "'gpu'", "cuda", (), id="device"),
    pytest.param(
        ["dtype=float8"],
        "dtype",
        "'float8'",
        None,
        ("Did you mean 'float", _VALID_DTYPES),
        id="dtype",
    ),
    pytest.param(["seed=-1"], "seed", "-1 is out of range", None, (), id="seed"),
    pytest.param(
        ["batch_size=0"], "batch_size", "0 is out of range", None, (), id="batch-size"
    ),
    pytest.param(
        ["init=uniform", "init.a=2", "init.b=1"],
        "init",
        "a=2, b=1",
        None,
        ("a < b",),
        id="uniform-bounds",
    ),
    pytest.param(
        ["model.layers.linear1.activation=os.system"],
        "model.layers.linear1.activation",
        "'os.system'",
        None,
        ("unknown activation", "relu, selu, sigmoid"),
        id="activation-dotted-path",
    ),
    pytest.param(
        ["+model.layers.linear1.weight_init._target_=os.system"],
        "model.layers.linear1.weight_init._target_",
        "_target_",
        None,
        ("never imported", "xavier_normal"),
        id="target",
    ),
    pytest.param(
        ["activation=softmax", "activation.dim=3"],
        "activation.dim",
        "3 is out of range",
        None,
        (),
        id="softmax-dim",
    ),
    pytest.param(
        ["~model.layers"], "model.layers", "no layers", None, (), id="no-layers"
    ),
    pytest.param(
        ["device=cuda"],
        "device",
        "'cuda'",
        None,
        ("not available", "device=cpu", "device=meta"),
        id="cuda-unavailable",
        marks=pytest.mark.skipif(
            torch.cuda.is_available(), reason="this machine has CUDA"
        ),
    ),
]


def assert_short_error(result: Any, key: str, value: str) -> None:
    """Non-zero exit, no traceback, a few lines that name the path and the value."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert re.search(rf"(^|\s){re.escape(key)}: ", result.stderr, re.M), result.stderr
    assert value in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) <= 5, result.stderr
    assert not (result.run_dir / "metrics.json").exists()


def _failed_in_process(args: list[str], tmp_path: Path) -> Any:
    """What the command line would print for ``args``, from the same checks made in
    this process: the override check, composing, the spec, the build."""
    from types import SimpleNamespace

    from annfactory.config import check_overrides

    try:
        check_overrides(args)
        annfactory.build_network(annfactory.to_spec(annfactory.compose(args)))
    except annfactory.ConfigError as error:
        return SimpleNamespace(
            returncode=1, stdout="", stderr=f"{error}\n", run_dir=tmp_path / "run"
        )
    raise AssertionError(f"{args} did not fail")


#: The cases also run on the command line (the rest run there in the bad-input
#: corpus's families): a name before composing, a parameter, a spec check.
ON_THE_COMMAND_LINE = ("init", "init-param", "fan-init-on-bias")


def assert_bad_input_message(
    result: Any,
    key: str,
    value: str,
    suggestion: str | None,
    fragments: tuple[str, ...],
) -> None:
    """A short error that names ``key`` and ``value``, suggests ``suggestion`` and
    says each of ``fragments``."""
    assert_short_error(result, key, value)
    if suggestion is not None:
        assert f"Did you mean {suggestion!r}?" in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "key", "value", "suggestion", "fragments"), BAD_INPUTS
)
def test_bad_input_gets_a_short_message(
    tmp_path: Path,
    args: list[str],
    key: str,
    value: str,
    suggestion: str | None,
    fragments: tuple[str, ...],
) -> None:
    result = _failed_in_process(args, tmp_path)
    assert_bad_input_message(result, key, value, suggestion, fragments)


@pytest.mark.parametrize(
    ("args", "key", "value", "suggestion", "fragments"),
    [case for case in BAD_INPUTS if case.id in ON_THE_COMMAND_LINE],
)
def test_bad_input_gets_a_short_message_on_the_command_line(
    run_cli: RunCli,
    args: list[str],
    key: str,
    value: str,
    suggestion: str | None,
    fragments: tuple[str, ...],
) -> None:
    result = run_cli(*args)
    assert_bad_input_message(result, key, value, suggestion, fragments)


@pytest.mark.parametrize(
    ("args", "error_class"),
    [(["init=xavier_norml"], "UnknownNameError"), (["seed=-1"], "ConfigError")],
    ids=["override-check", "spec-validation"],
)
def test_hydra_full_error_shows_the_chain(
    run_cli: RunCli, args: list[str], error_class: str
) -> None:
    result = run_cli(*args, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert f"annfactory.errors.{error_class}" in result.stderr


def test_a_bad_option_for_every_job_stops_a_sweep_before_any_job(
    run_cli: RunCli,
) -> None:
    # init=bogus applies to every job, so nothing could succeed. (One bad value among
    # a sweep's values fails only its job: see test_sweep.py.)
    result = run_cli("-m", "model=demo", "init=bogus", "seed=1,2")
    assert_short_error(result, "init", "'bogus'")
    # Nothing is close to 'bogus', so the message lists the valid inits instead.
    assert "Valid inits: " in result.stderr
    assert "xavier_normal" in result.stderr
    sweep_dir = result.run_dir.parent / "multirun"
    assert not list(sweep_dir.rglob("metrics.json"))


CANARY_MODULE = """\
from pathlib import Path

Path(__file__).with_name("canary_fired").write_text("imported")


def boom(*args, **kwargs):
    Path(__file__).with_name("canary_called").write_text("called")
"""


@pytest.mark.parametrize(
    ("override", "key", "fragment"),
    [
        (
            "+model.layers.linear1.weight_init._target_=canary_mod.boom",
            "model.layers.linear1.weight_init._target_",
            "never imported",
        ),
        (
            "model.layers.linear1.activation=canary_mod.boom",
            "model.layers.linear1.activation",
            "unknown activation",
        ),
    ],
    ids=["target", "activation"],
)
def test_dotted_paths_are_never_imported(
    run_cli: RunCli, tmp_path: Path, override: str, key: str, fragment: str
) -> None:
    (tmp_path / "canary_mod.py").write_text(CANARY_MODULE)
    python_path = os.pathsep.join(
        filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])
    )
    env = {"PYTHONPATH": python_path, "HYDRA_FULL_ERROR": "0"}
    # Control: with this environment, an import from elsewhere does fire the canary.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(
        [sys.executable, "-c", "import canary_mod"],
        cwd=elsewhere,
        env={**os.environ, **env},
        check=True,
        timeout=60,
    )
    fired = tmp_path / "canary_fired"
    assert fired.exists()
    fired.unlink()

    result = run_cli("model=demo", override, env=env)
    assert_short_error(result, key, "canary_mod")
    assert fragment in result.stderr
    assert not fired.exists()
    assert not (tmp_path / "canary_called").exists()


def test_an_empty_layer_mapping_is_not_a_silent_no_op(run_cli: RunCli) -> None:
    # Hydra merges a dict override into the node, so {} would change nothing.
    result = run_cli("model=demo", "model.layers={}")
    assert_short_error(result, "model.layers", "changes nothing")
    assert "~model.layers" in result.stderr


def test_null_group_override_has_no_traceback(run_cli: RunCli) -> None:
    result = run_cli("model=demo", "init=null")
    assert_short_error(result, "init", "null")
    assert "~init" in result.stderr


def test_parameter_under_a_shorthand_points_to_one_mapping(
    run_cli: RunCli,
) -> None:
    result = run_cli(
        "model.layers.linear1.weight_init=xavier_normal",
        "model.layers.linear1.weight_init.gain=2",
    )
    assert_short_error(result, "model.layers.linear1.weight_init.gain", "one mapping")
    assert (
        "'model.layers.linear1.weight_init={name: xavier_normal, gain: 2}'"
        in result.stderr
    )
