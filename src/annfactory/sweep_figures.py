"""The picture of a sweep (``summary.png``): what the table says, at a glance.

- A sweep of ``task=train`` jobs: the validation curves (loss and the task's metric
  per epoch) of every job overlaid, labelled by the overrides that vary, a ring at
  each job's kept epoch; classification and regression jobs on rows of their own.
- Any other sweep: each varying metric against the varying overrides, as a line over
  a numeric override when exactly one override varies, else one bar per job (log
  axis over two decades, coloured by a text metric such as the diagnose verdict).
- A search (:func:`plot_search`): the optimization history (the objective of each
  trial and the best so far) and the objective against each searched parameter, on
  a log axis where the space says ``tag(log, ...)``; failed trials as crosses.

matplotlib is imported inside the functions (a sweep pays for it once, at the end);
figures are built with ``matplotlib.figure.Figure``, not pyplot, so no GUI backend
is ever touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from annfactory.sweep_table import JobRecord, flatten, override_cells, table_layout

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.collections import PathCollection
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


#: Characters of a 10-point title per inch of figure width, with a margin (DejaVu
#: Sans averages about 6 points a character).
_TITLE_CHARACTERS_PER_INCH = 11


def _wrapped(shared: str, figure: Figure) -> str:
    """The overrides shared by every job, broken between overrides into lines that
    fit the figure's width (a long list ran off its edges)."""
    import textwrap

    width = max(40, int(figure.get_figwidth() * _TITLE_CHARACTERS_PER_INCH))
    return textwrap.fill(
        shared, width=width, break_long_words=False, break_on_hyphens=False
    )


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
    """The validation loss and metric per epoch of every job; one row of panels
    per kind of job (classification and regression have other losses and
    metrics), with a ring at the epoch whose weights each job kept."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    ok = sorted(
        (record for record in records if record["status"] == "ok"),
        key=lambda record: record["job"],
    )
    labels, shared = _labels(records)
    kinds = _jobs_by_metric(ok)
    columns = 2 if any(metric for metric in kinds) else 1
    figure = Figure(
        figsize=(
            _PANEL_INCHES[0] * columns + 0.6,
            _PANEL_INCHES[1] * len(kinds) + 1.4,
        ),
        dpi=_DPI,
        layout="constrained",
    )
    grid = figure.subplots(len(kinds), columns, squeeze=False)
    colours = dict(zip((r["job"] for r in ok), _colours(len(ok)), strict=True))
    mixed = len(kinds) > 1
    for row, (metric, jobs) in zip(grid, kinds.items(), strict=True):
        loss = _loss_name(jobs) if mixed else ""
        panels = ["val_loss", *([metric] if metric else [])]
        for axes, column in zip(row, panels, strict=False):
            _plot_curves(axes, column, jobs, colours, labels)
            if column == "val_loss":
                _log_scale_if_wide(axes, "y")
            axes.set_xlabel("epoch")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            title = _metric_title(column)
            if column == "val_loss" and loss:
                title += f" ({loss})"
            axes.set_title(title, fontsize=10)
            axes.grid(True, alpha=0.3)
        for axes in row[len(panels) :]:
            axes.set_visible(False)
    failed = len(records) - len(ok)
    title = f"validation curves of {len(ok)} jobs" + (
        f" ({failed} failed, not shown)" if failed else ""
    )
    if mixed:
        title += "; one row per kind of task: their losses differ"
    if shared:
        title += "\n" + _wrapped(shared, figure)
    figure.suptitle(title, fontsize=10)
    handles = [
        line
        for row in grid
        for line in row[0].get_lines()
        if not str(line.get_label()).startswith("_")
    ]
    kept_mark = Line2D(
        [], [], marker="o", linestyle="none", markersize=7, markerfacecolor="white",
        markeredgecolor="0.3", markeredgewidth=1.6, label="epoch kept",
    )  # fmt: skip
    # Jobs are named up to _MAX_LEGEND; more would hide the panels.
    _legend(figure, [*handles, kept_mark] if len(ok) <= _MAX_LEGEND else [kept_mark])
    return figure


def _jobs_by_metric(ok: Sequence[JobRecord]) -> dict[str | None, list[JobRecord]]:
    """The jobs by their validation metric besides the loss (None: the loss only),
    in order: one row of panels each."""
    kinds: dict[str | None, list[JobRecord]] = {}
    for record in ok:
        first = _history(record)[0]
        metric = next(
            (k for k in first if k.startswith("val_") and k != "val_loss"), None
        )
        kinds.setdefault(metric, []).append(record)
    return kinds


def _plot_curves(
    axes: Axes,
    column: str,
    jobs: Sequence[JobRecord],
    colours: Mapping[int, Any],
    labels: Mapping[int, str],
) -> None:
    """One panel: each job's ``column`` per epoch, with a ring at the epoch whose
    weights the job kept."""
    for record in jobs:
        colour = colours[record["job"]]
        history = _history(record)
        epochs = [entry["epoch"] for entry in history]
        values = [_finite(entry.get(column)) for entry in history]
        axes.plot(
            epochs, values, color=colour, linewidth=1.2, label=labels[record["job"]],
        )  # fmt: skip
        kept = record["metrics"]["train"].get("kept_epoch")
        if isinstance(kept, int) and 1 <= kept <= len(history):
            axes.plot(
                [epochs[kept - 1]], [values[kept - 1]], "o", markersize=7,
                markerfacecolor="white", markeredgecolor=colour,
                markeredgewidth=1.6, zorder=3,
            )  # fmt: skip


def _loss_name(jobs: Sequence[JobRecord]) -> str:
    """The loss the jobs trained with (``cross_entropy``), for a panel's title."""
    names = {str(job["metrics"]["train"].get("loss", "")) for job in jobs}
    return ", ".join(sorted(name for name in names if name))


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
    category = _category_column(layout.varying_metrics, numeric, layout.rows) or ""
    palette = _palette(category, jobs, rows)
    colours = {job: palette.get(str(rows[job].get(category)), "C0") for job in jobs}
    flat = [flatten(record["metrics"]) for record in records if record["metrics"]]
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
        axes.set_title(column, fontsize=9)
        if axis is not None:
            _metric_against(axes, axis, column, layout.rows)
        else:
            _metric_bars(
                axes, column, jobs, rows, labels, colours,
                show_labels=index % columns == 0,
            )  # fmt: skip
            _thresholds(axes, column, flat)
        axes.grid(True, alpha=0.3)
    failed = sum(record["status"] != "ok" for record in records)
    title = f"{len(records)} jobs" + (f", {failed} failed" if failed else "")
    if not shown:
        title += ": no metric varies across the jobs"
    if shared:
        title += "\n" + _wrapped(shared, figure)
    figure.suptitle(title, fontsize=10)
    if palette and axis is None:
        from matplotlib.patches import Patch

        name = str(category).rpartition(".")[2]
        _legend(
            figure,
            [Patch(color=c, label=f"{name}={v}") for v, c in palette.items()],
        )
    return figure


#: Colours of the values of a category column (a diagnose verdict), else C0, C1...
_CATEGORY_COLOURS = {
    "healthy": "tab:green",
    "vanishing": "tab:orange",
    "exploding": "tab:red",
    "non-finite": "tab:purple",
}
#: Per metric column, the columns of its thresholds, drawn as dashed lines.
_THRESHOLDS = {
    "diagnose.grad_ratio_first_last": (
        "diagnose.thresholds.vanishing_below",
        "diagnose.thresholds.exploding_above",
    ),
}


def _category_column(
    varying: Sequence[str], numeric: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> str | None:
    """A varying metric of a few text values (``diagnose.verdict``), whose value
    colours each job's bars; None when there is none."""
    for column in varying:
        if column in numeric or column in ("status", "error"):
            continue
        values = {row.get(column) for row in rows if row.get(column) is not None}
        if 1 < len(values) <= len(_CATEGORY_COLOURS) + 2:
            return column
    return None


def _palette(
    category: str, jobs: Sequence[int], rows: Mapping[int, Mapping[str, Any]]
) -> dict[str, str]:
    """The colour of each value of ``category`` in the jobs, in job order (empty
    when there is no category): a verdict's own colour, else C0, C1..."""
    if not category:
        return {}
    values = [rows[job].get(category) for job in jobs]
    present = dict.fromkeys(str(value) for value in values if value is not None)
    return {
        value: _CATEGORY_COLOURS.get(value, f"C{index}")
        for index, value in enumerate(present)
    }


def _thresholds(axes: Axes, column: str, flat: Sequence[Mapping[str, Any]]) -> None:
    """The thresholds of a column (the diagnose verdict's), as dashed lines."""
    low, high = axes.get_xlim()
    for name in _THRESHOLDS.get(column, ()):
        value = next((_number(m.get(name)) for m in flat if name in m), None)
        if value is None or not low < value < high:  # off the drawn range
            continue
        axes.axvline(value, color="0.35", linestyle="--", linewidth=0.9)
        axes.text(
            value, 1.0, f" {name.rpartition('.')[2]}", rotation=90, va="top",
            ha="right", fontsize=7, color="0.35", transform=axes.get_xaxis_transform(),
        )  # fmt: skip


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
    if axes.get_xscale() == "linear" and all(float(x).is_integer() for x in xs):
        from matplotlib.ticker import MaxNLocator

        # seed=0,1 or model.width=8,16: no ticks between whole numbers (0.2, 0.4).
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def _metric_bars(
    axes: Axes,
    column: str,
    jobs: Sequence[int],
    rows: Mapping[int, Mapping[str, Any]],
    labels: Mapping[int, str],
    colours: Mapping[int, str],
    *,
    show_labels: bool,
) -> None:
    """One bar per job; on a log axis when the values are positive and span two
    decades (a gradient ratio of 1e-8 beside 0.3)."""
    positions = list(range(len(jobs)))
    values = [_number(rows[job].get(column)) for job in jobs]
    present = [value for value in values if value is not None]
    log = bool(present) and min(present) > 0 and max(present) / min(present) >= 100
    base = 10.0 ** math.floor(math.log10(min(present))) if log else 0.0
    axes.barh(
        positions,
        [value - base if value is not None else 0.0 for value in values],
        left=base,
        color=[
            colours[job] if value is not None else "none"
            for job, value in zip(jobs, values, strict=True)
        ],
        height=0.7,
    )
    for position, value in zip(positions, values, strict=True):
        if value is None:
            axes.text(
                base or 0, position, " no value", va="center", fontsize=7, color="C3"
            )
    if log:
        axes.set_xscale("log")
        axes.set_xlim(left=base)
        axes.set_title(f"{column} (log scale)", fontsize=9)
    axes.set_yticks(positions)
    axes.set_yticklabels(
        [labels[job] if show_labels else "" for job in jobs], fontsize=7
    )
    axes.invert_yaxis()  # job 0 at the top, as in the table
    if not log:
        axes.axvline(0, color="0.3", linewidth=0.6)


def plot_search(
    records: Sequence[JobRecord],
    objective: str,
    direction: str,
    log_scale: Collection[str] | None = None,
) -> Figure:
    """The picture of a search: the optimization history and the objective against
    each searched parameter.

    The first panel shows each completed trial's objective and the best value so
    far; the others show the objective against each parameter that varies across
    the trials (the searched ones), as categories when they are not numbers. Points
    are coloured by trial number; the best trial is a red star. Failed trials are
    red crosses along the bottom edge of each panel (they have no objective), and
    counted in the title.

    Args:
        records: One record per trial; a trial's number is its ``job``.
        objective: The objective's dotted path into the metrics (``train.val_loss``).
        direction: ``minimize`` or ``maximize``.
        log_scale: The parameters searched on a log scale (``tag(log, ...)``),
            drawn on a log axis. None: those whose values span two decades.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be minimize or maximize, not {direction!r}")
    trials, failed = _trials_and_failures(records, objective)
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
    every = [*(trial[0] for trial in trials), *(job for job, _ in failed)]
    colour_range = (min(every), max(every) or 1) if every else (0, 1)
    scatter = _plot_history(
        grid.flat[0], trials, failed, objective, better, colour_range
    )
    for axes, parameter in zip(grid.flat[1:], parameters, strict=False):
        log = None if log_scale is None else parameter in log_scale
        _objective_against(axes, parameter, trials, failed, best, colour_range, log)
        axes.set_ylabel(objective)
    for axes in grid.flat[:panels]:
        axes.grid(True, alpha=0.3)
    title = f"search: {objective} ({direction}), {len(trials)} trials"
    if failed:
        title += f", {len(failed)} failed (\u00d7 along the bottom)"
    if best is not None:
        title += f"; best {best[1]:.6g} at trial {best[0]}"
    figure.suptitle(title, fontsize=10)
    if trials:
        bar = figure.colorbar(
            scatter, ax=grid[:, -1].tolist(), label="trial", shrink=0.8
        )
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    return figure


def _trials_and_failures(
    records: Sequence[JobRecord], objective: str
) -> tuple[list[tuple[int, float, dict[str, str]]], list[tuple[int, dict[str, str]]]]:
    """The trials with an objective, ``(number, value, override cells)``, and the
    others, ``(number, override cells)``, by trial number."""
    trials: list[tuple[int, float, dict[str, str]]] = []
    failed: list[tuple[int, dict[str, str]]] = []
    for record in sorted(records, key=lambda r: r["job"]):
        cells = override_cells(record["overrides"])
        value = None
        if record["status"] == "ok":
            value = _number(flatten(record["metrics"]).get(objective))
        if value is not None:
            trials.append((record["job"], value, cells))
        else:
            failed.append((record["job"], cells))
    return trials, failed


def _plot_history(
    history: Axes,
    trials: Sequence[tuple[int, float, dict[str, str]]],
    failed: Sequence[tuple[int, dict[str, str]]],
    objective: str,
    better: Callable[[float, float], float],
    colour_range: tuple[int, int],
) -> PathCollection:
    """The optimization history panel: each trial's objective, coloured by trial
    number, the best so far as a step line, and the failed trials' crosses.

    Returns:
        The trials' scatter, for the figure's colour bar.
    """
    from matplotlib.ticker import MaxNLocator

    numbers = [trial[0] for trial in trials]
    values = [trial[1] for trial in trials]
    scatter = history.scatter(
        numbers, values, c=numbers, cmap="viridis", s=18, zorder=3,
        vmin=colour_range[0], vmax=colour_range[1], label="trial",
    )  # fmt: skip
    running: list[float] = []
    for value in values:
        running.append(value if not running else better(running[-1], value))
    history.step(numbers, running, where="post", color="C3", label="best so far")
    _failed_marks(history, [float(job) for job, _ in failed])
    history.set_xlabel("trial")
    history.xaxis.set_major_locator(MaxNLocator(integer=True))
    history.set_ylabel(objective)
    history.set_title("optimization history", fontsize=9)
    if trials or failed:
        history.legend(fontsize=7, loc="best")
    return scatter


def _failed_marks(axes: Axes, xs: Sequence[float]) -> None:
    """Failed trials (no objective): red crosses in a strip below the lowest
    point of the panel."""
    if not xs:
        return
    axes.autoscale_view()
    low, high = axes.get_ylim()
    span = (high - low) or 1.0
    axes.scatter(
        xs, [low - 0.04 * span] * len(xs), marker="x", color="C3", s=28, zorder=4,
        label=f"failed ({len(xs)})",
    )  # fmt: skip
    axes.set_ylim(low - 0.08 * span, high)


def _objective_against(
    axes: Axes,
    parameter: str,
    trials: Sequence[tuple[int, float, dict[str, str]]],
    failed: Sequence[tuple[int, dict[str, str]]],
    best: tuple[int, float, dict[str, str]] | None,
    colour_range: tuple[int, int],
    log: bool | None,
) -> None:
    given = [
        (job, value, cells[parameter])
        for job, value, cells in trials
        if parameter in cells
    ]
    failures = [cells[parameter] for _, cells in failed if parameter in cells]
    numeric = all(_number(x) is not None for x in [*(g[2] for g in given), *failures])
    categories = sorted({*(g[2] for g in given), *failures})

    def position(x: str) -> float:
        return float(x) if numeric else float(categories.index(x))

    xs = [position(x) for _, _, x in given]
    if not numeric:
        axes.set_xticks(range(len(categories)))
        axes.set_xlim(-0.5, len(categories) - 0.5)
        axes.set_xticklabels(categories, rotation=20, ha="right", fontsize=7)
    axes.set_xlabel(parameter)
    axes.scatter(
        xs, [value for _, value, _ in given], c=[job for job, _, _ in given],
        cmap="viridis", s=18, vmin=colour_range[0], vmax=colour_range[1], zorder=3,
    )  # fmt: skip
    _failed_marks(axes, [position(x) for x in failures])
    if best is not None and best[2].get(parameter) is not None:
        x = best[2][parameter]
        axes.plot([position(x)], [best[1]], "*", color="C3", markersize=12, zorder=4)
    if numeric:
        every = [*xs, *(position(x) for x in failures)]
        if log is None:
            _log_scale_if_wide(axes, "x", every)
        elif log:
            axes.set_xscale("log")
    axes.set_title(parameter + (" (log scale)" if log else ""), fontsize=9)


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


def _legend(figure: Figure, handles: Sequence[Any]) -> None:
    """A legend below the panels, in as many columns as fit."""
    labels = [str(handle.get_label()) for handle in handles]
    # About 16 characters an inch at this font size, plus the line sample.
    longest = max((len(label) for label in labels), default=1)
    fit = int(figure.get_figwidth() * 16 / (longest + 6))
    figure.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=max(1, min(len(handles), fit)),
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
