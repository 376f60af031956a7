"""The options of ``task=train`` (``task.*``; conf/task/train.yaml): their schema,
live (a loss or schedule registered later is a valid choice), and their validation."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from annfactory.losses import losses
from annfactory.optimizers import schedules
from annfactory.params import Param, validate_params
from annfactory.training import KEEPS

__all__ = ["OPTIONS", "TrainOptions", "parse_options"]


_FIXED_OPTIONS: Final = {
    "epochs": Param(int, 100, "passes over the training rows", low=1),
    "batch_size": Param(int, 64, "rows per optimizer step", low=1),
    "patience": Param(
        int,
        None,
        "stop after this many epochs without a better val_loss; null: never stop",
        low=1,
    ),
    "keep": Param(
        str, "best", "weights saved: of the best val_loss, or the last", choices=KEEPS
    ),
    "step_size": Param(int, 30, "epochs between lr drops (schedule=step)", low=1),
    "gamma": Param(
        float, 0.1, "lr factor at each drop (schedule=step)", low=0, low_open=True
    ),
    "clip_grad_norm": Param(
        float,
        None,
        "scale each step's gradients down to at most this norm over all the "
        "parameters; null: no clipping",
        low=0,
        low_open=True,
    ),
    "log_every": Param(
        int,
        None,
        "epochs between progress lines off a terminal; null: about 20 lines a run",
        low=1,
    ),
    "checkpoint_every": Param(
        int,
        1,
        "epochs between checkpoints (0: only when a signal stops the run)",
        low=0,
    ),
    "checkpoint_seconds": Param(
        float, 2.0, "at least this many seconds between two checkpoints", low=0
    ),
    "keep_checkpoint": Param(
        bool, False, "keep the checkpoint when the run ends (to continue it further)"
    ),
    "resume": Param(
        str, None, "a run directory to continue from its checkpoint; null: a new run"
    ),
    "init_from": Param(
        str,
        None,
        "a saved run whose parameters the network starts from, by name; null: the "
        "config's inits",
    ),
    "init_skip": Param(list, (), "layers task.init_from leaves to the config's inits"),
    "freeze": Param(list, (), "layers whose parameters do not train"),
    "threads": Param(
        int,
        None,
        "torch's CPU threads while training; null: one for a small or recurrent "
        "network on the CPU, torch's setting otherwise",
        low=1,
    ),
}


#: The options conf/task/train.yaml lists after the loss.
_LAST_OPTIONS: Final = (
    *(
        "clip_grad_norm",
        "log_every",
        "checkpoint_every",
        "checkpoint_seconds",
        "keep_checkpoint",
    ),
    *("resume", "init_from", "init_skip", "freeze", "threads"),
)


def _option_schema() -> dict[str, Param]:
    """The task's options, with the loss and schedule choices the registries hold
    now, in the order conf/task/train.yaml lists them."""
    fixed = _FIXED_OPTIONS
    return {
        **{name: fixed[name] for name in ("epochs", "batch_size", "patience", "keep")},
        "schedule": Param(
            str,
            "none",
            "learning-rate schedule",
            choices=tuple(schedules.names_in_order()),
        ),
        "step_size": fixed["step_size"],
        "gamma": fixed["gamma"],
        "loss": Param(
            str,
            None,
            "null: from the output activation and the data",
            choices=tuple(losses.names_in_order()),
        ),
        **{name: fixed[name] for name in _LAST_OPTIONS},
    }


class _Options(Mapping[str, Param]):
    """The task's schema, live: a loss or schedule registered after this module was
    imported is a valid ``task.loss`` or ``task.schedule`` too."""

    def __init__(self) -> None:
        self._sizes = (-1, -1)
        self._schema: dict[str, Param] = {}

    def _table(self) -> dict[str, Param]:
        sizes = (len(losses), len(schedules))
        if sizes != self._sizes:
            self._schema, self._sizes = _option_schema(), sizes
        return self._schema

    def __getitem__(self, name: str) -> Param:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


OPTIONS: Final = _Options()


@dataclass(frozen=True)
class TrainOptions:
    """The validated options of the train task (``task.*``; conf/task/train.yaml)."""

    epochs: int = 100
    batch_size: int = 64
    patience: int | None = None
    keep: str = "best"
    schedule: str = "none"
    step_size: int = 30
    gamma: float = 0.1
    loss: str | None = None
    clip_grad_norm: float | None = None
    log_every: int | None = None
    checkpoint_every: int = 1
    checkpoint_seconds: float = 2.0
    keep_checkpoint: bool = False
    resume: str | None = None
    init_from: str | None = None
    init_skip: tuple[str, ...] = ()
    freeze: tuple[str, ...] = ()
    threads: int | None = None


def parse_options(given: Mapping[str, Any], key: str) -> TrainOptions:
    """Validate the task's options (the ``task`` node without ``name``).

    Raises:
        ConfigError: An unknown option (names the closest one) or a bad value; the
            message names ``<key>.<option>``.
    """
    return TrainOptions(**validate_params(given, OPTIONS, key, "task 'train'"))
