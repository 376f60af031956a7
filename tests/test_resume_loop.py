"""Issue 22's guarantee, at the training loop: a run stopped by a signal anywhere (after
any step, mid-epoch, at an epoch's end), then continued from its checkpoint file,
ends with the same weights and the same history (every value but ``seconds``) as
the run left alone, bit for bit, for each optimizer, schedule, with and without
dropout. The command line's side is tests/test_resume.py."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from annfactory.checkpoints import (
    Checkpointing,
    StopSignals,
    TrainingStopped,
    load_checkpoint,
)
from annfactory.optimizers import build_optimizer, build_schedule, parse_optimizer
from annfactory.training import TrainResult, train

ROWS, FEATURES, CLASSES = 72, 6, 3
SPLIT = int(ROWS * 0.8)
BATCH = 16  # 4 steps an epoch: 3 of 16 rows and one of 9
STEPS = math.ceil(SPLIT / BATCH)
EPOCHS = 4
OPTIMIZERS = {
    "adam": {"name": "adam", "lr": 0.01},
    "adamw": {"name": "adamw", "lr": 0.01, "weight_decay": 0.05},
    "sgd": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
}
SCHEDULES = ("none", "cosine", "step")


class StopAt(StopSignals):
    """A signal that arrives before the ``at``-th read of :attr:`requested`. The loop
    reads it after every step but an epoch's last, and at every epoch's end: with 4
    steps an epoch, reads 1-3 stop after steps 1-3 of epoch 1, read 4 at its end."""

    def __init__(self, at: int | None, number: int = signal.SIGINT) -> None:
        super().__init__()
        self._at, self._number, self._reads = at, number, 0

    @property  # type: ignore[override]
    def requested(self) -> int | None:
        self._reads += 1
        if self._at is not None and self._reads >= self._at:
            return self._number
        return None

    @requested.setter
    def requested(self, value: int | None) -> None:
        pass


def _data() -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(ROWS, FEATURES, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return x[:SPLIT], y[:SPLIT], x[SPLIT:], y[SPLIT:]


def _run(
    tmp_path: Path,
    optimizer: str,
    schedule: str,
    dropout: bool,
    *,
    stop_at: int | None = None,
    resume: bool = False,
    epochs: int = EPOCHS,
    keep_final: bool = False,
    checkpoints: bool = True,
    keep: str = "best",
    autocast: torch.dtype | None = None,
    clip: float | None = None,
) -> tuple[dict[str, torch.Tensor], TrainResult]:
    """One process's worth: the network built afresh (as a new process would),
    trained, stopped or continued from ``tmp_path``'s checkpoint."""
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = [torch.nn.Linear(FEATURES, 12), torch.nn.Tanh()]
    if dropout:
        layers.append(torch.nn.Dropout(0.3))
    model = torch.nn.Sequential(*layers, torch.nn.Linear(12, CLASSES))
    built = build_optimizer(
        parse_optimizer(OPTIMIZERS[optimizer]), model.parameters(), torch.device("cpu")
    )
    stepped = build_schedule(schedule, built, epochs=epochs, step_size=2, gamma=0.5)
    path = tmp_path / "checkpoint.safetensors"
    x_train, y_train, x_val, y_val = _data()
    result = train(
        logits=model,
        module=model,
        loss=torch.nn.CrossEntropyLoss(),
        metric="accuracy",
        optimizer=built,
        schedule=stepped,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        epochs=epochs,
        batch_size=BATCH,
        patience=None,
        keep=keep,
        generator=torch.Generator().manual_seed(3),
        dropout_seed=11 if dropout else None,
        autocast=autocast,
        clip_grad_norm=clip,
        resume=load_checkpoint(path)[0] if resume else None,
        checkpoints=(
            Checkpointing(path, keep_final=keep_final, signals=StopAt(stop_at))
            if checkpoints
            else None
        ),
    )
    return {k: v.clone() for k, v in model.state_dict().items()}, result


def _history(result: TrainResult) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in dataclasses.asdict(record).items() if k != "seconds"}
        for record in result.history
    ]


def _same(
    a: tuple[dict[str, torch.Tensor], TrainResult],
    b: tuple[dict[str, torch.Tensor], TrainResult],
) -> None:
    assert a[0].keys() == b[0].keys()
    for name in a[0]:
        assert torch.equal(a[0][name], b[0][name]), name
    # Floats compared by their bits: repr round-trips, and NaN == NaN here.
    assert repr(_history(a[1])) == repr(_history(b[1]))
    assert (a[1].best_epoch, a[1].epochs_run) == (b[1].best_epoch, b[1].epochs_run)


_ALONE: dict[tuple[str, str, bool], Any] = {}


def _alone(tmp_path: Path, optimizer: str, schedule: str, dropout: bool) -> Any:
    key = (optimizer, schedule, dropout)
    if key not in _ALONE:
        _ALONE[key] = _run(tmp_path / "alone", optimizer, schedule, dropout)
    return _ALONE[key]


# Reads of the request: after steps 1, 2 and 3 of epoch 1 (a signal after its last
# step, 4, is read at its end); at epoch 1's end (4); after step 2 of epoch 3.
STOPS = (1, 2, 3, 4, 2 * STEPS + 2)


@pytest.mark.parametrize("dropout", [False, True], ids=["plain", "dropout"])
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("stop_at", STOPS)
def test_a_stopped_run_continues_bit_identical(
    tmp_path: Path, optimizer: str, schedule: str, dropout: bool, stop_at: int
) -> None:
    (tmp_path / "alone").mkdir()
    alone = _alone(tmp_path, optimizer, schedule, dropout)
    with pytest.raises(TrainingStopped) as stopped:
        _run(tmp_path, optimizer, schedule, dropout, stop_at=stop_at)
    state = stopped.value.state
    epoch, step = divmod(stop_at, STEPS)
    assert (state.epoch, state.step) == (epoch, step)
    assert stopped.value.exit_code == 130
    _same(_run(tmp_path, optimizer, schedule, dropout, resume=True), alone)


def test_checkpoints_change_nothing_of_the_run(tmp_path: Path) -> None:
    with_them = _run(tmp_path, "adam", "cosine", True)
    without = _run(tmp_path, "adam", "cosine", True, checkpoints=False)
    _same(with_them, without)
    # Every epoch's end wrote one (the default every=1, no time floor), and the
    # last, at epoch 3 of 4, stays until the task removes it.
    state, _ = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert (state.epoch, state.step) == (EPOCHS - 1, 0)


def test_a_run_stopped_twice_continues_bit_identical(tmp_path: Path) -> None:
    (tmp_path / "alone").mkdir()
    alone = _run(tmp_path / "alone", "sgd", "step", True)
    with pytest.raises(TrainingStopped):
        _run(tmp_path, "sgd", "step", True, stop_at=3)
    with pytest.raises(TrainingStopped) as second:
        # Epoch 1's last step (not read), its end (1), epoch 2's 3 reads and its
        # end (5), then after steps 1 and 2 of epoch 3.
        _run(tmp_path, "sgd", "step", True, stop_at=7, resume=True)
    assert (second.value.state.epoch, second.value.state.step) == (2, 2)
    _same(_run(tmp_path, "sgd", "step", True, resume=True), alone)


@pytest.mark.parametrize("keep", ["best", "last"])
def test_a_finished_run_continues_further_as_the_longer_run(
    tmp_path: Path, keep: str
) -> None:
    (tmp_path / "long").mkdir()
    longer = _run(tmp_path / "long", "adam", "step", True, epochs=7, keep=keep)
    _run(tmp_path, "adam", "step", True, epochs=4, keep_final=True, keep=keep)
    state, _ = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert (state.epoch, state.step) == (4, 0)
    _same(
        _run(tmp_path, "adam", "step", True, epochs=7, resume=True, keep=keep), longer
    )


def test_a_clipped_run_continues_bit_identical(tmp_path: Path) -> None:
    (tmp_path / "alone").mkdir()
    alone = _run(tmp_path / "alone", "adam", "cosine", True, clip=0.05)
    unclipped = _run(tmp_path / "alone", "adam", "cosine", True)
    assert not torch.equal(alone[0]["0.weight"], unclipped[0]["0.weight"])
    with pytest.raises(TrainingStopped):
        _run(tmp_path, "adam", "cosine", True, stop_at=STEPS + 1, clip=0.05)
    _same(_run(tmp_path, "adam", "cosine", True, resume=True, clip=0.05), alone)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_mixed_precision_continues_bit_identical(
    tmp_path: Path, dtype: torch.dtype
) -> None:
    # float16 also carries its loss scaler's state (scale, growth tracker).
    (tmp_path / "alone").mkdir()
    alone = _run(tmp_path / "alone", "adam", "step", True, autocast=dtype)
    for stop_at in (2, STEPS + 1):  # mid-epoch 1, mid-epoch 2
        with pytest.raises(TrainingStopped) as stopped:
            _run(tmp_path, "adam", "step", True, stop_at=stop_at, autocast=dtype)
        scaler = stopped.value.state.scaler
        if dtype == torch.float16:
            assert scaler is not None
            assert scaler["scale"] == 2.0**10  # no overflow in so few steps
        else:
            assert scaler is None  # bfloat16 needs no scaling
        resumed = _run(tmp_path, "adam", "step", True, resume=True, autocast=dtype)
        _same(resumed, alone)


def test_sigterm_is_a_request_to_stop_and_the_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as signals:
        assert signals.requested is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.requested == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_ctrl_c_interrupts_at_once() -> None:
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.requested == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
