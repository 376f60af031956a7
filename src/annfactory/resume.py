"""``task=train task.resume=<run dir>`` on the command line: a stopped run continued
from its checkpoint, in its own directory, with its own config.

Before Hydra composes anything, :func:`resume_argv` checks the command line against
the checkpoint and rewrites it: ``task.epochs`` is the only setting it may change
(raised, to continue further), and the run directory is the run's own. Hydra then
runs the job, and :func:`resumed_config` swaps the composed config for the one the
checkpoint carries, so that a model given by ``--config-dir`` is not needed again.

When a signal stops training, :func:`stopped_line` is the one line the command
prints: where it stopped, and the command that continues it.
"""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from annfactory.checkpoints import (
    CHECKPOINT_FILE,
    TrainingStopped,
    checkpoint_summary,
)
from annfactory.errors import ConfigError
from annfactory.runs import closest_run, saved_task

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["RESUME_KEY", "resume_argv", "resumed_config", "stopped_line"]

RESUME_KEY: Final = "task.resume"
_SIGNAL_NAMES: Final[dict[int, str]] = {
    signal.SIGINT: "Ctrl-C (SIGINT)",
    signal.SIGTERM: "SIGTERM",
}


def resume_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` as Hydra must run a resumed run: ``task=train task.resume=<dir>
    task.epochs=<n> hydra.run.dir=<dir>`` and the flags (``--config-dir`` and the
    like dropped: the config is the checkpoint's). Any other command line is
    returned as it is.

    Raises:
        ConfigError: The directory holds no readable checkpoint; another override
            would change the run's config; ``task.epochs`` is lower than the run's,
            not higher for a run that finished, or changes a cosine schedule's
            length; ``-m``; ``hydra.run.dir`` names another directory.
    """
    from annfactory.config.edge import parse_flags
    from annfactory.config.rewriting import parsed_overrides

    args = parse_flags(argv, known_only=True)
    overrides = list(args.overrides)
    if not any(item.lstrip("+~").startswith(RESUME_KEY) for item in overrides):
        return list(argv)
    parsed = parsed_overrides(overrides)
    given = {override.key_or_group: override for override in parsed}
    resume = given.get(RESUME_KEY)
    if resume is None or resume.value() is None:
        return list(argv)
    if not resume.is_sweep_override() and not str(resume.value()).strip():
        raise ConfigError(
            RESUME_KEY,
            "is empty.",
            "Give the directory of the run to continue, or leave task.resume out "
            "for a new run.",
        )
    if resume.is_sweep_override() or args.multirun:
        raise ConfigError(
            RESUME_KEY,
            "continues one run, and cannot be swept or run with -m.",
            "Continue each run with its own command: task=train task.resume=<dir>.",
        )
    run_dir = Path(str(resume.value())).expanduser()
    summary = _summary(run_dir)
    for override in parsed:
        _check_override(override, run_dir)
    epochs = _epochs(given.get("task.epochs"), summary, run_dir)
    shown = str(run_dir)
    flags = _flags(argv, overrides)
    hydra_settings = [
        line
        for line, override in zip(overrides, parsed, strict=True)
        if override.key_or_group.startswith("hydra.")
        and override.key_or_group != "hydra.run.dir"
    ]
    return [
        *flags,
        "task=train",
        f"{RESUME_KEY}={shown}",
        f"task.epochs={epochs}",
        f"hydra.run.dir={shown}",
        *hydra_settings,
    ]


def _summary(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        where = "" if run_dir.is_absolute() else f" (relative to {os.getcwd()})"
        raise ConfigError(
            RESUME_KEY,
            f"no run directory {str(run_dir)!r}{where}."
            + closest_run(run_dir, str(run_dir), CHECKPOINT_FILE),
            "Give the directory of a run that was stopped (its checkpoint is "
            f"{CHECKPOINT_FILE} there).",
        )
    if not (run_dir / CHECKPOINT_FILE).exists():
        raise _no_checkpoint(run_dir)
    summary = checkpoint_summary(run_dir / CHECKPOINT_FILE, RESUME_KEY)
    config = summary["config"]
    task = (config.get("task") or {}).get("name")
    if task != "train":
        raise _other_task(run_dir, task)
    return summary


def _other_task(run_dir: Path, task: object) -> ConfigError:
    return ConfigError(
        RESUME_KEY,
        f"{str(run_dir)!r} is a run of task={task}; only task=train continues.",
        "Give the directory of a training run.",
    )


def _no_checkpoint(run_dir: Path) -> ConfigError:
    """Why ``run_dir`` holds no checkpoint, as far as its files tell."""
    shown = repr(str(run_dir))
    task = saved_task(run_dir)
    if task is not None and task != "train":
        return _other_task(run_dir, task)
    if task == "train":
        return ConfigError(
            RESUME_KEY,
            f"the run {shown} finished, and kept no checkpoint to continue from.",
            "Start a new run from its weights (task.init_from=<dir>); to continue "
            "runs further, train them with task.keep_checkpoint=true.",
        )
    return ConfigError(
        RESUME_KEY,
        f"{shown} holds no checkpoint ({CHECKPOINT_FILE}).",
        "Give the directory of a training run that was stopped.",
    )


def _check_override(override: Any, run_dir: Path) -> None:
    key = override.key_or_group
    if key == RESUME_KEY:
        return
    if key == "task" and override.value() == "train":
        return
    if key == "task.epochs":
        return
    if key.startswith("hydra.") and key != "hydra.run.dir":
        return  # Hydra's own settings (logging, the sweep folder): not the run's
    if key == "hydra.run.dir":
        if Path(str(override.value())).expanduser().resolve() != run_dir.resolve():
            raise ConfigError(
                "hydra.run.dir",
                f"{override.value()!r} is not the run's directory {str(run_dir)!r}.",
                "A resumed run continues in its own directory: leave "
                "hydra.run.dir out.",
            )
        return
    if key == "task.init_from":
        raise ConfigError(
            "task.init_from",
            "cannot be used with task.resume: a resumed run continues with its "
            "own weights.",
            "Drop one: task.resume continues the run, task.init_from starts a new "
            "run from its weights.",
        )
    raise ConfigError(
        key,
        f"would change the config of the run that {RESUME_KEY} continues.",
        "A resumed run keeps its own config; only task.epochs may be raised. For "
        f"another config, start a new run from its weights: task.init_from={run_dir}.",
    )


def _epochs(override: Any, summary: dict[str, Any], run_dir: Path) -> int:
    """The epochs the continued run trains to (the run's own, or more)."""
    task = summary["config"]["task"]
    planned = int(task["epochs"])
    loop = summary["loop"]
    done = int(loop["epoch"])
    finished = loop["stopped_early"] or (done >= planned and loop["step"] == 0)
    if loop["stopped_early"]:
        raise ConfigError(
            RESUME_KEY,
            f"the run {str(run_dir)!r} stopped early at epoch {done} (task.patience="
            f"{task.get('patience')}): more epochs would stop again.",
            f"Start a new run from its weights: task.init_from={run_dir}.",
        )
    if override is None:
        if finished:
            raise _finished(run_dir, planned)
        return planned
    value = override.value()
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(
            "task.epochs", f"{value!r} is not an integer.", "Give a whole number."
        )
    if value < planned:
        raise ConfigError(
            "task.epochs",
            f"{value} is fewer than the run's {planned} epochs.",
            f"Leave task.epochs out to finish the run, or raise it above {planned}.",
        )
    if value == planned and finished:
        raise _finished(run_dir, planned)
    if value > planned and task.get("schedule") == "cosine":
        raise ConfigError(
            "task.epochs",
            f"cannot be raised for this run: its cosine schedule anneals the "
            f"learning rate to 0 over its {planned} epochs, and {value} would change "
            "the rate of every epoch already trained.",
            f"Start a new run from its weights instead: task.init_from={run_dir}.",
        )
    return int(value)


def _finished(run_dir: Path, planned: int) -> ConfigError:
    return ConfigError(
        RESUME_KEY,
        f"the run {str(run_dir)!r} finished its {planned} epochs.",
        f"Raise task.epochs to continue further (task.epochs={planned * 2}).",
    )


def _flags(argv: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """The flags of ``argv`` without the overrides and without the config's own
    (``--config-dir``, ``--config-path``, ``--config-name``)."""
    dropped = {"--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn"}
    pending = list(overrides)
    flags: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if pending and arg == pending[0]:
            pending.pop(0)
            continue
        name = arg.split("=", 1)[0]
        if name in dropped:
            skip = "=" not in arg
            continue
        flags.append(arg)
    return flags


def resumed_config(cfg: DictConfig) -> tuple[DictConfig, dict[str, str], list[str]]:
    """The config, Hydra record and overrides a resumed run continues with: the
    checkpoint's, with ``task.epochs`` as the command line set it.

    Args:
        cfg: The composed config (``task.resume`` and ``task.epochs`` set by
            :func:`resume_argv`).
    """
    from omegaconf import DictConfig, OmegaConf

    from annfactory.checkpoints import read_checkpoint_run
    from annfactory.files import to_yaml

    run_dir = Path(str(cfg.task.resume))
    run = read_checkpoint_run(run_dir / CHECKPOINT_FILE)
    record = {str(k): str(v) for k, v in (run.get("record") or {}).items()}
    text = record.get(".hydra/config.yaml")
    if text is None:
        raise ConfigError(
            RESUME_KEY,
            f"the checkpoint in {str(run_dir)!r} carries no config (the run was "
            "not started from the command line).",
            "Continue it from Python, with annfactory.training.train(resume=...).",
        )
    saved = OmegaConf.create(text)
    assert isinstance(saved, DictConfig)  # a run's config is a mapping
    epochs = int(cfg.task.epochs)
    raised = epochs != int(saved.task.epochs)
    saved.task.epochs = epochs
    record[".hydra/config.yaml"] = to_yaml(saved)
    run_overrides = list(run.get("overrides") or [])
    if raised:
        run_overrides.append(f"task.epochs={epochs}")
    saved.task.resume = str(run_dir)
    return saved, record, [str(item) for item in run_overrides]


def stopped_line(stop: TrainingStopped, command: str) -> str:
    """The one line a stopped run prints: where it stopped, and how to continue."""
    state = stop.state
    where = (
        f"during epoch {state.epoch + 1} (after step {state.step})"
        if state.step
        else f"after epoch {state.epoch}"
    )
    what = _SIGNAL_NAMES.get(stop.signal_number, f"signal {stop.signal_number}")
    if stop.path is None:
        return f"Stopped by {what} {where}; the run has no directory, so no checkpoint."
    run_dir = _shown(stop.path.parent)
    return (
        f"Stopped by {what} {where}; checkpoint saved. Continue with: "
        f"{command} task=train {RESUME_KEY}={shlex.quote(run_dir)}"
    )


def _shown(path: Path) -> str:
    """``path`` relative to the working directory where it is below it."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(absolute)
