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

from annfactory.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = [
    "AUTOCAST_DTYPES",
    "KEEPS",
    "METRICS",
    "EpochRecord",
    "Evaluation",
    "TrainResult",
    "balanced_accuracy",
    "batch_sizes",
    "evaluate",
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
#: Validation rows evaluated in one forward pass (the whole split when it has fewer).
_VALIDATION_ROWS: Final = 16384
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
    """

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    epochs_run: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
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

    Returns:
        The history and the summary of the run.

    Raises:
        ValueError: An argument outside its allowed values.
        ConfigError: The loss became NaN or infinite (training diverged): names
            ``optimizer.lr``, the usual cause.
    """
    _check_arguments(metric, keep, epochs, batch_size, patience, x_train, x_val)
    run_epoch = _EpochRunner(
        logits=logits,
        module=module,
        loss=loss,
        metric=metric,
        optimizer=optimizer,
        schedule=schedule,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        batch_size=batch_size,
        generator=generator,
        autocast=autocast,
    )
    result = TrainResult()
    best = _BestSoFar(keep=keep, epochs=epochs)
    start = time.perf_counter()
    with (
        _cpu_threads(module, batch_size, x_train.device),
        _seeded_dropout(dropout_seed, x_train.device),
    ):
        for epoch in range(1, epochs + 1):
            record = run_epoch(epoch)
            _check_finite(record, optimizer)
            result.history.append(record)
            result.epochs_run = epoch
            best.update(record, module)
            result.best_epoch = best.epoch
            if on_epoch is not None:
                on_epoch(record)
            if patience is not None and best.since >= patience and epoch < epochs:
                result.stopped_early = True
                break
        best.restore(module, result.epochs_run)
    module.eval()
    result.seconds = time.perf_counter() - start
    return result


class _EpochRunner:
    """One epoch: minibatch steps over the shuffled training rows, then validation.

    Built once per run (the batch sizes and their weights, the forward pass, the
    validation, the optimizer's stepper); ``run_epoch(epoch)`` trains one epoch,
    steps the schedule, and returns its record. The arguments are
    :func:`train`'s.
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
        x_train: Tensor,
        y_train: Tensor,
        x_val: Tensor,
        y_val: Tensor,
        batch_size: int,
        generator: torch.Generator,
        autocast: torch.dtype | None,
    ) -> None:
        import torch

        self._module, self._metric = module, metric
        self._optimizer, self._schedule = optimizer, schedule
        self._x_train, self._y_train = x_train, y_train
        self._generator = generator
        self._rows = rows = x_train.shape[0]
        device = x_train.device
        # Each step's loss weighs by its rows; only the last batch of an epoch is
        # short.
        self._sizes = batch_sizes(rows, batch_size, batch_norm=has_batch_norm(module))
        self._weights = (
            torch.tensor(self._sizes, dtype=torch.float32, device=device) / rows
        )
        self._forward = _forward(logits, loss, device, autocast)
        self._evaluate = _validation(self._forward, metric, x_val, y_val)
        scaler = (
            torch.amp.GradScaler(device.type, init_scale=_INITIAL_LOSS_SCALE)
            if autocast == torch.float16
            else None
        )
        self._step = _Stepper(optimizer, scaler)
        self._total_squares = _total_squares(y_train) if metric == "r2" else None

    def __call__(self, epoch: int) -> EpochRecord:
        epoch_start = time.perf_counter()
        lr = float(self._optimizer.param_groups[0]["lr"])
        step_losses, step_scores = self._train_steps()
        numbers = self._figures(step_losses, step_scores)
        if self._schedule is not None:
            self._schedule.step()
        return EpochRecord(
            epoch,
            numbers[0],
            numbers[1],
            numbers[2],
            lr,
            time.perf_counter() - epoch_start,
            numbers[3],
        )

    def _train_steps(self) -> tuple[list[Tensor], list[Tensor]]:
        """One pass over the shuffled training rows: each step's loss and score."""
        import torch

        self._module.train()
        device = self._x_train.device
        order = torch.randperm(self._rows, generator=self._generator).to(device)
        step_losses = []
        step_scores = []
        for inputs, targets in zip(
            torch.split(self._x_train.index_select(0, order), self._sizes),
            torch.split(self._y_train.index_select(0, order), self._sizes),
            strict=True,
        ):
            outputs, step_loss = self._forward(inputs, targets)
            self._step(step_loss)
            step_losses.append(step_loss.detach())
            step_scores.append(_score(outputs.detach(), targets, self._metric))
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
            train_value = _metric(
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


def _forward(
    logits: Callable[[Tensor], Tensor],
    loss: Callable[[Tensor, Tensor], Tensor],
    device: torch.device,
    autocast: torch.dtype | None,
) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """``forward(inputs, targets) -> (outputs, loss)``: under :class:`torch.autocast`
    for mixed precision, the loss then computed in float32."""
    if autocast is None:

        def plain(inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
            outputs = logits(inputs)
            return outputs, loss(outputs, targets)

        return plain
    import torch

    def mixed(inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast(device.type, dtype=autocast):
            outputs = logits(inputs)
        return outputs, loss(outputs.float(), targets)

    return mixed


@contextlib.contextmanager
def _seeded_dropout(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's global generator (dropout's) for the loop, and restore the
    caller's state on exit (:func:`torch.random.fork_rng`)."""
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
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def _validation(
    forward: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    metric: str,
    x_val: Tensor,
    y_val: Tensor,
) -> Callable[..., tuple[Tensor, Tensor]]:
    """``evaluate(classes=None) -> (val_loss, metric)``, both 0-d tensors on the
    device, computed under ``inference_mode`` in eval mode (the caller's), in float32
    (the loss of a mixed-precision forward pass as well). Given a list, ``classes``
    gets each chunk's predicted classes, on the CPU."""
    import torch

    rows = x_val.shape[0]
    chunks = list(
        zip(
            torch.split(x_val, _VALIDATION_ROWS),
            torch.split(y_val, _VALIDATION_ROWS),
            strict=True,
        )
    )
    weights = [inputs.shape[0] / rows for inputs, _ in chunks]
    # SS_tot does not change from epoch to epoch.
    total_squares = _total_squares(y_val) if metric == "r2" else None

    def evaluate(classes: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        losses = []
        scores = []
        for (inputs, targets), weight in zip(chunks, weights, strict=True):
            outputs, chunk_loss = forward(inputs, targets)
            losses.append(chunk_loss.float() * weight)
            scores.append(_score(outputs, targets, metric))
            if classes is not None:
                classes.append(_predicted(outputs).cpu())
        val_loss = torch.stack(losses).sum()
        return val_loss, _metric(torch.stack(scores).sum(0), rows, total_squares)

    return evaluate


def _total_squares(targets: Tensor) -> Tensor:
    """SS_tot of each output column (float64), for R²."""
    import torch

    with torch.inference_mode():
        values = _columns(targets).double()
        return ((values - values.mean(0)) ** 2).sum(0)


def _score(outputs: Tensor, targets: Tensor, metric: str) -> Tensor:
    """A batch's part of the metric, summed over its rows on the device: the rows
    classified right, or each output column's squared error (float64)."""
    if metric == "accuracy":
        return _correct(outputs, targets).sum()
    error = _columns(outputs).double() - _columns(targets).double()
    return (error**2).sum(0)


def _metric(score: Tensor, rows: int, total_squares: Tensor | None) -> Tensor:
    """Accuracy (right / rows, exact in float64) or R² from the summed scores."""
    if total_squares is None:
        return score.double() / rows
    return _r2(score, total_squares)


def _correct(outputs: Tensor, targets: Tensor) -> Tensor:
    """Which rows are classified right (see :func:`_predicted`)."""
    return _predicted(outputs) == targets.reshape(-1).long()


def _predicted(outputs: Tensor) -> Tensor:
    """Each row's class: argmax over the last dimension, or, for a single output
    unit, ``output > 0`` (a logit: probability above one half)."""
    if outputs.shape[-1] == 1 or outputs.dim() == 1:
        return (outputs.reshape(-1) > 0).long()
    return outputs.argmax(-1).reshape(-1)


@dataclass(frozen=True)
class Evaluation:
    """Rows scored with a network's current weights (:func:`evaluate`).

    Attributes:
        loss: The mean loss over the rows.
        metric: Accuracy or R² (as :func:`train`'s validation computes them).
        predicted: Classification: each row's class index (int64, on the CPU);
            regression: None.
    """

    loss: float
    metric: float
    predicted: Tensor | None


def balanced_accuracy(truth: Any, predicted: Any) -> float:
    """The mean of the per-class recalls over the classes ``truth`` holds: what
    ``sklearn.metrics.balanced_accuracy_score`` gives (a test compares them), without
    its import (a second and more at every training run's end).

    Args:
        truth: int class indices, ``[rows]`` (numpy).
        predicted: int class indices, ``[rows]``.
    """
    import numpy as np

    truth = np.asarray(truth, dtype=np.int64).reshape(-1)
    predicted = np.asarray(predicted, dtype=np.int64).reshape(-1)
    size = int(max(truth.max(initial=-1), predicted.max(initial=-1))) + 1
    counts = np.bincount(truth, minlength=size)
    hits = np.bincount(truth[truth == predicted], minlength=size)
    present = counts > 0
    return float(np.mean(hits[present] / counts[present]))


def evaluate(
    *,
    logits: Callable[[Tensor], Tensor],
    module: torch.nn.Module,
    loss: Callable[[Tensor, Tensor], Tensor],
    metric: str,
    x: Tensor,
    y: Tensor,
    autocast: torch.dtype | None = None,
) -> Evaluation:
    """Score rows ``x`` against ``y`` as :func:`train` scores its validation rows
    (eval mode, under ``inference_mode``, in chunks), and give each row's class.

    The module's training mode is restored afterwards.
    """
    import torch

    scored = _validation(_forward(logits, loss, x.device, autocast), metric, x, y)
    classes: list[Tensor] | None = [] if metric == "accuracy" else None
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            mean_loss, value = scored(classes)
    finally:
        module.train(was_training)
    predicted = torch.cat(classes) if classes else None
    return Evaluation(float(mean_loss), float(value), predicted)


def _columns(values: Tensor) -> Tensor:
    """Values as a matrix of rows and output columns."""
    return values.reshape(values.shape[0], -1)


def _r2(residual_squares: Tensor, total_squares: Tensor) -> Tensor:
    """R² per output column, averaged; a constant column scores 1 if predicted
    exactly, else 0 (scikit-learn's ``r2_score`` with ``force_finite``)."""
    import torch

    constant = total_squares == 0
    safe = torch.where(constant, torch.ones_like(total_squares), total_squares)
    scores = 1 - residual_squares / safe
    exact = (residual_squares == 0).double()
    return torch.where(constant, exact, scores).mean()


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
    module: torch.nn.Module, batch_size: int, device: torch.device
) -> Iterator[None]:
    """Run torch's CPU kernels on one thread while a small network trains.

    For matrices of a few thousand entries, handing work to a second thread costs
    more than it saves, and on a busy machine a waiting thread stalls every step.
    Larger networks keep torch's setting. The setting is restored on exit.
    """
    import torch

    largest = max((p.numel() for p in module.parameters()), default=0)
    if device.type != "cpu" or largest * batch_size >= _ONE_THREAD_WORK:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _Stepper:
    """``loss.backward()``, ``optimizer.step()`` then ``zero_grad(set_to_none=True)``,
    with less Python.

    With a :class:`torch.amp.GradScaler` (float16 mixed precision), the loss is
    scaled before the backward pass, and the scaler steps the optimizer (skipping a
    step whose gradients overflowed) and updates its scale.

    For a fused Adam or AdamW (what :func:`annfactory.optimizers.build_optimizer`
    makes), after the first step has created the optimizer's state, each step calls
    torch's functional ``torch.optim.adam.adam`` (public: in that module's
    ``__all__``) on the same state tensors, with the group's current settings (a
    schedule's ``lr`` included): the update is the one ``Adam.step`` makes, without
    its per-step bookkeeping, which costs more than the update of a small network
    (``tests/test_training.py`` checks both give equal weights). Any other optimizer,
    or a step where a parameter has no gradient, goes through ``optimizer.step()``.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
    ) -> None:
        self._optimizer = optimizer
        self._scaler = scaler
        self._parameters = [
            parameter
            for group in optimizer.param_groups
            for parameter in group["params"]
        ]
        self._groups: list[tuple[dict[str, Any], list[list[Tensor]]]] | None = None
        self._steps = 0

    def __call__(self, loss: Tensor) -> None:
        scaler = self._scaler
        if scaler is not None:
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.step(self._optimizer)
            scaler.update()
        else:
            loss.backward()  # type: ignore[no-untyped-call]
            groups = self._fast_groups() if self._steps else None
            self._steps += 1
            if groups is None or not self._step_fast(groups):
                self._optimizer.step()
        for parameter in self._parameters:
            parameter.grad = None

    def _fast_groups(self) -> list[tuple[dict[str, Any], list[list[Tensor]]]] | None:
        if self._groups is not None:
            return self._groups
        import torch

        optimizer = self._optimizer
        if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
            return None
        groups = []
        for group in optimizer.param_groups:
            if not group.get("fused") or any(
                group.get(flag)
                for flag in ("amsgrad", "maximize", "capturable", "differentiable")
            ):
                return None
            states = [optimizer.state.get(parameter) for parameter in group["params"]]
            if any(not state for state in states):
                return None
            lists = [
                list(group["params"]),
                [state["exp_avg"] for state in states],  # type: ignore[index]
                [state["exp_avg_sq"] for state in states],  # type: ignore[index]
                [state["step"] for state in states],  # type: ignore[index]
            ]
            groups.append((group, lists))
        self._groups = groups
        return groups

    @staticmethod
    def _step_fast(groups: list[tuple[dict[str, Any], list[list[Tensor]]]]) -> bool:
        from torch.optim.adam import adam

        grads = [[parameter.grad for parameter in lists[0]] for _, lists in groups]
        if any(grad is None for group_grads in grads for grad in group_grads):
            return False
        for (group, (parameters, exp_avgs, exp_avg_sqs, steps)), group_grads in zip(
            groups, grads, strict=True
        ):
            beta1, beta2 = group["betas"]
            adam(
                parameters,
                group_grads,  # type: ignore[arg-type]
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                fused=True,
                decoupled_weight_decay=bool(group.get("decoupled_weight_decay")),
                amsgrad=False,
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
            )
        return True
