"""scripts/bench.py runs and writes its table as JSON (no timing is asserted here:
speed targets are checked by running the benchmark itself)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench", REPO / "scripts" / "bench.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up while the module runs.
    monkeypatch.setitem(sys.modules, "bench", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_writes_its_figures_as_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench.py"),
            "--quick",
            "--only",
            "small_forward,config_only",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), (
        done.stderr
    )  # 1: a target missed on a busy machine
    report = json.loads(out.read_text())
    names = [figure["name"] for figure in report["figures"]]
    assert names == ["small forward", "config only"]
    for figure in report["figures"]:
        assert figure["ours"] > 0
        assert figure["reference"] > 0
        assert figure["ratio"] == pytest.approx(figure["ours"] / figure["reference"])
        assert figure["target"] in (1.05, 0.3)
    assert "| small forward |" in done.stdout
    assert report["machine"]["torch"].startswith("2.")


def test_bench_refuses_an_unknown_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--only", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown figures ['nope']" in done.stderr


@pytest.mark.slow
def test_bench_end_to_end_reports_the_hydra_app_and_the_bare_script(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench.py"),
            "--only",
            "end_to_end",
            "--repeats",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr
    figures = json.loads(out.read_text())["figures"]
    assert [(f["name"], f["target"]) for f in figures] == [
        ("end to end", 1.10),
        ("end to end vs a bare script", None),
    ]
    # Both compare the same annfactory run.
    assert figures[0]["ours"] == figures[1]["ours"]
    for figure in figures:
        assert figure["extra"]["cpu_s"] > 0
        assert figure["extra"]["reference_cpu_s"] > 0
    assert "| end to end: CPU time |" in done.stdout


def _summary_rows(text: str) -> list[str]:
    """The per-layer rows of a torchinfo summary (the root row names the class)."""
    return [line for line in text.splitlines() if re.match(r"^[├└]─", line)]


@pytest.mark.slow
def test_plain_hydra_app_prints_the_same_summary_as_annfactory(
    run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = _bench_module(monkeypatch)
    app = tmp_path / "hydra_app"
    (app / "conf").mkdir(parents=True)
    (app / "conf" / "config.yaml").write_text(bench.PLAIN_HYDRA_CONFIG)
    (app / "demo_app.py").write_text(bench.PLAIN_HYDRA_APP)
    plain = subprocess.run(
        [sys.executable, str(app / "demo_app.py"), f"hydra.run.dir={tmp_path / 'h'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode == 0, plain.stderr
    ours = run_cli("model=demo")
    assert ours.returncode == 0, ours.stderr
    summary = (ours.run_dir / "summary.txt").read_text()
    assert len(_summary_rows(summary)) == 6
    assert _summary_rows(plain.stdout) == _summary_rows(summary)
    assert "Total params: 26" in plain.stdout


def test_the_table_figure_runs_issue_21_s_command_and_the_pandas_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = _bench_module(monkeypatch)
    csv = tmp_path / "table.csv"
    commands = bench.table_commands(csv, tmp_path)
    assert commands["ours"] == [
        sys.executable, str(REPO / "scripts" / "run.py"), "task=train", "model=mlp",
        "data=csv", "data.target=label", "task.epochs=1", "task.batch_size=1024",
        f"data.path={csv}", f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    assert commands["reference"][1:] == [
        str(REPO / "scripts" / "bench_table.py"), "baseline", str(csv),
        "--accuracy-file", str(tmp_path / "baseline.txt"),
    ]  # fmt: skip
    figure = bench.Figure(
        "table train", "x", 9.0, 10.0, "s", 1.0,
        {"cpu_s": 8.0, "reference_cpu_s": 9.0, "val_accuracy": 0.98,
         "reference_val_accuracy": 0.97},
    )  # fmt: skip
    printed = bench.table([figure]).splitlines()
    assert "| table train | 9 s | 10 s | 0.90x | ≤ 1.00x | yes |" in printed
    assert (
        "| table train: val accuracy after 1 epoch | 0.9800 | 0.9700 | — | — | — |"
        in printed
    )


def test_process_rotation_reads_each_runs_own_loop_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bench = _bench_module(monkeypatch)
    loops = iter([3.0, 1.0, 2.0])
    read: list[str] = []

    def loop(name: str) -> float:
        read.append(name)
        return next(loops)

    walls = iter([5.0, 4.0, 6.0, 7.0])
    monkeypatch.setattr(bench, "process", lambda command, env: (next(walls), 1, 0.5))
    samples = bench.process_rotation({"only": ["python", "x.py"]}, 3, loop=loop)
    assert read == ["only"] * 3
    assert samples["only"].loop == 2.0  # the median of the three runs' own figures
    assert samples["only"].wall == 5.0
    # Without a reader, no loop time is claimed.
    unread = bench.process_rotation({"o": ["python", "x.py"]}, 1)["o"]
    assert (unread.wall, unread.loop != unread.loop) == (7.0, True)  # NaN


@pytest.mark.slow
def test_the_plain_lstm_loop_reports_its_own_loop_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = _bench_module(monkeypatch)
    script = tmp_path / "plain_lstm.py"
    script.write_text("ONE_THREAD = True\n" + bench.PLAIN_LSTM)
    out = tmp_path / "plain.json"
    done = subprocess.run(
        [sys.executable, str(script), "3", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert 0 < report["seconds"] < 60
    assert 0 <= report["val_accuracy"] <= 1


def test_the_table_prints_a_figures_information_ratios(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bench = _bench_module(monkeypatch)
    figure = bench.Figure(
        "lstm epoch vs plain", "x", 10.0, 8.0, "ms", 1.0,
        {"process_wall_ms": 9.0, "reference_process_wall_ms": 6.0,
         "cpu_ms": 5.0, "reference_cpu_ms": 10.0},
    )  # fmt: skip
    printed = bench.table([figure]).splitlines()
    assert "| lstm epoch vs plain | 10 ms | 8 ms | 1.25x | ≤ 1.00x | NO |" in printed
    assert printed[-2:] == [
        "| lstm epoch vs plain: whole processes' wall | 9 ms | 6 ms | 1.50x | — | — |",
        "| lstm epoch vs plain: CPU time | 5 ms | 10 ms | 0.50x | — | — |",
    ]
