"""The test tiers (tests/conftest.py): a test not marked slow may start no process."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import conftest


@pytest.mark.parametrize(
    ("event", "args"),
    [
        ("subprocess.Popen", ("/bin/true", ["/bin/true"], None, None)),
        ("os.system", (b"true",)),
        ("os.fork", ()),
        (conftest.AUDIT_EVENT, (["python", "scripts/run.py"],)),  # the test server
    ],
)
def test_the_guard_sees_a_process_being_started(
    event: str, args: tuple[object, ...]
) -> None:
    started: list[str] = []
    conftest._started.append(started)
    try:
        sys.audit(event, *args)  # the event alone: no process starts
        sys.audit("open", "x", "r", 0)  # not a process
    finally:
        conftest._started.pop()
    assert len(started) == 1
    assert started[0].startswith(event)


def test_every_test_that_runs_the_command_line_is_slow(
    request: pytest.FixtureRequest,
) -> None:
    """Whatever its file says: tests/conftest.py marks it by the fixture it uses."""
    items = request.session.items
    users = [item for item in items if "run_cli" in getattr(item, "fixturenames", ())]
    if not users:
        pytest.skip("no test that uses run_cli was collected with this one")
    unmarked = [item.nodeid for item in users if not item.get_closest_marker("slow")]
    assert unmarked == []


def _test_functions(path: Path) -> set[str]:
    """The test functions of a test file, by name (methods of test classes too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test")
    }


def test_every_listed_test_exists() -> None:
    # A test renamed or removed would otherwise leave the tier lists silently: a
    # renamed heavy test would land in the fast tier.
    root = Path(__file__).resolve().parents[1]
    stale = []
    for entry in sorted(conftest.SLOW | conftest.HEAVY):
        file, _, function = entry.partition("::")
        path = root / file
        if not path.is_file() or (function and function not in _test_functions(path)):
            stale.append(entry)
    assert stale == []
