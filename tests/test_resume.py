"""Issue 22 on the command line: a training run stopped by Ctrl-C, SIGTERM or
``kill -9`` and continued with ``task=train task.resume=<run dir>`` ends with the
bytes of the run left alone (weights; history but ``seconds``), and the mistakes a
user makes get a short message, exit 1 and nothing changed. The loop's matrix of
interruptions is tests/test_resume_loop.py."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from signal import SIGINT, SIGKILL, SIGTERM
from typing import Any

import pytest
import torch

from annfactory.checkpoints import (
    CHECKPOINT_FILE,
    LoopState,
    load_checkpoint,
    save_checkpoint,
)
from annfactory.errors import ConfigError
from annfactory.resume import resume_argv

RECIPE = ["task=train", "model=mlp", "data=digits"]

#: A model file with dropout, given by --config-dir (gone when the run resumes).
DROPOUT_MODEL = {
    "type": "sequential",
    "in_features": 64,
    "layers": {
        "fc1": {"type": "linear", "out_features": 24, "activation": "relu"},
        "drop1": {"type": "dropout", "p": 0.2},
        "out": {"type": "linear", "out_features": 10},
    },
}


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as file:
        return [
            {key: value for key, value in row.items() if key != "seconds"}
            for row in csv.DictReader(file)
        ]


def _same_run(run_dir: Path, reference: Path, kept: bool = False) -> None:
    """The guarantee: the weights file's bytes, and every value of the history but
    its seconds (history.csv and metrics.json)."""
    assert (run_dir / "weights.safetensors").read_bytes() == (
        reference / "weights.safetensors"
    ).read_bytes()
    assert _history(run_dir) == _history(reference)
    assert len(_history(run_dir)) > 0
    ours, theirs = (
        json.loads((folder / "metrics.json").read_text())["train"]
        for folder in (run_dir, reference)
    )
    for summary in (ours, theirs):
        for row in summary["history"]:
            row.pop("seconds")
        summary.pop("seconds", None)
    assert ours["history"] == theirs["history"]
    # Removed at the end, unless the run keeps it (task.keep_checkpoint=true).
    assert (run_dir / CHECKPOINT_FILE).exists() == kept


def _signal_after(path: Path, writes: int, number: int) -> Callable[[int], None]:
    """For ``run_cli(started=...)``: send ``number`` to the run once ``path`` has
    been written ``writes`` times (its mtime changed), so that it lands in
    training."""

    def send(pid: int) -> None:
        deadline = time.monotonic() + 120
        seen: set[int] = set()
        while len(seen) < writes and time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                seen.add(path.stat().st_mtime_ns)
            time.sleep(0.005)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)

    return send


@pytest.mark.slow
def test_ctrl_c_then_resume_gives_the_bytes_of_the_run_left_alone(
    run_cli: Any, tmp_path: Path
) -> None:
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "dropped.yaml").write_text(json.dumps(DROPOUT_MODEL), encoding="utf-8")
    args = ["--config-dir", str(tmp_path / "conf"), "task=train", "model=dropped",
            "data=digits", "task.epochs=15", "optimizer=adamw", "task.schedule=step",
            "task.step_size=5", "task.checkpoint_seconds=0"]  # fmt: skip
    reference = run_cli(*args)
    assert reference.returncode == 0, reference.stderr
    reference.run_dir.rename(tmp_path / "reference")
    # Ctrl-C once the run has written 3 checkpoints (it is training then).
    stopped = run_cli(
        *args, started=_signal_after(tmp_path / "run" / CHECKPOINT_FILE, 3, SIGINT)
    )
    assert stopped.returncode == 130
    # One line: where it stopped, and the command that continues it.
    assert stopped.stderr.count("\n") == 1, stopped.stderr
    assert stopped.stderr.startswith("Stopped by Ctrl-C (SIGINT) ")
    assert stopped.stderr.rstrip().endswith(
        "checkpoint saved. Continue with: python scripts/run.py task=train "
        "task.resume=run"
    ), stopped.stderr
    assert sorted(os.listdir(tmp_path / "run")) == [CHECKPOINT_FILE]

    # The model file is not needed again: the checkpoint carries the config.
    (conf / "dropped.yaml").unlink()
    # run_cli names the same directory with hydra.run.dir, which a resume allows.
    done = run_cli("task=train", "task.resume=run")
    assert done.returncode == 0, done.stderr
    assert "continuing from the checkpoint of epoch" in done.stdout
    _same_run(done.run_dir, tmp_path / "reference")
    # The run's own config and overrides, as if it had never stopped.
    for name in ("config.yaml", "overrides.yaml"):
        assert (done.run_dir / ".hydra" / name).read_text() == (
            tmp_path / "reference" / ".hydra" / name
        ).read_text()


@pytest.mark.slow
def test_sigterm_stops_with_143_and_the_same_command_continues(
    run_cli: Any, tmp_path: Path
) -> None:
    # What a scheduler's preemption sends; the resume itself is the one above.
    args = [*RECIPE, "task.epochs=60", "task.checkpoint_seconds=0"]
    stopped = run_cli(
        *args, started=_signal_after(tmp_path / "run" / CHECKPOINT_FILE, 2, SIGTERM)
    )
    assert stopped.returncode == 143
    assert stopped.stderr.startswith("Stopped by SIGTERM "), stopped.stderr
    state, run = load_checkpoint(tmp_path / "run" / CHECKPOINT_FILE)
    assert 2 <= state.epoch < 60
    assert "epochs: 60" in run["record"][".hydra/config.yaml"]
    # The same command again, in the same directory (a requeued job), continues.
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert f"continuing from the checkpoint of epoch {state.epoch}" in again.stdout
    assert len(_history(again.run_dir)) == 60
    assert not (again.run_dir / CHECKPOINT_FILE).exists()


@pytest.mark.slow
def test_kill_9_leaves_a_whole_checkpoint_that_continues(
    run_cli: Any, tmp_path: Path
) -> None:
    # SIGKILL cannot be caught: the last checkpoint written must load (the
    # bytes of the continued run are the loop's tests' and the Ctrl-C test's).
    args = [*RECIPE, "task.epochs=15", "optimizer=sgd", "optimizer.momentum=0.9",
            "task.checkpoint_seconds=0"]  # fmt: skip
    killed = run_cli(
        *args, started=_signal_after(tmp_path / "run" / CHECKPOINT_FILE, 4, SIGKILL)
    )
    assert killed.returncode == -SIGKILL
    state, _ = load_checkpoint(tmp_path / "run" / CHECKPOINT_FILE)
    assert 1 <= state.epoch < 15
    done = run_cli("task=train", "task.resume=run")
    assert done.returncode == 0, done.stderr
    assert f"continuing from the checkpoint of epoch {state.epoch}" in done.stdout
    assert len(_history(done.run_dir)) == 15


@pytest.mark.slow
def test_a_kept_checkpoint_continues_further_as_the_longer_run(
    run_cli: Any, tmp_path: Path
) -> None:
    recipe = [*RECIPE, "model.width=16"]
    longer = run_cli(*recipe, "task.epochs=10")
    assert longer.returncode == 0, longer.stderr
    longer.run_dir.rename(tmp_path / "longer")
    first = run_cli(*recipe, "task.epochs=6", "task.keep_checkpoint=true")
    assert first.returncode == 0, first.stderr
    assert (first.run_dir / CHECKPOINT_FILE).is_file()
    again = run_cli("task=train", "task.resume=run")
    assert again.returncode == 1
    assert "finished its 6 epochs" in again.stderr
    assert "task.epochs=12" in again.stderr
    further = run_cli("task=train", "task.resume=run", "task.epochs=10")
    assert further.returncode == 0, further.stderr
    # The continued run keeps its checkpoint, as its config says, to go further.
    _same_run(further.run_dir, tmp_path / "longer", kept=True)


# ------------------------------------------------------------------------------------
# Bad input (in-process: the check runs before Hydra)
# ------------------------------------------------------------------------------------


def _checkpoint(
    run_dir: Path,
    *,
    epochs: int = 10,
    done: int = 4,
    step: int = 0,
    schedule: str = "none",
    task: str = "train",
    stopped_early: bool = False,
) -> None:
    """A checkpoint whose record says what the checks read."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"task": {"name": task, "epochs": epochs, "schedule": schedule}}
    state = LoopState(
        epoch=done, step=step, history=[], best={"loss": 1.0, "epoch": 1, "since": 0},
        best_weights=None, model={"w": torch.zeros(2)},
        optimizer={"state": {}, "param_groups": []}, schedule=None, scaler=None,
        shuffle=torch.zeros(4, dtype=torch.uint8), dropout=None,
        stopped_early=stopped_early,
    )  # fmt: skip
    record = {".hydra/config.yaml": json.dumps(config)}
    save_checkpoint(run_dir / CHECKPOINT_FILE, state, json.dumps({"record": record}))


def _refusal(argv: list[str], key: str, *words: str) -> None:
    with pytest.raises(ConfigError) as error:
        resume_argv(argv)
    message = str(error.value)
    assert message.startswith(key), message
    for word in words:
        assert word in message, message
    assert len(message.splitlines()) <= 3


def test_a_resumed_command_line_is_rewritten_for_hydra(tmp_path: Path) -> None:
    _checkpoint(tmp_path / "r")
    run_dir = str(tmp_path / "r")
    assert resume_argv(["task=train", f"task.resume={run_dir}"]) == [
        "task=train", f"task.resume={run_dir}", "task.epochs=10",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    assert (
        resume_argv(
            ["-cd", "conf", "task=train", f"task.resume={run_dir}", "task.epochs=20"]
        )[-2]
        == "task.epochs=20"
    )
    assert resume_argv(["model=demo"]) == ["model=demo"]


@pytest.mark.parametrize(
    ("setup", "argv", "key", "words"),
    [
        ({"done": 10}, [], "task.resume", ("finished its 10 epochs", "task.epochs=20")),
        ({"done": 10}, ["task.epochs=10"], "task.resume", ("finished",)),
        ({}, ["task.epochs=5"], "task.epochs", ("fewer than the run's 10",)),
        ({"schedule": "cosine"}, ["task.epochs=20"], "task.epochs",
         ("cosine", "would change the rate")),
        ({}, ["model.width=64"], "model.width", ("only task.epochs may be raised",)),
        ({}, ["data=iris"], "data", ("would change the config",)),
        ({}, ["task.init_from=x"], "task.init_from", ("cannot be used with",)),
        ({}, ["hydra.run.dir=elsewhere"], "hydra.run.dir", ("not the run's",)),
        ({"stopped_early": True}, ["task.epochs=20"], "task.resume",
         ("stopped early",)),
        ({"task": "forward"}, [], "task.resume", ("task=forward",)),
    ],
)  # fmt: skip
def test_what_would_change_a_resumed_run_is_refused(
    tmp_path: Path, setup: dict[str, Any], argv: list[str], key: str, words: tuple[str]
) -> None:
    _checkpoint(tmp_path / "r", **setup)
    _refusal(["task=train", f"task.resume={tmp_path / 'r'}", *argv], key, *words)


def test_a_missing_or_damaged_checkpoint_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    _refusal(["task=train", f"task.resume={tmp_path / 'nope'}"], "task.resume",
             "no run directory")  # fmt: skip
    (tmp_path / "empty").mkdir()
    _refusal(["task=train", f"task.resume={tmp_path / 'empty'}"], "task.resume",
             "holds no checkpoint")  # fmt: skip
    _checkpoint(tmp_path / "cut")
    path = tmp_path / "cut" / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[:100])
    _refusal(["task=train", f"task.resume={tmp_path / 'cut'}"], "task.resume",
             "cannot be loaded")  # fmt: skip
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "metrics.json").write_text('{"task": "train"}')
    _refusal(["task=train", f"task.resume={tmp_path / 'done'}"], "task.resume",
             "finished", "task.keep_checkpoint=true")  # fmt: skip
    (tmp_path / "fwd").mkdir()
    (tmp_path / "fwd" / "metrics.json").write_text('{"task": "forward"}')
    _refusal(["task=train", f"task.resume={tmp_path / 'fwd'}"], "task.resume",
             "task=forward")  # fmt: skip
    _checkpoint(tmp_path / "r")
    _refusal(["-m", "task=train", f"task.resume={tmp_path / 'r'}"], "task.resume",
             "-m")  # fmt: skip
    # A mistyped directory: the closest one holding a checkpoint is named.
    _checkpoint(tmp_path / "digits-run")
    _refusal(["task=train", f"task.resume={tmp_path / 'digit-run'}"], "task.resume",
             f"Did you mean {str(tmp_path / 'digits-run')!r}?")  # fmt: skip


@pytest.mark.slow
def test_a_refused_resume_exits_1_and_changes_nothing(
    run_cli: Any, tmp_path: Path
) -> None:
    _checkpoint(tmp_path / "run", done=10)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    done = run_cli("task=train", "task.resume=run")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "finished its 10 epochs" in done.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
    # A new run does not write over another run's checkpoint.
    _checkpoint(tmp_path / "run")
    result = run_cli(*RECIPE, "task.epochs=2")
    assert result.returncode == 1
    assert "task.resume=" in result.stderr
    assert sorted(os.listdir(result.run_dir)) == [CHECKPOINT_FILE]
