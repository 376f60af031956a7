"""The training loop of ``task=train``: epochs of minibatch steps, validation after
each, early stopping, and the best epoch's weights kept.

Written for small networks on small tables, where a step's time is mostly Python and
per-operation overhead rather than arithmetic. So the loop

- gathers the shuffled rows once per epoch and takes contiguous slices of them
  (``torch.split``), instead of indexing rows at every step;
- never asks for a value on the host during an epoch: each step's loss stays on the
  device, and one transfer per epoch brings back the train loss, the validation loss
  and the metric;
- drops gradients instead of zeroing them (``zero_grad(set_to_none=True)``);
- runs torch's kernels on one thread while it trains tiny matrices on the CPU, where
  waking a second thread costs more than it saves (restored afterwards).

On the CPU the same inputs, the same shuffling generator and the same dropout seed
give a bit-identical history. The shuffling generator lives on the CPU, so every
device draws the same order. Dropout draws from torch's global generator, which the
loop seeds from ``dropout_seed`` inside :func:`torch.random.fork_rng`: the caller's
generator state is the same afterwards.

Batch norm cannot compute statistics over one row: where the network has a batch
norm, a last batch of one row joins the batch before it (:func:`batch_sizes`).

Half precision trains as mixed precision (``autocast``): the module's parameters and
the optimizer's state stay float32, the forward passes run under
:class:`torch.autocast` in float16 or bfloat16, losses are computed in float32, and
float16 gradients are scaled (:class:`torch.amp.GradScaler`) so that small ones do
not underflow. The caller casts the trained module to the half dtype.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from annfactory.checkpoints import Checkpointing, LoopState, StopSignals
from annfactory.errors import ConfigError
from annfactory.scoring import (
    VALIDATION_ROWS,
    forward_pass,
    metric_of,
    score,
    total_squares,
    validation,
)
from annfactory.steppers import Stepper

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = [
    "AUTOCAST_DTYPES",
    "KEEPS",
    "METRICS",
    "EpochRecord",
    "TrainResult",
    "batch_sizes",
    "has_batch_norm",
    "train",
]

#: The validation metrics: ``accuracy`` for classification, ``r2`` for regression.
METRICS: Final = ("accuracy", "r2")
#: Which weights a run keeps: those of the epoch with the lowest validation loss, or
#: the last epoch's.
KEEPS: Final = ("best", "last")
#: The dtypes trained as mixed precision (float32 weights, autocast forward passes).
AUTOCAST_DTYPES: Final = ("float16", "bfloat16")

#: The first loss scale of float16 training. With torch's default (2**16) the scaled
#: gradients of a small network overflow for its first steps, each then skipped
#: while the scale halves: about 6 steps, half an epoch of a small data set. 2**10
#: still lifts gradients down to about 6e-11 above float16's smallest value.
_INITIAL_LOSS_SCALE: Final = 2.0**10
#: Below this many multiply-adds per step and layer (batch rows x the largest
#: weight), training on the CPU runs on one thread: see :func:`_cpu_threads`.
_ONE_THREAD_WORK: Final = 1 << 20


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did.

    Attributes:
        epoch: Its number, from 1.
        train_loss: The mean loss over the epoch's steps, each weighted by its rows.
        val_loss: The loss on the validation rows after the epoch.
        metric: Validation accuracy (classification) or R² (regression).
        lr: The learning rate the epoch trained with (its first parameter group's).
        seconds: Its wall time, validation included.
        train_metric: The same metric over the epoch's training steps, each row
            scored by the weights of its step (a running figure, as the train loss).
    """

    epoch: int
    train_loss: float
    val_loss: float
    metric: float
    lr: float
    seconds: float
    train_metric: float = math.nan


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        history: One record per epoch run.
        best_epoch: The epoch with the lowest validation loss (the first of equals).
        epochs_run: How many epochs ran (fewer than asked if stopped early).
        seconds: Wall time of the whole loop.
        stopped_early: Early stopping ended the run.
        threads: The CPU threads torch's kernels ran on.
    """

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    epochs_run: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    #: The CPU threads torch's kernels ran on (see ``threads``).
    threads: int = 0
    #: Figures computed after the loop by the caller (``task=train``'s balanced
    #: accuracy and test split).
    scores: dict[str, float] = field(default_factory=dict)


def train(
    *,
    logits: Callable[[Tensor], Tensor],
    module: torch.nn.Module,
    loss: Callable[[Tensor, Tensor], Tensor],
    metric: str,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler | None,
    x_train: Tensor,
    y_train: Tensor,
    x_val: Tensor,
    y_val: Tensor,
    epochs: int,
    batch_size: int,
    patience: int | None,
    keep: str,
    generator: torch.Generator,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    dropout_seed: int | None = None,
    autocast: torch.dtype | None = None,
    resume: LoopState | None = None,
    checkpoints: Checkpointing | None = None,
    threads: int | None = None,
    validation_rows: int = VALIDATION_ROWS,
    clip_grad_norm: float | None = None,
) -> TrainResult:
    """Train ``module`` by minibatch steps and validate it after every epoch.

    Args:
        logits: Maps a batch of inputs to what ``loss`` takes (the network without
            its final softmax, log-softmax or sigmoid, whose loss includes it).
        module: What holds the parameters and buffers: put in train mode for the
            steps and eval mode for validation; its state is what ``keep`` keeps.
        loss: ``loss(outputs, targets)``, a mean over the rows.
        metric: ``"accuracy"``: ``targets`` are class indices; the class is the
            argmax over the last dimension, or, for a single output unit (binary,
            sigmoid), ``output > 0``. ``"r2"``: 1 - SS_res / SS_tot over the
            validation rows, averaged over output columns like scikit-learn's
            ``r2_score``.
        optimizer: Steps the parameters of ``module``.
        schedule: Stepped once after every epoch, or None.
        x_train: Training inputs, on the device.
        y_train: Training targets, on the device.
        x_val: Validation inputs, on the device.
        y_val: Validation targets, on the device.
        epochs: The most epochs to run (>= 1).
        batch_size: Rows per step; the last, partial batch of an epoch is kept (one
            row joins the batch before it where ``module`` has a batch norm).
        patience: Stop when the validation loss has not improved for this many
            epochs; None never stops early.
        keep: ``"best"``: at the end, restore the state of the epoch with the lowest
            validation loss; ``"last"``: keep the final state.
        generator: A CPU generator, the stream each epoch's shuffle is drawn from.
        on_epoch: Called with each epoch's record (progress bars, logs).
        dropout_seed: Seeds torch's global generator, which dropout draws from, for
            the loop (the caller's generator state is restored afterwards); None
            leaves it as it is.
        autocast: ``torch.float16`` or ``torch.bfloat16``: mixed precision. The
            module and the inputs stay float32 (the master weights, and the
            optimizer's state with them); forward passes run under
            :class:`torch.autocast` in this dtype, the losses are computed in
            float32, and float16 gradients are scaled by a
            :class:`torch.amp.GradScaler`. None: every value in the module's dtype.
        resume: A checkpoint's state (:func:`annfactory.checkpoints.load_checkpoint`)
            to continue from, in the middle of an epoch or at its end: the module,
            the optimizer, the schedule, the generators, the history and early
            stopping's state are set from it, and the loop ends as the
            uninterrupted one would have, bit for bit on the CPU. The other
            arguments must be the interrupted run's (``epochs`` may be larger).
        checkpoints: When to write checkpoints (every few epochs; always on
            SIGINT or SIGTERM, which stop the loop after the step that runs,
            raising :class:`~annfactory.checkpoints.TrainingStopped`). None: no
            checkpoint, and the signals keep their handlers.
        threads: torch's CPU threads for the loop (restored afterwards); None: one
            for a small or recurrent network on the CPU, torch's setting otherwise.
        validation_rows: The most rows of one validation forward pass (the rows are
            scored in chunks of this many): fewer for a network whose rows take much
            memory each (long sequences under attention).
        clip_grad_norm: Before each step, scale the gradients down so that their
            norm over all the parameters is at most this (> 0); None: no clipping.

    Returns:
        The history and the summary of the run.

    Raises:
        ValueError: An argument outside its allowed values.
        ConfigError: The loss became NaN or infinite (training diverged): names
            ``optimizer.lr``, the usual cause.
        TrainingStopped: A signal stopped the loop; its checkpoint is written.
    """
    _check_arguments(metric, keep, epochs, batch_size, patience, x_train, x_val)
    if resume is not None:  # before the stepper takes the optimizer's state
        _restore(resume, module, optimizer, schedule, generator)
    run_epoch = _EpochRunner(
        logits=logits,
        module=module,
        loss=loss,
        metric=metric,
        optimizer=optimizer,
        schedule=schedule,
        data=(x_train, y_train, x_val, y_val),
        batch_size=batch_size,
        generator=generator,
        autocast=autocast,
        validation_rows=validation_rows,
        clip_grad_norm=clip_grad_norm,
    )
    best = _BestSoFar(keep=keep, epochs=epochs)
    result = _so_far(resume, run_epoch, best)
    first = 1 if resume is None else resume.epoch + 1
    snapshot = _Snapshot(result, best, run_epoch, module, dropout_seed)
    signals = checkpoints.signals if checkpoints is not None else None
    start = time.perf_counter() - (resume.seconds if resume is not None else 0.0)
    dropout_state = resume.dropout if resume is not None else None
    with (
        _cpu_threads(module, batch_size, x_train.device, threads) as result.threads,
        _seeded_dropout(dropout_seed, x_train.device, dropout_state),
        signals or contextlib.nullcontext(),
    ):
        for epoch in range(first, epochs + 1):
            shuffle = generator.get_state()
            unfinished = resume if resume is not None and epoch == first else None
            try:
                record = run_epoch(epoch, unfinished, signals)
            except _StopRequestedError as stop:  # only with checkpoints
                assert checkpoints is not None
                state = snapshot(epoch - 1, shuffle, start, stop)
                raise checkpoints.stop(state) from None
            _check_finite(record, optimizer)
            _take(record, result, best, module)
            if on_epoch is not None:
                on_epoch(record)
            stopping = patience is not None and best.since >= patience
            last = stopping or epoch == epochs
            if checkpoints is not None:
                _epoch_checkpoint(checkpoints, epoch, last, stopping, snapshot, start)
            if stopping and epoch < epochs:
                result.stopped_early = True
                break
        best.restore(module, result.epochs_run)
    module.eval()
    result.seconds = time.perf_counter() - start
    return result


def _so_far(
    resume: LoopState | None, runner: _EpochRunner, best: _BestSoFar
) -> TrainResult:
    """The result of the epochs a checkpoint's run trained (none for a new run),
    with early stopping's state and the loss scaler's taken from it."""
    result = TrainResult()
    if resume is not None:
        runner.load_scaler(resume.scaler)
        result.history = [EpochRecord(**record) for record in resume.history]  # type: ignore[arg-type]
        best.resume(resume)
        result.best_epoch, result.epochs_run = best.epoch, resume.epoch
    return result


def _take(
    record: EpochRecord, result: TrainResult, best: _BestSoFar, module: torch.nn.Module
) -> None:
    """Add an epoch's record to the result and to early stopping's state."""
    result.history.append(record)
    result.epochs_run = record.epoch
    best.update(record, module)
    result.best_epoch = best.epoch


def _restore(
    state: LoopState,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler | None,
    generator: torch.Generator,
) -> None:
    """Set the module, the optimizer, the schedule and the shuffling generator
    from a checkpoint's state."""
    module.load_state_dict(state.model)
    optimizer.load_state_dict(state.optimizer)
    if schedule is not None and state.schedule is not None:
        schedule.load_state_dict(state.schedule)
    generator.set_state(state.shuffle)


def _epoch_checkpoint(
    checkpoints: Checkpointing,
    epoch: int,
    last: bool,
    stopping: bool,
    snapshot: _Snapshot,
    start: float,
) -> None:
    """At an epoch's end: stop on a signal (but after the last epoch, which only
    has its files left to write), write the checkpoint that is due, and the final
    one a run keeps (``task.keep_checkpoint``)."""
    requested = checkpoints.signals.requested is not None and not last
    if not (requested or checkpoints.due(epoch, last=last)):
        return
    state = snapshot(epoch, snapshot.generator_state(), start)
    state.stopped_early = stopping
    if requested:
        raise checkpoints.stop(state)
    checkpoints.write(state)


class _StopRequestedError(Exception):
    """A signal stopped an epoch after ``step`` steps (raised by the runner)."""

    def __init__(
        self,
        step: int,
        losses: list[Tensor],
        scores: list[Tensor],
        seconds: float,
    ) -> None:
        super().__init__(step)
        self.step, self.losses, self.scores = step, losses, scores
        self.seconds = seconds


@dataclass
class _Snapshot:
    """The loop's state as a checkpoint holds it (:class:`LoopState`)."""

    result: TrainResult
    best: _BestSoFar
    runner: _EpochRunner
    module: torch.nn.Module
    dropout_seed: int | None

    def generator_state(self) -> Tensor:
        return self.runner.generator.get_state()

    def __call__(
        self,
        epoch: int,
        shuffle: Tensor,
        start: float,
        stop: _StopRequestedError | None = None,
    ) -> LoopState:
        import torch

        best, module = self.best, self.module
        schedule = self.runner.schedule
        best_weights = None
        if best.keep == "best" and best.epoch:
            # At an epoch's end that is the best so far, the weights are the
            # module's (the last epoch's are not copied).
            current = stop is None and best.epoch == epoch
            best_weights = module.state_dict() if current else best.state
        return LoopState(
            epoch=epoch,
            step=0 if stop is None else stop.step,
            history=[dict(vars(record)) for record in self.result.history],
            best={"loss": best.loss, "epoch": best.epoch, "since": best.since},
            best_weights=best_weights,
            model=module.state_dict(),
            optimizer=self.runner.optimizer.state_dict(),
            schedule=None if schedule is None else schedule.state_dict(),
            scaler=self.runner.scaler_state(),
            shuffle=shuffle,
            dropout=(
                None if self.dropout_seed is None else torch.random.get_rng_state()
            ),
            step_losses=[] if stop is None else stop.losses,
            step_scores=[] if stop is None else stop.scores,
            seconds=time.perf_counter() - start,
            epoch_seconds=0.0 if stop is None else stop.seconds,
        )


class _EpochRunner:
    """One epoch: minibatch steps over the shuffled training rows, then validation.

    Built once per run (the batch sizes and their weights, the forward pass, the
    validation, the optimizer's stepper); ``run_epoch(epoch)`` trains one epoch,
    steps the schedule, and returns its record. The arguments are
    :func:`train`'s (``data``: its training and validation inputs and targets).
    """

    def __init__(
        self,
        *,
        logits: Callable[[Tensor], Tensor],
        module: torch.nn.Module,
        loss: Callable[[Tensor, Tensor], Tensor],
        metric: str,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler | None,
        data: tuple[Tensor, Tensor, Tensor, Tensor],
        batch_size: int,
        generator: torch.Generator,
        autocast: torch.dtype | None,
        validation_rows: int = VALIDATION_ROWS,
        clip_grad_norm: float | None = None,
    ) -> None:
        import torch

        x_train, y_train, x_val, y_val = data
        self._module, self._metric = module, metric
        self.optimizer, self.schedule = optimizer, schedule
        self._x_train, self._y_train = x_train, y_train
        self.generator = generator
        self._rows = rows = x_train.shape[0]
        device = x_train.device
        # Each step's loss weighs by its rows; only the last batch of an epoch is
        # short.
        self._sizes = batch_sizes(rows, batch_size, batch_norm=has_batch_norm(module))
        self._weights = (
            torch.tensor(self._sizes, dtype=torch.float32, device=device) / rows
        )
        self._forward = forward_pass(logits, loss, device, autocast)
        self._evaluate = validation(
            self._forward, metric, x_val, y_val, validation_rows
        )
        self._scaler = (
            torch.amp.GradScaler(device.type, init_scale=_INITIAL_LOSS_SCALE)
            if autocast == torch.float16
            else None
        )
        self._step = Stepper(optimizer, self._scaler, clip_grad_norm)
        self._total_squares = total_squares(y_train) if metric == "r2" else None

    def scaler_state(self) -> dict[str, Any] | None:
        """The float16 loss scaler's state, or None without one."""
        return None if self._scaler is None else self._scaler.state_dict()

    def load_scaler(self, state: dict[str, Any] | None) -> None:
        """Set the loss scaler's state (a checkpoint's)."""
        if self._scaler is not None and state:
            self._scaler.load_state_dict(state)

    def __call__(
        self,
        epoch: int,
        unfinished: LoopState | None = None,
        signals: StopSignals | None = None,
    ) -> EpochRecord:
        """Train epoch ``epoch``, from ``unfinished``'s step where it stopped in its
        middle; stop after a step when ``signals`` holds a request
        (:class:`_StopRequestedError`)."""
        resumed = unfinished is not None and unfinished.step > 0
        epoch_start = time.perf_counter()
        if resumed:
            assert unfinished is not None
            epoch_start -= unfinished.epoch_seconds
        lr = float(self.optimizer.param_groups[0]["lr"])
        step_losses, step_scores = self._train_steps(
            unfinished if resumed else None, signals, epoch_start
        )
        numbers = self._figures(step_losses, step_scores)
        if self.schedule is not None:
            self.schedule.step()
        return EpochRecord(
            epoch,
            numbers[0],
            numbers[1],
            numbers[2],
            lr,
            time.perf_counter() - epoch_start,
            numbers[3],
        )

    def _train_steps(
        self,
        unfinished: LoopState | None,
        signals: StopSignals | None,
        epoch_start: float,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """One pass over the shuffled training rows: each step's loss and score."""
        import torch

        self._module.train()
        device = self._x_train.device
        order = torch.randperm(self._rows, generator=self.generator).to(device)
        batches = list(
            zip(
                torch.split(self._x_train.index_select(0, order), self._sizes),
                torch.split(self._y_train.index_select(0, order), self._sizes),
                strict=True,
            )
        )
        step_losses: list[Tensor] = []
        step_scores: list[Tensor] = []
        if unfinished is not None:
            step_losses = [loss.to(device) for loss in unfinished.step_losses]
            step_scores = [score.to(device) for score in unfinished.step_scores]
            batches = batches[unfinished.step :]
        last = len(batches) - 1
        for index, (inputs, targets) in enumerate(batches):
            outputs, step_loss = self._forward(inputs, targets)
            self._step(step_loss)
            step_losses.append(step_loss.detach())
            step_scores.append(score(outputs.detach(), targets, self._metric))
            # After the last step, the epoch ends first (its validation, the
            # schedule's step): the loop stops at its end.
            if index < last and signals is not None and signals.requested is not None:
                raise _StopRequestedError(
                    len(step_losses),
                    step_losses,
                    step_scores,
                    time.perf_counter() - epoch_start,
                )
        return step_losses, step_scores

    def _figures(
        self, step_losses: list[Tensor], step_scores: list[Tensor]
    ) -> list[float]:
        """The epoch's train loss, validation loss, validation metric and running
        train metric, in eval mode, with the epoch's one host sync."""
        import torch

        self._module.eval()
        with torch.inference_mode():
            train_loss = (torch.stack(step_losses).float() * self._weights).sum()
            train_value = metric_of(
                torch.stack(step_scores).sum(0), self._rows, self._total_squares
            )
            val_loss, value = self._evaluate()
            numbers: list[float] = torch.stack(
                [train_loss.double(), val_loss.double(), value, train_value]
            ).tolist()
        return numbers


@dataclass
class _BestSoFar:
    """Early stopping's and ``keep="best"``'s state: the epoch with the lowest
    validation loss so far (the first of equals), its weights, and the epochs since.

    Attributes:
        keep: ``"best"`` or ``"last"``.
        epochs: The most epochs the run may take (the last one's state is kept
            without a copy).
    """

    keep: str
    epochs: int
    loss: float = math.inf
    epoch: int = 0
    since: int = 0
    state: dict[str, Tensor] | None = None

    def update(self, record: EpochRecord, module: torch.nn.Module) -> None:
        """Take in an epoch's record; copy the weights where it is the best yet."""
        if record.val_loss < self.loss:
            self.loss, self.epoch, self.since = record.val_loss, record.epoch, 0
            if self.keep == "best" and record.epoch < self.epochs:
                self.state = {
                    name: tensor.detach().clone()
                    for name, tensor in module.state_dict().items()
                }
        else:
            self.since += 1

    def resume(self, state: LoopState) -> None:
        """Take early stopping's state from a checkpoint."""
        self.loss = float(state.best["loss"])
        self.epoch, self.since = int(state.best["epoch"]), int(state.best["since"])
        self.state = state.best_weights if self.keep == "best" else None

    def restore(self, module: torch.nn.Module, epochs_run: int) -> None:
        """With ``keep="best"``, load the best epoch's weights unless it was the
        last one run."""
        if self.keep == "best" and self.state is not None and self.epoch != epochs_run:
            module.load_state_dict(self.state)


def _check_arguments(
    metric: str,
    keep: str,
    epochs: int,
    batch_size: int,
    patience: int | None,
    x_train: Tensor,
    x_val: Tensor,
) -> None:
    """Refuse arguments the loop cannot use (the task validated the config's)."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: expected one of {', '.join(METRICS)}")
    if keep not in KEEPS:
        raise ValueError(f"keep {keep!r}: expected one of {', '.join(KEEPS)}")
    if epochs < 1 or batch_size < 1 or (patience is not None and patience < 1):
        raise ValueError(
            f"epochs ({epochs}), batch_size ({batch_size}) and patience ({patience}) "
            "must be >= 1 (patience may be None)"
        )
    if x_train.shape[0] < 1 or x_val.shape[0] < 1:
        raise ValueError("the training and the validation split need rows")


def has_batch_norm(module: torch.nn.Module) -> bool:
    """Whether ``module`` holds a batch norm anywhere (residual blocks included)."""
    from torch import nn

    kinds = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
    return any(isinstance(child, kinds) for child in module.modules())


def batch_sizes(rows: int, batch_size: int, *, batch_norm: bool) -> list[int]:
    """The rows of each step of an epoch: ``batch_size`` each, the last one what is
    left. With ``batch_norm``, a last batch of one row joins the batch before it
    (``batch_size + 1`` rows): batch norm cannot normalize one row by statistics
    over the batch, and dropping the row would leave it out of that epoch."""
    sizes = [min(batch_size, rows - start) for start in range(0, rows, batch_size)]
    if batch_norm and len(sizes) > 1 and sizes[-1] == 1:
        last = sizes.pop()
        sizes[-1] += last
    return sizes


@contextlib.contextmanager
def _seeded_dropout(
    seed: int | None, device: torch.device, state: Tensor | None = None
) -> Iterator[None]:
    """Seed torch's global generator (dropout's) for the loop, and restore the
    caller's state on exit (:func:`torch.random.fork_rng`). ``state``: a
    checkpoint's, set after the seed (a CPU run's generator)."""
    if seed is None:
        yield
        return
    import torch

    # Only the generator of the training device: torch.manual_seed would also seed
    # (lazily) every CUDA device of a CPU run, and fork_rng would not restore them.
    cuda = device.type == "cuda"
    devices = [device.index or 0] if cuda else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.default_generator.manual_seed(seed)
        if state is not None:
            torch.default_generator.set_state(state)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def _check_finite(record: EpochRecord, optimizer: torch.optim.Optimizer) -> None:
    """Stop a run whose loss became NaN or infinite: its weights are useless."""
    for name in ("train_loss", "val_loss"):
        value = getattr(record, name)
        if not math.isfinite(value):
            raise ConfigError(
                "optimizer.lr",
                f"training diverged: the {name.replace('_', ' ')} of epoch "
                f"{record.epoch} is {value}.",
                f"Lower optimizer.lr (now {optimizer.param_groups[0]['lr']:g}) "
                "or use another optimizer.",
            )


@contextlib.contextmanager
def _cpu_threads(
    module: torch.nn.Module,
    batch_size: int,
    device: torch.device,
    threads: int | None = None,
) -> Iterator[int]:
    """Run torch's CPU kernels on ``threads`` threads while the network trains;
    yields the count.

    None: one thread for a small network, and for a recurrent one. For matrices of
    a few thousand entries, handing work to a second thread costs more than it
    saves, and on a busy machine a waiting thread stalls every step. A recurrent
    layer (LSTM, GRU) runs its time steps one after another, each a small kernel:
    with one other busy process on two cores, a second thread made an LSTM's step
    30 to 100 times slower. Larger networks without one, and any network on
    another device, keep torch's setting. The setting is restored on exit.
    """
    import torch

    before = torch.get_num_threads()
    if threads is None:
        largest = max((p.numel() for p in module.parameters()), default=0)
        recurrent = any(isinstance(m, torch.nn.RNNBase) for m in module.modules())
        small = largest * batch_size < _ONE_THREAD_WORK or recurrent
        threads = 1 if device.type == "cpu" and small else before
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
