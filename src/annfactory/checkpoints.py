"""Checkpoints of ``task=train``: where a training loop stands, in one file that a run
can continue from bit for bit.

A checkpoint is one safetensors file, ``checkpoint.safetensors`` in the run
directory. Its tensors are the network's state, the optimizer's state tensors, the
best epoch's weights (``task.keep=best``), the losses and scores of the steps run in
an unfinished epoch, and the generators' states: the shuffling stream's as it was when
that epoch began, and torch's global generator's (dropout's) as it is now. Its one
metadata entry is JSON: the epoch and step, the history so far, early stopping's
state, the optimizer's settings, the schedule's and the loss scaler's state, and the
run's own config (``.hydra/config.yaml`` and the rest of Hydra's record), which an
interrupted run has not written yet.

The file is written beside its final name, flushed to the disk, then renamed over it
(:func:`save_checkpoint`): a reader, or a run killed while writing (``kill -9``), sees
the previous checkpoint or the new one, never half of one.

:class:`StopSignals` turns SIGINT (Ctrl-C) and SIGTERM (a scheduler's preemption)
into a request that the loop reads after every step; a second Ctrl-C interrupts at
once.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from annfactory.errors import ConfigError
from annfactory.files import write_atomic

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "CHECKPOINT_FILE",
    "FORMAT",
    "Checkpointing",
    "LoopState",
    "StopSignals",
    "TrainingStopped",
    "checkpoint_summary",
    "load_checkpoint",
    "read_checkpoint_run",
    "save_checkpoint",
]

#: The checkpoint's name in the run directory.
CHECKPOINT_FILE: Final = "checkpoint.safetensors"
#: The layout of the file; a newer one is refused with the reason.
FORMAT: Final = 1
#: The one metadata entry (safetensors writes its metadata in hash-map order, so a
#: single entry keeps the bytes of two equal checkpoints equal).
_META: Final = "annfactory.checkpoint"


@dataclass
class LoopState:
    """Where a training loop stands, everything it needs to continue.

    Attributes:
        epoch: The epochs finished.
        step: The steps of the next epoch already run (0 at an epoch's end).
        history: The finished epochs' records, as plain data.
        best: Early stopping's state: ``loss``, ``epoch`` and ``since``.
        best_weights: The best epoch's weights (``keep=best``), or None.
        model: The network's state dict.
        optimizer: The optimizer's state dict (torch's layout).
        schedule: The learning-rate schedule's state dict, or None.
        scaler: The float16 loss scaler's state dict, or None.
        shuffle: The shuffling generator's state when the next epoch began (or
            begins): its order is drawn again from it.
        dropout: torch's global generator's state now (dropout's), or None.
        step_losses: The losses of the next epoch's steps already run.
        step_scores: Their scores (the running train metric).
        seconds: The loop's wall time so far.
        epoch_seconds: The unfinished epoch's wall time so far.
    """

    epoch: int
    step: int
    history: list[dict[str, float]]
    best: dict[str, float]
    best_weights: dict[str, Tensor] | None
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    schedule: dict[str, Any] | None
    scaler: dict[str, Any] | None
    shuffle: Tensor
    dropout: Tensor | None
    step_losses: list[Tensor] = field(default_factory=list)
    step_scores: list[Tensor] = field(default_factory=list)
    seconds: float = 0.0
    epoch_seconds: float = 0.0
    stopped_early: bool = False


class TrainingStopped(KeyboardInterrupt):
    """Training stopped on a signal, after its checkpoint was written.

    A ``KeyboardInterrupt``, so that a sweep stops as on Ctrl-C.

    Attributes:
        signal_number: ``signal.SIGINT`` or ``signal.SIGTERM``.
        state: Where the loop stopped.
        path: The checkpoint written, or None (a run without a directory).
    """

    def __init__(self, signal_number: int, state: LoopState, path: Path | None) -> None:
        super().__init__(signal_number)
        self.signal_number = signal_number
        self.state = state
        self.path = path

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process ended by that signal (130, 143)."""
        return 128 + self.signal_number


# ------------------------------------------------------------------------------------
# Signals
# ------------------------------------------------------------------------------------


class StopSignals:
    """SIGINT and SIGTERM, while training, as a request to stop after the step that
    runs: :attr:`requested` holds the signal's number (None until one comes).

    A second SIGINT interrupts at once (``KeyboardInterrupt``), as Ctrl-C does
    elsewhere. Handlers are installed only in the main thread (Python's rule), and
    the previous ones are put back on exit.
    """

    SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.requested is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = number


@dataclass
class Checkpointing:
    """When and where the training loop writes its checkpoint.

    Attributes:
        path: The checkpoint file; None: signals still stop the loop, and nothing is
            written (a run without a directory).
        run: The run's own record as JSON text (written into every checkpoint).
        every: Epochs between two checkpoints; None: only on a signal.
        seconds: At least this long between two checkpoints written at epochs'
            ends (a signal's is always written).
        keep_final: Write one after the last epoch too (a run that may be
            continued further).
        signals: SIGINT and SIGTERM while the loop runs.
    """

    path: Path | None
    run: str = "{}"
    every: int | None = 1
    seconds: float = 0.0
    keep_final: bool = False
    signals: StopSignals = field(default_factory=StopSignals)
    _written: float = field(default=-math.inf, init=False, repr=False)

    def due(self, epoch: int, *, last: bool = False) -> bool:
        """Whether a checkpoint is due at the end of ``epoch`` (``last``: the
        loop's last epoch)."""
        if self.path is None:
            return False
        if last:
            return self.keep_final
        if self.every is None or epoch % self.every:
            return False
        return time.monotonic() - self._written >= self.seconds

    def write(self, state: LoopState) -> None:
        """Write ``state`` (atomically) where a checkpoint goes."""
        if self.path is not None:
            save_checkpoint(self.path, state, self.run)
            self._written = time.monotonic()

    def stop(self, state: LoopState) -> TrainingStopped:
        """Write ``state``, and return the exception that ends the run."""
        self.write(state)
        number = self.signals.requested
        return TrainingStopped(
            signal.SIGINT if number is None else number, state, self.path
        )


# ------------------------------------------------------------------------------------
# Writing and reading
# ------------------------------------------------------------------------------------


def save_checkpoint(path: Path, state: LoopState, run: str = "{}") -> None:
    """Write ``state`` to ``path`` atomically (a temporary file beside it, flushed
    to the disk, then renamed over it).

    Args:
        path: The checkpoint file.
        state: The loop's state.
        run: The run's own record as JSON text (its config and Hydra's files),
            serialized once per run by the caller.
    """
    from safetensors.torch import save

    tensors: dict[str, Tensor] = {}
    _put(tensors, "model/", state.model)
    if state.best_weights is not None:
        _put(tensors, "best/", state.best_weights)
    optimizer_state: dict[str, dict[str, Any]] = {}
    for index, values in state.optimizer["state"].items():
        plain: dict[str, Any] = {}
        for name, value in values.items():
            if _is_tensor(value):
                tensors[f"optimizer/{index}/{name}"] = _cpu(value)
            else:
                plain[name] = value
        optimizer_state[str(index)] = plain
    tensors["rng/shuffle"] = _cpu(state.shuffle)
    if state.dropout is not None:
        tensors["rng/dropout"] = _cpu(state.dropout)
    for index, (loss, score) in enumerate(
        zip(state.step_losses, state.step_scores, strict=True)
    ):
        tensors[f"steps/{index}/loss"] = _cpu(loss)
        tensors[f"steps/{index}/score"] = _cpu(score)
    loop = {
        "format": FORMAT,
        "epoch": state.epoch,
        "step": state.step,
        "history": state.history,
        "best": state.best,
        "best_weights": state.best_weights is not None,
        "optimizer": {
            "param_groups": state.optimizer["param_groups"],
            "state": optimizer_state,
        },
        "schedule": state.schedule,
        "scaler": state.scaler,
        "seconds": state.seconds,
        "epoch_seconds": state.epoch_seconds,
        "stopped_early": state.stopped_early,
    }
    meta = f'{{"loop": {json.dumps(loop, default=_plain)}, "run": {run}}}'
    write_atomic(path, save(tensors, metadata={_META: meta}), sync=True)


def read_checkpoint_run(path: Path, key: str = "task.resume") -> dict[str, Any]:
    """The run's own record saved in the checkpoint at ``path`` (its config and
    Hydra's files), without loading its tensors.

    Raises:
        ConfigError: No such file, or one that is not a whole checkpoint (names
            ``key``).
    """
    return _metadata(path, key)["run"]  # type: ignore[no-any-return]


def checkpoint_summary(path: Path, key: str = "task.resume") -> dict[str, Any]:
    """Where the checkpoint at ``path`` stands, without its tensors: ``loop`` (the
    epoch, step, history, ``stopped_early``...) and ``config``, the run's config as
    plain data (empty where the checkpoint carries none).

    Raises:
        ConfigError: No such file, or one that is not a whole checkpoint (names
            ``key``).
    """
    import yaml

    meta = _metadata(path, key)
    text = (meta["run"].get("record") or {}).get(".hydra/config.yaml")
    try:
        config = yaml.safe_load(text) if text else {}
    except yaml.YAMLError as error:
        raise _unreadable(path, key, error) from None
    return {"loop": meta["loop"], "config": config if isinstance(config, dict) else {}}


def load_checkpoint(
    path: Path, key: str = "task.resume"
) -> tuple[LoopState, dict[str, Any]]:
    """The loop state and the run's record of the checkpoint at ``path``.

    Raises:
        ConfigError: No such file, or one that is not a whole checkpoint (names
            ``key``).
    """
    from safetensors.torch import load_file

    meta = _metadata(path, key)
    try:
        tensors = load_file(str(path))
    except Exception as error:  # safetensors' own error types are not public
        raise _unreadable(path, key, error) from None
    try:
        state = _state(meta["loop"], tensors)
    except (KeyError, TypeError, ValueError) as error:
        raise _unreadable(path, key, error) from None
    return state, meta["run"]


def _state(loop: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> LoopState:
    model = _take(tensors, "model/")
    optimizer_state: dict[int, dict[str, Any]] = {
        int(index): dict(values) for index, values in loop["optimizer"]["state"].items()
    }
    for name, tensor in tensors.items():
        if name.startswith("optimizer/"):
            _, index, key = name.split("/", 2)
            optimizer_state.setdefault(int(index), {})[key] = tensor
    steps = int(loop["step"])
    return LoopState(
        epoch=int(loop["epoch"]),
        step=steps,
        history=list(loop["history"]),
        best=dict(loop["best"]),
        best_weights=_take(tensors, "best/") if loop["best_weights"] else None,
        model=model,
        optimizer={
            "state": optimizer_state,
            "param_groups": loop["optimizer"]["param_groups"],
        },
        schedule=loop["schedule"],
        scaler=loop["scaler"],
        shuffle=tensors["rng/shuffle"],
        dropout=tensors.get("rng/dropout"),
        step_losses=[tensors[f"steps/{index}/loss"] for index in range(steps)],
        step_scores=[tensors[f"steps/{index}/score"] for index in range(steps)],
        seconds=float(loop["seconds"]),
        epoch_seconds=float(loop["epoch_seconds"]),
        stopped_early=bool(loop["stopped_early"]),
    )


def _metadata(path: Path, key: str) -> dict[str, Any]:
    from safetensors import safe_open

    if not path.is_file():
        raise ConfigError(
            key,
            f"{str(path.parent)!r} holds no checkpoint ({CHECKPOINT_FILE}).",
            "A run keeps one while it trains, and after it finishes only with "
            "task.keep_checkpoint=true.",
        )
    try:
        with safe_open(str(path), "pt") as file:
            text = (file.metadata() or {}).get(_META)
    except Exception as error:  # safetensors' own error types are not public
        raise _unreadable(path, key, error) from None
    if text is None:
        raise _unreadable(path, key, "it has no annfactory checkpoint record")
    try:
        meta = json.loads(text)
        version = meta["loop"]["format"]
    except (ValueError, KeyError, TypeError) as error:
        raise _unreadable(path, key, error) from None
    if version != FORMAT:
        raise ConfigError(
            key,
            f"{str(path)!r} is a checkpoint of format {version!r}; this annfactory "
            f"reads format {FORMAT}.",
            "Continue it with the annfactory version that wrote it.",
        )
    return meta  # type: ignore[no-any-return]


def _unreadable(path: Path, key: str, error: object) -> ConfigError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else "unknown"
    return ConfigError(
        key,
        f"{str(path)!r} cannot be loaded: {reason}.",
        "The file is damaged or was not written by annfactory; the run cannot "
        "continue from it.",
    )


def _put(tensors: dict[str, Tensor], prefix: str, values: Mapping[str, Tensor]) -> None:
    for name, tensor in values.items():
        tensors[prefix + name] = _cpu(tensor)


def _take(tensors: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {
        name[len(prefix) :]: tensor
        for name, tensor in tensors.items()
        if name.startswith(prefix)
    }


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _cpu(tensor: Tensor) -> Tensor:
    # A copy: safetensors refuses tensors that share memory (a view, a state
    # tensor that is a parameter's), and the file must not change under it.
    return tensor.detach().to("cpu", copy=True).contiguous()


def _plain(value: Any) -> Any:
    """JSON for what the optimizer's and schedules' states hold besides numbers."""
    if isinstance(value, tuple):
        return list(value)
    if _is_tensor(value) and value.numel() == 1:
        return value.item()
    raise TypeError(f"{type(value).__name__} cannot be saved in a checkpoint")
