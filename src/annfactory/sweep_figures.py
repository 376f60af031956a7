"""The picture of a sweep (``summary.png``): what the table says, at a glance.

- A sweep of ``task=train`` jobs: the validation curves (loss and the task's metric
  per epoch) of every job overlaid, labelled by the overrides that vary.
- Any other sweep: each varying metric against the varying overrides, as a line over
  a numeric override when exactly one override varies, else one bar per job.
- A search (:func:`plot_search`): the optimization history (the objective of each
  trial and the best so far) and the objective against each searched parameter.

matplotlib is imported inside the functions (a sweep pays for it once, at the end);
figures are built with ``matplotlib.figure.Figure``, not pyplot, so no GUI backend
is ever touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from annfactory.sweep import JobRecord, flatten, override_cells, table_layout

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_search", "plot_summary"]

_DPI = 110
#: Metrics drawn for a sweep that is not a train sweep (the first varying ones).
_MAX_METRIC_PANELS = 6
#: Searched parameters drawn beside the history.
_MAX_PARAMETER_PANELS = 8
#: Jobs named in a legend; more get a colour bar of job numbers instead.
_MAX_LEGEND = 16
_PANEL_INCHES = (4.6, 3.4)


def plot_summary(records: Sequence[JobRecord]) -> Figure | None:
    """The figure of ``summary.png`` for a sweep; None when no job succeeded.

    Args:
        records: One record per job (:class:`annfactory.sweep.JobRecord`).
    """
    ok = [record for record in records if record["status"] == "ok"]
    if not ok:
        return None
    if all(_history(record) for record in ok):
        return _validation_curves(records)
    return _metric_chart(records)


def _history(record: JobRecord) -> list[Mapping[str, Any]]:
    train = record["metrics"].get("train")
    history = train.get("history") if isinstance(train, Mapping) else None
    return list(history) if isinstance(history, list) else []


def _labels(records: Sequence[JobRecord]) -> tuple[dict[int, str], str]:
    """Per job, its varying overrides (``init=zeros seed=1``); and the overrides
    shared by all jobs, for the title."""
    layout = table_layout(records)
    labels = {}
    for record in records:
        cells = override_cells(record["overrides"])
        label = " ".join(
            f"{key}={cells[key]}" for key in layout.varying_overrides if key in cells
        )
        labels[record["job"]] = f"#{record['job']} {label}".strip()
    names = {key.partition("=")[0] for record in records for key in record["overrides"]}
    shared = [c for c in layout.constants if c.partition("=")[0] in names]
    return labels, " ".join(shared)


def _validation_curves(records: Sequence[JobRecord]) -> Figure:
    from matplotlib.figure import Figure

    ok = sorted(
        (record for record in records if record["status"] == "ok"),
        key=lambda record: record["job"],
    )
    labels, shared = _labels(records)
    first = _history(ok[0])[0]
    metric = next((k for k in first if k.startswith("val_") and k != "val_loss"), None)
    columns = ["val_loss", *([metric] if metric else [])]
    figure = Figure(
        figsize=(_PANEL_INCHES[0] * len(columns) + 0.6, _PANEL_INCHES[1] + 1.4),
        dpi=_DPI,
        layout="constrained",
    )
    axes_list = figure.subplots(1, len(columns), squeeze=False)[0]
    colours = _colours(len(ok))
    for axes, column in zip(axes_list, columns, strict=True):
        for colour, record in zip(colours, ok, strict=True):
            history = _history(record)
            epochs = [row["epoch"] for row in history]
            values = [_finite(row.get(column)) for row in history]
            axes.plot(
                epochs,
                values,
                color=colour,
                linewidth=1.2,
                marker="." if len(epochs) < 30 else None,
                label=labels[record["job"]],
            )
            kept = record["metrics"]["train"].get("kept_epoch")
            if isinstance(kept, int) and 1 <= kept <= len(history):
                axes.plot([kept], [values[kept - 1]], "o", color=colour, markersize=5)
        if column == "val_loss":
            _log_scale_if_wide(axes, "y")
        axes.set_xlabel("epoch")
        axes.set_title(_metric_title(column), fontsize=10)
        axes.grid(True, alpha=0.3)
    failed = len(records) - len(ok)
    title = f"validation curves of {len(ok)} jobs" + (
        f" ({failed} failed, not shown)" if failed else ""
    )
    if shared:
        title += f"\n{shared}"
    figure.suptitle(
        title + "\n(a dot marks the epoch whose weights were kept)", fontsize=10
    )
    _legend(figure, axes_list[0], len(ok))
    return figure


def _metric_title(column: str) -> str:
    names = {
        "val_loss": "validation loss",
        "val_accuracy": "validation accuracy",
        "val_r2": "validation R\u00b2",
    }
    return names.get(column, column)


def _metric_chart(records: Sequence[JobRecord]) -> Figure:
    from matplotlib.figure import Figure

    layout = table_layout(records)
    rows = {row["job"]: row for row in layout.rows}
    numeric = [
        column
        for column in layout.varying_metrics
        if all(
            _number(row.get(column)) is not None
            for row in layout.rows
            if row.get(column) is not None
        )
    ]
    shown = [c for c in numeric if c != "wall_time_s"][:_MAX_METRIC_PANELS]
    if not shown:
        shown = [c for c in numeric if c == "wall_time_s"]
    labels, shared = _labels(records)
    jobs = sorted(rows)
    axis = _numeric_override(layout.varying_overrides, layout.rows)
    columns = min(3, max(1, len(shown)))
    panel_rows = max(1, math.ceil(len(shown) / columns))
    height = _PANEL_INCHES[1] if axis else max(2.4, 0.28 * len(jobs) + 1.2)
    figure = Figure(
        figsize=(
            _PANEL_INCHES[0] * columns + (0 if axis else 1.6),
            height * panel_rows + 0.9,
        ),
        dpi=_DPI,
        layout="constrained",
    )
    grid = figure.subplots(panel_rows, columns, squeeze=False)
    for index, axes in enumerate(grid.flat):
        if index >= len(shown):
            axes.set_visible(False)
            continue
        column = shown[index]
        if axis is not None:
            _metric_against(axes, axis, column, layout.rows)
        else:
            _metric_bars(
                axes, column, jobs, rows, labels, show_labels=index % columns == 0
            )
        axes.set_title(column, fontsize=9)
        axes.grid(True, alpha=0.3)
    failed = sum(record["status"] != "ok" for record in records)
    title = f"{len(records)} jobs" + (f", {failed} failed" if failed else "")
    if not shown:
        title += ": no metric varies across the jobs"
    if shared:
        title += f"\n{shared}"
    figure.suptitle(title, fontsize=10)
    return figure


def _numeric_override(
    keys: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> str | None:
    """The one varying override, if it is the only one and every job's value is a
    number: then a metric is drawn against it as a line."""
    if len(keys) != 1:
        return None
    values = [_number(row.get(keys[0])) for row in rows]
    return keys[0] if all(value is not None for value in values) else None


def _metric_against(
    axes: Axes, key: str, column: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    points = sorted(
        (x, y)
        for row in rows
        if (x := _number(row.get(key))) is not None
        and (y := _number(row.get(column))) is not None
    )
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    axes.plot(xs, ys, "o", color="C0", markersize=5)
    # Repeats of one value (seed=1,2 under model.width=8,16): the line joins means.
    means: dict[float, list[float]] = {}
    for x, y in points:
        means.setdefault(x, []).append(y)
    axes.plot(
        list(means), [sum(v) / len(v) for v in means.values()], "-", color="C0",
        linewidth=1, alpha=0.7,
    )  # fmt: skip
    axes.set_xlabel(key)
    _log_scale_if_wide(axes, "x", xs)


def _metric_bars(
    axes: Axes,
    column: str,
    jobs: Sequence[int],
    rows: Mapping[int, Mapping[str, Any]],
    labels: Mapping[int, str],
    *,
    show_labels: bool,
) -> None:
    positions = list(range(len(jobs)))
    values = [_number(rows[job].get(column)) for job in jobs]
    axes.barh(
        positions,
        [value if value is not None else 0.0 for value in values],
        color=["C0" if value is not None else "none" for value in values],
        height=0.7,
    )
    for position, value in zip(positions, values, strict=True):
        if value is None:
            axes.text(0, position, " no value", va="center", fontsize=7, color="C3")
    axes.set_yticks(positions)
    axes.set_yticklabels(
        [labels[job] if show_labels else "" for job in jobs], fontsize=7
    )
    axes.invert_yaxis()  # job 0 at the top, as in the table
    axes.axvline(0, color="0.3", linewidth=0.6)


def plot_search(records: Sequence[JobRecord], objective: str, direction: str) -> Figure:
    """The picture of a search: the optimization history and the objective against
    each searched parameter.

    The first panel shows each completed trial's objective and the best value so
    far; the others show the objective against each parameter that varies across
    the trials (the searched ones), on a log axis when its values span two decades,
    as categories when they are not numbers. Points are coloured by trial number;
    the best trial is a red star. Failed trials are counted in the title.

    Args:
        records: One record per trial; a trial's number is its ``job``.
        objective: The objective's dotted path into the metrics (``train.val_loss``).
        direction: ``minimize`` or ``maximize``.
    """
    from matplotlib.figure import Figure

    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be minimize or maximize, not {direction!r}")
    trials: list[tuple[int, float, dict[str, str]]] = []
    for record in sorted(records, key=lambda r: r["job"]):
        if record["status"] != "ok":
            continue
        value = _number(flatten(record["metrics"]).get(objective))
        if value is not None:
            trials.append((record["job"], value, override_cells(record["overrides"])))
    layout = table_layout(records)
    parameters = layout.varying_overrides[:_MAX_PARAMETER_PANELS]
    panels = 1 + len(parameters)
    columns = min(3, panels)
    panel_rows = math.ceil(panels / columns)
    figure = Figure(
        figsize=(_PANEL_INCHES[0] * columns, _PANEL_INCHES[1] * panel_rows + 0.8),
        dpi=_DPI,
        layout="constrained",
    )
    grid = figure.subplots(panel_rows, columns, squeeze=False)
    for axes in grid.flat[panels:]:
        axes.set_visible(False)
    better = min if direction == "minimize" else max
    best = better(trials, key=lambda trial: trial[1]) if trials else None
    numbers = [trial[0] for trial in trials]
    values = [trial[1] for trial in trials]
    colour_range = (min(numbers), max(numbers) or 1) if numbers else (0, 1)
    history = grid.flat[0]
    scatter = history.scatter(
        numbers, values, c=numbers, cmap="viridis", s=18, zorder=3,
        vmin=colour_range[0], vmax=colour_range[1], label="trial",
    )  # fmt: skip
    running: list[float] = []
    for value in values:
        running.append(value if not running else better(running[-1], value))
    history.step(numbers, running, where="post", color="C3", label="best so far")
    history.set_xlabel("trial")
    history.set_ylabel(objective)
    history.set_title("optimization history", fontsize=9)
    if trials:
        history.legend(fontsize=7, loc="best")
    for axes, parameter in zip(grid.flat[1:], parameters, strict=False):
        _objective_against(axes, parameter, trials, best, colour_range)
        axes.set_ylabel(objective)
    for axes in grid.flat[:panels]:
        axes.grid(True, alpha=0.3)
    failed = sum(record["status"] != "ok" for record in records)
    title = f"search: {objective} ({direction}), {len(trials)} trials"
    if failed:
        title += f", {failed} failed"
    if best is not None:
        title += f"; best {best[1]:.6g} at trial {best[0]}"
    figure.suptitle(title, fontsize=10)
    if trials:
        figure.colorbar(scatter, ax=grid[:, -1].tolist(), label="trial", shrink=0.8)
    return figure


def _objective_against(
    axes: Axes,
    parameter: str,
    trials: Sequence[tuple[int, float, dict[str, str]]],
    best: tuple[int, float, dict[str, str]] | None,
    colour_range: tuple[int, int],
) -> None:
    given = [
        (job, value, cells[parameter])
        for job, value, cells in trials
        if parameter in cells
    ]
    numeric = all(_number(x) is not None for _, _, x in given)
    if numeric:
        xs: list[float] = [float(x) for _, _, x in given]
        axes.set_xlabel(parameter)
    else:
        categories = sorted({x for _, _, x in given})
        xs = [float(categories.index(x)) for _, _, x in given]
        axes.set_xticks(range(len(categories)))
        axes.set_xlim(-0.5, len(categories) - 0.5)
        axes.set_xticklabels(categories, rotation=20, ha="right", fontsize=7)
        axes.set_xlabel(parameter)
    axes.scatter(
        xs, [value for _, value, _ in given], c=[job for job, _, _ in given],
        cmap="viridis", s=18, vmin=colour_range[0], vmax=colour_range[1], zorder=3,
    )  # fmt: skip
    if best is not None and best[2].get(parameter) is not None:
        x = best[2][parameter]
        position = (
            float(x) if numeric else float(sorted({g[2] for g in given}).index(x))
        )
        axes.plot([position], [best[1]], "*", color="C3", markersize=12, zorder=4)
    if numeric:
        _log_scale_if_wide(axes, "x", xs)
    axes.set_title(parameter, fontsize=9)


def _log_scale_if_wide(axes: Axes, which: str, values: Sequence[float] = ()) -> None:
    """A log axis when the values (or the drawn lines' y values) are positive and
    span two decades (learning rates, losses that fall far)."""
    if not values:
        values = [
            y
            for line in axes.get_lines()
            for y in line.get_ydata()  # type: ignore[union-attr]
            if isinstance(y, float | int) and math.isfinite(y)
        ]
    if values and min(values) > 0 and max(values) / min(values) >= 100:
        if which == "x":
            axes.set_xscale("log")
        else:
            axes.set_yscale("log")


def _legend(figure: Figure, axes: Axes, count: int) -> None:
    if count <= _MAX_LEGEND:
        handles, labels = axes.get_legend_handles_labels()
        # As many columns as fit the figure's width (about 16 characters an inch at
        # this font size, plus the line sample).
        longest = max((len(label) for label in labels), default=1)
        fit = int(figure.get_figwidth() * 16 / (longest + 6))
        figure.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=max(1, min(count, fit)),
            fontsize=7,
            frameon=False,
        )


def _colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    if count <= 10:
        return [f"C{index}" for index in range(count)]
    cmap = colormaps["viridis"]
    return [cmap(index / max(1, count - 1)) for index in range(count)]


def _number(value: Any) -> float | None:
    """A finite number from a cell or an override's text, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _finite(value: Any) -> float:
    number = _number(value)
    return math.nan if number is None else number
