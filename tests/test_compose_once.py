"""What a run costs before its task, and what it says when Hydra cannot compose.

Hydra composes a run's config twice (``hydra.mode`` is read from a first
composition: Hydra's open issue #3440); annfactory patches nothing of Hydra's, so a
command line composes exactly as Hydra composes it, and its override checks compose
nothing more where the overrides are good. Where Hydra's composition fails on one
override, the command line says so in annfactory's words, without composing on the
way of a run that works (``annfactory.cli.composition_errors_reworded``).
"""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from annfactory.cli import FULL_ERROR_HINT
from annfactory.config import conf_dir
from annfactory.config.sources import bundled_yaml


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    from annfactory.run import main

    monkeypatch.setattr(sys, "argv", ["run.py", *args])
    try:
        main("python scripts/run.py")
    finally:
        gc.unfreeze()  # main leaves the objects at exit to the OS; this process goes on


def test_main_leaves_the_objects_at_exit_to_the_operating_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python's collections at exit would walk every object torch made (about half
    # a second of every command): main freezes them as its last step.
    from annfactory.run import main

    gc.unfreeze()
    monkeypatch.setattr(
        sys, "argv", ["run.py", "model=demo", f"hydra.run.dir={tmp_path}"]
    )
    try:
        main("python scripts/run.py")
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()
    assert frozen > 10_000
    assert (tmp_path / "metrics.json").exists()


def test_a_cli_run_composes_as_hydra_does_and_checks_compose_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    compositions: list[list[str]],
) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    run_dir = tmp_path / "run"
    args = ["model=demo", "seed=4", f"hydra.run.dir={run_dir}"]
    run_main(monkeypatch, *args)
    # Hydra's two compositions (#3440): the mode, then the run; none of ours.
    assert compositions == [args, [*args, "hydra.mode=RUN"]]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["total_params"], metrics["seed"]) == (26, 4)
    recorded = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml")
    assert recorded.hydra.mode == "RUN"
    assert list(recorded.hydra.overrides.hydra) == [
        f"hydra.run.dir={run_dir}",
        "hydra.mode=RUN",
    ]
    assert "output shape: [5, 2]" in (run_dir / "run.log").read_text()
    assert "HYDRA_FULL_ERROR" not in os.environ


def test_a_job_runs_with_hydra_full_error_as_the_user_set_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annfactory import run

    seen: list[str | None] = []

    def task(cfg: DictConfig) -> dict[str, Any]:
        seen.append(os.environ.get("HYDRA_FULL_ERROR"))
        return {}

    monkeypatch.setattr(run, "run_task", task)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    run_main(monkeypatch, "model=demo", f"hydra.run.dir={tmp_path / 'a'}")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    run_main(monkeypatch, "model=demo", f"hydra.run.dir={tmp_path / 'b'}")
    assert seen == [None, "0"]
    assert os.environ["HYDRA_FULL_ERROR"] == "0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["hydra.job.chdr=true"],
            "hydra.job.chdr: unknown key 'chdr' in hydra.job. Did you mean 'chdir'?",
        ),
        (
            ["hydra.job.env_set.MY_VAR=1"],
            "hydra.job.env_set.MY_VAR: unknown key 'MY_VAR' in hydra.job.env_set.\n"
            "  No key exists; + adds it: +hydra.job.env_set.MY_VAR=1",
        ),
        (
            ["~seed=3"],
            "seed: ~seed=3 deletes it only where its value is 3; it is 0.\n"
            "  Write ~seed to delete it whatever its value.",
        ),
        (
            ["-m", "hydra.job.chdr=true", "seed=1,2"],
            "hydra.job.chdr: unknown key 'chdr' in hydra.job. Did you mean 'chdir'?",
        ),
    ],
)
def test_hydras_error_about_one_override_is_ours_on_the_command_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_main(monkeypatch, *args, "model=demo")
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(message), err
    # Hydra's framing, as Hydra prints it after its own errors.
    assert err.endswith(f"\n\n{FULL_ERROR_HINT}\n"), err
    assert "Traceback" not in err
    assert "HYDRA_FULL_ERROR" not in os.environ
    assert not list(tmp_path.iterdir())  # no run directory made


def test_another_composition_error_is_printed_as_hydra_prints_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_main(monkeypatch, "model=demo", "seed=1,2")
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Ambiguous value for argument 'seed=1,2'"), err
    assert err.endswith(f"\n\n{FULL_ERROR_HINT}\n"), err
    assert "Traceback" not in err


def test_hydra_full_error_shows_hydras_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hydra.errors import ConfigCompositionException

    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigCompositionException, match=r"hydra\.job\.chdr"):
        run_main(monkeypatch, "model=demo", "hydra.job.chdr=true")
    assert os.environ["HYDRA_FULL_ERROR"] == "1"


@pytest.mark.parametrize(
    "path",
    sorted(conf_dir().rglob("*.yaml")),
    ids=lambda path: str(path.relative_to(conf_dir())),
)
def test_the_checks_read_each_bundled_file_as_pyyaml_does(path: Path) -> None:
    # The override checks read the bundled files with libyaml's loader where PyYAML
    # has one; the data must be the pure Python safe loader's.
    import yaml

    assert bundled_yaml(path) == yaml.safe_load(path.read_text("utf-8"))
    assert bundled_yaml(path) is bundled_yaml(path)  # read once
