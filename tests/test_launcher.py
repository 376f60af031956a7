"""The annfactory sweeper on Hydra's public interfaces: it makes the jobs, batches and
numbers that Hydra's basic sweeper makes (pinned here against Hydra 1.3's
``BasicSweeper``, imported in the tests only), runs them through Hydra's basic
launcher, the default again, and composes each job once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hydra._internal.core_plugins import basic_sweeper
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf

from annfactory.config import CONFIG_NAME, bundled_hydra
from annfactory.errors import ConfigError
from annfactory.hydra_report import ReportedError
from hydra_plugins.annfactory_sweeper import (
    AnnFactorySweeper,
    _record_of,
    job_batches,
)
from loaders import Counting


class Callbacks:
    """Hydra's callbacks object, with no callback."""

    def on_job_start(self, **kwargs: Any) -> None:
        pass

    def on_job_end(self, **kwargs: Any) -> None:
        pass


@pytest.fixture(scope="module")
def hydra_app() -> Iterator[Any]:
    with bundled_hydra():
        yield GlobalHydra.instance().hydra


def master(hydra: Any, folder: Path, *hydra_overrides: str) -> DictConfig:
    """The sweep's config, as Hydra composes it before the sweeper runs."""
    cfg: DictConfig = hydra.compose_config(
        config_name=CONFIG_NAME,
        overrides=[
            "hydra.mode=MULTIRUN",
            f"hydra.sweep.dir={folder}",
            *hydra_overrides,
        ],
        run_mode=RunMode.MULTIRUN,
        with_log_configuration=False,
    )
    return cfg


#: Sweeps: the command line's overrides, and the sweeper's params.
SWEEPS = {
    "one key": (["seed=1,2,3"], {}),
    "a product": (["model=demo,mlp", "seed=range(0,3)", "init=normal"], {}),
    "a key given twice": (["seed=1,2", "batch_size=3", "seed=7,8,9"], {}),
    "params and the command line": (["seed=4,5"], {"batch_size": "2,3"}),
    "params overridden": (["batch_size=9"], {"batch_size": "2,3", "seed": "1"}),
    "choice and sort": (["seed=choice(3,1)", "batch_size=sort(4,2,3)"], {}),
    "no sweep": (["seed=1"], {}),
    "nothing": ([], {}),
}


@pytest.mark.parametrize("size", [None, 1, 2, 4])
@pytest.mark.parametrize(("arguments", "params"), SWEEPS.values(), ids=SWEEPS.keys())
def test_jobs_and_batches_are_the_basic_sweepers(
    arguments: list[str], params: dict[str, str], size: int | None
) -> None:
    given = [f"{key}={value}" for key, value in params.items()] + arguments
    parsed = OverridesParser.create().parse_overrides(given)
    assert job_batches(parsed, size) == basic_sweeper.BasicSweeper.split_arguments(
        parsed, size
    )


class Recording:
    """A launcher that records what it is handed and returns each job's record."""

    def __init__(self, loader: ConfigLoader, config: DictConfig) -> None:
        self.loader = loader
        self.config = config
        self.launched: list[tuple[list[list[str]], int]] = []

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list[JobReturn]:
        self.launched.append(([list(o) for o in job_overrides], initial_job_idx))
        returns = []
        for index, overrides in enumerate(job_overrides):
            self.loader.load_sweep_config(self.config, list(overrides))
            ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
            ret.return_value = _ok(initial_job_idx + index, overrides)
            returns.append(ret)
        return returns


def _ok(job: int, overrides: Sequence[str]) -> dict[str, Any]:
    return {
        "job": job,
        "overrides": list(overrides),
        "status": "ok",
        "error": None,
        "wall_time_s": 0.0,
        "metrics": {"total_params": 26},
    }


def set_up(sweeper: Sweeper, hydra: Any, cfg: DictConfig) -> Recording:
    """Set ``sweeper`` up as Hydra does, with a recording launcher."""
    context = HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks())  # type: ignore[arg-type]
    sweeper.setup(hydra_context=context, task_function=lambda _: None, config=cfg)
    loader = sweeper.hydra_context.config_loader  # type: ignore[attr-defined]
    launcher = Recording(loader, cfg)
    sweeper.launcher = launcher  # type: ignore[attr-defined]
    return launcher


@pytest.mark.parametrize("size", [None, 2])
def test_the_launcher_gets_the_basic_sweepers_jobs_and_numbers(
    hydra_app: Any, tmp_path: Path, size: int | None, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["seed=1,2", "model=demo,mlp", "batch_size=3"]
    cfg = master(hydra_app, tmp_path)
    # The module's class as it is now: Hydra's plugin scan runs the module again.
    ours, basic = AnnFactorySweeper(size), basic_sweeper.BasicSweeper(size)
    launched = [set_up(ours, hydra_app, cfg), set_up(basic, hydra_app, cfg)]
    ours.sweep(arguments)
    basic.sweep(arguments)
    assert launched[0].launched == launched[1].launched
    assert [start for _, start in launched[0].launched] == (
        [0] if size is None else [0, 2]
    )
    summary = (tmp_path / "summary.md").read_text()
    assert "| 3 | 2 | mlp |" in summary
    assert "Sweep summary" in capsys.readouterr().out


def test_a_job_that_does_not_compose_is_a_row_and_the_others_keep_their_numbers(
    hydra_app: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = master(hydra_app, tmp_path)
    sweeper = AnnFactorySweeper()
    launcher = set_up(sweeper, hydra_app, cfg)
    with pytest.raises(ReportedError, match=r"2 of 4 jobs failed \(jobs 1, 3\)"):
        sweeper.sweep(["seed=1,2", "init=normal,nope"])
    assert launcher.launched == [
        ([["seed=1", "init=normal"]], 0),
        ([["seed=2", "init=normal"]], 2),
    ]
    assert "#1 seed=1 init=nope: error: init: unknown init 'nope'" in (
        capsys.readouterr().out
    )


def task(cfg: DictConfig) -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig

    job = HydraConfig.get().job
    return _ok(job.num, list(HydraConfig.get().overrides.task)) | {
        "metrics": {"seed": cfg.seed, "width": cfg.model.width}
    }


def test_each_job_is_composed_once_through_the_basic_launcher(
    hydra_app: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = master(hydra_app, tmp_path, "hydra.job.chdir=false")
    assert cfg.hydra.launcher._target_.endswith(".BasicLauncher")  # the default
    counting = Counting(hydra_app.config_loader)
    context = HydraContext(config_loader=counting, callbacks=Callbacks())  # type: ignore[arg-type]
    sweeper = AnnFactorySweeper(max_batch_size=2)
    sweeper.setup(hydra_context=context, task_function=task, config=cfg)
    jobs = [["seed=1", "model=mlp"], ["seed=2", "model=mlp"], ["seed=1", "model=mlp"]]
    returns = sweeper.sweep(["seed=1,2,1", "model=mlp"])
    assert counting.calls == jobs  # each job once: none doubled by the launcher
    assert [[r.return_value["metrics"]["seed"] for r in b] for b in returns] == [
        [1, 2],
        [1],
    ]
    assert [r.hydra_cfg.hydra.job.num for b in returns for r in b] == [0, 1, 2]
    rows = (tmp_path / "summary.csv").read_text()
    assert rows.splitlines()[1].startswith("0,")
    assert capsys.readouterr().out.count("Sweep summary") == 1


def test_a_failed_job_return_is_a_row_with_its_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    failed = JobReturn(overrides=["seed=3"], status=JobStatus.FAILED)
    failed.return_value = ValueError("job 3 fails")
    record = _record_of(failed, 3, ["seed=3"])
    assert (record["job"], record["status"]) == (3, "error")
    assert record["error"] == "ValueError: job 3 fails"
    assert capsys.readouterr().err == ""  # no second message for the same failure
    done = JobReturn(overrides=["seed=4"], status=JobStatus.COMPLETED)
    done.return_value = _ok(0, ["seed=4"])
    assert _record_of(done, 4, ["seed=4"])["job"] == 4
    other = JobReturn(overrides=["seed=5"], status=JobStatus.COMPLETED)
    other.return_value = 0.5  # another task function's value
    assert _record_of(other, 5, ["seed=5"])["error"] == (
        "the task returned float, not a record"
    )


@pytest.mark.parametrize(
    ("arguments", "size", "match"),
    [
        (["seed=interval(0,1)"], None, r"seed: 'seed=interval\(0,1\)' is a range to "),
        (["seed=1,2"], 0, r"hydra.sweeper.max_batch_size: 0 is not a batch size"),
    ],
)
def test_a_sweep_it_cannot_list_is_refused(
    arguments: list[str], size: int | None, match: str
) -> None:
    parsed = OverridesParser.create().parse_overrides(arguments)
    with pytest.raises(ConfigError, match=match):
        job_batches(parsed, size)


def test_the_sweeper_is_a_public_sweeper_and_the_launcher_is_gone() -> None:
    import hydra_plugins.annfactory_sweeper as plugin

    assert AnnFactorySweeper.__mro__[1] is Sweeper
    assert not Path(plugin.__file__).with_name("launcher.py").exists()


def test_the_removed_launcher_is_refused_with_the_ones_there_are() -> None:
    from annfactory.config import check_overrides

    with pytest.raises(ConfigError, match=r"unknown launcher 'annfactory'") as info:
        check_overrides(["hydra/launcher=annfactory"])
    assert "Valid launchers: basic, joblib, submitit_local, submitit_slurm" in str(
        info.value
    )


def test_a_plugin_launchers_per_job_lines_are_hidden_and_its_others_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from annfactory.cli import QuietJobs

    # A launcher plugin of one's own: its logger exists once its module is imported.
    logger = logging.getLogger("hydra_plugins.my_launcher.launching")
    QuietJobs().on_multirun_start(OmegaConf.create({}))
    QuietJobs().on_multirun_start(OmegaConf.create({}))  # a second sweep: one filter
    assert len(logger.filters) == 1
    logger.disabled, logger.propagate = False, True  # another test's logging config
    other = logging.getLogger("annfactory.other")
    other.disabled, other.propagate = False, True
    with (
        caplog.at_level(logging.INFO, logger=logger.name),
        caplog.at_level(logging.INFO, logger=other.name),
    ):
        logger.info("Launching 2 jobs on my cluster")
        logger.info("\t#0 : model=demo seed=1")
        logger.info("\t#12 : model=demo seed=2")
        other.info("\t#3 : not a launcher's")
    assert caplog.messages == [
        "Launching 2 jobs on my cluster",
        "\t#3 : not a launcher's",
    ]
