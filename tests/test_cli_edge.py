"""The command line's edge: output into a reader that goes away, the help's opening.

The fast tests check the pieces in-process; those marked slow start the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from annfactory.streams import ReaderSafeStream
from annfactory.tasks import tasks

REPO = Path(__file__).resolve().parents[1]
RUN_PY = REPO / "scripts" / "run.py"
CONF = REPO / "conf"


# ------------------------------------------------------------------------------------
# A reader that goes away (| head -1)
# ------------------------------------------------------------------------------------


def _pipe_without_reader() -> tuple[int, int]:
    """A pipe whose read end is closed: writing to the other end raises EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    return read_end, write_end


def test_a_write_to_a_pipe_without_reader_is_dropped_not_raised() -> None:
    _, write_end = _pipe_without_reader()
    raw = os.fdopen(write_end, "w", buffering=1)  # line-buffered: writes at once
    with pytest.raises(BrokenPipeError):
        raw.write("first\n")
    guarded = ReaderSafeStream(raw)

    assert guarded.write("second line\n") == len("second line\n")
    guarded.flush()
    print("third", file=guarded, flush=True)

    assert guarded.reader_gone
    assert not guarded.isatty()
    # The descriptor now writes into os.devnull: what is still buffered, and the
    # interpreter's flush at exit, go nowhere without an error.
    raw.write("fourth\n")
    raw.flush()
    raw.close()


def test_other_write_errors_are_not_hidden() -> None:
    class Full:
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

        def flush(self) -> None:
            pass

    guarded = ReaderSafeStream(Full())  # type: ignore[arg-type]
    with pytest.raises(OSError, match="No space left"):
        guarded.write("x")
    assert not guarded.reader_gone


def _run_into_closed_pipe(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run the command with its stdout read for one line, then closed (as
    ``| head -1`` does); returns its status, the line it gave and its stderr."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    process = subprocess.Popen(
        [sys.executable, str(RUN_PY), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    first = process.stdout.readline().decode()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    return process.wait(timeout=120), first, stderr


@pytest.mark.slow
def test_a_training_run_piped_into_head_finishes_and_saves(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    status, first, stderr = _run_into_closed_pipe(
        tmp_path,
        "task=train",
        "model=mlp",
        "data=moons",
        "task.epochs=6",
        "task.log_every=1",
        f"hydra.run.dir={run_dir}",
    )

    assert first.startswith("data: moons")
    assert status == 0, stderr
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
    saved = {path.name for path in run_dir.iterdir()}
    assert {"metrics.json", "weights.safetensors", "history.csv", "run.log"} <= saved
    assert "curves.png" in saved
    # The log holds the whole report, the lines that the reader never took included.
    log = (run_dir / "run.log").read_text()
    assert "epoch 6/6" in log
    assert "kept epoch" in log


@pytest.mark.slow
def test_help_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    status, first, stderr = _run_into_closed_pipe(tmp_path, "--help")

    assert first.startswith("annfactory: ")
    assert (status, stderr) == (0, "")


@pytest.mark.slow
def test_a_sweep_piped_into_head_writes_its_summary(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "multirun"
    status, _, stderr = _run_into_closed_pipe(
        tmp_path, "-m", "model=demo", "seed=1,2,3", f"hydra.sweep.dir={sweep_dir}"
    )

    assert status == 0, stderr
    assert "Traceback" not in stderr
    assert {"summary.csv", "summary.md", "summary.png"} <= {
        path.name for path in sweep_dir.iterdir()
    }
    for job in range(3):
        assert (sweep_dir / str(job) / "metrics.json").is_file()


# ------------------------------------------------------------------------------------
# --help
# ------------------------------------------------------------------------------------


def _help_header() -> str:
    help_config = yaml.safe_load((CONF / "hydra/help/annfactory.yaml").read_text())
    return str(help_config["header"])


def test_the_help_opens_with_what_the_project_does_now() -> None:
    header = _help_header()

    assert "fully connected PyTorch network" not in header
    for kind in ("fully connected", "convolutional", "residual"):
        assert kind in header
    # Every task and every bundled model type is named, and so are sweeps and search.
    for name in tasks.names():
        assert f"  {name} " in header, name
    for model in sorted((CONF / "model").glob("*.yaml")):
        if model.stem != "demo":
            assert model.stem in header, model.stem
    assert "-m" in header
    assert "hydra/sweeper=optuna" in header


# ------------------------------------------------------------------------------------
# Hydra's flags, parsed by annfactory's own parser
# ------------------------------------------------------------------------------------

FLAG_LINES = [
    [],
    ["model=demo", "seed=3"],
    ["-h"],
    ["--help", "model=mlp"],
    ["--hydra-help"],
    ["--cfg", "job"],
    ["-c", "hydra", "--resolve", "-p", "hydra.job"],
    ["--cfg=all", "--package", "model"],
    ["-r", "seed=1"],
    ["--run", "model=demo"],
    ["-m", "seed=1,2", "model=demo,mlp"],
    ["--multirun", "hydra/launcher=joblib"],
    ["-sc", "install=bash"],
    ["--shell-completion", "query=seed"],
    ["-cp", "/tmp/x", "-cn", "app", "a=1"],
    ["--config-path=/tmp/x", "--config-name=app"],
    ["-cd", "my_configs", "model=mine"],
    ["--config-dir", "my_configs", "--config-dir", "other", "model=mine"],
    ["--experimental-rerun", "run/.hydra/config.pickle"],
    ["-i"],
    ["--info", "defaults-tree", "model=demo"],
    ["-i", "searchpath"],
    ["--info=plugins"],
]


def _hydras_parser():  # type: ignore[no-untyped-def]
    from hydra._internal.utils import get_args_parser  # tests compare against it

    return get_args_parser()


@pytest.mark.parametrize("argv", FLAG_LINES, ids=lambda argv: " ".join(argv) or "none")
def test_the_flags_parse_as_hydras_own_parser_parses_them(argv: list[str]) -> None:
    from annfactory.config.edge import parse_flags

    ours = vars(parse_flags(argv))
    assert ours == vars(_hydras_parser().parse_args(argv))
    known = vars(parse_flags([*argv, "--no-such"], known_only=True))
    assert known == vars(_hydras_parser().parse_known_args([*argv, "--no-such"])[0])


def test_the_parser_has_each_flag_of_hydras() -> None:
    from annfactory.config.edge import args_parser

    def flags(parser):  # type: ignore[no-untyped-def]
        return {
            option: (
                action.dest,
                action.nargs,
                action.const,
                list(action.choices or []),
            )
            for action in parser._actions  # argparse's list of the arguments
            for option in action.option_strings or [action.dest]
        }

    assert flags(args_parser()) == flags(_hydras_parser())


@pytest.mark.parametrize(
    "argv",
    [["--cfg", "jobs"], ["--info", "nothing"], ["--no-such-flag"], ["-p"]],
    ids=" ".join,
)
def test_what_hydras_parser_refuses_ours_refuses(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from annfactory.config.edge import FlagsError, parse_flags

    with pytest.raises(SystemExit):
        _hydras_parser().parse_args(argv)
    capsys.readouterr()
    with pytest.raises(FlagsError):
        parse_flags(argv)
    assert capsys.readouterr() == ("", "")  # Hydra prints the usage, once


def test_version_prints_hydras_version(capsys: pytest.CaptureFixture[str]) -> None:
    import hydra

    from annfactory.config.edge import parse_flags

    with pytest.raises(SystemExit) as exit_info:
        parse_flags(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"Hydra {hydra.__version__}\n"
