"""annfactory installed from its wheel: the ``annfactory`` command and
``python -m annfactory``, run outside the repository as a user would.

The wheel is built from this checkout and installed (without dependencies) into a
fresh virtual environment; torch, Hydra and the other dependencies come from the
environment running the tests, so nothing is downloaded. Each command runs in its own
temporary directory with no ``PYTHONPATH``, so only the installed copy can be found.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

#: How Hydra names a run's directory by default: outputs/DATE/TIME.
RUN_DIR = re.compile(r"^outputs/\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}$")
SWEEP_DIR = re.compile(r"^multirun/\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}$")


def _check(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with annfactory's wheel installed."""
    root = tmp_path_factory.mktemp("package")
    wheels = root / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w"]
    _check([*build, str(wheels), str(REPO)], cwd=root)
    (wheel,) = wheels.glob("annfactory-*.whl")
    env = root / "venv"
    _check([sys.executable, "-m", "venv", "--system-site-packages", str(env)], root)
    python = env / "bin" / "python"
    # The dependencies of the environment running the tests, after the venv's own
    # packages (a .pth line adds a folder to sys.path; its own .pth files, such as
    # an editable install of annfactory, are not read).
    purelib = subprocess.run(
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "test_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    _check([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], root)
    return env


def _run(
    venv: Path, cwd: Path, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run a command of the venv (``annfactory`` or ``python``) in ``cwd``."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "HYDRA_FULL_ERROR")
    }
    environment["PYTHONUNBUFFERED"] = "1"
    environment["PATH"] = f"{venv / 'bin'}{os.pathsep}{environment.get('PATH', '')}"
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
    )


def _only_dir(parent: Path, pattern: re.Pattern[str]) -> Path:
    dirs = [p for p in parent.glob("*/*") if p.is_dir()]
    assert len(dirs) == 1, dirs
    assert pattern.match(dirs[0].relative_to(parent.parent).as_posix()), dirs[0]
    return dirs[0]


def test_the_installed_copy_is_the_one_imported(venv: Path, tmp_path: Path) -> None:
    done = _run(
        venv, tmp_path, "python", "-c", "import annfactory; print(annfactory.__file__)"
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(venv)


COMMANDS = {
    "console-script": ("annfactory",),
    "python-m": ("python", "-m", "annfactory"),
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_installed_command_runs_the_demo(
    venv: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    done = _run(venv, tmp_path, *command, "model=demo")
    assert done.returncode == 0, done.stderr
    assert "Total params: 26" in done.stdout
    assert "Traceback" not in done.stderr
    run_dir = _only_dir(tmp_path / "outputs", RUN_DIR)
    # The job is named "run", as with scripts/run.py: its log is run.log.
    assert (run_dir / "run.log").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["total_params"] == 26
    assert (run_dir / "weights.safetensors").is_file()


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_installed_command_checks_overrides_before_hydra(
    venv: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    done = _run(venv, tmp_path, *command, "model=demo", "init=xavier_norml")
    assert done.returncode == 1
    assert "Error in the overrides: init: unknown init 'xavier_norml'" in done.stderr
    assert "Did you mean 'xavier_normal'?" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_installed_command_sweeps(venv: Path, tmp_path: Path) -> None:
    done = _run(venv, tmp_path, "annfactory", "-m", "model=demo", "seed=1,2,1")
    assert done.returncode == 0, done.stderr
    assert "Sweep summary" in done.stdout
    sweep_dir = _only_dir(tmp_path / "multirun", SWEEP_DIR)
    with (sweep_dir / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["job"], row["seed"], row["status"]) for row in rows] == [
        ("0", "1", "ok"),
        ("1", "2", "ok"),
        ("2", "1", "ok"),
    ]
    for job in range(3):
        assert (sweep_dir / str(job) / "run.log").is_file()


def test_installed_command_multirun_with_cfg_says_why(
    venv: Path, tmp_path: Path
) -> None:
    done = _run(venv, tmp_path, "annfactory", "-m", "--cfg", "job")
    assert done.returncode == 2
    assert "-m/--multirun and --cfg cannot be combined" in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 3
    assert list(tmp_path.iterdir()) == []


def test_installed_command_help(venv: Path, tmp_path: Path) -> None:
    done = _run(venv, tmp_path, "annfactory", "--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    models = "cnn, demo, gru, lstm, mlp, resmlp, transformer"
    assert re.search(rf"^model: {models}$", text, re.M)
    assert re.search(r"^init: .*xavier_normal", text, re.M)
    launchers = re.search(r"^hydra/launcher: (.+)$", text, re.M)
    assert launchers is not None
    assert {"basic (selected)", "joblib", "submitit_local"} <= set(
        launchers.group(1).split(", ")
    )
    assert re.search(r"^hydra/sweeper: annfactory \(selected\), basic", text, re.M)
    # The examples show the command that was typed, not the clone's script.
    assert "\n  annfactory model=demo\n" in text
    assert "scripts/run.py" not in text
    assert list(tmp_path.iterdir()) == []
