"""compile=true: the forward pass through torch.compile matches eager; where nothing
would be compiled, a note (device=meta) or an error (a task that compiles nothing)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import annfactory


def test_compile_is_off_by_default_and_validated() -> None:
    assert annfactory.to_spec(annfactory.compose([])).compile is False
    assert annfactory.to_spec(annfactory.compose(["compile=true"])).compile is True
    with pytest.raises(
        annfactory.ConfigError, match=r"^compile: 'yes' is not a boolean"
    ):
        annfactory.to_spec(annfactory.compose(["compile=yes"]))


@pytest.mark.slow
def test_compiled_network_matches_eager() -> None:
    model = annfactory.build_model(annfactory.compose(["model=mlp"])).eval()
    x = torch.randn(16, 8)
    fast = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x))


@pytest.mark.slow
def test_compile_true_on_the_command_line(run_cli: Any) -> None:
    # A new interpreter: inductor's first (uncached) compile hangs in a child
    # forked from the test server, which has already imported torch.
    result = run_cli("model=demo", "compile=true", timeout=300, fresh=True)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["compile"]["matches_eager"] is True
    assert metrics["compile"]["max_abs_difference"] < 1e-5
    assert metrics["compile"]["compile_s"] > 0
    assert "torch.compile: compiled in" in result.stdout
    spec = (result.run_dir / "spec.yaml").read_text()
    assert "compile: true" in spec


def _tasks_without_compile() -> list[str]:
    from annfactory.tasks import tasks

    return [name for name, task in tasks.items() if not task.compiles]


def test_the_forward_task_is_the_one_that_compiles() -> None:
    assert "forward" not in _tasks_without_compile()
    assert {"activations", "init_report", "diagnose"} <= set(_tasks_without_compile())


@pytest.mark.parametrize("name", _tasks_without_compile())
def test_compile_true_with_a_task_that_compiles_nothing_is_refused(
    tmp_path: Path, name: str
) -> None:
    from annfactory.tasks import run_named_task

    spec = annfactory.to_spec(annfactory.compose([f"task={name}", "compile=true"]))
    with pytest.raises(
        annfactory.ConfigError,
        match=rf"^compile: task '{name}' does not run the network through "
        r"torch\.compile, so compile=true would do nothing\.\n"
        r"  Leave compile out, or use it with task=forward\.$",
    ):
        run_named_task({"name": name}, spec, tmp_path, out=io.StringIO())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_compile_true_on_meta_says_that_nothing_is_compiled(run_cli: Any) -> None:
    result = run_cli("model=demo", "device=meta", "compile=true")
    assert result.returncode == 0, result.stderr
    assert (
        "note: compile=true compiles nothing on device=meta: no forward pass runs."
        in result.stdout.splitlines()
    )
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert "compile" not in metrics
