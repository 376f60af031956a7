"""The summary of any sweep: varying columns first, constants above, summary.png, the
summary callback for sweepers other than annfactory's, and quiet jobs."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from PIL import Image

from annfactory.sweep import (
    JobRecord,
    SummaryCallback,
    job_line,
    key_metric,
    plot_search,
    plot_summary,
    read_job_records,
    table_layout,
    write_summary,
)


def _record(
    job: int, overrides: list[str], status: str = "ok", **metrics: Any
) -> JobRecord:
    return {
        "job": job,
        "overrides": overrides,
        "status": status,
        "error": None if status == "ok" else f"job {job} broke",
        "wall_time_s": 0.5 + job,
        "metrics": metrics,
    }


def _forward(job: int, seed: int, init: str, mean: float) -> JobRecord:
    return _record(
        job,
        ["model=demo", f"seed={seed}", f"init={init}"],
        task="forward",
        total_params=26,
        output_shape=[5, 2],
        seed=seed,
        device="cpu",
        mean=mean,
    )


def _table(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


# --------------------------------------------------------------------------------------
# The table: varying columns first, constants once above
# --------------------------------------------------------------------------------------


def test_varying_columns_come_first_and_constants_are_listed_above(
    tmp_path: Path,
) -> None:
    records = [
        _forward(0, 1, "zeros", 0.0),
        _forward(1, 2, "zeros", 0.0),
        _forward(2, 1, "ones", 1.0),
    ]
    printed = write_summary(tmp_path, records)
    markdown = (tmp_path / "summary.md").read_text()
    assert printed + "\n" == markdown
    head, _, table = markdown.partition("\n\n")
    assert head.startswith("Same in every job: model=demo  status=ok  total_params=26")
    for constant in ("output_shape=[5, 2]", "task=forward", "device=cpu"):
        assert constant in head
    rows = _table(table)
    # job, the varying overrides in the jobs' order, then the varying metrics; the
    # seed metric equals the seed override, so it is shown once; wall time last.
    assert rows[0] == ["job", "seed", "init", "mean", "wall_time_s"]
    assert rows[1:] == [
        ["0", "1", "zeros", "0", "0.5"],
        ["1", "2", "zeros", "0", "1.5"],
        ["2", "1", "ones", "1", "2.5"],
    ]
    # No constant is repeated in the table.
    assert "model=demo" not in table
    assert "| task |" not in table


def test_the_csv_keeps_every_column_at_full_precision(tmp_path: Path) -> None:
    value = 0.1 + 0.2  # 0.30000000000000004: six digits would lose it
    records = [_forward(0, 1, "zeros", value), _forward(1, 2, "zeros", 1 / 3)]
    write_summary(tmp_path, records)
    with (tmp_path / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[0]["mean"]) == value
    assert float(rows[1]["mean"]) == 1 / 3
    assert rows[0]["overrides"] == "model=demo seed=1 init=zeros"
    # Constant columns stay in the CSV.
    assert [row["device"] for row in rows] == ["cpu", "cpu"]
    assert [row["total_params"] for row in rows] == ["26", "26"]
    assert "0.3 " in (tmp_path / "summary.md").read_text()


def test_a_failed_job_shows_status_and_error_and_keeps_constants_constant() -> None:
    records = [
        _forward(0, 1, "zeros", 0.5),
        _record(1, ["model=demo", "seed=2", "init=zeros"], "error"),
        _forward(2, 3, "zeros", 0.5),
    ]
    layout = table_layout(records)
    assert layout.columns == ["job", "seed", "status", "error", "wall_time_s"]
    assert [row["status"] for row in layout.rows] == ["ok", "error", "ok"]
    assert layout.rows[1]["error"] == "job 1 broke"
    # The failed job's empty cells do not make a metric vary.
    assert "mean=0.5" in layout.constants
    assert "status=ok" not in layout.constants
    assert "init=zeros" in layout.constants


def test_a_repeated_value_is_a_varying_override_and_every_row_stays() -> None:
    records = [
        _forward(0, 1, "zeros", 0.1),
        _forward(1, 2, "zeros", 0.2),
        _forward(2, 1, "zeros", 0.1),
    ]
    layout = table_layout(records)
    assert layout.varying_overrides == ["seed"]
    assert [(row["job"], row["seed"]) for row in layout.rows] == [
        (0, "1"),
        (1, "2"),
        (2, "1"),
    ]


def test_jobs_with_the_same_overrides_have_only_their_number_and_metrics() -> None:
    records = [_forward(0, 1, "zeros", 0.1), _forward(1, 1, "zeros", 0.2)]
    layout = table_layout(records)
    assert layout.columns == ["job", "mean", "wall_time_s"]
    assert layout.constants[:4] == ["model=demo", "seed=1", "init=zeros", "status=ok"]


def test_a_metric_named_like_a_varying_override_with_other_values_is_told_apart() -> (
    None
):
    records = [
        _record(0, ["seed=1"], seed=10),
        _record(1, ["seed=2"], seed=20),
    ]
    layout = table_layout(records)
    assert layout.columns == ["job", "seed", "metrics.seed", "wall_time_s"]
    assert [row["metrics.seed"] for row in layout.rows] == [10, 20]


def test_a_key_missing_from_some_jobs_is_not_the_same_in_every_job(
    tmp_path: Path,
) -> None:
    # A sweep over data=iris,diabetes,wine: only the regression job has val_r2, the
    # others val_accuracy; the jobs' override sets differ too (a conditional search
    # space: only job 1 sets data.noise).
    metrics = [
        {"val_accuracy": 0.9, "val_loss": 0.3, "rows": 150},
        {"val_r2": 0.5, "val_loss": 0.3, "rows": 442},
        {"val_accuracy": 0.9, "val_loss": 0.3, "rows": 178},
    ]
    overrides = [["data=iris"], ["data=diabetes", "data.noise=0.1"], ["data=wine"]]
    records = [
        _record(job, [*given, "task=train"], task="train", train=train)
        for job, (given, train) in enumerate(zip(overrides, metrics, strict=True))
    ]
    layout = table_layout(records)
    constants = " ".join(layout.constants)
    assert "train.val_r2" not in constants
    assert "train.val_accuracy" not in constants
    assert "data.noise" not in constants
    # What all three share is still listed once.
    assert "task=train" in layout.constants
    assert "train.val_loss=0.3" in layout.constants
    assert layout.varying_overrides == ["data", "data.noise"]
    assert layout.varying_metrics[:3] == [
        "train.val_accuracy",
        "train.rows",
        "train.val_r2",
    ]
    assert [row["train.val_r2"] for row in layout.rows] == [None, 0.5, None]
    assert [row["data.noise"] for row in layout.rows] == [None, "0.1", None]
    head = write_summary(tmp_path, records, plot=False).split("\n\n")[0]
    assert "val_r2" not in head
    # A failed job's empty cells still do not make a metric vary.
    failed = _record(3, ["data=iris", "task=train"], "error")
    assert "train.val_loss=0.3" in table_layout([*records, failed]).constants


def test_the_constants_wrap_between_items_never_inside_one(tmp_path: Path) -> None:
    text = "default: uniform(a=-0.57735, b=0.57735)"
    records = [
        _record(job, [f"seed={job}"], **{f"layer{i}.init": text for i in range(6)})
        for job in range(2)
    ]
    head = write_summary(tmp_path, records, plot=False).split("\n\n")[0]
    lines = head.splitlines()
    assert len(lines) > 1
    assert all(len(line) <= 100 for line in lines)
    for i in range(6):
        assert sum(f"layer{i}.init={text}" in line for line in lines) == 1


# --------------------------------------------------------------------------------------
# A job's one line
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"task": "forward", "total_params": 26}, "total_params=26"),
        (
            {"task": "diagnose", "total_params": 9, "diagnose": {"verdict": "healthy"}},
            "verdict=healthy",
        ),
        (
            {"task": "train", "train": {"val_accuracy": 0.96, "val_loss": 0.1}},
            "val_accuracy=0.96",
        ),
        ({"task": "train", "train": {"val_r2": 0.5, "val_loss": 2.0}}, "val_r2=0.5"),
        ({"task": "init_report", "all_agree": True}, "all_agree=True"),
        ({"task": "probe", "total_params": 7}, "total_params=7"),
        ({"task": "probe"}, ""),
    ],
)
def test_the_key_metric_of_each_task(metrics: dict[str, Any], expected: str) -> None:
    assert key_metric(metrics) == expected


def test_a_job_line_is_one_line_with_number_overrides_status_and_result() -> None:
    ok = _record(3, ["model=demo", "seed=2"], task="forward", total_params=26)
    assert job_line(ok) == "#3 model=demo seed=2: ok total_params=26 (3.50 s)"
    failed = _record(4, ["model=demo", "seed=x"], "error")
    failed["error"] = "seed: 'x' is not an integer.\n  Allowed: an integer."
    line = job_line(failed)
    assert "\n" not in line
    assert line == (
        "#4 model=demo seed=x: error: seed: 'x' is not an integer. Allowed: an integer."
    )
    activations = _record(0, ["task=activations"], task="activations")
    activations["metrics"]["activations"] = {"relu": {}, "tanh": {}}
    assert job_line(activations) == (
        "#0 task=activations: ok activations=relu,tanh (0.50 s)"
    )


def test_the_launchers_per_job_lines_are_hidden_and_their_others_kept(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hydra.core.plugins import Plugins

    from annfactory.cli import QuietJobs

    # Hydra scans its plugins (importing the basic launcher's module, which creates
    # its logger) before a sweep starts; run alone, this test must do it too.
    Plugins.instance()
    QuietJobs().on_multirun_start(OmegaConf.create({}))
    QuietJobs().on_multirun_start(OmegaConf.create({}))  # a second sweep: one filter
    logger = logging.getLogger("hydra._internal.core_plugins.basic_launcher")
    assert len(logger.filters) == 1
    # An earlier test in this process may have run a logging config that disabled
    # the loggers that existed then, or stopped their propagation to caplog's root.
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logger, "propagate", True)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.INFO):
            logger.info("Launching 2 jobs locally")
            logger.info("\t#0 : model=demo seed=1")
            logger.info("\t#12 : model=demo seed=2")
    finally:
        logger.setLevel(level)
    assert caplog.messages == ["Launching 2 jobs locally"]


# --------------------------------------------------------------------------------------
# Records from job.json, and the callback
# --------------------------------------------------------------------------------------


def _write_record(folder: Path, record: JobRecord, mtime: float | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.json"
    path.write_text(json.dumps(record))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_records_are_read_from_nested_job_dirs_newest_first(tmp_path: Path) -> None:
    now = time.time()
    _write_record(tmp_path / "a" / "0", _forward(0, 1, "zeros", 0.1))
    _write_record(tmp_path / "1", _forward(1, 2, "zeros", 0.2), mtime=now - 5)
    _write_record(tmp_path / "b" / "1", _forward(1, 3, "zeros", 0.3))
    # A leftover of an earlier sweep into the same directory, and a broken file.
    _write_record(tmp_path / "7", _forward(7, 9, "zeros", 0.9), mtime=now - 3600)
    (tmp_path / "8").mkdir()
    (tmp_path / "8" / "job.json").write_text("{not json")
    records = read_job_records(tmp_path, since=now - 60)
    assert [(r["job"], r["overrides"][1]) for r in records] == [
        (0, "seed=1"),
        (1, "seed=3"),
    ]
    assert [r["job"] for r in read_job_records(tmp_path)] == [0, 1, 7]


def _multirun_config(sweep_dir: Path, target: str) -> Any:
    return OmegaConf.create(
        {"hydra": {"sweep": {"dir": str(sweep_dir)}, "sweeper": {"_target_": target}}}
    )


def test_the_callback_writes_the_summary_of_another_sweeper(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    callback = SummaryCallback()
    config = _multirun_config(
        tmp_path, "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    )
    callback.on_multirun_start(config)
    for job in range(2):
        _write_record(tmp_path / str(job), _forward(job, job + 1, "zeros", job / 2))
    callback.on_multirun_end(config)
    with (tmp_path / "summary.csv").open() as handle:
        assert [row["seed"] for row in csv.DictReader(handle)] == ["1", "2"]
    assert (tmp_path / "summary.png").is_file()
    out = capsys.readouterr().out
    assert f"Sweep summary ({tmp_path / 'summary.md'}):" in out
    assert "| job | seed | mean | wall_time_s |" in out


@pytest.mark.parametrize(
    "target",
    [
        "hydra_plugins.annfactory_sweeper.AnnFactorySweeper",
        "hydra_plugins.annfactory_sweeper.optuna.OptunaSweeper",
    ],
)
def test_the_callback_leaves_annfactory_sweepers_their_own_table(
    tmp_path: Path, target: str
) -> None:
    callback = SummaryCallback()
    config = _multirun_config(tmp_path, target)
    callback.on_multirun_start(config)
    _write_record(tmp_path / "0", _forward(0, 1, "zeros", 0.1))
    (tmp_path / "summary.md").write_text("the sweeper's richer table\n")
    callback.on_multirun_end(config)
    assert (tmp_path / "summary.md").read_text() == "the sweeper's richer table\n"
    assert not (tmp_path / "summary.csv").exists()


# --------------------------------------------------------------------------------------
# summary.png
# --------------------------------------------------------------------------------------


def _train(job: int, width: int, losses: list[float]) -> JobRecord:
    history = [
        {"epoch": epoch, "val_loss": loss, "val_accuracy": 1 - loss / 2}
        for epoch, loss in enumerate(losses, 1)
    ]
    return _record(
        job,
        ["task=train", "data=iris", f"model.width={width}"],
        task="train",
        train={
            "val_accuracy": history[-1]["val_accuracy"],
            "val_loss": losses[-1],
            "kept_epoch": len(losses),
            "history": history,
        },
    )


def test_a_train_sweep_draws_every_job_s_validation_curves(tmp_path: Path) -> None:
    records = [
        _train(0, 8, [1.2, 1.0, 0.9]),
        _train(1, 32, [1.1, 0.6, 0.4]),
        _record(2, ["task=train", "data=iris", "model.width=0"], "error"),
    ]
    write_summary(tmp_path, records)
    figure = plot_summary(records)
    assert figure is not None
    loss_axes, metric_axes = figure.axes
    assert loss_axes.get_title() == "validation loss"
    assert metric_axes.get_title() == "validation accuracy"
    curves = [line for line in loss_axes.get_lines() if line.get_label()[0] == "#"]
    assert [line.get_label() for line in curves] == [
        "#0 model.width=8",
        "#1 model.width=32",
    ]
    assert list(curves[1].get_ydata()) == [1.1, 0.6, 0.4]
    accuracy = [line for line in metric_axes.get_lines() if line.get_label()[0] == "#"]
    assert list(accuracy[0].get_ydata()) == [0.4, 0.5, 0.55]
    title = figure.texts[0].get_text()  # type: ignore[attr-defined]
    assert "validation curves of 2 jobs (1 failed, not shown)" in title
    assert "task=train data=iris" in title
    with Image.open(tmp_path / "summary.png") as image:
        assert image.format == "PNG"
        assert image.size[0] > 600


@pytest.mark.parametrize("kind", ["train", "forward"])
def test_a_long_list_of_shared_overrides_stays_inside_the_figure(kind: str) -> None:
    # A recipe of a dozen fixed overrides ran off both edges of the title.
    shared = ["task.schedule=cosine", "task.epochs=1000", "optimizer=adamw",
              "optimizer.lr=0.01", "optimizer.weight_decay=0.05", "task.keep=best",
              "task.clip_grad_norm=1", "data=ucr", "data.dataset=GunPoint",
              "task.batch_size=16", "model.layers.rnn.bias_init=default"]  # fmt: skip
    if kind == "train":
        records = [_train(0, 8, [1.2, 1.0]), _train(1, 32, [1.1, 0.6])]
    else:
        records = [_forward(0, 1, "zeros", 0.25), _forward(1, 2, "ones", -0.5)]
    for record in records:
        record["overrides"] = [*record["overrides"], *shared]
    figure = plot_summary(records)
    assert figure is not None
    title = figure.texts[0]  # type: ignore[attr-defined]
    text = title.get_text()
    assert all(override in text for override in shared)
    assert len(text.splitlines()) >= 3  # the first line, then the overrides wrapped
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # the constrained layout places the title
    box = title.get_window_extent(canvas.get_renderer())
    assert box.x0 >= 0
    assert box.x1 <= figure.bbox.width


def test_a_forward_sweep_draws_each_varying_metric_per_job(tmp_path: Path) -> None:
    records = [
        _forward(0, 1, "zeros", 0.25),
        _forward(1, 2, "ones", -0.5),
        _record(2, ["model=demo", "seed=3", "init=ones"], "error"),
    ]
    write_summary(tmp_path, records)
    figure = plot_summary(records)
    assert figure is not None
    (axes,) = [a for a in figure.axes if a.get_visible()]
    assert axes.get_title() == "mean"
    labels = [label.get_text() for label in axes.get_yticklabels()]
    assert labels == [
        "#0 seed=1 init=zeros",
        "#1 seed=2 init=ones",
        "#2 seed=3 init=ones",
    ]
    assert [bar.get_width() for bar in axes.patches] == [0.25, -0.5, 0.0]
    assert "no value" in [text.get_text().strip() for text in axes.texts]
    with Image.open(tmp_path / "summary.png") as image:
        assert image.format == "PNG"


def test_one_numeric_override_draws_each_metric_against_it() -> None:
    records = [
        _record(job, [f"model.width={width}"], score=width / 10)
        for job, width in enumerate((64, 8, 16, 8))
    ]
    figure = plot_summary(records)
    assert figure is not None
    axes = figure.axes[0]
    assert axes.get_xlabel() == "model.width"
    points, means = axes.get_lines()[:2]
    assert list(points.get_xdata()) == [8, 8, 16, 64]
    assert list(means.get_xdata()) == [8, 16, 64]
    assert list(means.get_ydata()) == [0.8, 1.6, 6.4]
    ticks = axes.get_xticks()
    assert len(ticks) >= 2
    assert all(float(tick).is_integer() for tick in ticks)


def test_two_seeds_get_whole_number_ticks() -> None:
    records = [_record(job, [f"seed={job}"], score=job / 3) for job in (0, 1)]
    figure = plot_summary(records)
    assert figure is not None
    ticks = figure.axes[0].get_xticks()
    assert all(float(tick).is_integer() for tick in ticks), ticks


def test_no_picture_when_every_job_failed(tmp_path: Path) -> None:
    records = [_record(0, ["seed=1"], "error"), _record(1, ["seed=2"], "error")]
    write_summary(tmp_path, records)
    assert plot_summary(records) is None
    assert not (tmp_path / "summary.png").exists()


def test_a_search_draws_its_history_and_each_parameter(tmp_path: Path) -> None:
    values = [0.9, 0.5, None, 0.7, 0.3]
    records = []
    for trial, value in enumerate(values):
        overrides = [
            "task=train",
            f"optimizer.lr={10.0 ** -(trial + 1)}",
            f"init={'zeros' if trial % 2 else 'ones'}",
        ]
        if value is None:
            records.append(_record(trial, overrides, "error"))
        else:
            records.append(_record(trial, overrides, train={"val_loss": value}))
    figure = plot_search(records, "train.val_loss", "minimize", tmp_path)
    history, lr, init = figure.axes[:3]
    assert history.get_title() == "optimization history"
    (best_so_far,) = history.get_lines()
    assert list(best_so_far.get_ydata()) == [0.9, 0.5, 0.5, 0.3]
    assert lr.get_title() == "optimizer.lr"
    assert lr.get_xscale() == "log"
    assert init.get_title() == "init"
    assert [t.get_text() for t in init.get_xticklabels()] == ["ones", "zeros"]
    title = figure.texts[0].get_text()  # type: ignore[attr-defined]
    assert title == (
        "search: train.val_loss (minimize), 4 trials, 1 failed (\u00d7 along the "
        "bottom); best 0.3 at trial 4"
    )
    with Image.open(tmp_path / "summary.png") as image:
        assert image.format == "PNG"
    maximized = plot_search(records, "train.val_loss", "maximize")
    assert list(maximized.axes[0].get_lines()[0].get_ydata()) == [0.9] * 4
    with pytest.raises(ValueError, match="direction must be minimize or maximize"):
        plot_search(records, "train.val_loss", "down")


def _search(values: list[float | None], lrs: list[float]) -> list[JobRecord]:
    records = []
    for trial, (value, lr) in enumerate(zip(values, lrs, strict=True)):
        activation = "bogus" if value is None else ("relu", "tanh")[trial % 2]
        overrides = [f"optimizer.lr={lr}", f"activation={activation}"]
        if value is None:
            records.append(_record(trial, overrides, "error"))
        else:
            records.append(_record(trial, overrides, train={"val_loss": value}))
    return records


def test_a_search_axis_follows_the_log_tag_not_the_sampled_span() -> None:
    # Sampled from tag(log,interval(0.01,0.1)): under two decades, still log.
    narrow = _search([0.5, 0.4, 0.3], [0.012, 0.03, 0.07])
    lr = plot_search(narrow, "train.val_loss", "minimize", None, ["optimizer.lr"])
    assert lr.axes[1].get_xscale() == "log"
    assert lr.axes[1].get_title() == "optimizer.lr (log scale)"
    # interval(...) without the tag: linear, even over four decades.
    wide = _search([0.5, 0.4, 0.3], [0.0001, 0.03, 1.0])
    linear = plot_search(wide, "train.val_loss", "minimize", None, [])
    assert linear.axes[1].get_xscale() == "linear"
    # No search space given (a summary of old records): the span decides.
    assert plot_search(wide, "train.val_loss", "minimize").axes[1].get_xscale() == (
        "log"
    )


def test_a_search_marks_its_failed_trials_and_counts_trials_in_whole_numbers() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    records = _search([0.5, None, 0.3], [0.01, 0.02, 0.04])
    figure = plot_search(records, "train.val_loss", "minimize", None, [])
    history, lr, activation = figure.axes[:3]
    for axes, x in ((history, 1.0), (lr, 0.02), (activation, 0.0)):
        (failed,) = [c for c in axes.collections if c.get_label() == "failed (1)"]
        ((mark_x, mark_y),) = failed.get_offsets()
        assert mark_x == x
        # Below every completed trial: it has no objective.
        assert mark_y < 0.3
        assert axes.get_ylim()[0] < mark_y
    assert "failed (1)" in [t.get_text() for t in history.get_legend().get_texts()]
    # The category only the failed trial took is on the axis.
    assert [t.get_text() for t in activation.get_xticklabels()] == [
        "bogus",
        "relu",
    ]
    FigureCanvasAgg(figure).draw()
    low, high = history.get_xlim()
    ticks = [t for t in history.get_xticks() if low <= t <= high]
    assert ticks == [0, 1, 2]


def _mixed_train_sweep() -> list[JobRecord]:
    """A sweep over data=iris,diabetes: one classification job, one regression."""
    iris = _train(0, 8, [1.2, 1.0, 0.9, 0.95])
    iris["overrides"] = ["task=train", "data=iris"]
    iris["metrics"]["train"].update(kept_epoch=3, loss="cross_entropy")
    history = [
        {"epoch": epoch, "val_loss": loss, "val_r2": 1 - loss}
        for epoch, loss in enumerate([0.9, 0.6, 0.5, 0.45], 1)
    ]
    diabetes = _record(
        1,
        ["task=train", "data=diabetes"],
        task="train",
        train={"val_r2": 0.55, "val_loss": 0.45, "kept_epoch": 4, "loss": "mse",
               "history": history},
    )  # fmt: skip
    return [iris, diabetes]


def test_a_train_sweep_marks_only_the_kept_epoch() -> None:
    records = [_train(0, 8, [1.2, 1.0, 0.9]), _train(1, 32, [1.1, 0.6, 0.7])]
    records[1]["metrics"]["train"]["kept_epoch"] = 2
    figure = plot_summary(records)
    assert figure is not None
    for axes in figure.axes:
        curves = [line for line in axes.get_lines() if line.get_label()[0] == "#"]
        assert all(line.get_marker() in ("None", None, "") for line in curves)
        marks = [line for line in axes.get_lines() if line.get_marker() == "o"]
        assert [(list(m.get_xdata()), list(m.get_ydata())) for m in marks] == [
            ([3], [list(curves[0].get_ydata())[2]]),
            ([2], [list(curves[1].get_ydata())[1]]),
        ]
    (legend,) = figure.legends
    assert "epoch kept" in [text.get_text() for text in legend.get_texts()]


def test_a_classification_and_regression_mix_draws_each_on_its_own_axes() -> None:
    figure = plot_summary(_mixed_train_sweep())
    assert figure is not None
    titles = [axes.get_title() for axes in figure.axes if axes.get_visible()]
    assert titles == [
        "validation loss (cross_entropy)",
        "validation accuracy",
        "validation loss (mse)",
        "validation R\u00b2",
    ]
    r2 = figure.axes[3]
    (curve,) = [line for line in r2.get_lines() if line.get_label()[0] == "#"]
    assert curve.get_label() == "#1 data=diabetes"
    assert list(curve.get_ydata()) == pytest.approx([0.1, 0.4, 0.5, 0.55])
    # Each loss axis holds one kind of loss only.
    for axes, job in ((figure.axes[0], "#0"), (figure.axes[2], "#1")):
        labels = [line.get_label() for line in axes.get_lines()]
        assert [label for label in labels if label[0] == "#"] == [
            next(label for label in labels if label.startswith(job))
        ]
    title = figure.texts[0].get_text()  # type: ignore[attr-defined]
    assert "one row per kind of task" in title


def _diagnose(job: int, activation: str, ratio: float, verdict: str) -> JobRecord:
    return _record(
        job,
        ["task=diagnose", f"activation={activation}"],
        task="diagnose",
        diagnose={
            "verdict": verdict,
            "grad_ratio_first_last": ratio,
            "dead_fraction_max": 0.1 * job,
            "thresholds": {"vanishing_below": 0.001, "exploding_above": 100.0},
        },
    )


def test_a_diagnose_sweep_draws_the_ratio_on_a_log_axis_coloured_by_verdict() -> None:
    from matplotlib.colors import to_hex

    records = [
        _diagnose(0, "sigmoid", 1.8e-8, "vanishing"),
        _diagnose(1, "tanh", 0.34, "healthy"),
        _diagnose(2, "relu", 0.09, "healthy"),
    ]
    figure = plot_summary(records)
    assert figure is not None
    ratio, dead = [a for a in figure.axes if a.get_visible()][:2]
    assert ratio.get_title() == "diagnose.grad_ratio_first_last (log scale)"
    assert ratio.get_xscale() == "log"
    # The smallest bar is drawn, from a baseline below it, not an empty one.
    left = ratio.get_xlim()[0]
    bars = ratio.patches
    assert 0 < left <= 1.8e-8
    assert bars[0].get_x() + bars[0].get_width() == pytest.approx(1.8e-8)
    assert dead.get_xscale() == "linear"  # a 0 among the values
    colours = [to_hex(bar.get_facecolor()) for bar in bars]
    assert colours[0] != colours[1] == colours[2]
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "verdict=vanishing",
        "verdict=healthy",
    ]
    # The verdict's threshold inside the drawn range, as a dashed line.
    dashed = [line for line in ratio.get_lines() if line.get_linestyle() == "--"]
    assert [list(line.get_xdata()) for line in dashed] == [[0.001, 0.001]]


# --------------------------------------------------------------------------------------
# End to end with scripts/run.py (each run starts Python and imports torch)
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_basic_sweeper_gets_the_summary_too(run_cli: Any, tmp_path: Path) -> None:
    result = run_cli("-m", "hydra/sweeper=basic", "model=demo", "seed=1,2")
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "multirun"
    with (sweep / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["job"], row["seed"], row["status"]) for row in rows] == [
        ("0", "1", "ok"),
        ("1", "2", "ok"),
    ]
    assert [row["total_params"] for row in rows] == ["26", "26"]
    markdown = (sweep / "summary.md").read_text()
    assert markdown.startswith("Same in every job: model=demo  status=ok")
    assert _table(markdown)[0][:2] == ["job", "seed"]
    assert f"Sweep summary ({sweep / 'summary.md'}):" in result.stdout
    assert (sweep / "summary.png").is_file()
    for job in (0, 1):
        record = json.loads((sweep / str(job) / "job.json").read_text())
        assert record["status"] == "ok"
        assert "Total params: 26" in (sweep / str(job) / "run.log").read_text()


@pytest.mark.slow
def test_a_sweep_prints_one_line_per_job_and_the_table(
    run_cli: Any, tmp_path: Path
) -> None:
    result = run_cli(
        "-m", "model=demo", "seed=1,2,3", "init=xavier_normal,kaiming_normal"
    )
    assert result.returncode == 0, result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    # Before this change: about 256 lines (each job's full report).
    assert len(lines) < 45, "\n".join(lines)
    job_lines = [line for line in lines if line.startswith("#")]
    overrides = [
        f"model=demo seed={seed} init={init}"
        for seed in (1, 2, 3)
        for init in ("xavier_normal", "kaiming_normal")
    ]
    assert len(job_lines) == 6
    for job, (line, given) in enumerate(zip(job_lines, overrides, strict=True)):
        assert re.fullmatch(
            rf"#{job} {given}: ok total_params=26 \(\d+\.\d\d s\)", line
        ), line
    # Hydra's "#0 : ..." lines are gone; its one line per batch stays.
    assert not any(re.search(r"#\d+ : ", line) for line in lines)
    assert sum("Launching 6 jobs locally" in line for line in lines) == 1
    # The reports went to the run logs, not to the terminal.
    assert "Total params" not in result.stdout
    for job in range(6):
        assert (
            "Total params: 26"
            in (tmp_path / "multirun" / str(job) / "run.log").read_text()
        )
    table = _table(result.stdout)
    assert table[0][:3] == ["job", "seed", "init"]
    assert len(table) == 1 + 6


@pytest.mark.slow
def test_a_train_sweep_draws_its_validation_curves(
    run_cli: Any, tmp_path: Path
) -> None:
    result = run_cli(
        "-m", "task=train", "model=mlp", "data=iris", "task.epochs=3",
        "model.width=4,16",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    job_lines = [line for line in result.stdout.splitlines() if line.startswith("#")]
    assert len(job_lines) == 2
    assert all(re.search(r": ok val_accuracy=[0-9.]+ \(", line) for line in job_lines)
    sweep = tmp_path / "multirun"
    with (sweep / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        metrics = json.loads((sweep / row["job"] / "metrics.json").read_text())
        # Full precision: the CSV's number is the job's own.
        assert float(row["train.val_loss"]) == metrics["train"]["val_loss"]
    with Image.open(sweep / "summary.png") as image:
        assert image.format == "PNG"
        assert image.size[0] > 600
