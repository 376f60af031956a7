"""What ``scripts/run.py`` does around Hydra: check overrides first, run the task."""

from __future__ import annotations

import json
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annfactory.config import (
    argv_for_hydra,
    check_overrides,
    config_dirs_from_argv,
    full_error_requested,
    overrides_from_argv,
    to_spec,
)
from annfactory.errors import AnnFactoryError
from annfactory.files import write_atomic

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["precheck_argv", "run_task", "silence_known_warnings"]


def silence_known_warnings() -> None:
    """Silence Hydra's warning about annfactory's launcher configs.

    They share their names with the launcher plugins' schemas on purpose, so that
    ``hydra/launcher=joblib`` gets annfactory's tuned defaults checked against the
    plugin's types; Hydra warns about that on every composition.
    """
    warnings.filterwarnings(
        "ignore",
        message=r"\s*'hydra/launcher/(joblib|submitit_local|submitit_slurm)' is "
        r"validated against ConfigStore schema",
        category=UserWarning,
    )


# Also in every worker process of a parallel launcher, which imports this module to
# run the task function.
silence_known_warnings()


def precheck_argv(argv: Sequence[str]) -> list[str]:
    """Check the overrides of a command line before Hydra composes them.

    On an unknown group option or parameter, prints the error (names the override, the
    bad value and the closest valid one) and exits with status 1, as Hydra does for its
    own errors; ``HYDRA_FULL_ERROR=1`` raises instead.

    Returns:
        The command line as Hydra must receive it
        (:func:`annfactory.config.argv_for_hydra`).
    """
    try:
        check_overrides(
            overrides_from_argv(argv), config_dirs_from_argv(argv), skip_sweeps=True
        )
    except AnnFactoryError as error:
        if full_error_requested():
            raise
        print(f"Error in the overrides: {error}", file=sys.stderr)
        sys.exit(1)
    return argv_for_hydra(argv)


def run_task(cfg: DictConfig) -> dict[str, Any]:
    """One job: validate ``cfg`` into a spec and run its task (``task=forward`` by
    default) in Hydra's output directory.

    In a sweep run by annfactory's sweeper, a failing job does not raise: it prints its
    message (no traceback), writes ``job.json`` (and ``error.txt`` with the traceback
    for unexpected errors), and returns its record with ``status: error``, so the other
    jobs go on and the sweep's summary lists it. Elsewhere errors propagate as usual.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode != RunMode.MULTIRUN or not _annfactory_sweeper(hydra_cfg):
        return _run(cfg, output_dir)
    start = time.perf_counter()
    record: dict[str, Any] = {
        "job": hydra_cfg.job.num,
        "overrides": list(hydra_cfg.overrides.task),
        "status": "ok",
        "error": None,
        "wall_time_s": 0.0,
        "metrics": {},
    }
    try:
        record["metrics"] = _run(cfg, output_dir)
    except Exception as error:
        record["status"] = "error"
        if isinstance(error, AnnFactoryError):
            record["error"] = str(error)
        else:
            record["error"] = f"{type(error).__name__}: {error}"
            write_atomic(output_dir / "error.txt", traceback.format_exc())
        print(f"Job {record['job']} failed: {record['error']}", file=sys.stderr)
    record["wall_time_s"] = time.perf_counter() - start
    write_atomic(output_dir / "job.json", json.dumps(record, indent=2, default=str))
    return record


def _run(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    spec = to_spec(cfg)
    from omegaconf import OmegaConf

    from annfactory.tasks import run_named_task

    task = cfg.get("task")
    node = OmegaConf.to_container(task, resolve=True) if task is not None else None
    return run_named_task(node, spec, output_dir, record=_hydra_record(cfg))


def _hydra_record(cfg: DictConfig) -> dict[str, str]:
    """What Hydra itself would write to ``.hydra/`` at the start of a job.

    annfactory's config sets ``hydra.output_subdir: null`` and writes these files with
    the run's other outputs instead, only when the run succeeds, so a failed run in
    the same directory leaves an earlier run's record as it was.
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.get()
    return {
        ".hydra/config.yaml": OmegaConf.to_yaml(cfg),
        ".hydra/hydra.yaml": OmegaConf.to_yaml({"hydra": hydra_cfg}),
        ".hydra/overrides.yaml": OmegaConf.to_yaml(list(hydra_cfg.overrides.task)),
    }


def _annfactory_sweeper(hydra_cfg: Any) -> bool:
    target = str(hydra_cfg.sweeper.get("_target_", ""))
    return target.endswith(".AnnFactorySweeper")
