"""The evaluate task: a trained run scored on a labelled file, with a figure.

``task=evaluate task.run=<dir> data.path=<labelled file>`` predicts every row of the
file as ``task=predict`` does (and writes the same ``predictions.csv``), then scores
the rows that have a target with ``sklearn.metrics``
(:mod:`annfactory.tasks.evaluate_report`). ``metrics.json`` gets an ``evaluate``
section:

- classification: ``accuracy``, ``balanced_accuracy``, ``f1_macro``, ``log_loss``,
  ``classes``, ``confusion_matrix`` (rows: the true classes, in ``classes`` order)
  and, for two classes, ``roc_auc``; ``confusion_matrix.png``;
- regression: ``r2``, ``mae``, ``rmse``; ``residuals.png``.

Rows whose target is missing are left out of the scores (a note says how many). A
file without the target column, or with a class the run was not trained on, is an
error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, TextIO

from annfactory.errors import ConfigError
from annfactory.figures import save_figure
from annfactory.tasks import TaskContext, tasks
from annfactory.tasks.evaluate_report import (
    classification_scores,
    plot_confusion_matrix,
    plot_residuals,
    regression_scores,
)
from annfactory.tasks.predict import (
    OPTIONS,
    open_run,
    options_parser,
    predict_metrics,
    print_predictions,
    write_predictions,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from annfactory.predictor import Predictions, Predictor

__all__ = ["CONFUSION_FILE", "RESIDUALS_FILE", "run"]

CONFUSION_FILE: Final = "confusion_matrix.png"
RESIDUALS_FILE: Final = "residuals.png"


@tasks.register(
    "evaluate",
    params=OPTIONS,
    parse_options=options_parser("evaluate"),
    reads_batch_size=False,
    metric=("evaluate.accuracy", "evaluate.r2"),
)
def run(context: TaskContext) -> dict[str, Any]:
    """Predict the labelled file with the saved run, score it, and draw the figure.

    Raises:
        ConfigError: What ``task=predict`` refuses; a file without the target
            column, without a single target value, or with a class the run was
            not trained on.
    """
    opened = open_run(context, "evaluate")
    predictor, table = opened.predictor, opened.table
    truth, scored = _truth(predictor, table)
    predictions = predictor.predictions(table, key="data.path")
    written = write_predictions(context, predictor, predictions)
    print_predictions(context.out, predictor, predictions, written)
    left_out = table.num_rows - int(scored.sum())
    if left_out:
        print(
            f"note: {left_out} of {table.num_rows} rows have no {predictor.target!r}: "
            "left out of the scores.",
            file=context.out,
        )
    title = f"{opened.file}: {predictor.target}, run {opened.run}"
    section = _scores(context, predictor, predictions, truth, scored, title)
    section["rows_without_target"] = left_out
    _print_scores(context.out, section)
    return {
        "evaluate": section,
        "predict": predict_metrics(predictor, predictions, opened.file),
    }


def _truth(predictor: Predictor, table: pa.Table) -> tuple[Any, Any]:
    """The file's target (class indices in the run's class order, or values) and
    which rows have one.

    Raises:
        ConfigError: Keyed ``data.path``: no target column, no value in it, or a
            class the run was not trained on.
    """
    from annfactory.table_fitting import target_column

    target = predictor.target
    if target not in table.column_names:
        raise ConfigError(
            "data.path",
            f"the file has no column {target!r}, the run's target: task=evaluate "
            "scores the predictions against it.",
            "Give a labelled file, or use task=predict for a file without labels.",
        )
    try:
        labels = target_column(
            table,
            target,
            kind=predictor.kind,
            class_names=predictor.classes,
            key="data.path",
        )
    except ConfigError as error:
        if predictor.classes is not None:
            raise
        # A text cell in a regression's target: the run's kind is settled, so the
        # fix is the cell (data.kind is the training run's, not an option here).
        raise ConfigError(
            error.key,
            error.problem,
            "Fix the cell, or add it to the missing markers (data.na_values).",
        ) from None
    return labels.values, ~labels.missing


def _scores(
    context: TaskContext,
    predictor: Predictor,
    predictions: Predictions,
    truth: Any,
    scored: Any,
    title: str,
) -> dict[str, Any]:
    """The ``evaluate`` section, and the figure staged in the run directory."""
    if predictor.classes is not None:
        assert predictions.probabilities is not None
        section = classification_scores(
            truth[scored], predictions.probabilities[scored], predictor.classes
        )
        figure = plot_confusion_matrix(
            section["confusion_matrix"], predictor.classes, title
        )
        name = CONFUSION_FILE
    else:
        values = predictions.values.astype(float)
        section = regression_scores(truth[scored], values[scored])
        figure = plot_residuals(truth[scored], values[scored], title)
        name = RESIDUALS_FILE
    path = context.path(name)
    if path is not None:
        save_figure(figure, path)
    return section


def _print_scores(out: TextIO, section: dict[str, Any]) -> None:
    rows = section["rows"]
    if "accuracy" in section:
        auc = section.get("roc_auc")
        print(
            f"scored {rows} rows: accuracy {section['accuracy']:.4f}, balanced "
            f"accuracy {section['balanced_accuracy']:.4f}, F1 (macro) "
            f"{section['f1_macro']:.4f}, log loss {section['log_loss']:.4f}"
            + (f", ROC AUC {auc:.4f}" if auc is not None else ""),
            file=out,
        )
        classes = section["classes"]
        width = max(len(name) for name in classes)
        print("confusion matrix (rows: true class; columns: predicted):", file=out)
        for name, counts in zip(classes, section["confusion_matrix"], strict=True):
            cells = " ".join(f"{count:>5}" for count in counts)
            print(f"  {name:<{width}} {cells}", file=out)
    else:
        print(
            f"scored {rows} rows: r2 {section['r2']:.4f}, mae {section['mae']:.4g}, "
            f"rmse {section['rmse']:.4g}",
            file=out,
        )
