"""The test server (tests/cli_server.py) runs a command line as a new interpreter
would: the same output, exit code and files, and a fresh process where a fork cannot
give the same."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli_server import ScriptServer, script_server

RUN_PY = Path(__file__).resolve().parents[1] / "scripts" / "run.py"

pytestmark = pytest.mark.slow


def _both(tmp_path: Path, *args: str) -> list[subprocess.CompletedProcess[str]]:
    """The command line run in a fork and in a new interpreter, in the same folder."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = []
    for fresh in (False, True):
        command = [sys.executable, str(RUN_PY), *args, "hydra.run.dir=run"]
        done.append(
            script_server().run(
                command, cwd=tmp_path, env=env, timeout=120, fresh=fresh
            )
        )
        (tmp_path / "run").rename(tmp_path / ("fresh" if fresh else "forked"))
    return done


def _timeless(text: str) -> str:
    return re.sub(r"\d+\.\d+ s\b", "<time> s", text)


@pytest.mark.parametrize(
    "args",
    [
        ["model=demo", "seed=3"],
        ["task=train", "model=mlp", "data=iris", "task.epochs=2"],
    ],
    ids=["forward", "train"],
)
def test_a_fork_prints_and_writes_what_a_new_interpreter_does(
    tmp_path: Path, args: list[str]
) -> None:
    forked, fresh = _both(tmp_path, *args)
    assert forked.returncode == fresh.returncode == 0, forked.stderr + fresh.stderr
    assert forked.stderr == fresh.stderr
    assert _timeless(forked.stdout) == _timeless(fresh.stdout)
    files = sorted(p.name for p in (tmp_path / "forked").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "fresh").iterdir())
    weights = "weights.safetensors"
    assert (tmp_path / "forked" / weights).read_bytes() == (
        tmp_path / "fresh" / weights
    ).read_bytes()


def test_a_bad_command_line_fails_alike(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    command = [sys.executable, str(RUN_PY), "init=xavier_norml"]
    forked, fresh = (
        script_server().run(command, cwd=tmp_path, env=env, timeout=120, fresh=f)
        for f in (False, True)
    )
    assert forked.returncode == fresh.returncode == 1
    assert forked.stdout == fresh.stdout == ""
    assert forked.stderr == fresh.stderr
    assert "xavier_normal" in forked.stderr


def _script(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "script.py"
    path.write_text(text, encoding="utf-8")
    return [sys.executable, str(path)]


@pytest.mark.parametrize(
    ("text", "code", "stderr"),
    [
        ("import sys\nsys.exit(3)\n", 3, ""),
        ("import sys\nsys.exit('bye')\n", 1, "bye\n"),
        ("raise ValueError('boom')\n", 1, "ValueError: boom\n"),
        ("raise KeyboardInterrupt\n", -2, "KeyboardInterrupt\n"),
        (
            "import atexit, threading, time\n"
            "atexit.register(print, 'atexit ran')\n"
            "late = lambda: (time.sleep(0.2), print('joined'))\n"
            "threading.Thread(target=late).start()\n",
            0,
            "",
        ),
    ],
    ids=["exit-code", "exit-message", "exception", "ctrl-c", "atexit-and-threads"],
)
def test_a_child_ends_as_python_ends(
    tmp_path: Path, text: str, code: int, stderr: str
) -> None:
    command = _script(tmp_path, text)
    results = [
        script_server().run(command, cwd=tmp_path, env=os.environ, timeout=60, fresh=f)
        for f in (False, True)
    ]
    for result in results:
        assert result.returncode == code
        assert result.stderr.endswith(stderr)
    assert results[0].stdout == results[1].stdout
    if "atexit" in text:
        assert results[0].stdout == "joined\natexit ran\n"


def test_the_child_has_the_request_s_folder_arguments_and_environment(
    tmp_path: Path,
) -> None:
    command = _script(
        tmp_path,
        "import os, sys\n"
        "print(os.getcwd(), sys.argv[1:], os.environ['ANNF_PROBE'], sys.path[0])\n"
        "print(sys.stdin.read() == '', 'annfactory' in sys.modules)\n",
    )
    env = {**os.environ, "ANNF_PROBE": "é"}
    result = script_server().run(
        [*command, "a b", "c"], cwd=tmp_path, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{tmp_path} ['a b', 'c'] é {tmp_path}",
        "True False",
    ]


def test_a_child_past_its_timeout_is_killed(tmp_path: Path) -> None:
    command = _script(
        tmp_path, "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
    )
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        script_server().run(command, cwd=tmp_path, env=os.environ, timeout=1)
    assert raised.value.output == "started\n"
    # The server goes on.
    again = _script(tmp_path, "print('next')\n")
    assert (
        script_server().run(again, cwd=tmp_path, env=os.environ, timeout=60).stdout
        == "next\n"
    )


def test_what_a_fork_cannot_give_runs_fresh() -> None:
    server = ScriptServer()  # not started: _forkable only reads the environment
    script = [sys.executable, str(RUN_PY)]
    same = dict(server._environ)  # the environment the test run started with
    assert server._forkable(script, same)
    assert server._forkable(script, {**same, "HYDRA_FULL_ERROR": "1", "PATH": "/x"})
    assert server._forkable(script, {**same, "PYTHONUNBUFFERED": "1"})
    assert not server._forkable(script, {**same, "PYTHONPATH": "/plugins"})
    assert not server._forkable(script, {**same, "OMP_NUM_THREADS": "7"})
    assert not server._forkable([sys.executable, "-c", "pass"], same)
    assert not server._forkable(["/usr/bin/python3", str(RUN_PY)], same)
    server.close()
