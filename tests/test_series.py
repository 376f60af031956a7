"""``data=series``: a column of a file cut into windows for forecasting, split in
time order, with the seasonal-naive forecast scored beside the network."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

import annfactory
from annfactory import ConfigError
from annfactory.data import load_table, parse_data, split_three
from annfactory.layouts import SEQUENCE, layout_of
from annfactory.series import read_series, seasonal_naive, windows
from annfactory.tasks import run_named_task

BAD_DATA = Path(__file__).resolve().parent / "bad_inputs" / "data"


def write_series(path: Path, values: Sequence[float], name: str = "sales") -> Path:
    lines = ["day," + name, *(f"d{i},{value}" for i, value in enumerate(values))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def brute_force(
    series: Sequence[float], window: int, horizon: int, season: int
) -> tuple[list[list[float]], list[float], list[float]]:
    """Each window, its target and its seasonal-naive forecast, one by one: the
    forecast is the latest value at or before the window's end that lies a whole
    number of seasons before the target."""
    features, target, naive = [], [], []
    for start in range(len(series) - window - horizon + 1):
        end = start + window - 1  # the window's last step
        goal = end + horizon
        features.append(list(series[start : end + 1]))
        target.append(series[goal])
        back = goal - season
        while back > end:
            back -= season
        naive.append(series[back])
    return features, target, naive


@pytest.mark.parametrize(
    ("window", "horizon", "season"),
    [(1, 1, 1), (3, 1, 1), (3, 2, 1), (4, 1, 4), (4, 3, 2), (5, 7, 3), (6, 12, 6)],
)
def test_windows_targets_and_the_seasonal_naive_forecast(
    window: int, horizon: int, season: int
) -> None:
    series = np.array([float(i * i % 17) for i in range(30)])
    cut = windows(series, window, horizon, season)
    features, target, naive = brute_force(list(series), window, horizon, season)
    np.testing.assert_array_equal(cut.features, features)
    np.testing.assert_array_equal(cut.target, target)
    np.testing.assert_array_equal(cut.naive, naive)
    np.testing.assert_array_equal(
        seasonal_naive(series, window, horizon, season), naive
    )


def test_the_naive_forecast_is_the_windows_last_value_and_a_season_back() -> None:
    series = np.arange(20.0)
    # Season 1, horizon 1: the last value of the window.
    np.testing.assert_array_equal(windows(series, 4, 1, 1).naive, np.arange(3.0, 19.0))
    # Season 4, horizon 1: the value 4 steps before the target (3 before the end).
    np.testing.assert_array_equal(windows(series, 4, 1, 4).naive, np.arange(0.0, 16.0))
    # Season 4, horizon 6: two seasons back from the target, 2 before the end.
    np.testing.assert_array_equal(windows(series, 4, 6, 4).naive, np.arange(1.0, 12.0))


def test_windows_refuse_a_season_longer_than_the_window_and_a_short_series() -> None:
    series = np.arange(10.0)
    with pytest.raises(ConfigError, match=r"^data\.season: 5 is longer than data\."):
        windows(series, 4, 1, 5)
    with pytest.raises(ConfigError, match=r"^data\.window: .* has 10 steps: a window "):
        windows(series, 8, 3, 1)
    assert len(windows(series, 8, 2, 1).target) == 1  # exactly long enough


def test_windows_refuse_more_values_than_memory_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("annfactory.series.MAX_VALUES", 100)
    with pytest.raises(
        ConfigError, match=r"^data\.window: 16 windows of 8 steps hold 128 values"
    ):
        windows(np.arange(24.0), 8, 1, 1)


def series_spec(path: Path, **options: Any) -> Any:
    return parse_data(
        {"name": "series", "path": str(path), "column": "sales", **options}
    )


def test_the_split_keeps_time_order_and_leaves_out_the_horizons_overlap(
    tmp_path: Path,
) -> None:
    path = write_series(tmp_path / "s.csv", [float(i) for i in range(110)])
    spec = series_spec(path, window=10, horizon=4, test_fraction=0.2)
    table = load_table(spec, 0)
    assert table.rows == 97  # 110 - 10 - 4 + 1
    train, val, test = split_three(table, spec.val_fraction, spec.test_fraction, 0)
    n_test, n_val = round(97 * 0.2), round(97 * 0.2)
    np.testing.assert_array_equal(test, np.arange(97 - n_test, 97))
    np.testing.assert_array_equal(
        val, np.arange(97 - n_test - 3 - n_val, 97 - n_test - 3)
    )
    np.testing.assert_array_equal(train, np.arange(0, val[0] - 3))
    # No training target lies after a validation forecast's start (its window's
    # last step), nor a validation target after a test forecast's start.
    last_step = np.arange(97) + 10 - 1
    target_step = last_step + 4
    assert target_step[train].max() <= last_step[val].min()
    assert target_step[val].max() <= last_step[test].min()
    np.testing.assert_array_equal(table.target, np.arange(13.0, 110.0))
    # The seed does not enter.
    for seed in (1, 7):
        again = split_three(table, spec.val_fraction, spec.test_fraction, seed)
        for mine, theirs in zip(again, (train, val, test), strict=True):
            np.testing.assert_array_equal(mine, theirs)


def test_the_table_holds_sequences_and_the_naive_forecast(tmp_path: Path) -> None:
    values = [float(i % 7) for i in range(50)]
    path = write_series(tmp_path / "s.csv", values)
    table = load_table(series_spec(path, window=8, season=7), 0)
    assert table.kind == "regression"
    assert table.sample_shape == (8, 1)
    assert layout_of(table.sample_shape) == SEQUENCE
    # A series of period 7: the seasonal-naive forecast is exact.
    np.testing.assert_array_equal(table.baseline, table.target)
    assert table.baseline_name == "seasonal naive (season 7)"
    assert any(
        "50 steps cut into 42 windows of 8 steps" in note for note in table.notes
    )


def test_a_series_is_read_once_until_its_file_changes(tmp_path: Path) -> None:
    import os

    path = write_series(tmp_path / "s.csv", [float(i) for i in range(30)])
    spec = series_spec(path, window=5)
    first = load_table(spec, 0)
    assert load_table(spec, 3) is first  # sizing and training share one read
    write_series(path, [float(2 * i) for i in range(30)])
    os.utime(path, ns=(1, 1))  # a new modification time, whatever the clock
    again = load_table(spec, 0)
    assert again is not first
    np.testing.assert_array_equal(again.target, 2 * first.target)


def test_a_split_too_small_names_the_share(tmp_path: Path) -> None:
    path = write_series(tmp_path / "s.csv", [float(i) for i in range(12)])
    table = load_table(series_spec(path, window=4), 0)  # 8 rows
    with pytest.raises(ConfigError, match=r"^data\.val_fraction: 0\.01 of 8 rows"):
        split_three(table, 0.01, 0.2, 0)
    with pytest.raises(ConfigError, match=r"^data\.test_fraction: 0\.01 of 8 rows"):
        split_three(table, 0.2, 0.01, 0)
    with pytest.raises(ConfigError, match=r"^data\.val_fraction: 8 rows leave no "):
        split_three(table, 0.5, 0.45, 0)
    train, val, test = split_three(table, 0.25, 0.0, 0)  # no test rows, no gap
    assert (list(train), list(val), list(test)) == ([0, 1, 2, 3, 4, 5], [6, 7], [])


def test_reading_names_the_column_the_row_and_the_cell(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_series(BAD_DATA / "series.csv", "sale")
    assert str(info.value).startswith("data.column: no column 'sale' in ")
    assert "Did you mean 'sales'?" in str(info.value)
    with pytest.raises(ConfigError, match=r"has no value in row 14 \(1 empty of 40\)"):
        read_series(BAD_DATA / "series_gap.csv", "sales")
    with pytest.raises(ConfigError, match=r"holds 'n/a\?' in row 22: not a number"):
        read_series(BAD_DATA / "series_text.csv", "sales")
    with pytest.raises(ConfigError, match=r"holds '2020-01-01' in row 2: not a number"):
        read_series(BAD_DATA / "series.csv", "day")
    infinite = write_series(tmp_path / "inf.csv", [1.0, 2.0, math.inf, 4.0])
    with pytest.raises(ConfigError, match=r"holds inf in row 4: not a finite number"):
        read_series(infinite, "sales")
    with pytest.raises(ConfigError, match=r"^data\.path: no file "):
        read_series(tmp_path / "missing.csv", "sales")


@pytest.mark.parametrize("name", ["series", "csv", "parquet"])
def test_an_empty_path_is_refused_not_read_as_the_current_directory(name: str) -> None:
    other = {"column": "sales"} if name == "series" else {"target": "y"}
    for empty in ("", "  "):
        with pytest.raises(ConfigError, match=r"^data\.path: is empty\.\n  Give the"):
            parse_data({"name": name, "path": empty, **other})


def test_a_parquet_file_and_quoted_numbers_read_as_the_csv(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = [3.5, 1.0, -2.25, 8.0]
    pq.write_table(pa.table({"sales": values}), tmp_path / "s.parquet")
    np.testing.assert_array_equal(read_series(tmp_path / "s.parquet", "sales"), values)
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('sales\n"3.5"\n" 1"\n-2.25\n8\n', encoding="utf-8")
    np.testing.assert_array_equal(read_series(quoted, "sales"), values)


def test_the_forecast_figure_draws_both_forecasts_at_their_steps(
    tmp_path: Path,
) -> None:
    from annfactory.tasks.train_report import plot_forecast

    path = write_series(tmp_path / "s.csv", [float(i % 6) + i / 10 for i in range(80)])
    spec = series_spec(path, window=6, horizon=2, season=6, test_fraction=0.2)
    table = load_table(spec, 0)
    _, val, test = split_three(table, spec.val_fraction, spec.test_fraction, 0)
    forecasts = {"val": table.target[val] + 1.0, "test": table.target[test] - 0.5}
    figure = plot_forecast(table, {"val": val, "test": test}, forecasts, "a title")
    (axes,) = figure.axes
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert table.baseline is not None
    naive_val = np.abs(table.baseline[val] - table.target[val]).mean()
    naive_test = np.abs(table.baseline[test] - table.target[test]).mean()
    assert set(lines) == {
        "series",
        "network, validation (MAE 1)",
        f"seasonal naive (season 6), validation (MAE {naive_val:.4g})",
        "network, test (MAE 0.5)",
        f"seasonal naive (season 6), test (MAE {naive_test:.4g})",
    }
    # Row i's target is step i + window + horizon - 1 of the series.
    test_line = lines["network, test (MAE 0.5)"]
    np.testing.assert_array_equal(test_line.get_xdata(), test + 6 + 2 - 1)
    np.testing.assert_array_equal(test_line.get_ydata(), forecasts["test"])
    series_line = lines["series"]
    values = np.asarray(series_line.get_ydata())
    steps = np.asarray(series_line.get_xdata())
    np.testing.assert_array_equal(values, [float(s % 6) + s / 10 for s in steps])
    assert steps[-1] == 79
    assert steps[0] < val[0] + 7  # some training context before validation


def test_the_forecast_figure_of_a_long_series_draws_its_last_steps(
    tmp_path: Path,
) -> None:
    from annfactory.tasks.train_report import plot_forecast

    path = write_series(tmp_path / "s.csv", [float(i % 24) for i in range(5000)])
    spec = series_spec(path, window=24, season=24, test_fraction=0.2)
    table = load_table(spec, 0)
    _, val, test = split_three(table, spec.val_fraction, spec.test_fraction, 0)
    forecasts = {"val": table.target[val], "test": table.target[test]}
    figure = plot_forecast(table, {"val": val, "test": test}, forecasts, "a title")
    (axes,) = figure.axes
    lines = {line.get_label(): line for line in axes.get_lines()}
    # 995 test windows: the last 600 are drawn, and no validation window.
    np.testing.assert_array_equal(lines["series"].get_xdata(), np.arange(4400, 5000))
    assert set(lines) == {
        "series",
        "network, test (MAE 0)",
        "seasonal naive (season 24), test (MAE 0)",
    }
    assert "its last 600 forecasts" in axes.get_xlabel()


def spec_of(overrides: Sequence[str]) -> annfactory.RunSpec:
    return annfactory.to_spec(annfactory.compose(["task=train", *overrides]))


def test_the_models_take_the_windows_shape(tmp_path: Path) -> None:
    path = write_series(tmp_path / "s.csv", [float(i % 5) for i in range(60)])
    data = ["data=series", f"data.path={path}", "data.column=sales", "data.window=12"]
    lstm = spec_of(["model=lstm", *data])
    assert lstm.network.input_shape == (12, 1)
    assert lstm.network.output_shape == (1,)
    assert spec_of(["model=mlp", *data]).network.input_shape == (12,)


@pytest.mark.heavy
def test_training_scores_the_network_beside_the_seasonal_naive_forecast(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    steps = np.arange(240)
    values = 10 + 3 * np.sin(2 * np.pi * steps / 12) + rng.normal(0, 0.3, 240)
    path = write_series(tmp_path / "s.csv", [round(v, 4) for v in values])
    overrides = [
        "task=train", "model=gru", "data=series", f"data.path={path}",
        "data.column=sales", "data.season=12", "data.horizon=2", "task.epochs=60",
        "optimizer.lr=0.01",
    ]  # fmt: skip
    cfg = annfactory.compose(overrides)
    out = io.StringIO()
    task = OmegaConf.to_container(cfg.task, resolve=True)
    run_named_task(task, annfactory.to_spec(cfg), tmp_path / "run", out=out)
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())["train"]
    rows = 240 - 24 - 2 + 1
    n_test, n_val = round(rows * 0.2), round(rows * 0.2)
    assert summary["rows_test"] == n_test
    assert summary["rows_val"] == n_val
    assert summary["rows_train"] == rows - n_test - n_val - 2  # a gap of 1, twice
    # The naive forecast's errors, computed here from the file's values.
    truth = values.round(4)[24 + 2 - 1 :]
    naive = values.round(4)[24 - 1 - 10 : 24 - 1 - 10 + rows]  # 12 back from t + 2
    for split, rows_of in (("test", slice(rows - n_test, rows)),):
        error = naive[rows_of] - truth[rows_of]
        assert summary[f"{split}_naive_mae"] == pytest.approx(np.abs(error).mean())
        assert summary[f"{split}_naive_rmse"] == pytest.approx(
            np.sqrt((error**2).mean())
        )
    # The network's own errors, from its saved predictions on the test windows.
    network = annfactory.load_run(tmp_path / "run")
    x = np.lib.stride_tricks.sliding_window_view(values.round(4), 24)[:rows]
    import torch

    with torch.no_grad():
        predicted = network(
            torch.tensor(x[rows - n_test :, :, None], dtype=torch.float32)
        )
    error = predicted.reshape(-1).double().numpy() - truth[rows - n_test :]
    assert summary["test_mae"] == pytest.approx(np.abs(error).mean(), rel=1e-5)
    assert summary["test_rmse"] == pytest.approx(np.sqrt((error**2).mean()), rel=1e-5)
    assert summary["val_naive_mae"] > 0
    assert summary["baseline"] == "seasonal naive (season 12)"
    # A learnable series: the network forecasts it better than chance, and the
    # report says how it compares with the naive forecast.
    assert summary["test_r2"] > 0.5
    text = out.getvalue()
    assert "test_mae: " in text
    assert "| seasonal naive (season 12) forecast: test_naive_mae: " in text
    assert "split in time order (train, then validation, then test)" in text
    assert (tmp_path / "run" / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
