"""A test split (``data.test_fraction``, issue 21): held out before validation,
stratified, never trained on, and scored once with the kept weights; and balanced
accuracy beside accuracy."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.metrics import balanced_accuracy_score

import annfactory
from annfactory import ConfigError
from annfactory.data import load_table, parse_data, split_rows, split_three
from annfactory.tasks import run_named_task


def train(overrides: Sequence[str], output_dir: Path | None = None) -> dict[str, Any]:
    cfg = annfactory.compose(["task=train", *overrides])
    task = OmegaConf.to_container(cfg.task, resolve=True)
    assert isinstance(task, dict)
    out = io.StringIO()
    metrics = run_named_task(task, annfactory.to_spec(cfg), output_dir, out=out)
    metrics["printed"] = out.getvalue()
    return metrics


@pytest.mark.parametrize("name", ["iris", "wine", "diabetes"])
def test_without_a_test_split_the_split_is_as_before(name: str) -> None:
    table = load_table(parse_data(name), seed=7)
    train_rows, val_rows, test_rows = split_three(table, 0.2, 0.0, seed=7)
    before = split_rows(table, 0.2, seed=7)
    assert np.array_equal(train_rows, before[0])
    assert np.array_equal(val_rows, before[1])
    assert test_rows.size == 0


@pytest.mark.parametrize(("name", "seed"), [("iris", 0), ("wine", 3), ("diabetes", 5)])
def test_the_three_splits_cover_every_row_once_in_their_shares(
    name: str, seed: int
) -> None:
    table = load_table(parse_data(name), seed=seed)
    train_rows, val_rows, test_rows = split_three(table, 0.2, 0.25, seed=seed)
    together = np.concatenate([train_rows, val_rows, test_rows])
    assert sorted(together.tolist()) == list(range(table.rows))
    assert len(test_rows) == round(table.rows * 0.25)
    assert len(val_rows) == round(table.rows * 0.2)
    if table.kind == "classification":
        # Stratified: each class in each split in proportion, within one row.
        counts = np.bincount(table.target, minlength=table.n_outputs)
        for rows, share in ((test_rows, 0.25), (val_rows, 0.2)):
            in_split = np.bincount(table.target[rows], minlength=table.n_outputs)
            assert np.all(np.abs(in_split - counts * share) <= 1.0)
    # Another seed, another test split.
    other = split_three(table, 0.2, 0.25, seed=seed + 1)[2]
    assert set(other.tolist()) != set(test_rows.tolist())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.8, r"0.8 \+ data.val_fraction 0.2 = 1 leaves no row to train on"),
        (-0.1, r"-0.1 is outside \[0, 1\)"),
        (1, r"1.0 is outside \[0, 1\)"),
        ("some", "'some' is not a number"),
    ],
)
def test_a_bad_test_fraction_names_the_key(value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        parse_data({"name": "iris", "test_fraction": value})
    assert raised.value.key == "data.test_fraction"


def test_a_test_fraction_too_small_for_one_row_is_refused() -> None:
    table = load_table(parse_data("iris"), seed=0)
    with pytest.raises(ConfigError, match="rounds to no test row") as raised:
        split_three(table, 0.2, 0.001, seed=0)
    assert raised.value.key == "data.test_fraction"


def test_the_spec_keeps_the_test_fraction() -> None:
    spec = parse_data({"name": "wine", "test_fraction": 0.1})
    assert spec.test_fraction == 0.1
    assert parse_data(spec.to_dict()) == spec
    assert parse_data("wine").test_fraction == 0.0


@pytest.mark.heavy  # trains
def test_the_test_rows_are_scored_once_with_the_kept_weights(tmp_path: Path) -> None:
    metrics = train(
        [
            "model=mlp",
            "data=wine",
            "task.epochs=20",
            "data.test_fraction=0.2",
            "seed=3",
        ],
        tmp_path,
    )["train"]
    assert (metrics["rows_train"], metrics["rows_val"], metrics["rows_test"]) == (
        106, 36, 36
    )  # fmt: skip
    # The saved network scores the test rows as metrics.json says.
    spec = annfactory.load_spec(tmp_path / "spec.yaml")
    data = spec.extras["data"]
    table = load_table(data, spec.seed)
    _, val_rows, test_rows = split_three(table, 0.2, 0.2, spec.seed)
    model = annfactory.load_run(tmp_path)
    with torch.no_grad():
        logits = model(torch.tensor(table.features, dtype=torch.float32))
    predicted = logits.argmax(-1).numpy()
    target = table.target
    assert metrics["test_accuracy"] == pytest.approx(
        float((predicted[test_rows] == target[test_rows]).mean()), abs=1e-12
    )
    loss = torch.nn.functional.cross_entropy(
        logits[test_rows], torch.tensor(target[test_rows])
    )
    assert metrics["test_loss"] == pytest.approx(float(loss), rel=1e-5)
    assert metrics["test_balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(target[test_rows], predicted[test_rows])
    )
    assert metrics["val_balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(target[val_rows], predicted[val_rows])
    )
    # Listed beside val_accuracy; no test figure in the history.
    keys = list(metrics)
    assert keys[:3] == ["val_accuracy", "val_balanced_accuracy", "val_loss"]
    assert not any(key.startswith("test") for key in metrics["history"][0])


@pytest.mark.heavy  # trains
def test_the_test_split_changes_no_training_row_choice_but_removes_its_rows() -> None:
    without = train(["model=mlp", "data=iris", "task.epochs=2"])
    with_test = train(
        ["model=mlp", "data=iris", "task.epochs=2", "data.test_fraction=0.2"]
    )
    assert "rows_test" not in without["train"]
    assert "test_loss" not in without["train"]
    assert "/ 30 test rows" in with_test["printed"]
    assert "test_accuracy: " in with_test["printed"]
    assert with_test["train"]["rows_train"] == 90


@pytest.mark.heavy  # trains
def test_a_regression_test_split_scores_r2() -> None:
    metrics = train(
        ["model=mlp", "data=diabetes", "task.epochs=3", "data.test_fraction=0.1"]
    )["train"]
    assert metrics["rows_test"] == 44
    assert {"test_r2", "test_loss"} <= set(metrics)
    assert "val_balanced_accuracy" not in metrics
    assert "test_balanced_accuracy" not in metrics


def test_balanced_accuracy_is_sklearn_s() -> None:
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    from annfactory.scoring import balanced_accuracy

    rng = np.random.default_rng(0)
    for classes in (2, 3, 7):
        for rows in (1, 5, 40, 500):
            truth = rng.integers(0, classes, rows)
            # Right on about half the rows; a class the truth lacks now and then.
            predicted = np.where(
                rng.random(rows) < 0.5, truth, rng.integers(0, classes + 1, rows)
            )
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore"
                )  # "y_pred contains classes not in y_true"
                expected = balanced_accuracy_score(truth, predicted)
            assert balanced_accuracy(truth, predicted) == pytest.approx(expected)
    assert balanced_accuracy([0, 0, 0, 1], [0, 0, 0, 0]) == 0.5
