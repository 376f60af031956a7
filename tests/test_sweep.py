"""Sweeps: the summary table, fault isolation, and the annfactory sweeper."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from annfactory.sweep import JobRecord, flatten, summary_rows, write_summary


def _record(job: int, status: str = "ok", **metrics: Any) -> JobRecord:
    return {
        "job": job,
        "overrides": [f"seed={job}"],
        "status": status,
        "error": None if status == "ok" else f"job {job} broke",
        "wall_time_s": 0.25 * (job + 1),
        "metrics": metrics,
    }


def test_flatten_nests_keys_and_keeps_lists_in_one_cell() -> None:
    flat = flatten(
        {"a": {"b": 1, "c": {"d": "x"}}, "shape": [5, 2], "bad": float("nan")}
    )
    assert flat == {"a.b": 1, "a.c.d": "x", "shape": "[5, 2]", "bad": None}


def test_rows_are_in_job_order_with_fixed_columns_first() -> None:
    records = [
        _record(1, total_params=26, output_shape=[5, 2], extra={"x": 1.5}),
        _record(0, total_params=10, output_shape=[5, 1], seed=0),
        _record(2, "error"),
    ]
    columns, rows = summary_rows(records)
    assert columns[:7] == [
        "job",
        "overrides",
        "status",
        "error",
        "total_params",
        "output_shape",
        "wall_time_s",
    ]
    assert set(columns[7:]) == {"extra.x", "seed"}
    assert [row["job"] for row in rows] == [0, 1, 2]
    assert rows[1]["total_params"] == 26
    assert rows[1]["output_shape"] == "[5, 2]"
    assert rows[1]["extra.x"] == 1.5
    assert rows[2]["status"] == "error"
    assert rows[2]["error"] == "job 2 broke"
    assert rows[2]["total_params"] is None


def test_write_summary_writes_csv_and_markdown(tmp_path: Path) -> None:
    records = [_record(0, total_params=26, output_shape=[5, 2]), _record(1, "error")]
    printed = write_summary(tmp_path, records)
    with (tmp_path / "summary.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [row["status"] for row in table] == ["ok", "error"]
    assert table[0]["total_params"] == "26"
    assert table[1]["total_params"] == ""
    markdown = (tmp_path / "summary.md").read_text().splitlines()
    # Constant columns once above the table; the varying ones in it.
    assert markdown[0] == "Same in every job: total_params=26  output_shape=[5, 2]"
    assert markdown[2].startswith("| job | seed | status | error | wall_time_s |")
    assert len(markdown) == 4 + len(records)
    assert printed == "\n".join(markdown)
    assert not list(tmp_path.glob(".*.tmp"))


def test_wide_tables_print_the_first_columns_and_say_so(tmp_path: Path) -> None:
    records = [
        _record(job, **{f"metric{i}": i + job for i in range(20)}) for job in (0, 1)
    ]
    printed = write_summary(tmp_path, records)
    header = next(line for line in printed.splitlines() if line.startswith("| job"))
    assert "metric4" in header
    assert "metric19" not in header
    assert "(11 more columns in summary.csv and summary.md)" in printed
    assert "| metric19 |" in (tmp_path / "summary.md").read_text()


def test_markdown_cells_escape_pipes_and_newlines(tmp_path: Path) -> None:
    record = _record(0, "error")
    record["error"] = "a | b\n  c"
    write_summary(tmp_path, [record, _record(1)])
    row = (tmp_path / "summary.md").read_text().splitlines()[-2]
    assert "a \\| b c" in row


# --------------------------------------------------------------------------------------
# Bad sweeps: refused before any job, with the key, the value and the fix
# --------------------------------------------------------------------------------------

#: Sweeps with no job at all: (overrides after ``-m model=demo``, key, value, fix).
EMPTY_SWEEP_CASES = [
    pytest.param(
        "model.layers.linear1.out_features=range(3,3)",
        "model.layers.linear1.out_features",
        "'model.layers.linear1.out_features=range(3,3)' gives no value",
        "e.g. range(1,6) for 1..5",
        id="empty-range",
    ),
    pytest.param(
        "seed=shuffle(range(5,1))", "seed", "'seed=shuffle(range(5,1))' gives no",
        "range(start,stop) with stop beyond start", id="empty-shuffled-range",
    ),
    pytest.param(
        "model=glob(zzz*)", "model", "'model=glob(zzz*)' matches no option",
        "Its options: cnn, demo, gru, lstm, mlp, resmlp, transformer",
        id="glob-matching-nothing",
    ),
    pytest.param(
        "init=glob(*,exclude=*)", "init", "'init=glob(*,exclude=*)' matches no option",
        "Its options: ", id="glob-excluding-everything",
    ),
    pytest.param(
        "seed=glob(*)", "seed", "'seed=glob(*)' matches no option",
        "options of a config group; seed is none", id="glob-of-a-value",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("override", "key", "value", "fix"), EMPTY_SWEEP_CASES)
def test_an_empty_sweep_is_refused_in_process(
    override: str, key: str, value: str, fix: str
) -> None:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from annfactory.config import conf_dir
    from annfactory.errors import ConfigError
    from hydra_plugins.annfactory_sweeper import check_not_empty

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(
            ["model=demo", override]
        )
        with pytest.raises(ConfigError, match=f"^{re.escape(key)}: ") as caught:
            check_not_empty(parsed, loader)
    message = str(caught.value)
    assert value in message
    assert fix in message
    assert "so the sweep has no job" in message
    assert len(message.splitlines()) <= 2


@pytest.mark.slow
@pytest.mark.parametrize(("override", "key", "value", "fix"), EMPTY_SWEEP_CASES)
def test_an_empty_sweep_is_refused_on_the_command_line(
    run_cli: Any, tmp_path: Path, override: str, key: str, value: str, fix: str
) -> None:
    result = run_cli("-m", "model=demo", override)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{key}: "), result.stderr
    assert value in result.stderr
    assert fix in result.stderr
    assert not (tmp_path / "multirun").exists()
    assert "Sweep summary" not in result.stdout


# --------------------------------------------------------------------------------------
# End to end with scripts/run.py (each run starts Python and imports torch)
# --------------------------------------------------------------------------------------


def _summary(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_failed_job_in_the_middle_is_a_row_and_the_rest_run(
    run_cli: Any, tmp_path: Path
) -> None:
    result = run_cli("-m", "model=demo", "model.layers.linear1.out_features=3,0,4")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "1 of 3 jobs failed (jobs 1)" in result.stderr
    sweep = tmp_path / "multirun"
    rows = _summary(sweep)
    assert [row["status"] for row in rows] == ["ok", "error", "ok"]
    assert "model.layers.linear1.out_features: 0 is out of range" in rows[1]["error"]
    # Sizes of the healthy jobs: (3*k + k) + (k*2 + 2) + (2*2 + 2).
    assert [rows[0]["total_params"], rows[2]["total_params"]] == [
        str(3 * 3 + 3 + 3 * 2 + 2 + 6),
        str(3 * 4 + 4 + 4 * 2 + 2 + 6),
    ]
    for job in (0, 2):
        metrics = json.loads((sweep / str(job) / "metrics.json").read_text())
        assert metrics["total_params"] == int(rows[job]["total_params"])
    record = json.loads((sweep / "1" / "job.json").read_text())
    assert record["status"] == "error"
    assert not (sweep / "1" / "metrics.json").exists()
    assert "Sweep summary" in result.stdout
    # One line per job, then the table: varying columns first, constants above.
    assert (
        "#1 model=demo model.layers.linear1.out_features=0: error: "
        "model.layers.linear1.out_features: 0 is out of range." in result.stdout
    )
    assert "| 1 | 0 | error |" in result.stdout
    assert "Same in every job: model=demo  output_shape=[5, 2]" in result.stdout
    # The README shows this sweep's table as printed (wall times aside).
    assert _printed_rows(result.stdout) == _printed_rows(_readme_sweep_output())


README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_sweep_output() -> str:
    """The output the README's Sweeps section shows for the out_features sweep."""
    text = README.read_text()
    command = text.index("-m model=demo model.layers.linear1.out_features=3,0,4\n")
    start = text.index("```text\n", command)
    return text[start : text.index("```", start + 3)]


def _printed_rows(output: str) -> list[list[str]]:
    """The printed summary table's cells, without the wall-time column if shown."""
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    cells = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    if "wall_time_s" not in cells[0]:
        return cells
    wall = cells[0].index("wall_time_s")
    return [row[:wall] + row[wall + 1 :] for row in cells]


@pytest.mark.slow
def test_an_uncomposable_job_is_a_row_with_the_closest_name(
    run_cli: Any, tmp_path: Path
) -> None:
    result = run_cli(
        "-m", "model=demo", "init=xavier_normal,xavier_norml,kaiming_normal"
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    rows = _summary(tmp_path / "multirun")
    assert [row["job"] for row in rows] == ["0", "1", "2"]
    assert [row["status"] for row in rows] == ["ok", "error", "ok"]
    assert "Did you mean 'xavier_normal'?" in rows[1]["error"]
    # The valid jobs keep their numbers and directories.
    assert (tmp_path / "multirun" / "2" / "metrics.json").exists()
    assert not (tmp_path / "multirun" / "1").exists()
    init = json.loads((tmp_path / "multirun" / "2" / "metrics.json").read_text())
    assert init["parameters"]["linear1.weight"]["init"].startswith("kaiming_normal")


@pytest.mark.slow
def test_a_failed_job_in_a_later_batch_keeps_its_number(
    run_cli: Any, tmp_path: Path
) -> None:
    inits = ["zeros", "ones", "xavier_norml", "xavier_normal"]
    result = run_cli(
        "-m",
        "model=demo",
        f"init={','.join(inits)}",
        "hydra.sweeper.max_batch_size=2",
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    log = result.stdout + result.stderr
    # Two batches: jobs 0-1, then job 2 (invalid, not launched) and job 3.
    assert log.count("Launching 2 jobs locally") == 1
    assert log.count("Launching 1 jobs locally") == 1
    assert "1 of 4 jobs failed (jobs 2)" in result.stderr
    sweep = tmp_path / "multirun"
    rows = _summary(sweep)
    assert [(row["job"], row["overrides"], row["status"]) for row in rows] == [
        (str(job), f"model=demo init={init}", "error" if job == 2 else "ok")
        for job, init in enumerate(inits)
    ]
    assert "Did you mean 'xavier_normal'?" in rows[2]["error"]
    for job in (0, 1, 3):
        metrics = json.loads((sweep / str(job) / "metrics.json").read_text())
        weight_init = metrics["parameters"]["linear1.weight"]["init"]
        assert weight_init.startswith(inits[job]), (job, weight_init)
    assert not (sweep / "2").exists()


def test_runs_of_valid_jobs_keep_sweep_numbers() -> None:
    from hydra_plugins.annfactory_sweeper import _runs_of_valid_jobs

    batch = [["a=0"], ["a=1"], ["a=2"], ["a=3"]]
    # The batch starts at job 10; job 11 is invalid.
    runs = _runs_of_valid_jobs(batch, 10, {11: {}})
    assert runs == [(10, [["a=0"]]), (12, [["a=2"], ["a=3"]])]


@pytest.mark.slow
def test_seed_range_gives_independent_repeats(run_cli: Any, tmp_path: Path) -> None:
    result = run_cli("-m", "model=demo", "seed=range(0,5)")
    assert result.returncode == 0, result.stderr
    rows = _summary(tmp_path / "multirun")
    assert [row["seed"] for row in rows] == ["0", "1", "2", "3", "4"]
    assert all(row["status"] == "ok" for row in rows)
    means = {row["parameters.linear1.weight.mean"] for row in rows}
    assert len(means) == 5
    assert "Sweep summary" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sweep", ["seed=1,2,1", "init=zeros,ones,zeros"])
def test_a_repeated_value_runs_every_job(
    run_cli: Any, tmp_path: Path, sweep: str
) -> None:
    result = run_cli("-m", "model=demo", sweep)
    assert result.returncode == 0, result.stderr
    assert "failed" not in result.stderr
    rows = _summary(tmp_path / "multirun")
    key, values = sweep.split("=")
    assert [row["overrides"] for row in rows] == [
        f"model=demo {key}={value}" for value in values.split(",")
    ]
    assert [row["status"] for row in rows] == ["ok", "ok", "ok"]
    metrics = [
        json.loads((tmp_path / "multirun" / str(job) / "metrics.json").read_text())
        for job in range(3)
    ]
    # The repeat is the same network as job 0, drawn again; job 1 differs.
    weights = [m["parameters"]["linear1.weight"]["mean"] for m in metrics]
    assert weights[2] == weights[0]
    assert weights[1] != weights[0]


def test_an_interrupted_sweep_keeps_the_finished_jobs_and_marks_the_running_one(
    tmp_path: Path,
) -> None:
    from hydra_plugins.annfactory_sweeper import interrupted_records

    launched = {1: ["seed=1"], 2: ["seed=2"], 3: ["seed=3"]}
    # Job 1 finished and wrote its record; the launcher never handed it back.
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "job.json").write_text(json.dumps(_record(1, total_params=5)))
    collected = [_record(0, total_params=5)]
    rows = interrupted_records(collected, launched, tmp_path, since=0.0)
    assert [(row["job"], row["status"]) for row in rows] == [
        (0, "ok"),
        (1, "ok"),
        (2, "interrupted"),  # the one running: no record of its own
    ]
    assert rows[2]["overrides"] == ["seed=2"]
    assert rows[2]["error"] == "stopped by Ctrl-C"
    # A job that wrote its own interrupted record keeps it; none is invented.
    stopped = {**_record(2, "error"), "status": "interrupted", "error": "after 2 s"}
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "job.json").write_text(json.dumps(stopped))
    rows = interrupted_records(collected, launched, tmp_path, since=0.0)
    assert [(row["job"], row["status"], row["error"]) for row in rows][1:] == [
        (1, "ok", None),
        (2, "interrupted", "after 2 s"),
    ]


@pytest.mark.slow
def test_ctrl_c_writes_the_summary_of_the_finished_jobs(
    tmp_path: Path, interrupt_after_first_job: Any
) -> None:
    sweep_dir = tmp_path / "multirun"
    command = [
        sys.executable, str(README.parent / "scripts" / "run.py"), "-m",
        "task=train", "model=mlp", "data=digits", "task.epochs=1,5000,1",
        f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    done = interrupt_after_first_job(command, sweep_dir, tmp_path)
    assert done.returncode == 130
    assert "Traceback" not in done.stderr
    assert (
        f"Interrupted (Ctrl-C): 1 of 3 jobs finished, job 1 stopped, 1 not started; "
        f"see {sweep_dir / 'summary.md'}"
    ) in done.stderr
    rows = _summary(sweep_dir)
    assert [(row["job"], row["status"]) for row in rows] == [
        ("0", "ok"),
        ("1", "interrupted"),
    ]
    assert rows[1]["error"].startswith("stopped by Ctrl-C")
    assert float(rows[0]["train.val_loss"]) > 0
    assert "| 1 | 5000 | interrupted | stopped by Ctrl-C" in done.stdout
    assert (sweep_dir / "summary.md").is_file()
    assert (sweep_dir / "summary.png").is_file()
    assert not (sweep_dir / "2").exists()
    # The stopped job keeps its checkpoint, to continue with task.resume.
    assert (sweep_dir / "1" / "checkpoint.safetensors").is_file()


class _CountingLoader:  # module level, so pickle finds it
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def load_sweep_config(self, master: Any, overrides: list[str]) -> dict[str, Any]:
        self.calls.append(tuple(overrides))
        return {"overrides": list(overrides)}

    def list_groups(self, parent_name: str) -> list[str]:
        return [f"{parent_name}/delegated"]


def test_compose_once_hands_the_validated_config_to_the_launcher() -> None:
    import pickle

    from annfactory.sweep import ComposeOnce

    inner = _CountingLoader()
    loader = ComposeOnce(inner)
    validated = loader.compose(None, ["seed=1"])
    launched = loader.load_sweep_config(None, ["seed=1"])
    assert launched is validated
    assert inner.calls == [("seed=1",)]
    # A second request (a relaunch) composes afresh.
    relaunched = loader.load_sweep_config(None, ["seed=1"])
    assert relaunched is not validated
    assert inner.calls == [("seed=1",), ("seed=1",)]
    assert loader.list_groups("model") == ["model/delegated"]
    loader.compose(None, ["seed=2"])
    loader.forget()
    copy = pickle.loads(pickle.dumps(loader))
    assert copy.kept == {}


def test_compose_once_gives_each_repeated_job_its_own_config() -> None:
    from annfactory.sweep import ComposeOnce

    inner = _CountingLoader()
    loader = ComposeOnce(inner)
    batch = [["seed=1"], ["seed=2"], ["seed=1"]]
    validated = [loader.compose(None, overrides) for overrides in batch]
    launched = [loader.load_sweep_config(None, overrides) for overrides in batch]
    # Still one composition per job, and each job its own object, in job order.
    assert len(inner.calls) == 3
    assert [id(c) for c in launched] == [id(c) for c in validated]
    assert launched[0] is not launched[2]
    assert loader.kept == {}


@pytest.mark.slow
def test_a_failing_launcher_turns_its_jobs_into_rows(
    run_cli: Any, tmp_path: Path
) -> None:
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher",
        reason="needs hydra-submitit-launcher (the launchers extra)",
    )
    empty = tmp_path / "no_slurm_here"
    empty.mkdir()
    result = run_cli(
        "-m",
        "hydra/launcher=submitit_slurm",
        "model=mlp",
        "model.depth=2,4",
        env={"PATH": str(empty)},
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "2 of 2 jobs failed" in result.stderr
    rows = _summary(tmp_path / "multirun")
    assert [row["status"] for row in rows] == ["error", "error"]
    assert all("SlurmLauncher failed" in row["error"] for row in rows)
    assert all("srun" in row["error"] for row in rows)


# --------------------------------------------------------------------------------------
# Flags that Hydra refuses to combine (-m --cfg job)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-m", "--cfg", "job"], "-m/--multirun and --cfg cannot be combined"),
        (["--cfg", "job", "--info"], "--cfg and --info cannot be combined"),
        (["-m", "--run", "seed=1"], "--run and -m/--multirun cannot be combined"),
        (["--resolve", "seed=1"], "--resolve only works with --cfg or --help"),
    ],
)
def test_flags_hydra_refuses_together_give_a_short_message(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from annfactory.run import check_command_flags, parse_hydra_flags

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    args = parse_hydra_flags(argv)
    assert args is not None
    with pytest.raises(SystemExit) as exit_info:
        check_command_flags(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) <= 3


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "seed=1,2"],
        ["--cfg", "job", "seed=1"],
        ["-m", "--help"],  # Hydra shows the help, whatever else is given
        ["--cfg", "job", "--resolve"],
    ],
)
def test_flags_hydra_accepts_pass(argv: list[str]) -> None:
    from annfactory.run import check_command_flags, parse_hydra_flags

    args = parse_hydra_flags(argv)
    assert args is not None
    check_command_flags(args)


def test_flags_argparse_rejects_are_left_to_hydra(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from annfactory.run import parse_hydra_flags

    assert parse_hydra_flags(["--cfg", "foo"]) is None
    assert parse_hydra_flags(["--no-such-flag"]) is None
    # Hydra prints argparse's usage; nothing printed here, so it shows once.
    assert capsys.readouterr() == ("", "")


@pytest.mark.slow
def test_multirun_with_cfg_job_says_why_and_writes_nothing(
    run_cli: Any, tmp_path: Path
) -> None:
    result = run_cli("-m", "--cfg", "job", "model=demo", "seed=1,2")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 3
    assert "-m/--multirun and --cfg cannot be combined" in lines[0]
    assert "--cfg job seed=1" in result.stderr
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []
