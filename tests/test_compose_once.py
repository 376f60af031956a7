"""What a run costs before its task: it composes its config once
(``annfactory.config.composed_once``), with the config that Hydra's own second
composition would give, and the override checks read each bundled file once."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from annfactory.config import (
    CONFIG_NAME,
    _bundled_hydra,
    _bundled_yaml,
    composed_once,
    conf_dir,
)

MODE_OVERRIDE = {RunMode.RUN: "hydra.mode=RUN", RunMode.MULTIRUN: "hydra.mode=MULTIRUN"}


@pytest.fixture
def hydra_app() -> Iterator[Any]:
    """Hydra initialized with the bundled config, as ``@hydra.main`` has it."""
    with _bundled_hydra():
        yield GlobalHydra.instance().hydra


def start(hydra: Any, overrides: list[str], run_mode: RunMode) -> DictConfig:
    """What ``@hydra.main`` does before a run or a sweep: read the mode from one
    composition, then compose for the run with the mode added."""
    mode = hydra.get_mode(config_name=CONFIG_NAME, overrides=list(overrides))
    added = [] if mode is not None else [MODE_OVERRIDE[run_mode]]
    cfg: DictConfig = hydra.compose_config(
        config_name=CONFIG_NAME,
        overrides=[*overrides, *added],
        run_mode=run_mode,
        with_log_configuration=False,
    )
    return cfg


def flags(cfg: DictConfig) -> tuple[bool | None, bool | None]:
    return OmegaConf.is_struct(cfg), OmegaConf.is_readonly(cfg.hydra)


CASES = [
    [],
    ["model=mlp", "init=normal", "init.std=0.1", "activation=tanh"],
    ["model=demo", "init@model.layers.linear1.weight_init=orthogonal"],
    ["model=mlp", "+init@model.layers.hidden1.weight_init=zeros", "seed=3"],
    ["task=diagnose", "hydra.job.chdir=false", "hydra.verbose=true"],
]
RUNS = [
    *[(overrides, mode) for overrides in CASES for mode in RunMode],
    (["hydra.mode=RUN", "batch_size=2"], RunMode.RUN),
    (["hydra.mode=MULTIRUN", "seed=1,2"], RunMode.MULTIRUN),
]


@pytest.mark.parametrize(
    ("overrides", "run_mode"),
    RUNS,
    ids=[f"{mode.name} {' '.join(overrides) or 'none'}" for overrides, mode in RUNS],
)
def test_the_run_config_is_hydras_own_second_composition(
    hydra_app: Any,
    compositions: list[list[str]],
    overrides: list[str],
    run_mode: RunMode,
) -> None:
    own = start(hydra_app, overrides, run_mode)
    assert len(compositions) == 2  # control: Hydra alone composes twice
    compositions.clear()
    with composed_once():
        derived = start(hydra_app, overrides, run_mode)
    assert len(compositions) == 1
    assert OmegaConf.to_yaml(derived) == OmegaConf.to_yaml(own)
    assert flags(derived) == flags(own) == (True, False)
    assert derived.hydra.mode == own.hydra.mode
    assert list(derived.hydra.overrides.hydra) == list(own.hydra.overrides.hydra)


def test_a_mode_set_in_the_overrides_adds_no_override(
    hydra_app: Any, compositions: list[list[str]]
) -> None:
    with composed_once():
        cfg = start(hydra_app, ["hydra.mode=RUN"], RunMode.RUN)
    assert len(compositions) == 1
    assert list(cfg.hydra.overrides.hydra) == ["hydra.mode=RUN"]
    assert cfg.hydra.mode == RunMode.RUN


def test_a_sweep_in_a_run_gets_hydras_error(hydra_app: Any) -> None:
    with composed_once(), pytest.raises(ConfigCompositionException) as own:
        start(hydra_app, ["seed=1,2"], RunMode.RUN)
    assert "Ambiguous value for argument 'seed=1,2'" in str(own.value)
    with composed_once(), pytest.raises(ConfigCompositionException) as hydra:
        start(hydra_app, ["hydra.job.name=a,b"], RunMode.MULTIRUN)
    assert "Sweeping over Hydra's configuration is not supported" in str(hydra.value)


def test_a_missing_choice_is_composed_again_for_hydras_error(
    tmp_path: Path, compositions: list[list[str]]
) -> None:
    # Multirun mode (the mode check) skips a ??? group; run mode must stop there.
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "sqlite.yaml").write_text("path: x.db\n")
    (tmp_path / "app.yaml").write_text("defaults:\n  - db: ???\n  - _self_\n")
    from hydra import initialize_config_dir

    with initialize_config_dir(str(tmp_path), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        with composed_once():
            mode = hydra.get_mode(config_name="app", overrides=[])
            assert mode is None
            with pytest.raises(ConfigCompositionException, match="specify 'db'"):
                hydra.compose_config(
                    config_name="app",
                    overrides=["hydra.mode=RUN"],
                    run_mode=RunMode.RUN,
                )
    assert len(compositions) == 2
    with initialize_config_dir(str(tmp_path), version_base="1.3"), composed_once():
        hydra = GlobalHydra.instance().hydra
        hydra.get_mode(config_name="app", overrides=["db=sqlite"])
        cfg = hydra.compose_config(
            config_name="app",
            overrides=["db=sqlite", "hydra.mode=RUN"],
            run_mode=RunMode.RUN,
        )
    assert cfg.db.path == "x.db"
    assert len(compositions) == 3


def test_other_compositions_are_hydras_own(
    hydra_app: Any, compositions: list[list[str]]
) -> None:
    with composed_once():
        hydra_app.get_mode(config_name=CONFIG_NAME, overrides=["seed=1"])
        # Not the run of the overrides just read: composed, with its own overrides.
        cfg = hydra_app.compose_config(
            config_name=CONFIG_NAME, overrides=["seed=2"], run_mode=RunMode.RUN
        )
        again = hydra_app.compose_config(
            config_name=CONFIG_NAME, overrides=["seed=3"], run_mode=RunMode.RUN
        )
    assert (cfg.seed, again.seed) == (2, 3)
    assert compositions == [["seed=1"], ["seed=2"], ["seed=3"]]


def test_hydras_loader_is_put_back() -> None:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    before = ConfigLoaderImpl.load_configuration
    inside = []

    def fail() -> None:
        with composed_once():
            inside.append(ConfigLoaderImpl.load_configuration)
            raise RuntimeError("the app failed")

    with pytest.raises(RuntimeError, match="the app failed"):
        fail()
    assert inside[0] is not before
    assert ConfigLoaderImpl.load_configuration is before


def test_a_cli_run_composes_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    compositions: list[list[str]],
) -> None:
    from annfactory.run import main

    run_dir = tmp_path / "run"
    argv = ["run.py", "model=demo", "seed=4", f"hydra.run.dir={run_dir}"]
    monkeypatch.setattr(sys, "argv", argv)
    main("python scripts/run.py")
    assert compositions == [argv[1:]]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["total_params"] == 26
    assert metrics["seed"] == 4
    recorded = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml")
    assert recorded.hydra.mode == "RUN"
    assert list(recorded.hydra.overrides.hydra) == [
        f"hydra.run.dir={run_dir}",
        "hydra.mode=RUN",
    ]
    assert "output shape: [5, 2]" in (run_dir / "run.log").read_text()


@pytest.mark.parametrize(
    "path",
    sorted(conf_dir().rglob("*.yaml")),
    ids=lambda path: str(path.relative_to(conf_dir())),
)
def test_the_checks_read_each_bundled_file_as_pyyaml_does(path: Path) -> None:
    # The override checks read the bundled files with libyaml's loader where PyYAML
    # has one; the data must be the pure Python safe loader's.
    import yaml

    assert _bundled_yaml(path) == yaml.safe_load(path.read_text("utf-8"))
    assert _bundled_yaml(path) is _bundled_yaml(path)  # read once
