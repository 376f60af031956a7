"""The figures and scores of ``task=evaluate``: a saved run's predictions on a
labelled file, scored by ``sklearn.metrics`` (never written by hand), and
``confusion_matrix.png`` or ``residuals.png``."""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

__all__ = [
    "classification_scores",
    "plot_confusion_matrix",
    "plot_residuals",
    "regression_scores",
]

_FIGURE_DPI: Final = 100
#: Above this many classes the cells of the confusion matrix carry no numbers.
_NUMBERED_CLASSES: Final = 20


def classification_scores(
    truth: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """``metrics.json``'s ``evaluate`` section for a classifier.

    Args:
        truth: Each row's true class index, ``[rows]``.
        probabilities: Each row's probability of each class, ``[rows, classes]``.
        classes: The class names, in index order.

    Returns:
        ``accuracy``, ``balanced_accuracy``, ``f1_macro``, ``log_loss``, ``classes``,
        ``confusion_matrix`` (rows: the true classes, columns: the predicted ones,
        both in ``classes`` order), ``rows``, and ``roc_auc`` where there are two
        classes and both occur in ``truth`` (else None).
    """
    import numpy as np
    from sklearn.metrics import (  # type: ignore[import-untyped]
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        log_loss,
        roc_auc_score,
    )

    labels = list(range(len(classes)))
    predicted = probabilities.argmax(axis=1)
    roc_auc = None
    if len(classes) == 2 and len(np.unique(truth)) == 2:
        roc_auc = float(roc_auc_score(truth, probabilities[:, 1]))
    with warnings.catch_warnings():
        # A class absent from the file: balanced accuracy is the mean recall of the
        # classes present, and F1 counts the absent class as 0 (scikit-learn warns
        # of both; the figures are defined).
        warnings.simplefilter("ignore")
        balanced = float(balanced_accuracy_score(truth, predicted))
        f1 = float(
            f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)
        )
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "balanced_accuracy": balanced,
        "f1_macro": f1,
        "log_loss": float(log_loss(truth, probabilities, labels=labels)),
        "roc_auc": roc_auc,
        "rows": len(truth),
        "classes": list(classes),
        "confusion_matrix": confusion_matrix(truth, predicted, labels=labels).tolist(),
    }


def regression_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """``metrics.json``'s ``evaluate`` section for a regressor: ``r2``, ``mae``,
    ``rmse`` (in the target's units) and ``rows``."""
    import math

    from sklearn.metrics import (
        mean_absolute_error,
        mean_squared_error,
        r2_score,
    )

    return {
        "r2": float(r2_score(truth, predicted)),
        "mae": float(mean_absolute_error(truth, predicted)),
        "rmse": math.sqrt(float(mean_squared_error(truth, predicted))),
        "rows": len(truth),
    }


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str
) -> Figure:
    """``confusion_matrix.png``: the counts, true classes down, predicted across,
    shaded by each true class's share (so a small class reads as well as a large
    one), with the count in each cell."""
    import numpy as np
    from matplotlib.figure import Figure

    counts = np.asarray(matrix, dtype=float)
    n = len(classes)
    side = min(12.0, max(4.5, 0.6 * n + 3.0))
    figure = Figure(figsize=(side, side * 0.9), dpi=_FIGURE_DPI, layout="constrained")
    axes = figure.subplots()
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of the true class's rows")
    axes.set_xticks(range(n), labels=list(classes), rotation=45 if n > 4 else 0)
    axes.set_yticks(range(n), labels=list(classes))
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if n <= _NUMBERED_CLASSES:
        for row in range(n):
            for column in range(n):
                dark = shares[row, column] > 0.6
                axes.text(
                    column,
                    row,
                    f"{int(counts[row, column])}",
                    ha="center",
                    va="center",
                    color="white" if dark else "black",
                )
    # About ten characters of a 10-point title per inch: long run paths wrap.
    figure.suptitle(textwrap.fill(title, int(side * 10)), fontsize=10)
    return figure


def plot_residuals(truth: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    """``residuals.png``: predicted against true values (with the line of perfect
    predictions), and the residuals against the predictions."""
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.5), dpi=_FIGURE_DPI, layout="constrained")
    scatter, residual = figure.subplots(1, 2)
    size = 12 if len(truth) < 2000 else 3
    scatter.scatter(truth, predicted, s=size, alpha=0.6)
    low = float(min(np.min(truth), np.min(predicted)))
    high = float(max(np.max(truth), np.max(predicted)))
    scatter.plot([low, high], [low, high], "--", color="grey", label="perfect")
    scatter.set_xlabel("true value")
    scatter.set_ylabel("predicted value")
    scatter.legend(loc="upper left")
    residual.scatter(predicted, predicted - truth, s=size, alpha=0.6)
    residual.axhline(0.0, linestyle="--", color="grey")
    residual.set_xlabel("predicted value")
    residual.set_ylabel("predicted - true")
    figure.suptitle(title, fontsize=10)
    return figure
