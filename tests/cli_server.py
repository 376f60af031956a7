"""A process that has imported torch and the other heavy third-party packages once,
and forks a child for each command line a test runs (:class:`ScriptServer`).

A command line started fresh spends about 2 s of CPU importing torch, NumPy,
scikit-learn and Hydra before annfactory's code runs, 2 s more when it trains (the
first optimizer imports ``torch._dynamo``), and about 0.9 s tearing torch's modules
down at exit; the suite runs about 150 of them. A forked child starts with those
modules imported and nothing else: annfactory is not imported in the server, no Hydra
state exists, no plugin has been scanned, and no torch operation has run (so no
thread pool is forked). The child then does what
``python SCRIPT ARGS`` does: it runs the script as ``__main__`` with ``sys.argv``,
``sys.path[0]``, the working directory and the environment of the request, its
standard streams on files (as ``capture_output=True`` gives pipes), and ends as the
interpreter ends (non-daemon threads joined, ``atexit`` handlers run, streams flushed)
but without tearing down the modules. The exit code is the
child's, a negative number where a signal ended it, as :mod:`subprocess` reports.

What a fork cannot give, a fresh process does (:meth:`ScriptServer.run` falls back
to :func:`subprocess.run`):

- an environment that differs from the server's in a variable read when Python or a
  preloaded package starts (:data:`READ_AT_START`: ``PYTHONPATH``, thread counts, a
  Matplotlib backend). Other variables (``HYDRA_FULL_ERROR``, ``PATH``, those that
  torch sets in the test process when it compiles: ``TORCHINDUCTOR_*``, and Intel
  OpenMP's ``KMP_*``, which torch's GNU OpenMP does not read) are read when used, so
  the child's environment carries them;
- a different hash seed: a forked child has the server's, so a test that compares
  two processes runs one of them fresh (``fresh=True``).

Run as a script, this file is the server; imported, it is the client
(:func:`script_server`).
"""

from __future__ import annotations

import contextlib
import io
import json
import locale
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: The modules imported once in the server: what a command line spends its start on.
PRELOADED = (
    "torch",
    "torch._dynamo",  # imported by the first optimizer made (torch._disable_dynamo)
    "numpy",
    "sklearn.datasets",
    "sklearn.metrics",
    "hydra",
    "hydra.core.utils",
    "omegaconf",
    "yaml",
    "safetensors.torch",
    "torchinfo",
    "matplotlib",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "onnxscript",  # by the ONNX exporter
    "pyarrow.csv",  # a user's table (data=csv, data=parquet, task=predict)
    "pyarrow.parquet",
    "pyarrow.compute",
    "pandas",  # which pyarrow imports where it is installed
)
#: Environment variables read when Python or a preloaded package starts: a request
#: that sets one of these differently runs in a fresh process.
READ_AT_START = (
    "PYTHON", "LD_", "OMP_", "MKL_", "OPENBLAS_", "MPLBACKEND", "MPLCONFIGDIR"
)  # fmt: skip
#: Read by Python at start, but emulated by the child (its streams' buffering).
EMULATED = frozenset({"PYTHONUNBUFFERED"})
#: The audit event the client raises for each command line it runs, so that the
#: fast tier's guard (tests/conftest.py) sees a process started through the server.
AUDIT_EVENT = "annfactory.tests.fork"


#: The environment when this module was first imported (by tests/conftest.py, as the
#: test run starts).
_STARTING_ENVIRON = dict(os.environ)


class ScriptServer:
    """The client: starts the server on first use and runs command lines in it."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        # The environment the test run started with: not one a test has patched.
        self._environ = dict(_STARTING_ENVIRON)
        self._outputs = Path(tempfile.mkdtemp(prefix="cli-server-"))

    def run(
        self,
        command: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
        fresh: bool = False,
        started: Callable[[int], None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` (``[sys.executable, SCRIPT, *args]``) as
        ``subprocess.run(command, capture_output=True, text=True, ...)`` would.

        ``started(pid)`` runs in a thread once the command's process exists (a
        test that sends it a signal); it needs a forked child."""
        command = list(command)
        if started is not None:
            assert not fresh, "started needs a fork"
            assert self._forkable(command, env), "started needs a fork"
        if fresh or not self._forkable(command, env):
            return subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=cwd,
                env=dict(env),
            )
        sys.audit(AUDIT_EVENT, command)
        process = self._server()
        stdout, stderr = self._outputs / "stdout", self._outputs / "stderr"
        request = {
            "script": command[1],
            "args": command[2:],
            "cwd": str(cwd),
            "env": dict(env),
            "stdout": str(stdout),
            "stderr": str(stderr),
        }
        assert process.stdin is not None
        process.stdin.write(json.dumps(request).encode() + b"\n")
        process.stdin.flush()
        pid = int(self._reply(process, "pid", timeout=60))
        if started is not None:
            threading.Thread(target=started, args=(pid,), daemon=True).start()
        try:
            code = int(self._reply(process, "exit", timeout=timeout))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            self._reply(process, "exit", timeout=60)
            raise subprocess.TimeoutExpired(
                command, timeout, _text(stdout), _text(stderr)
            ) from None
        return subprocess.CompletedProcess(command, code, _text(stdout), _text(stderr))

    def close(self) -> None:
        if self._process is not None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._process.wait(timeout=30)
            self._process = None
        for name in ("stdout", "stderr"):
            (self._outputs / name).unlink(missing_ok=True)
        self._outputs.rmdir()

    def _forkable(self, command: list[str], env: Mapping[str, str]) -> bool:
        if (
            len(command) < 2
            or command[0] != sys.executable
            or command[1].startswith("-")
        ):
            return False  # python -c, python -m: not a script
        changed = {
            key
            for key in {*env, *self._environ}
            if env.get(key) != self._environ.get(key)
        }
        return not any(
            key.startswith(READ_AT_START) and key not in EMULATED for key in changed
        )

    def _server(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=self._outputs,
                env=_STARTING_ENVIRON,
                bufsize=0,
            )
        return self._process

    @staticmethod
    def _reply(process: subprocess.Popen[bytes], word: str, timeout: float) -> str:
        """The server's next line, ``WORD VALUE``; its value."""
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        if not ready:
            raise subprocess.TimeoutExpired(process.args, timeout)
        line = process.stdout.readline().decode()
        said, _, value = line.strip().partition(" ")
        if said != word:
            raise RuntimeError(f"the test server said {line!r}, not {word!r}")
        return value


_SERVER: list[ScriptServer] = []


def script_server() -> ScriptServer:
    """The test run's one server (made on first use, closed by tests/conftest.py at
    the end of the session)."""
    if not _SERVER:
        _SERVER.append(ScriptServer())
    return _SERVER[0]


def close_script_server() -> None:
    if _SERVER:
        _SERVER.pop().close()


def _text(path: Path) -> str:
    """A captured stream as ``subprocess.run(text=True)`` decodes it."""
    data = path.read_bytes() if path.exists() else b""
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ------------------------------------------------------------------------------------
# The server
# ------------------------------------------------------------------------------------


def _serve() -> dict[str, Any]:
    """Fork a child for each request on stdin; return the request in the child."""
    for line in sys.stdin.buffer:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            return dict(request)
        _say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        _say(f"exit {os.waitstatus_to_exitcode(status)}")
    sys.exit(0)


def _say(line: str) -> None:
    os.write(1, line.encode() + b"\n")


def _become(request: dict[str, Any]) -> None:
    """In the child: the process ``python SCRIPT ARGS`` would have started."""
    import importlib
    import random

    import numpy

    os.setpgid(0, 0)  # its own group: a timeout kills its workers too
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for fd, name in ((1, "stdout"), (2, "stderr")):
        os.dup2(os.open(request[name], flags, 0o644), fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    encoding = sys.stdout.encoding
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(
        _raw(1, unbuffered), encoding=encoding, write_through=unbuffered
    )
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        _raw(2, unbuffered),
        encoding=encoding,
        errors="backslashreplace",
        line_buffering=True,
        write_through=unbuffered,
    )
    # A fresh process seeds these from the system; a fork would share the server's.
    random.seed()
    numpy.random.seed()
    script = request["script"]
    sys.argv = [script, *request["args"]]
    sys.path[0] = str(Path(script).resolve().parent)
    importlib.invalidate_caches()


def _raw(fd: int, unbuffered: bool) -> io.RawIOBase | io.BufferedWriter:
    """The binary layer Python puts under a standard stream (``-u``: unbuffered)."""
    raw = io.FileIO(fd, "w", closefd=False)
    return raw if unbuffered else io.BufferedWriter(raw)


def _run(script: str) -> None:
    """Run the script as ``__main__`` and end the child as the interpreter would,
    without tearing down the preloaded modules (torch's teardown alone takes about
    0.9 s, and nothing of it can be seen from outside the process)."""
    import atexit
    import runpy
    import threading

    code = 0
    interrupted = False
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit:
        if exit.code is None:
            code = 0
        elif isinstance(exit.code, int):
            code = exit.code & 0xFF
        else:
            print(exit.code, file=sys.stderr)
            code = 1
    except BaseException as error:  # what Python does with an uncaught exception
        sys.excepthook(type(error), error, error.__traceback__)
        interrupted = isinstance(error, KeyboardInterrupt)
        code = 1
    for thread in threading.enumerate():  # Python waits for non-daemon threads
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if interrupted:  # Python ends itself with SIGINT after an uncaught Ctrl-C
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


if __name__ == "__main__":
    import importlib

    for name in PRELOADED:
        importlib.import_module(name)
    child = _serve()
    _become(child)
    _run(child["script"])
