"""``task=train``'s checkpoints: where they go and when (``task.checkpoint_every``,
``task.checkpoint_seconds``), their removal when the run ends (unless
``task.keep_checkpoint``), and the state a resumed run continues from
(``task.resume``). The file's layout is :mod:`annfactory.checkpoints`'."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from annfactory.checkpoints import (
    CHECKPOINT_FILE,
    Checkpointing,
    LoopState,
    load_checkpoint,
    read_checkpoint_run,
)
from annfactory.errors import ConfigError

if TYPE_CHECKING:
    from annfactory.tasks import TaskContext
    from annfactory.tasks.train_options import TrainOptions

__all__ = ["checkpointing", "resumed_state"]


def checkpointing(context: TaskContext, options: TrainOptions) -> Checkpointing:
    """Where and when this run writes its checkpoint; the file is left in the run
    directory until the run succeeds (then removed, unless ``keep_checkpoint``).
    A run without a directory writes none, and still stops on a signal."""
    path = None
    if context.output_dir is not None:
        path = context.output_dir / CHECKPOINT_FILE
        if not options.keep_checkpoint:
            context.transient.append(CHECKPOINT_FILE)
    # The run's config, serialized once: every checkpoint carries it, since a run
    # stopped early has not written .hydra/ yet.
    run = json.dumps(
        {"record": dict(context.record), "overrides": list(context.overrides)}
    )
    return Checkpointing(
        path,
        run=run,
        every=options.checkpoint_every or None,
        seconds=options.checkpoint_seconds,
        keep_final=options.keep_checkpoint,
    )


def resumed_state(context: TaskContext, options: TrainOptions) -> LoopState | None:
    """The loop state a run continues from, or None for a new run.

    That is the checkpoint of ``task.resume``; or the one in the run's own
    directory where it was written by this same config: the same command run
    again there (a cluster's requeue of a preempted job) continues it. A new run
    never writes over another run's checkpoint.

    Raises:
        ConfigError: The checkpoint cannot be loaded; or the run's directory holds
            the checkpoint of another config.
    """
    if options.resume is not None:
        state, _ = load_checkpoint(Path(options.resume) / CHECKPOINT_FILE)
        return state
    if context.output_dir is not None:
        existing = context.output_dir / CHECKPOINT_FILE
        if existing.exists():
            config = context.record.get(".hydra/config.yaml")
            saved = read_checkpoint_run(existing, "hydra.run.dir").get("record") or {}
            if config is not None and saved.get(".hydra/config.yaml") == config:
                state, _ = load_checkpoint(existing, "hydra.run.dir")
                return state
            shown = str(context.output_dir)
            raise ConfigError(
                "hydra.run.dir",
                f"{shown!r} holds the checkpoint of a run with another config "
                f"({CHECKPOINT_FILE}), which this run would overwrite.",
                f"Continue that run with task.resume={shown}, or give the new run "
                "another hydra.run.dir.",
            )
    return None
