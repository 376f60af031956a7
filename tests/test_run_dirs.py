"""The run directory of ``scripts/run.py``: what it may be, and what a run leaves there.

``hydra.run.dir`` must name a directory that can be created and written to; an empty
value, a file, or a path that cannot be created is refused before Hydra creates
anything, with a short message and no traceback. A run that fails leaves no folder
behind; one that succeeds writes its printed report to ``run.log``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from annfactory import ConfigError
from annfactory.cli import check_output_dir
from cli_server import script_server

RUN_PY = Path(__file__).resolve().parents[1] / "scripts" / "run.py"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_in(cwd: Path, *args: str) -> Result:
    """``python scripts/run.py ARGS`` from ``cwd``, with no run directory added (the
    ``run_cli`` fixture sets ``hydra.run.dir`` itself, after the test's arguments)."""
    environment = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = script_server().run(
        [sys.executable, str(RUN_PY), *args],
        timeout=120,
        cwd=cwd,
        env=environment,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (and every folder, as b"/")."""
    return {
        str(path.relative_to(folder)): b"/" if path.is_dir() else path.read_bytes()
        for path in sorted(folder.rglob("*"))
    }


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory holding one file, ``notes.txt``, that no run may touch."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me\n")
    return folder


#: A run directory that cannot be used -> a fragment of its message.
UNUSABLE: list[object] = [
    pytest.param(
        lambda work: "", "is empty: the run would write its files into", id="empty"
    ),
    pytest.param(
        lambda work: str(work / "notes.txt"), "is a file, not a directory", id="a-file"
    ),
    pytest.param(
        lambda work: str(work / "notes.txt" / "run"),
        "which is a file, not a directory",
        id="inside-a-file",
    ),
    pytest.param(
        lambda work: "/proc/x",
        "'/proc/x' cannot be created or written to: No such file or directory.",
        id="proc",
        marks=pytest.mark.skipif(
            not Path("/proc/self").is_dir(), reason="no /proc on this system"
        ),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("run_dir", "fragment"), UNUSABLE)
def test_an_unusable_run_dir_is_refused_and_nothing_is_written(
    workdir: Path, run_dir: Callable[[Path], str], fragment: str
) -> None:
    before = tree(workdir)
    result = run_in(workdir, "model=demo", f"hydra.run.dir={run_dir(workdir)}")

    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3, result.stderr
    assert lines[0].startswith("Error in the overrides: hydra.run.dir: "), lines
    assert fragment in result.stderr
    assert "hydra.run.dir=outputs/my_run" in lines[-1]
    assert result.stdout == ""
    assert tree(workdir) == before  # notes.txt untouched, no outputs/, no run.log


def test_the_run_dir_check_leaves_no_trace_when_it_passes(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper" / "run"
    check_output_dir(["model=demo"], ["model=demo", f"hydra.run.dir={target}"])
    assert list(tmp_path.iterdir()) == []  # what it created to try is gone again
    existing = tmp_path / "existing"
    existing.mkdir()
    check_output_dir([], [f"hydra.run.dir={existing}/${{now:%H-%M}}"])
    assert list(existing.iterdir()) == []


def test_the_run_dir_check_applies_where_hydra_uses_the_directory(
    tmp_path: Path,
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    # A sweep uses hydra.sweep.dir; its hydra.run.dir is never created.
    check_output_dir(["-m"], [f"hydra.run.dir={a_file}"])
    with pytest.raises(ConfigError, match=r"^hydra\.sweep\.dir: .* is a file"):
        check_output_dir(["-m"], [f"hydra.sweep.dir={a_file}"])
    with pytest.raises(ConfigError, match=r"^hydra\.sweep\.dir: is empty"):
        check_output_dir(["-m"], ["hydra.sweep.dir="])
    # --cfg and --help print and run nothing.
    check_output_dir(["--cfg", "job"], ["hydra.run.dir="])
    check_output_dir(["--help"], ["hydra.run.dir="])
    # The last of several values counts, as in Hydra.
    with pytest.raises(ConfigError, match=r"^hydra\.run\.dir: is empty"):
        check_output_dir([], [f"hydra.run.dir={tmp_path}", "hydra.run.dir="])
    check_output_dir([], ["hydra.run.dir=", f"hydra.run.dir={tmp_path}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.slow
def test_a_failed_run_leaves_no_folder_and_a_run_logs_its_report(
    workdir: Path,
) -> None:
    before = tree(workdir)
    failed = run_in(workdir, "seed=-1", "hydra.run.dir=runs/first")
    assert failed.returncode != 0
    assert "seed: -1 is out of range" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert tree(workdir) == before  # not even an empty runs/first/

    # Without hydra.run.dir: Hydra's outputs/<date>/<time>/, holding the report.
    done = run_in(workdir, "model=demo")
    assert done.returncode == 0, done.stderr
    [run_dir] = (workdir / "outputs").glob("*/*")
    assert (run_dir / "run.log").read_text() == done.stdout
    assert done.stdout.startswith("network: 3 -> linear1(3, sigmoid)")

    # A run that fails in a directory that exists leaves it and its files as they
    # were, run.log included.
    saved = tree(run_dir)
    again = run_in(workdir, "seed=-1", f"hydra.run.dir={run_dir}")
    assert again.returncode != 0
    assert tree(run_dir) == saved
