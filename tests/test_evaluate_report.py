"""The scores and figures of task=evaluate (annfactory.tasks.evaluate_report):
sklearn.metrics' figures, and pictures of the right size."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annfactory.figures import save_figure
from annfactory.tasks.evaluate_report import (
    classification_scores,
    plot_confusion_matrix,
    plot_residuals,
    regression_scores,
)

CLASSES = ("Adelie", "Chinstrap", "Gentoo")


def test_classification_scores_by_hand() -> None:
    truth = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    probabilities = np.array(
        [
            [0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.25, 0.25],
            [0.1, 0.8, 0.1], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8], [0.1, 0.2, 0.7],
        ]
    )  # fmt: skip
    scores = classification_scores(truth, probabilities, CLASSES)
    assert scores["accuracy"] == 7 / 8
    assert scores["balanced_accuracy"] == pytest.approx((3 / 4 + 1 + 1) / 3)
    assert scores["confusion_matrix"] == [[3, 1, 0], [0, 2, 0], [0, 0, 2]]
    # F1 per class: Adelie 2*3/(2*3+1+0) = 6/7, Chinstrap 2*2/(4+1) = 4/5, Gentoo 1.
    assert scores["f1_macro"] == pytest.approx((6 / 7 + 4 / 5 + 1) / 3)
    chosen = probabilities[np.arange(8), truth]
    assert scores["log_loss"] == pytest.approx(-np.log(chosen).mean())
    assert scores["roc_auc"] is None  # three classes
    assert scores["classes"] == list(CLASSES)
    assert scores["rows"] == 8


def test_two_classes_get_roc_auc_and_an_absent_class_is_allowed() -> None:
    truth = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.35, 0.65], [0.2, 0.8]])
    scores = classification_scores(truth, probabilities, ("no", "yes"))
    assert scores["roc_auc"] == pytest.approx(1.0)  # every yes above every no
    only_one = classification_scores(np.array([1, 1]), probabilities[2:], ("no", "yes"))
    assert only_one["roc_auc"] is None
    assert only_one["accuracy"] == 1.0
    assert only_one["confusion_matrix"] == [[0, 0], [0, 2]]


def test_regression_scores_are_in_the_target_s_units() -> None:
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.5, 2.0, 2.0, 4.0])
    scores = regression_scores(truth, predicted)
    assert scores["mae"] == pytest.approx(1.5 / 4)
    assert scores["rmse"] == pytest.approx(math.sqrt((0.25 + 1.0) / 4))
    assert scores["r2"] == pytest.approx(1 - 1.25 / 5.0)
    assert scores["rows"] == 4


@pytest.mark.heavy  # draws
def test_the_figures_are_pngs_of_their_size(tmp_path: Path) -> None:
    matrix = [[48, 2, 0], [1, 19, 0], [0, 0, 37]]
    path = tmp_path / "confusion_matrix.png"
    save_figure(plot_confusion_matrix(matrix, CLASSES, "penguins: species"), path)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (480, 432)
    rng = np.random.default_rng(0)
    truth = rng.normal(size=200)
    path = tmp_path / "residuals.png"
    save_figure(plot_residuals(truth, truth + rng.normal(0, 0.3, 200), "t"), path)
    with Image.open(path) as image:
        assert image.size == (1000, 450)
