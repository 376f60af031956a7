"""Shared fixtures: registry snapshots, Hydra state, the CLI runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from annfactory import activations, inits, layers, plugins
from annfactory.data import datasets
from annfactory.groups import groups
from annfactory.models import model_types
from annfactory.optimizers import optimizers
from annfactory.tasks import tasks

REPO = Path(__file__).resolve().parents[1]
RUN_PY = REPO / "scripts" / "run.py"


@pytest.fixture(autouse=True)
def restore_registries() -> Iterator[None]:
    """Tests that register entries leave no trace."""
    registries = (
        activations, inits, layers, model_types, tasks, groups, datasets, optimizers
    )  # fmt: skip
    saved = [(registry, registry.snapshot()) for registry in registries]
    yield
    for registry, state in saved:
        registry.restore(state)
    plugins.reset()  # entries a plugin registered are gone, so it may load again


@pytest.fixture(autouse=True)
def clear_hydra() -> Iterator[None]:
    """Each test starts and ends with Hydra uninitialized."""
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path


@pytest.fixture
def run_cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run ``python scripts/run.py ARGS`` with its run directory under ``tmp_path``."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> CliResult:
        run_dir = tmp_path / "run"
        command = [
            sys.executable,
            str(RUN_PY),
            *args,
            f"hydra.run.dir={run_dir}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ]
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        environment.pop("HYDRA_FULL_ERROR", None)  # a test asks for it explicitly
        environment.update(env or {})
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env=environment,
        )
        return CliResult(done.returncode, done.stdout, done.stderr, run_dir)

    return run


@pytest.fixture
def compositions(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The overrides of every composition Hydra makes (each builds a defaults list)."""
    from hydra._internal import config_loader_impl

    made: list[list[str]] = []
    original = config_loader_impl.create_defaults_list

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append([o.input_line for o in kwargs["overrides_list"]])
        return original(*args, **kwargs)

    monkeypatch.setattr(config_loader_impl, "create_defaults_list", counted)
    return made


@pytest.fixture
def interrupt_after_first_job():  # type: ignore[no-untyped-def]
    """A function that runs a sweep's command and sends it SIGINT (Ctrl-C) once job
    0 has written its record and job 1 has started; returns the finished process."""

    def interrupt(
        command: list[str], sweep_dir: Path, cwd: Path
    ) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        environment.pop("HYDRA_FULL_ERROR", None)
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=environment,
            # Python turns SIGINT into KeyboardInterrupt only where it is not ignored
            # (a test run started in the background ignores it).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 240
        first, second = sweep_dir / "0" / "job.json", sweep_dir / "1"
        while not first.exists() or not second.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    return interrupt
