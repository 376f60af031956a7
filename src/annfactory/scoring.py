"""How the training loop scores rows: the forward pass with its loss (mixed
precision included), each batch's part of the metric, and the validation pass that
:mod:`annfactory.training` runs after every epoch and :func:`evaluate` runs on any
rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = [
    "VALIDATION_ROWS",
    "Evaluation",
    "balanced_accuracy",
    "evaluate",
    "forward_pass",
    "metric_of",
    "score",
    "total_squares",
    "validation",
]

#: Validation rows evaluated in one forward pass (the whole split when it has fewer).
VALIDATION_ROWS: Final = 16384


def forward_pass(
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


def validation(
    forward: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    metric: str,
    x_val: Tensor,
    y_val: Tensor,
    chunk_rows: int = VALIDATION_ROWS,
) -> Callable[..., tuple[Tensor, Tensor]]:
    """``evaluate(classes=None) -> (val_loss, metric)``, both 0-d tensors on the
    device, computed under ``inference_mode`` in eval mode (the caller's), in float32
    (the loss of a mixed-precision forward pass as well), in forward passes of at most
    ``chunk_rows`` rows (and at most :data:`VALIDATION_ROWS`). Given a list,
    ``classes`` gets each chunk's predicted classes, on the CPU, and ``outputs``
    each chunk's outputs (float32, on the CPU)."""
    import torch

    rows = x_val.shape[0]
    chunk_rows = max(1, min(chunk_rows, VALIDATION_ROWS))
    chunks = list(
        zip(
            torch.split(x_val, chunk_rows),
            torch.split(y_val, chunk_rows),
            strict=True,
        )
    )
    weights = [inputs.shape[0] / rows for inputs, _ in chunks]
    # SS_tot does not change from epoch to epoch.
    squares = total_squares(y_val) if metric == "r2" else None

    def run(
        classes: list[Tensor] | None = None, outputs: list[Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        losses = []
        scores = []
        for (inputs, targets), weight in zip(chunks, weights, strict=True):
            chunk_outputs, chunk_loss = forward(inputs, targets)
            losses.append(chunk_loss.float() * weight)
            scores.append(score(chunk_outputs, targets, metric))
            if classes is not None:
                classes.append(_predicted(chunk_outputs).cpu())
            if outputs is not None:
                outputs.append(chunk_outputs.float().cpu())
        val_loss = torch.stack(losses).sum()
        return val_loss, metric_of(torch.stack(scores).sum(0), rows, squares)

    return run


def total_squares(targets: Tensor) -> Tensor:
    """SS_tot of each output column (float64), for R²."""
    import torch

    with torch.inference_mode():
        values = _columns(targets).double()
        return ((values - values.mean(0)) ** 2).sum(0)


def score(outputs: Tensor, targets: Tensor, metric: str) -> Tensor:
    """A batch's part of the metric, summed over its rows on the device: the rows
    classified right, or each output column's squared error (float64)."""
    if metric == "accuracy":
        return _correct(outputs, targets).sum()
    error = _columns(outputs).double() - _columns(targets).double()
    return (error**2).sum(0)


def metric_of(score: Tensor, rows: int, total_squares: Tensor | None) -> Tensor:
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
        outputs: Each row's outputs (float32, on the CPU) where asked for
            (``keep_outputs``), else None.
    """

    loss: float
    metric: float
    predicted: Tensor | None
    outputs: Tensor | None = None


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
    chunk_rows: int = VALIDATION_ROWS,
    keep_outputs: bool = False,
) -> Evaluation:
    """Score rows ``x`` against ``y`` as :func:`train` scores its validation rows
    (eval mode, under ``inference_mode``, in chunks of at most ``chunk_rows``), and
    give each row's class (and, with ``keep_outputs``, its outputs).

    The module's training mode is restored afterwards.
    """
    import torch

    forward = forward_pass(logits, loss, x.device, autocast)
    scored = validation(forward, metric, x, y, chunk_rows)
    classes: list[Tensor] | None = [] if metric == "accuracy" else None
    outputs: list[Tensor] | None = [] if keep_outputs else None
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            mean_loss, value = scored(classes, outputs)
    finally:
        module.train(was_training)
    predicted = torch.cat(classes) if classes else None
    kept = torch.cat(outputs) if outputs else None
    return Evaluation(float(mean_loss), float(value), predicted, kept)


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
