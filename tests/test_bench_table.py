"""The table benchmark's file and its hand-written pandas baseline
(scripts/bench_table.py), on a small file."""

from __future__ import annotations

import csv
import io
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import bench_table


def test_the_file_has_the_issue_s_columns(tmp_path: Path) -> None:
    path = bench_table.make_table_csv(tmp_path / "t.csv", rows=4000, seed=1)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4000
    names = list(rows[0])
    assert names == [f"x{i:02d}" for i in range(1, 21)] + ["color", "shape", "label"]
    empty = sum(row[name] == "" for row in rows for name in names[:20])
    assert 0.007 < empty / (4000 * 20) < 0.013  # 1% empty numeric cells
    assert not any(row[name] == "" for row in rows for name in names[20:])
    assert {row["color"] for row in rows} == set(bench_table.TEXT_LEVELS)
    labels = [row["label"] for row in rows]
    assert {labels.count(c) for c in bench_table.CLASSES} <= set(range(1300, 1368))


@pytest.mark.heavy  # trains
def test_the_pandas_baseline_learns_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = bench_table.make_table_csv(tmp_path / "t.csv", rows=20_000, seed=2)
    monkeypatch.setattr(sys, "argv", ["baseline", str(path)])
    printed = io.StringIO()
    with redirect_stdout(printed):
        exec(bench_table.PANDAS_BASELINE, {"__name__": "__main__"})
    accuracy = float(printed.getvalue().split()[-1])
    assert accuracy > 0.45  # one epoch of 16 steps; three even classes: chance 1/3
