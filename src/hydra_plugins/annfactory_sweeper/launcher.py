"""annfactory's default launcher: Hydra's basic launcher with less copying per job.

Selected by annfactory's config (``hydra/launcher: annfactory``). It runs a sweep's
jobs one after another in this process, as Hydra's ``basic`` launcher does, through
:func:`run_job`: Hydra's own ``hydra.core.utils.run_job`` (1.3) with the same steps
and results, less three of its four copies of the ``hydra`` node, which are most of a
small job's cost beyond its own work:

- Hydra sets the job's ``HydraConfig`` twice, before and after it knows the output
  directory, copying the ``hydra`` node each time. Here the second copy is not made:
  the output directory is written into the first copy, as it is into the config.
- Hydra deep-copies the whole config to give the task its config without ``hydra``.
  Here the copy leaves the ``hydra`` node out instead of copying it and deleting it.
- Hydra deep-copies the ``HydraConfig`` for the job's ``JobReturn``. Here the job's
  ``HydraConfig`` copy is handed over: made for this job only, it is replaced, never
  changed, when the next job starts.

``tests/test_launcher.py`` runs jobs through both launchers and checks that the task,
its ``HydraConfig``, the callbacks and the ``JobReturn`` see the same configs and
flags, in the same working directory, with the same files, on the pinned Hydra.
``hydra/launcher=basic`` (or joblib, submitit) selects another launcher as usual.
"""

# No "from __future__ import annotations": OmegaConf needs real types on the dataclass.
import copy
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from textwrap import dedent
from typing import Any, Optional

from hydra import version
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobRuntime,
    JobStatus,
    _check_hydra_context,
    _flush_loggers,
    _save_config,
    configure_log,
    env_override,
    filter_overrides,
    setup_globals,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import AnyNode, DictConfig, OmegaConf, open_dict, read_write

from hydra_plugins.annfactory_sweeper._conf import AnnFactoryLauncherConf

log = logging.getLogger(__name__)

__all__ = ["AnnFactoryLauncher", "AnnFactoryLauncherConf", "run_job"]


ConfigStore.instance().store(
    group="hydra/launcher",
    name="annfactory",
    node=AnnFactoryLauncherConf,
    provider="annfactory",
)


class AnnFactoryLauncher(BasicLauncher):
    """Hydra's basic launcher, each job run by :func:`run_job`."""

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        # BasicLauncher.launch (Hydra 1.3), with this module's run_job.
        setup_globals()
        assert self.hydra_context is not None
        assert self.config is not None
        assert self.task_function is not None

        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = self.config.hydra.sweep.dir
        Path(str(sweep_dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally")
        runs: list[JobReturn] = []
        for idx, overrides in enumerate(job_overrides):
            idx = initial_job_idx + idx
            lst = " ".join(filter_overrides(overrides))
            log.info(f"\t#{idx} : {lst}")
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = idx
                sweep_config.hydra.job.num = idx
            ret = run_job(
                hydra_context=self.hydra_context,
                task_function=self.task_function,
                config=sweep_config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
            runs.append(ret)
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return runs


def run_job(
    task_function: TaskFunction,
    config: DictConfig,
    job_dir_key: str,
    job_subdir_key: Optional[str],  # noqa: UP045 (Hydra's signature)
    hydra_context: HydraContext,
    configure_logging: bool = True,
) -> JobReturn:
    """``hydra.core.utils.run_job`` (Hydra 1.3) with one copy of the ``hydra`` node
    instead of four (see the module's docstring); the steps, their order and what
    each part sees are Hydra's."""
    _check_hydra_context(hydra_context)
    callbacks = hydra_context.callbacks

    old_cwd = os.getcwd()
    hydra_config = HydraConfig.instance()
    orig_hydra_cfg = hydra_config.cfg

    # init Hydra config for config evaluation
    hydra_config.set_config(config)

    output_dir = str(OmegaConf.select(config, job_dir_key))
    if job_subdir_key is not None:
        # evaluate job_subdir_key lazily.
        # this is running on the client side in sweep and contains things such as
        # job:id which are only available there.
        subdir = str(OmegaConf.select(config, job_subdir_key))
        output_dir = os.path.join(output_dir, subdir)

    job_hydra = hydra_config.cfg
    assert isinstance(job_hydra, DictConfig)
    for target in (config, job_hydra):
        with read_write(target.hydra.runtime), open_dict(target.hydra.runtime):
            target.hydra.runtime.output_dir = os.path.abspath(output_dir)

    _chdir = None
    try:
        ret = JobReturn()
        task_cfg = _without_hydra(config)
        ret.cfg = task_cfg
        hydra_cfg = job_hydra
        ret.hydra_cfg = hydra_cfg
        overrides = OmegaConf.to_container(config.hydra.overrides.task)
        assert isinstance(overrides, list)
        ret.overrides = overrides
        # handle output directories here
        Path(str(output_dir)).mkdir(parents=True, exist_ok=True)

        _chdir = hydra_cfg.hydra.job.chdir

        if _chdir is None and version.base_at_least("1.2"):
            _chdir = False

        if _chdir is None:
            from hydra._internal.deprecation_warning import deprecation_warning

            url = "https://hydra.cc/docs/1.2/upgrades/1.1_to_1.2/changes_to_job_working_dir/"
            deprecation_warning(
                message=dedent(
                    """\
                    Future Hydra versions will no longer change working directory at job runtime by default.
                    See {url} for more information."""  # noqa: E501 (Hydra's text)
                ).format(url=url),
                stacklevel=2,
            )
            _chdir = True

        if _chdir:
            os.chdir(output_dir)
            ret.working_dir = output_dir
        else:
            ret.working_dir = os.getcwd()

        if configure_logging:
            configure_log(config.hydra.job_logging, config.hydra.verbose)

        if config.hydra.output_subdir is not None:
            hydra_output = Path(config.hydra.runtime.output_dir) / Path(
                config.hydra.output_subdir
            )
            _save_config(task_cfg, "config.yaml", hydra_output)
            _save_config(hydra_cfg, "hydra.yaml", hydra_output)
            _save_config(config.hydra.overrides.task, "overrides.yaml", hydra_output)

        with env_override(hydra_cfg.hydra.job.env_set):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as e:
                ret.return_value = e
                ret.status = JobStatus.FAILED

        ret.task_name = JobRuntime.instance().get("name")

        _flush_loggers()

        callbacks.on_job_end(config=config, job_return=ret)

        return ret
    finally:
        hydra_config.cfg = orig_hydra_cfg
        if _chdir:
            os.chdir(old_cwd)


def _without_hydra(config: DictConfig) -> DictConfig:
    """``copy.deepcopy(config)`` with its ``hydra`` key deleted, as Hydra makes the
    task's config, without copying the ``hydra`` node first: ``deepcopy``'s memo
    hands a placeholder for it, which is then deleted as Hydra deletes the copy."""
    hydra_node = config._get_node("hydra")
    placeholder = AnyNode(None)
    memo: dict[int, Any] = {id(hydra_node): placeholder}
    task_cfg = copy.deepcopy(config, memo)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg
