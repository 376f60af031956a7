"""The train task: real data, the derived loss, what a run saves, and bad input.

Runs are composed like a command line (``annfactory.compose`` then ``to_spec``) and
run through ``run_named_task`` with few epochs; the documented command lines run end
to end at the bottom (marked slow).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import annfactory
from annfactory import ConfigError
from annfactory.data import datasets, load_table, split_rows
from annfactory.tasks import run_named_task
from annfactory.tasks.train import CURVES_FILE, HISTORY_FILE

RunCli = Callable[..., Any]

#: Small versions of the synthetic sets, so every option trains in well under a second.
#: A series of 40 steps (``data=series`` needs a file).
SERIES = Path(__file__).resolve().parent / "bad_inputs" / "data" / "series.csv"
SMALL = {
    "moons": ["data.n_samples=200"],
    "spirals": ["data.n_samples=200"],
    "series": [f"data.path={SERIES}", "data.column=sales", "data.window=8"],
}


def train(
    overrides: Sequence[str], output_dir: Path | None = None, out: Any = None
) -> dict[str, Any]:
    cfg = annfactory.compose(["task=train", *overrides])
    spec = annfactory.to_spec(cfg)
    node = cfg.get("task")
    from omegaconf import OmegaConf

    return run_named_task(
        OmegaConf.to_container(node, resolve=True),
        spec,
        output_dir,
        out=out if out is not None else io.StringIO(),
    )


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def two_blobs_csv(path: Path, rows: int = 120) -> Path:
    """Two well separated classes named by text, and a constant feature."""
    generator = np.random.default_rng(0)
    body = []
    for index in range(rows):
        label = "cat" if index % 2 else "dog"
        center = 2.0 if label == "cat" else -2.0
        body.append(
            [
                f"{center + generator.normal():.4f}",
                f"{center + generator.normal():.4f}",
                "1.5",
                label,
            ]
        )
    return write_csv(path, ["x", "y", "constant", "label"], body)


# ------------------------------------------------------------------------------------
# Every data option trains
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [n for n in datasets.names() if n not in ("csv", "parquet")]
)
def test_every_data_option_trains_and_saves_its_outputs(
    name: str, tmp_path: Path
) -> None:
    metrics = train(
        ["model=mlp", f"data={name}", "task.epochs=3", *SMALL.get(name, [])], tmp_path
    )
    result = metrics["train"]
    kind = load_table(annfactory.to_spec(annfactory.compose(
        ["task=train", "model=mlp", f"data={name}", *SMALL.get(name, [])]
    )).extras["data"], 0).kind  # fmt: skip
    metric = "val_r2" if kind == "regression" else "val_accuracy"
    assert result["epochs_run"] == 3
    assert [row["epoch"] for row in result["history"]] == [1, 2, 3]
    assert set(result["history"][0]) == {
        "epoch", "train_loss", "val_loss", metric, metric.replace("val", "train"),
        "lr", "seconds"
    }  # fmt: skip
    assert math.isfinite(result["val_loss"])
    assert math.isfinite(result[metric])
    if kind == "classification":
        assert 0 <= result[metric] <= 1
    for file in ("metrics.json", HISTORY_FILE, CURVES_FILE, "spec.yaml"):
        assert (tmp_path / file).is_file(), file
    assert (tmp_path / "weights.safetensors").is_file()
    # A forecast's picture for a series only.
    assert (tmp_path / "forecast.png").is_file() == (name == "series")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["train"][metric] == pytest.approx(result[metric])


def test_a_csv_file_trains_and_keeps_its_class_names(tmp_path: Path) -> None:
    path = two_blobs_csv(tmp_path / "pets.csv")
    run_dir = tmp_path / "run"
    metrics = train(
        ["model=mlp", "data=csv", f"data.path={path}", "data.target=label",
         "task.epochs=20"],
        run_dir,
    )  # fmt: skip
    assert metrics["train"]["val_accuracy"] >= 0.95
    spec = annfactory.load_spec(run_dir / "spec.yaml")
    fitted = spec.extras["data"].fitted
    assert fitted["class_names"] == ["cat", "dog"]
    assert fitted["feature_names"] == ["x", "y", "constant"]
    # The constant feature is left unscaled (scale 1), not divided by zero.
    columns = {column["name"]: column for column in fitted["columns"]["features"]}
    assert columns["constant"]["scale"] == 1.0
    assert spec.network.layers[0].type == "encode_table"
    # The saved run needs the data file no more: its sizes are in data.fitted.
    path.unlink()
    model = annfactory.load_run(run_dir)
    cat = torch.tensor([[2.0, 2.0, 1.5]])
    assert model(cat).argmax(-1).item() == fitted["class_names"].index("cat")


# ------------------------------------------------------------------------------------
# The recipe, the loss and determinism
# ------------------------------------------------------------------------------------


def test_the_default_recipe_reaches_97_percent_on_digits() -> None:
    metrics = train(["model=mlp", "data=digits"])
    assert metrics["train"]["val_accuracy"] >= 0.97


def history_without_time(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in row.items() if k != "seconds"}
        for row in metrics["train"]["history"]
    ]


def test_the_same_seed_gives_a_bit_identical_history_and_another_seed_another() -> None:
    args = ["model=mlp", "data=iris", "task.epochs=5"]
    first, again = train(args), train(args)
    other = train([*args, "seed=1"])
    assert history_without_time(first) == history_without_time(again)
    assert history_without_time(first) != history_without_time(other)


def test_a_softmax_output_trains_exactly_like_logits_with_cross_entropy() -> None:
    """The classic bug would be a second softmax: CrossEntropyLoss on probabilities.
    The derived loss of a softmax output is NLL of the log-softmax of its
    pre-activation, so the two networks train identically, epoch by epoch."""
    args = ["model=mlp", "data=wine", "task.epochs=8"]
    logits = train(args)["train"]
    softmax = train([*args, "model.output_activation=softmax"])["train"]
    assert logits["loss"] == "cross_entropy"
    assert softmax["loss"] == "nll"
    for plain, normalized in zip(logits["history"], softmax["history"], strict=True):
        assert normalized["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-5)
        assert normalized["val_loss"] == pytest.approx(plain["val_loss"], rel=1e-5)
        assert normalized["val_accuracy"] == plain["val_accuracy"]


def test_log_softmax_output_trains_like_logits_too() -> None:
    args = ["model=mlp", "data=iris", "task.epochs=4"]
    logits = train(args)["train"]["history"]
    log_probabilities = train([*args, "model.output_activation=log_softmax"])
    for plain, other in zip(logits, log_probabilities["train"]["history"], strict=True):
        assert other["val_loss"] == pytest.approx(plain["val_loss"], rel=1e-5)


def test_one_sigmoid_unit_on_two_classes_trains_with_binary_cross_entropy() -> None:
    metrics = train(
        ["model=mlp", "data=breast_cancer", "model.out_features=1",
         "model.output_activation=sigmoid", "task.epochs=10"]
    )["train"]  # fmt: skip
    assert metrics["loss"] == "bce"
    assert metrics["val_accuracy"] >= 0.9


# ------------------------------------------------------------------------------------
# The saved model takes raw rows
# ------------------------------------------------------------------------------------


def raw_validation_rows(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    spec = annfactory.load_spec(run_dir / "spec.yaml")
    data = spec.extras["data"]
    table = load_table(data, spec.seed)
    _, val_index = split_rows(table, data.val_fraction, spec.seed)
    return table.features[val_index], table.target[val_index]


def test_the_saved_classifier_takes_raw_rows_and_scores_the_runs_accuracy(
    tmp_path: Path,
) -> None:
    metrics = train(["model=mlp", "data=wine", "task.epochs=15"], tmp_path)
    model = annfactory.load_run(tmp_path)
    assert type(model.get_submodule("standardize")).__name__ == "Standardize"
    rows, target = raw_validation_rows(tmp_path)
    with torch.no_grad():
        predicted = model(torch.tensor(rows, dtype=torch.float32)).argmax(-1).numpy()
    accuracy = float((predicted == target).mean())
    assert accuracy == pytest.approx(metrics["train"]["val_accuracy"], abs=1e-9)


def test_the_saved_regressor_answers_in_the_targets_units(tmp_path: Path) -> None:
    metrics = train(["model=mlp", "data=diabetes", "task.epochs=30"], tmp_path)
    model = annfactory.load_run(tmp_path)
    rows, target = raw_validation_rows(tmp_path)
    with torch.no_grad():
        predicted = model(torch.tensor(rows, dtype=torch.float32)).squeeze(-1).double()
    predicted_np = predicted.numpy()
    r2 = (
        1 - ((target - predicted_np) ** 2).sum() / ((target - target.mean()) ** 2).sum()
    )
    assert r2 == pytest.approx(metrics["train"]["val_r2"], abs=1e-4)
    # In the target's units (diabetes' progression, about 25 to 346), not standardized.
    assert 50 < predicted_np.mean() < 250
    assert metrics["train"]["val_r2"] > 0.3


# ------------------------------------------------------------------------------------
# What a run writes
# ------------------------------------------------------------------------------------


def test_history_csv_and_metrics_json_hold_the_same_table(tmp_path: Path) -> None:
    metrics = train(["model=mlp", "data=iris", "task.epochs=4"], tmp_path)
    with (tmp_path / HISTORY_FILE).open() as file:
        rows = list(csv.DictReader(file))
    history = metrics["train"]["history"]
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4]
    for row, record in zip(rows, history, strict=True):
        assert float(row["val_loss"]) == pytest.approx(record["val_loss"])
        assert float(row["val_accuracy"]) == pytest.approx(record["val_accuracy"])
    summary = metrics["train"]
    for key in ("train_loss", "val_loss", "val_accuracy", "best_epoch", "epochs_run",
                "seconds"):  # fmt: skip
        assert key in summary, key
    best = min(history, key=lambda row: row["val_loss"])
    assert summary["best_epoch"] == best["epoch"]
    # keep=best: the final figures are the best epoch's, the saved weights' figures.
    assert summary["val_loss"] == best["val_loss"]


def test_curves_png_is_a_figure(tmp_path: Path) -> None:
    train(["model=mlp", "data=iris", "task.epochs=5"], tmp_path)
    with Image.open(tmp_path / CURVES_FILE) as image:
        assert image.size == (1100, 400)
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # not blank


def test_patience_stops_early_and_keep_last_keeps_the_last_epoch() -> None:
    metrics = train(
        ["model=mlp", "data=iris", "task.epochs=300", "task.patience=3",
         "optimizer.lr=0.05", "task.keep=last"]
    )["train"]  # fmt: skip
    assert metrics["stopped_early"]
    assert metrics["epochs_run"] < 300
    assert metrics["epochs_run"] - metrics["best_epoch"] == 3
    assert metrics["kept_epoch"] == metrics["epochs_run"]


def test_threads_beyond_the_cores_train_on_the_cores_with_a_note() -> None:
    import os

    cores = len(os.sched_getaffinity(0))
    out = io.StringIO()
    metrics = train(
        ["model=mlp", "data=iris", "task.epochs=1", f"task.threads={cores + 7}"],
        out=out,
    )["train"]
    assert metrics["threads"] == cores
    assert (
        f"note: task.threads={cores + 7} is more than the {cores} CPU cores this run "
        f"may use; training on {cores} threads." in out.getvalue()
    )
    quiet = io.StringIO()
    assert (
        train(["model=mlp", "data=iris", "task.epochs=1"], out=quiet)["train"][
            "threads"
        ]
        == 1
    )  # a small network: one thread
    assert "task.threads" not in quiet.getvalue()


def test_progress_is_a_line_every_few_epochs_off_a_terminal() -> None:
    out = io.StringIO()
    train(["model=mlp", "data=iris", "task.epochs=40"], out=out)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("epoch")]
    assert [line.split()[1] for line in lines] == [
        f"{epoch}/40" for epoch in (1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                       26, 28, 30, 32, 34, 36, 38, 40)
    ]  # fmt: skip


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    out = io.StringIO()
    train(["model=mlp", "data=iris", "task.epochs=5"], out=out)
    bar = terminal.getvalue()
    assert "5/5" in bar
    assert "val_accuracy" in bar
    assert "epoch" in bar
    # No per-epoch lines in the report (run.log) when the bar shows the progress.
    assert not [
        line for line in out.getvalue().splitlines() if line.startswith("epoch")
    ]


def test_optimizer_options_reach_the_optimizer() -> None:
    metrics = train(
        ["model=mlp", "data=iris", "task.epochs=2", "optimizer=sgd",
         "optimizer.lr=0.1", "optimizer.momentum=0.9", "task.schedule=step",
         "task.step_size=1", "task.gamma=0.5"]
    )["train"]  # fmt: skip
    assert metrics["optimizer"]["name"] == "sgd"
    assert [row["lr"] for row in metrics["history"]] == [0.1, 0.05]


def test_clip_grad_norm_reaches_the_loop() -> None:
    # SGD without momentum moves the weights by lr times the (clipped) gradient: a
    # tiny bound leaves every step tiny, so the train loss barely moves from the
    # first epoch to the last, where the unclipped run's falls.
    common = ["model=mlp", "data=iris", "task.epochs=3", "optimizer=sgd",
              "optimizer.lr=0.5", "task.keep=last"]  # fmt: skip
    free = train(common)["train"]["history"]
    clipped = train([*common, "task.clip_grad_norm=1e-6"])["train"]["history"]
    assert abs(clipped[-1]["train_loss"] - clipped[0]["train_loss"]) < 1e-4
    assert free[-1]["train_loss"] < free[0]["train_loss"] - 0.05


# ------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "key", "words"),
    [
        (["model=mlp"], "data", "digits"),
        (["model=mlp", "data=digits", "model.in_features=3"], "model.in_features",
         "3 inputs, and data=digits has 64"),
        (["model=mlp", "data=iris", "model.out_features=2"], "model.out_features",
         "2 outputs"),
        (["model=mlp", "data=digits", "model.output_activation=softmax",
          "task.loss=cross_entropy"], "task.loss", "second softmax"),
        (["model=mlp", "data=diabetes", "task.loss=cross_entropy"], "task.loss",
         "regression"),
        (["model=mlp", "data=digits", "task.loss=mse"], "task.loss", "regression loss"),
        (["model=mlp", "data=digits", "device=meta"], "device", "meta"),
        (["model=mlp", "data=digits", "task.epochs=0"], "task.epochs", ">= 1"),
        (["model=mlp", "data=digits", "optimizer.lr=0"], "optimizer.lr", "0"),
        (["model=mlp", "data=digits", "optimizer.lr=-0.1"], "optimizer.lr", "-0.1"),
        (["model=mlp", "data=digits", "data.val_fraction=1.5"], "data.val_fraction",
         "1.5"),
        (["model=mlp", "data=digits", "task.clip_grad_norm=0"],
         "task.clip_grad_norm", "0"),
        (["model=mlp", "data=digits", "task.clip_grad_norm=big"],
         "task.clip_grad_norm", "big"),
    ],
)  # fmt: skip
def test_bad_training_input_names_the_key(
    args: list[str], key: str, words: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        train(args, tmp_path)
    message = str(info.value)
    assert message.startswith(key), message
    assert words in message, message
    assert len(message.splitlines()) <= 3, message
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_documented_command_trains_and_saves(run_cli: RunCli) -> None:
    result = run_cli("task=train", "model=mlp", "data=iris", "task.epochs=30")
    assert result.returncode == 0, result.stderr
    assert "val_accuracy" in result.stdout
    for file in ("metrics.json", HISTORY_FILE, CURVES_FILE, "spec.yaml",
                 "weights.safetensors", "run.log"):  # fmt: skip
        assert (result.run_dir / file).is_file(), file


@pytest.mark.slow
def test_a_sweep_summary_shows_the_training_metrics(
    run_cli: RunCli, tmp_path: Path
) -> None:
    result = run_cli(
        "-m", "task=train", "model=mlp", "data=iris", "task.epochs=3",
        "activation=relu,tanh",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "epoch 1/" not in result.stdout  # nothing per epoch in a sweep
    with (tmp_path / "multirun" / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2
    assert all(row["status"] == "ok" for row in rows)
    for column in ("train.val_accuracy", "train.val_loss", "train.train_loss"):
        assert all(float(row[column]) >= 0 for row in rows), column
    assert "train.history" not in rows[0]


@pytest.mark.slow
def test_a_missing_csv_file_fails_on_the_command_line_without_outputs(
    run_cli: RunCli, tmp_path: Path
) -> None:
    result = run_cli(
        "task=train", "model=mlp", "data=csv", f"data.path={tmp_path / 'nope.csv'}",
        "data.target=label",
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "data.path" in result.stderr
    assert "nope.csv" in result.stderr
    assert not (result.run_dir / "metrics.json").exists()


# ------------------------------------------------------------------------------------
# Issue 19: batch norm's last row, half precision, dropout's seed, patience
# ------------------------------------------------------------------------------------

#: A network with its batch norm inside a residual block, for 2-feature data.
NORM_IN_BLOCK = {
    "type": "sequential",
    "in_features": 2,
    "layers": {
        "fc1": {"type": "linear", "out_features": 8, "activation": "relu"},
        "block": {
            "type": "residual",
            "layers": {
                "fc": {"type": "linear", "out_features": 8},
                "norm": {"type": "batch_norm"},
            },
        },
        "out": {"type": "linear", "out_features": 2},
    },
}


def train_spec(
    model: dict[str, Any], data: dict[str, Any], **options: Any
) -> tuple[dict[str, Any], str]:
    """Train a model given as a mapping (the train task's metrics, its printout)."""
    spec = annfactory.parse_run({"model": model, "data": data, "seed": 0})
    out = io.StringIO()
    metrics = run_named_task({"name": "train", **options}, spec, None, out=out)
    return metrics, out.getvalue()


def test_a_last_batch_of_one_row_joins_the_one_before_with_batch_norm() -> None:
    """65 training rows in batches of 64 leave 1 row, which batch norm cannot
    normalize (torch: "Expected more than 1 value per channel when training")."""
    metrics, printed = train_spec(
        NORM_IN_BLOCK, {"name": "moons", "n_samples": 81}, epochs=2
    )
    assert metrics["train"]["rows_train"] == 65
    assert metrics["train"]["epochs_run"] == 2
    notes = [line for line in printed.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: 65 training rows leave 1 row for the last batch of an epoch, and "
        "batch norm needs 2 or more: it joins the batch before it (65 rows)."
    ]
    # 66 rows leave 2: nothing to say.
    _, printed = train_spec(NORM_IN_BLOCK, {"name": "moons", "n_samples": 82}, epochs=1)
    assert "note:" not in printed


def test_one_row_per_step_with_batch_norm_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^task\.batch_size: 1 row per step: the network's batch norm needs 2 "
        r"or more rows .*\n  Use task\.batch_size=2 or more\.$",
    ):
        train_spec(NORM_IN_BLOCK, {"name": "moons", "n_samples": 81}, batch_size=1)


def first_epoch(metrics: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = metrics["history"][0]
    return row


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_trains_as_well_as_float32(tmp_path: Path, dtype: str) -> None:
    """Mixed precision (float32 master weights, autocast, a loss scale for float16):
    float16's epoch-1 loss was 153 against 2.25, and SGD learned nothing."""
    recipe = ["model=mlp", "data=iris", "task.epochs=40", "optimizer.lr=0.01"]
    full = train([*recipe, "dtype=float32"])["train"]
    out = io.StringIO()
    half = train([*recipe, f"dtype={dtype}"], tmp_path, out)["train"]

    assert first_epoch(half)["train_loss"] == pytest.approx(
        first_epoch(full)["train_loss"], rel=0.01
    )
    assert half["val_accuracy"] >= full["val_accuracy"] - 0.034  # one row of 30
    assert half["val_loss"] == pytest.approx(full["val_loss"], rel=0.05)
    # The validation loss is not rounded to the half-precision grid: keep=best
    # picks the epoch float32 picks.
    assert half["best_epoch"] == full["best_epoch"]
    assert f"precision: {dtype} mixed" in out.getvalue()
    # The saved network keeps the requested dtype.
    loaded = annfactory.load_run(tmp_path)
    floats = {t.dtype for t in loaded.state_dict().values() if t.is_floating_point()}
    assert floats == {getattr(torch, dtype)}


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_the_step_memory_check_counts_what_mixed_precision_trains(
    dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mixed precision keeps float32 weights and data: its step batch's memory is
    checked in float32 (it was checked in float16, half the weights' bytes)."""
    from annfactory import factory

    checked: list[tuple[str, int, str]] = []
    check = factory.check_memory

    def record(spec: Any, modules: Any, batch_key: str = "batch_size") -> None:
        checked.append((batch_key, spec.batch_size, spec.dtype))
        check(spec, modules, batch_key)

    monkeypatch.setattr(factory, "check_memory", record)
    train(["model=mlp", "data=iris", "task.epochs=1", "task.batch_size=16",
           f"dtype={dtype}"])  # fmt: skip
    assert ("task.batch_size", 16, "float32") in checked


def test_float16_sgd_learns() -> None:
    """Updates below float16's resolution vanished: SGD stayed at chance (0.09)."""
    recipe = ["model=mlp", "data=digits", "optimizer=sgd", "optimizer.lr=0.02",
              "optimizer.momentum=0.9", "task.epochs=3",
              "task.batch_size=32"]  # fmt: skip
    full = train([*recipe, "dtype=float32"])["train"]
    half = train([*recipe, "dtype=float16"])["train"]
    assert full["val_accuracy"] > 0.8  # the premise
    assert half["val_accuracy"] == pytest.approx(full["val_accuracy"], abs=0.02)


#: model=mlp with a dropout layer after each hidden layer.
DROPOUT = {
    "type": "sequential",
    "in_features": 4,
    "layers": {
        "fc1": {"type": "linear", "out_features": 16, "activation": "relu"},
        "drop1": {"type": "dropout", "p": 0.3},
        "out": {"type": "linear", "out_features": 3},
    },
}


def test_dropout_draws_from_the_run_seed_not_torch_s_global_generator() -> None:
    """Two runs with the same seed give the same history, whatever state torch's
    global generator is in; the run leaves that state as it found it."""
    torch.manual_seed(1)
    first, _ = train_spec(DROPOUT, {"name": "iris"}, epochs=3)
    torch.manual_seed(2)
    state = torch.get_rng_state()
    second, _ = train_spec(DROPOUT, {"name": "iris"}, epochs=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert history_without_time(first) == history_without_time(second)
    # The premise: dropout draws (p=0 gives another history).
    layers = {**DROPOUT["layers"], "drop1": {"type": "dropout", "p": 0.0}}
    no_drop = {**DROPOUT, "layers": layers}
    third, _ = train_spec(no_drop, {"name": "iris"}, epochs=3)
    assert history_without_time(third) != history_without_time(first)


@pytest.mark.slow
def test_dropout_gives_the_same_history_in_two_processes(
    run_cli: RunCli, tmp_path: Path
) -> None:
    folder = tmp_path / "conf" / "model"
    folder.mkdir(parents=True)
    (folder / "dropped.yaml").write_text(json.dumps(DROPOUT), encoding="utf-8")
    histories = []
    for fresh in (False, True):  # a fork of the test server, a new interpreter
        result = run_cli(
            "--config-dir", str(tmp_path / "conf"), "task=train", "model=dropped",
            "data=iris", "task.epochs=3", timeout=120, fresh=fresh,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        metrics = json.loads((result.run_dir / "metrics.json").read_text())
        histories.append(history_without_time(metrics))
    assert histories[0] == histories[1]


def patience_stop(losses: Sequence[float], patience: int, reset: bool = True) -> int:
    """The epoch the patience rule stops at, from a history of validation losses
    (``reset=False``: a counter never reset on improvement, the planted bug)."""
    best, since = math.inf, 0
    for epoch, loss in enumerate(losses, start=1):
        if loss < best:
            best, since = loss, 0 if reset else since
        else:
            since += 1
        if since >= patience and epoch < len(losses):
            return epoch
    return len(losses)


def test_patience_counts_the_epochs_since_the_last_improvement() -> None:
    """A run whose validation loss goes down, up, and down again before it stops
    improving: patience stops where the rule says, not at the first bump."""
    recipe = ["model=mlp", "data=iris", "optimizer.lr=0.05", "seed=1"]
    full = train([*recipe, "task.epochs=30"])
    losses = [row["val_loss"] for row in full["train"]["history"]]
    patience = 3
    stop = patience_stop(losses, patience)
    # The premise: an earlier stretch without improvement that a counter never
    # reset would add to (it would stop at another epoch).
    assert stop < 30
    assert patience_stop(losses, patience, reset=False) != stop

    early = train([*recipe, "task.epochs=30", f"task.patience={patience}"])
    result = early["train"]

    assert result["stopped_early"]
    assert result["epochs_run"] == stop
    assert result["epochs_run"] - result["best_epoch"] == patience
    assert history_without_time(early) == history_without_time(full)[:stop]


@pytest.mark.parametrize("epochs", [2, 3, 7])
def test_curves_of_a_short_run_tick_whole_epochs(epochs: int) -> None:
    from annfactory.tasks.train import plot_curves

    history = [
        {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.1 / epoch,
         "val_accuracy": 0.5, "train_accuracy": 0.5, "lr": 0.001, "seconds": 0.1}
        for epoch in range(1, epochs + 1)
    ]  # fmt: skip
    figure = plot_curves(history, "accuracy", "title", kept=epochs)
    figure.canvas.draw()
    for axes in figure.axes:
        low, high = axes.get_xlim()
        ticks = [tick for tick in axes.get_xticks() if low <= tick <= high]
        assert ticks, axes.get_title()
        assert all(float(tick).is_integer() for tick in ticks), ticks


def test_a_long_command_lines_title_stays_inside_the_figure() -> None:
    # A recipe of a dozen overrides ran off both edges of curves.png's title.
    from types import SimpleNamespace

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from annfactory.tasks.train import plot_curves
    from annfactory.tasks.train_report import figure_title

    overrides = ["task=train", "model=gru", "data=series", "data.path=airline.csv",
                 "data.column=passengers", "data.season=12", "task.epochs=300",
                 "optimizer.lr=0.003", "task.batch_size=16", "task.clip_grad_norm=1",
                 "task.schedule=cosine", "model.layers.rnn.bias_init=default",
                 "optimizer=adamw", "optimizer.weight_decay=0.05"]  # fmt: skip
    context = SimpleNamespace(own_overrides=overrides)
    summary = {"kept_epoch": 5, "val_r2": 0.5, "val_loss": 0.25, "loss": "mse"}
    title = figure_title(context, summary, "val_r2")  # type: ignore[arg-type]
    assert all(override in title for override in overrides)
    history = [
        {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.1 / epoch,
         "val_r2": 0.5, "train_r2": 0.5, "lr": 0.001, "seconds": 0.1}
        for epoch in range(1, 6)
    ]  # fmt: skip
    figure = plot_curves(history, "r2", title, kept=5)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # the constrained layout places the title
    text = figure.texts[0]  # type: ignore[attr-defined]
    box = text.get_window_extent(canvas.get_renderer())
    assert box.x0 >= 0
    assert box.x1 <= figure.bbox.width


def test_training_calls_each_layer_through_module_call_so_hooks_fire() -> None:
    # A user's layer may work through hooks (torch.nn.utils' older weight_norm and
    # spectral_norm do): training must call modules as torch does, module(x).
    from annfactory.tasks.train import _core

    model = annfactory.build_model(annfactory.compose(["model=demo"]))
    seen: list[str] = []
    for name, child in model.named_children():
        child.register_forward_pre_hook(lambda _m, _a, name=name: seen.append(name))
    logits = _core(model, "out", skip_output_activation=True)
    out = logits(torch.randn(4, 3))
    assert out.shape == (4, 2)
    assert seen == ["linear1", "linear1_act", "linear2", "linear2_act", "out"]
