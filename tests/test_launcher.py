"""annfactory's default launcher (``hydra/launcher=annfactory``) runs each job as
Hydra's basic launcher does, with fewer copies of the ``hydra`` node: pinned here
against Hydra's own launcher on the pinned Hydra."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf

from annfactory.config import CONFIG_NAME, _bundled_hydra
from hydra_plugins.annfactory_sweeper.launcher import AnnFactoryLauncher


def flags(cfg: DictConfig) -> tuple[Any, ...]:
    return (
        OmegaConf.is_struct(cfg),
        OmegaConf.is_readonly(cfg),
        OmegaConf.get_type(cfg),
        cfg._get_flag("allow_objects"),
    )


class Recorder:
    """Hydra's callbacks object, recording what each call sees."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    def on_job_start(self, config: DictConfig, task_function: Any) -> None:
        self.seen.append(
            ("start", OmegaConf.to_yaml(config), OmegaConf.is_readonly(config.hydra))
        )

    def on_job_end(self, config: DictConfig, job_return: Any) -> None:
        self.seen.append(
            ("end", OmegaConf.to_yaml(config), OmegaConf.is_readonly(config.hydra))
        )


def task(seen: list[Any]) -> Any:
    def run(cfg: DictConfig) -> Any:
        hydra = HydraConfig.get()
        seen.append(
            (
                "task",
                OmegaConf.to_yaml(cfg),
                flags(cfg),
                "hydra" in cfg,
                OmegaConf.to_yaml(hydra),
                OmegaConf.is_readonly(hydra),
                hydra.runtime.output_dir,
                os.getcwd(),
                os.environ.get("ANNF_LAUNCHER_TEST"),
                [type(h).__name__ for h in logging.getLogger().handlers],
            )
        )
        if cfg.seed == 13:
            raise ValueError("job 13 fails")
        with pytest.raises(Exception) as error:  # noqa: PT011 (struct, whatever type)
            cfg.not_a_key = 1
        return {"seed": cfg.seed, "error": type(error.value).__name__}

    return run


def launch(
    launcher_type: type, folder: Path, master: list[str], jobs: list[list[str]]
) -> tuple[list[Any], list[Any], list[str]]:
    """Run ``jobs`` with ``launcher_type``; what the jobs, the callbacks and the
    returns saw, and the files written (paths relative to the sweep dir, with
    texts)."""
    seen: list[Any] = []
    with _bundled_hydra():
        hydra = GlobalHydra.instance().hydra
        cfg = hydra.compose_config(
            config_name=CONFIG_NAME,
            overrides=["hydra.mode=MULTIRUN", f"hydra.sweep.dir={folder}", *master],
            run_mode=RunMode.MULTIRUN,
            with_log_configuration=False,
        )
        context = HydraContext(
            config_loader=hydra.config_loader,
            callbacks=Recorder(seen),  # type: ignore[arg-type]
        )
        launcher = launcher_type()
        launcher.setup(hydra_context=context, task_function=task(seen), config=cfg)
        returns = launcher.launch(jobs, initial_job_idx=3)
    described = [
        (
            OmegaConf.to_yaml(ret.cfg),
            flags(ret.cfg),
            OmegaConf.to_yaml(ret.hydra_cfg),
            OmegaConf.is_readonly(ret.hydra_cfg.hydra),
            ret.overrides,
            ret.working_dir,
            ret.status,
            ret.task_name,
            repr(ret._return_value),
        )
        for ret in returns
    ]
    files = sorted(
        (str(path.relative_to(folder)), path.read_text())
        for path in folder.rglob("*")
        if path.is_file()
    )
    return _replaced((seen, described, files), str(folder), "<sweep>")


def _replaced(value: Any, old: str, new: str) -> Any:
    """``value`` with ``old`` replaced by ``new`` in every string in it."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list | tuple):
        return type(value)(_replaced(item, old, new) for item in value)
    return value


MASTERS = {
    "annfactory's config": [],
    "chdir": ["hydra.job.chdir=true"],
    "hydra's .hydra files": ["hydra.output_subdir=.hydra"],
    "env_set": ["+hydra.job.env_set.ANNF_LAUNCHER_TEST=yes"],
    "subdir by resolver": ["hydra.sweep.subdir=job_${hydra:job.num}_${seed}"],
    "verbose": ["hydra.verbose=true"],
}
JOBS = [["seed=1"], ["seed=13"], ["model=mlp", "seed=2"], ["seed=1"]]


@pytest.mark.parametrize("master", MASTERS.values(), ids=MASTERS.keys())
def test_jobs_see_what_hydras_basic_launcher_gives(
    tmp_path: Path, master: list[str]
) -> None:
    cwd = os.getcwd()
    ours = launch(AnnFactoryLauncher, tmp_path / "ours", master, JOBS)
    assert os.getcwd() == cwd
    hydras = launch(BasicLauncher, tmp_path / "hydras", master, JOBS)
    assert os.getcwd() == cwd
    # The launcher's own name is the one difference in what the jobs see.
    for (mine, theirs), what in zip(
        zip(ours, hydras, strict=True), ("seen", "returns", "files"), strict=True
    ):
        assert mine == theirs, what
    seen, returns, _ = ours
    assert [row[0] for row in seen] == ["start", "task", "end"] * len(JOBS)
    assert [row[6] for row in returns][1].name == "FAILED"


def test_the_task_config_is_a_copy_without_the_hydra_node(tmp_path: Path) -> None:
    from hydra_plugins.annfactory_sweeper.launcher import _without_hydra

    with _bundled_hydra():
        cfg = GlobalHydra.instance().hydra.compose_config(
            config_name=CONFIG_NAME,
            overrides=["hydra.mode=RUN", "seed=4"],
            run_mode=RunMode.RUN,
            with_log_configuration=False,
        )
    task_cfg = _without_hydra(cfg)
    assert "hydra" not in task_cfg
    assert "hydra" in cfg  # the original keeps it
    assert cfg.hydra._get_parent() is cfg
    task_cfg.seed = 5
    assert cfg.seed == 4
    assert task_cfg.model.layers.linear1._get_root() is task_cfg
