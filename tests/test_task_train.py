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
SMALL = {"moons": ["data.n_samples=200"], "spirals": ["data.n_samples=200"]}


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


@pytest.mark.parametrize("name", [n for n in datasets.names() if n != "csv"])
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
    assert fitted["standardize"]["scale"][2] == 1.0
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
