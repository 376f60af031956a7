"""What ``task=train`` prints and draws: its header and result lines, progress, the
history's CSV, the figure of ``curves.png`` and ``data=series``'s ``forecast.png``
(see :mod:`annfactory.tasks.train`)."""

from __future__ import annotations

import csv
import io
import math
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from annfactory.data import Table
    from annfactory.losses import LossChoice
    from annfactory.spec import RunSpec
    from annfactory.tasks import TaskContext
    from annfactory.tasks.train_options import TrainOptions
    from annfactory.training import EpochRecord

__all__ = [
    "Progress",
    "figure_title",
    "history_csv",
    "history_row",
    "in_sweep",
    "plot_curves",
    "plot_forecast",
    "print_header",
    "print_result",
]

#: Without a terminal, about this many progress lines per run.
_PROGRESS_LINES: Final = 20
_FIGURE_INCHES: Final = (11.0, 4.0)
_FIGURE_DPI: Final = 100
#: Characters a line of a figure's title (font size 10: about 11 an inch of the 11-inch
#: figure).
_TITLE_WIDTH: Final = 115


def history_row(record: EpochRecord, metric: str) -> dict[str, Any]:
    return {
        "epoch": record.epoch,
        "train_loss": record.train_loss,
        "val_loss": record.val_loss,
        f"val_{metric}": record.metric,
        f"train_{metric}": record.train_metric,
        "lr": record.lr,
        "seconds": record.seconds,
    }


def history_csv(history: Sequence[Mapping[str, Any]]) -> str:
    """The per-epoch table of ``metrics.json``'s history as CSV text."""
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(
            buffer, fieldnames=list(history[0]), lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(history)
    return buffer.getvalue()


def print_header(
    out: TextIO,
    spec: RunSpec,
    table: Table,
    train_index: np.ndarray,
    val_index: np.ndarray,
    choice: LossChoice,
    options: TrainOptions,
    test_rows: int = 0,
) -> None:
    what = (
        f"{table.n_outputs} classes" if table.kind == "classification" else "regression"
    )
    test = f" / {test_rows} test" if test_rows else ""
    features = f"{table.n_features} features"
    if table.columns is not None:
        features = f"{table.n_features} feature columns ({table.input_width} inputs)"
    print(
        f"data: {table.name}, {table.rows} rows x {features}, "
        f"{what}; {len(train_index)} train / {len(val_index)} validation{test} rows",
        file=out,
    )
    if table.columns is not None:
        from annfactory.table_fitting import describe_columns

        # Every column's type, once, as spec.yaml records it (fitted on the
        # training rows).
        for line in describe_columns(table.columns):
            print(f"  {line}", file=out)
    for note in table.notes:
        print(note if note.startswith("note:") else f"note: {note}", file=out)
    print(f"network: {spec.network.summary_line()}", file=out)
    for note in spec.notes:  # the sizes the data gave the network (annfactory.sizing)
        print(f"note: {note}", file=out)
    optimizer = spec.extras.get("optimizer")
    node = optimizer.to_dict() if optimizer is not None else {"name": "adam"}
    name = node.pop("name")
    described = f"{name}({', '.join(f'{k}={v}' for k, v in node.items())})"
    print(f"loss: {choice.formula}", file=out)
    print(
        f"optimizer: {described}; {options.epochs} epochs of batch "
        f"{options.batch_size}, schedule {options.schedule}",
        file=out,
    )


def print_result(out: TextIO, summary: Mapping[str, Any], metric_key: str) -> None:
    stopped = " (stopped early)" if summary["stopped_early"] else ""
    print(
        f"trained {summary['epochs_run']} epochs in {summary['seconds']:.2f} s"
        f"{stopped}; kept epoch {summary['kept_epoch']} "
        f"(best val_loss at epoch {summary['best_epoch']})",
        file=out,
    )
    print(
        f"{metric_key}: {summary[metric_key]:.4f}  val_loss: {summary['val_loss']:.4f}"
        f"  train_loss: {summary['train_loss']:.4f}",
        file=out,
    )
    test = [
        key
        for key in summary
        if key.startswith("test_")
        and key != "test_loss"
        # A forecast's errors get a line of their own, below.
        and not key.endswith(("_mae", "_rmse"))
    ]
    if test:
        figures = "  ".join(f"{key}: {summary[key]:.4f}" for key in test)
        print(
            f"{figures}  test_loss: {summary['test_loss']:.4f} "
            f"({summary['rows_test']} test rows, scored once with the kept weights)",
            file=out,
        )
    for split in ("val", "test"):
        if f"{split}_naive_mae" in summary:
            # A forecast's errors beside the reference method's (data=series).
            mae, naive = summary[f"{split}_mae"], summary[f"{split}_naive_mae"]
            ratio = f" (MAE ratio {mae / naive:.2f})" if naive > 0 else ""
            print(
                f"{split}_mae: {mae:.4g}  {split}_rmse: {summary[f'{split}_rmse']:.4g}"
                f"  | {summary['baseline']} forecast: {split}_naive_mae: {naive:.4g}"
                f"  {split}_naive_rmse: {summary[f'{split}_naive_rmse']:.4g}{ratio}",
                file=out,
            )


def in_sweep() -> bool:
    """Whether this job is one of a Hydra multirun (nothing printed per epoch)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover - hydra is a dependency
        return False
    if not HydraConfig.initialized():
        return False
    return bool(HydraConfig.get().mode == RunMode.MULTIRUN)


class Progress:
    """Per-epoch progress: a bar on a terminal, a line every few epochs elsewhere,
    nothing in a sweep."""

    def __init__(
        self, out: TextIO, options: TrainOptions, metric: str, done: int = 0
    ) -> None:
        self._out = out
        self._metric = metric
        self._epochs = options.epochs
        self._bar: Any = None
        self._every = 0
        if in_sweep():
            return
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=options.epochs,
                initial=done,
                unit="epoch",
                file=sys.stderr,
                leave=True,
            )
            return
        self._every = options.log_every or max(
            1, math.ceil(options.epochs / _PROGRESS_LINES)
        )

    def epoch(self, record: EpochRecord) -> None:
        figures = (
            f"train_loss {record.train_loss:.4f}  val_loss {record.val_loss:.4f}  "
            f"val_{self._metric} {record.metric:.4f}"
        )
        if self._bar is not None:
            self._bar.set_postfix_str(figures, refresh=False)
            self._bar.update(1)
        elif self._every and (
            record.epoch % self._every == 0 or record.epoch in (1, self._epochs)
        ):
            width = len(str(self._epochs))
            print(
                f"epoch {record.epoch:>{width}}/{self._epochs}  {figures}",
                file=self._out,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def figure_title(
    context: TaskContext, summary: Mapping[str, Any], metric_key: str
) -> str:
    overrides = context.own_overrides
    what = " ".join(overrides) if overrides else context.spec.network.summary_line()
    result = (
        f"kept epoch {summary['kept_epoch']}: {metric_key} {summary[metric_key]:.4f}, "
        f"val_loss {summary['val_loss']:.4f} ({summary['loss']})"
    )
    return "\n".join([*textwrap.wrap(what, _TITLE_WIDTH), result])


def plot_curves(
    history: Sequence[Mapping[str, Any]],
    metric: str,
    title: str,
    kept: int | None = None,
) -> Figure:
    """The figure of ``curves.png``: the train and validation loss against epoch
    (log scale when they span a decade), and the metric, train and validation.

    Args:
        history: ``metrics.json``'s per-epoch rows.
        metric: ``accuracy`` or ``r2``.
        title: The figure's title.
        kept: The epoch whose weights were saved (a dotted line), or None.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=_FIGURE_INCHES, dpi=_FIGURE_DPI, layout="constrained")
    loss_axes, metric_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    for column, label, style in (
        ("train_loss", "train", "-"),
        ("val_loss", "validation", "-"),
    ):
        values = [row[column] for row in history]
        loss_axes.plot(
            epochs, values, style, label=label, marker="." if len(epochs) < 30 else None
        )
    positive = [row[c] for row in history for c in ("train_loss", "val_loss")]
    if positive and min(positive) > 0 and max(positive) / min(positive) > 10:
        loss_axes.set_yscale("log")
    loss_axes.set_title("loss", fontsize=10)
    marker = "." if len(epochs) < 30 else None
    metric_axes.plot(
        epochs, [row[f"train_{metric}"] for row in history], label="train",
        marker=marker,
    )  # fmt: skip
    metric_axes.plot(
        epochs, [row[f"val_{metric}"] for row in history], label="validation",
        marker=marker,
    )  # fmt: skip
    if kept is not None:
        for axes in (loss_axes, metric_axes):
            axes.axvline(
                kept, color="0.5", linewidth=0.8, linestyle=":", label="kept weights"
            )
    metric_axes.set_title(
        "accuracy"
        if metric == "accuracy"
        else "R\u00b2 (coefficient of determination)",
        fontsize=10,
    )
    for axes in (loss_axes, metric_axes):
        axes.set_xlabel("epoch")
        # Epochs are whole: no tick at 1.5 in a short run.
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8, loc="best")
    figure.suptitle(title, fontsize=10)
    return figure


#: forecast.png draws at most this many steps: the last ones of a longer series.
_FORECAST_STEPS: Final = 600


def plot_forecast(
    table: Table,
    splits: Mapping[str, np.ndarray],
    forecasts: Mapping[str, np.ndarray],
    title: str,
) -> Figure:
    """The figure of ``forecast.png`` (``data=series``): the series' targets from
    shortly before the validation rows to the end (the last
    :data:`_FORECAST_STEPS` of a longer stretch), and on the validation and test
    rows the network's forecast and the baseline's (the seasonal-naive one), each
    part shaded, with its MAE over the whole part in the legend.

    Args:
        table: The windows (``table.baseline`` set), in time order.
        splits: ``"val"`` and ``"test"``: their rows.
        forecasts: The network's forecast of the same rows, in the target's units.
        title: The figure's title.
    """
    import numpy as np
    from matplotlib.figure import Figure

    assert table.baseline is not None
    figure = Figure(figsize=_FIGURE_INCHES, dpi=_FIGURE_DPI, layout="constrained")
    axes = figure.subplots()
    held = [int(splits[name][0]) for name in ("val", "test") if len(splits[name])]
    shown = sum(len(splits[name]) for name in ("val", "test"))
    start = max(0, min(held) - shown // 2, table.rows - _FORECAST_STEPS)
    # Row i's target is the series' step i + window + horizon - 1.
    offset = len(table.feature_names) + (table.time_gap or 0)
    rows = np.arange(start, table.rows)
    axes.plot(
        rows + offset, table.target[rows], color="0.35", linewidth=1.0, label="series"
    )
    for name, label, color in (("val", "validation", "C0"), ("test", "test", "C1")):
        index = splits[name]
        if not len(index) or name not in forecasts:
            continue
        error = np.mean(np.abs(forecasts[name] - table.target[index]))
        naive = np.mean(np.abs(table.baseline[index] - table.target[index]))
        drawn = index >= start
        if not drawn.any():
            continue
        steps = index[drawn] + offset
        axes.axvspan(steps[0] - 0.5, steps[-1] + 0.5, color=color, alpha=0.07)
        axes.plot(
            steps, forecasts[name][drawn], color=color, linewidth=1.4,
            label=f"network, {label} (MAE {error:.4g})",
        )  # fmt: skip
        axes.plot(
            steps, table.baseline[index][drawn], color=color, linewidth=1.0,
            linestyle="--", label=f"{table.baseline_name}, {label} (MAE {naive:.4g})",
        )  # fmt: skip
    last = (
        f"; its last {len(rows):,} forecasts"
        if start == table.rows - _FORECAST_STEPS
        else ""
    )
    axes.set_xlabel(f"step of the series (0: its first value){last}")
    axes.set_ylabel("value")
    # Whole step numbers, not an offset such as "+1e6" beside the axis.
    axes.ticklabel_format(axis="x", style="plain", useOffset=False)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.suptitle(title, fontsize=10)
    return figure
