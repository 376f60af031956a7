"""The train task: fit the network to a data set, evaluate it, and save it.

``task=train data=<set>`` loads the data set (:mod:`annfactory.data`), splits it
with the run's seed, standardizes the features on the training split, and trains
the network with the ``optimizer`` group's optimizer, evaluating the validation rows
after every epoch (:mod:`annfactory.training`).

The loss follows the output activation (:func:`loss_for`): cross-entropy on the
logits, never a second softmax on a softmax output. The saved network takes raw rows:
its first layer (``standardize``) holds the training split's feature means and
scales, and a regression network ends with ``destandardize``, which maps its
standardized output back to the target's units.

Prints the data, the network and the loss, then progress (a bar on a terminal, a line
every few epochs elsewhere, nothing per epoch in a sweep) and the result; writes
``metrics.json`` (a ``train`` section with the final figures and the history),
``history.csv``, ``curves.png``, ``spec.yaml`` and ``weights.safetensors``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, TextIO

from annfactory.errors import ConfigError
from annfactory.figures import save_figure
from annfactory.losses import LossChoice, loss_for, losses
from annfactory.optimizers import schedules
from annfactory.params import Param, validate_params
from annfactory.spec import LayerSpec, RunSpec
from annfactory.tasks import TaskContext, tasks
from annfactory.training import KEEPS

if TYPE_CHECKING:
    import numpy as np
    import torch
    from matplotlib.figure import Figure

    from annfactory.data import Standardization, Table
    from annfactory.network import Network
    from annfactory.training import EpochRecord

# torch, numpy, matplotlib and the data loaders are imported inside the functions that
# use them: the override check and --help import this module for the task's schema.

__all__ = [
    "CURVES_FILE",
    "HISTORY_FILE",
    "LOSSES",
    "LossChoice",
    "TrainOptions",
    "loss_for",
    "parse_options",
    "plot_curves",
    "run",
]

#: The built-in losses ``task.loss`` may name; null derives one from the output
#: activation (:func:`~annfactory.losses.loss_for`).
LOSSES: Final = tuple(losses.names_in_order())
HISTORY_FILE: Final = "history.csv"
CURVES_FILE: Final = "curves.png"
#: Names of the preprocessing layers the saved network gets.
INPUT_LAYER: Final = "standardize"
OUTPUT_LAYER: Final = "destandardize"
#: Without a terminal, about this many progress lines per run.
_PROGRESS_LINES: Final = 20
_FIGURE_INCHES: Final = (11.0, 4.0)
_FIGURE_DPI: Final = 100
_TITLE_WIDTH: Final = 150

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
    "log_every": Param(
        int,
        None,
        "epochs between progress lines off a terminal; null: about 20 lines a run",
        low=1,
    ),
}


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
        "log_every": fixed["log_every"],
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


_OPTIONS: Final = _Options()


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
    log_every: int | None = None


def parse_options(given: Mapping[str, Any], key: str) -> TrainOptions:
    """Validate the task's options (the ``task`` node without ``name``).

    Raises:
        ConfigError: An unknown option (names the closest one) or a bad value; the
            message names ``<key>.<option>``.
    """
    return TrainOptions(**validate_params(given, _OPTIONS, key, "task 'train'"))


# ------------------------------------------------------------------------------------
# The task
# ------------------------------------------------------------------------------------


@tasks.register(
    "train",
    params=_OPTIONS,
    parse_options=parse_options,
    # Rows per step are task.batch_size; a top-level batch_size is refused.
    reads_batch_size=False,
    # Declared by conf/task/train.yaml's defaults list, read by no other task.
    groups=("data", "optimizer"),
    metric=("train.val_accuracy", "train.val_r2", "train.val_loss"),
    # What a search (hydra/sweeper=optuna) may optimize; the first is its default.
    # val_accuracy comes with classification data, val_r2 with regression.
    objectives={
        "train.val_loss": "minimize",
        "train.val_accuracy": "maximize",
        "train.val_r2": "maximize",
        "train.train_loss": "minimize",
    },
)
def run(context: TaskContext) -> dict[str, Any]:
    """Train the network on the run's data set; print, plot and save the result.

    Raises:
        ConfigError: No data set is chosen, ``device=meta``, or the loss contradicts
            the output activation.
    """
    import torch

    from annfactory.data import datasets, load_table, split_rows
    from annfactory.factory import build_network, resolve_device
    from annfactory.optimizers import build_optimizer, build_schedule, parse_optimizer
    from annfactory.seeding import DROPOUT_STREAM, parameter_seed, seeded_generator
    from annfactory.training import AUTOCAST_DTYPES, batch_sizes, has_batch_norm, train

    spec, options = context.spec, context.options
    assert isinstance(options, TrainOptions)
    data_spec = spec.extras.get("data")
    if data_spec is None:
        raise ConfigError(
            "data",
            "task=train needs a data set, and none is chosen.",
            f"Add data=<name>, one of: {', '.join(datasets.names())}.",
        )
    if spec.device == "meta":
        raise ConfigError(
            "device",
            "training needs values, and device=meta allocates none.",
            "Use device=cpu (or cuda).",
        )
    optimizer_spec = spec.extras.get("optimizer") or parse_optimizer("adam")
    network_spec = spec.network
    out_layer = network_spec.layers[-1]
    table = load_table(data_spec, spec.seed, spec.dtype)
    choice = loss_for(
        options.loss,
        out_layer.activation,
        table.kind,
        network_spec.out_features,
        table.n_outputs,
    )
    train_index, val_index = split_rows(table, data_spec.val_fraction, spec.seed)
    fitted = _fit(table, train_index, network_spec.input_shape)
    saved_spec = _saved_spec(spec, table, train_index, fitted)
    device = resolve_device(spec.device)
    # Half precision trains as mixed precision: float32 weights, data and optimizer
    # state, autocast forward passes; the trained network is cast at the end.
    mixed = spec.dtype in AUTOCAST_DTYPES
    saved_dtype: torch.dtype = getattr(torch, spec.dtype)
    dtype = torch.float32 if mixed else saved_dtype

    # Before anything is allocated: the spec's batch_norm layers; after the build,
    # any batch norm inside a plugin's layer type too.
    _check_batch_norm(
        _spec_has_batch_norm(network_spec.layers), options.batch_size, len(train_index)
    )
    model = build_network(
        dataclasses.replace(saved_spec, dtype="float32") if mixed else saved_spec
    )
    _check_batch_norm(has_batch_norm(model), options.batch_size, len(train_index))
    _set_buffers(model, fitted)
    standardize = model.get_submodule(INPUT_LAYER)
    with torch.no_grad():
        features = torch.tensor(table.features, dtype=dtype, device=device)
        # Rows as the network takes them: vectors, or images ([rows, 1, 8, 8]).
        features = features.reshape(table.rows, *network_spec.input_shape)
        x = standardize(features)
    y = _targets(model, table, device, dtype)
    train_rows = torch.as_tensor(train_index, device=device)
    val_rows = torch.as_tensor(val_index, device=device)
    x_train, x_val = x[train_rows], x[val_rows]
    y_train, y_val = y[train_rows], y[val_rows]
    logits = _core(model, network_spec.layers[-1].name, choice.logits)
    optimizer = build_optimizer(optimizer_spec, model.parameters(), device)
    schedule = build_schedule(
        options.schedule,
        optimizer,
        epochs=options.epochs,
        step_size=options.step_size,
        gamma=options.gamma,
    )
    metric = "r2" if table.kind == "regression" else "accuracy"
    _print_header(context.out, spec, table, train_index, val_index, choice, options)
    if mixed:
        print(
            f"precision: {spec.dtype} mixed: float32 weights and optimizer state, "
            f"autocast forward passes"
            + (", loss scaling" if spec.dtype == "float16" else "")
            + f"; saved in {spec.dtype}",
            file=context.out,
        )
    rows = len(train_index)
    steps = batch_sizes(rows, options.batch_size, batch_norm=has_batch_norm(model))
    if steps != batch_sizes(rows, options.batch_size, batch_norm=False):
        print(
            f"note: {rows} training rows leave 1 row for the last batch "
            "of an epoch, and batch norm needs 2 or more: it joins the batch before "
            f"it ({options.batch_size + 1} rows).",
            file=context.out,
        )
    progress = _Progress(context.out, options, metric)
    try:
        result = train(
            logits=logits,
            module=model,
            loss=losses.get(choice.name).build(),
            metric=metric,
            optimizer=optimizer,
            schedule=schedule,
            x_train=x_train,
            y_train=y_train,
            x_val=x_val,
            y_val=y_val,
            epochs=options.epochs,
            batch_size=options.batch_size,
            patience=options.patience,
            keep=options.keep,
            generator=seeded_generator(spec.seed, "train.shuffle"),
            on_epoch=progress.epoch,
            dropout_seed=parameter_seed(spec.seed, DROPOUT_STREAM),
            autocast=saved_dtype if mixed else None,
        )
    finally:
        progress.close()
    if mixed:
        model.to(saved_dtype)
    kept = result.history[
        (result.best_epoch if options.keep == "best" else result.epochs_run) - 1
    ]
    metric_key = f"val_{metric}"
    summary: dict[str, Any] = {
        # The sweep table lists these first.
        metric_key: kept.metric,
        "val_loss": kept.val_loss,
        "train_loss": kept.train_loss,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "kept_epoch": kept.epoch,
        "seconds": result.seconds,
        "stopped_early": result.stopped_early,
        "loss": choice.name,
        "loss_formula": choice.formula,
        "optimizer": optimizer_spec.to_dict(),
        "data": data_spec.name,
        "rows_train": len(train_index),
        "rows_val": len(val_index),
        "history": [_history_row(record, metric) for record in result.history],
    }
    _print_result(context.out, summary, metric_key)
    history_path = context.path(HISTORY_FILE)
    if history_path is not None:
        history_path.write_text(history_csv(summary["history"]), encoding="utf-8")
    curves_path = context.path(CURVES_FILE)
    if curves_path is not None:
        title = _figure_title(context, summary, metric_key)
        save_figure(
            plot_curves(summary["history"], metric, title, kept.epoch),
            curves_path,
            format="png",
            metadata={"Title": title},
        )
    spec_path = context.path("spec.yaml")
    if spec_path is not None:
        from annfactory.runs import save_run

        save_run(spec_path.parent, saved_spec, model)
    return {
        "total_params": sum(p.numel() for p in model.parameters()),
        "output_shape": [len(val_index), *saved_spec.network.output_shape],
        "train": summary,
    }


def _spec_has_batch_norm(layers: Sequence[LayerSpec]) -> bool:
    """Whether a layer, or a layer inside a residual block, is a batch_norm."""
    return any(
        layer.type == "batch_norm" or _spec_has_batch_norm(layer.layers)
        for layer in layers
    )


def _check_batch_norm(batch_norm: bool, batch_size: int, rows: int) -> None:
    """Refuse steps of one row for a network with batch norm, which cannot
    normalize a row by statistics over the batch (a last batch of one row joins
    the batch before it instead)."""
    if not batch_norm:
        return
    if batch_size == 1:
        raise ConfigError(
            "task.batch_size",
            "1 row per step: the network's batch norm needs 2 or more rows to "
            "compute its statistics over the batch.",
            "Use task.batch_size=2 or more.",
        )
    if rows == 1:
        raise ConfigError(
            "data.val_fraction",
            "leaves 1 training row, and the network's batch norm needs 2 or more "
            "rows per step.",
            "Lower data.val_fraction, or give the data more rows.",
        )


def _fit(
    table: Table, train_index: np.ndarray, input_shape: tuple[int, ...]
) -> dict[str, Standardization]:
    """The preprocessing layers' statistics, fitted on the training split: the
    features' for ``standardize`` (each channel's, over all its pixels, for images
    of ``input_shape``), a regression target's for ``destandardize``."""
    from annfactory.data import fit_standardization

    features = table.features[train_index]
    fitted = {INPUT_LAYER: fit_standardization(features, input_shape)}
    if table.kind == "regression":
        fitted[OUTPUT_LAYER] = fit_standardization(table.target[train_index])
    return fitted


def _saved_spec(
    spec: RunSpec,
    table: Table,
    train_index: np.ndarray,
    fitted: Mapping[str, Standardization],
) -> RunSpec:
    """The run's spec with the preprocessing layers around its network and the data
    set's record (sizes, class names, the fitted standardization)."""
    from annfactory.spec import parse_run

    data = spec.to_dict()
    model = data["model"]
    taken = [name for name in (INPUT_LAYER, OUTPUT_LAYER) if name in model["layers"]]
    if taken:
        raise ConfigError(
            f"model.layers.{taken[0]}",
            f"task=train names its preprocessing layer {taken[0]!r}, and the "
            "network has a layer of that name.",
            "Rename that layer.",
        )
    layers = {INPUT_LAYER: {"type": INPUT_LAYER}, **model["layers"]}
    if table.kind == "regression":
        layers[OUTPUT_LAYER] = {"type": OUTPUT_LAYER}
    model["layers"] = layers
    record: dict[str, Any] = {
        "kind": table.kind,
        "features": table.n_features,
        "outputs": table.n_outputs,
        "rows": {"train": len(train_index), "total": table.rows},
        "feature_names": list(table.feature_names),
        "class_names": None if table.class_names is None else list(table.class_names),
        **{name: stats.to_dict() for name, stats in fitted.items()},
    }
    data["data"] = {**spec.extras["data"].to_dict(), "fitted": record}
    return _with_init_keys(parse_run(data), spec)


def _with_init_keys(saved: RunSpec, spec: RunSpec) -> RunSpec:
    """``saved`` with each parameter's config key taken from ``spec``, whose layers
    it shares: a message about an init names the key the command line set
    (``init``), not the layer's slot that the round trip through a dict leaves."""
    keys = {
        (layer.name, parameter.name): parameter.key
        for layer in spec.network.layers
        for parameter in layer.parameters
    }
    layers = tuple(
        replace(
            layer,
            parameters=tuple(
                replace(
                    parameter,
                    key=keys.get((layer.name, parameter.name), parameter.key),
                )
                for parameter in layer.parameters
            ),
        )
        for layer in saved.network.layers
    )
    network = replace(saved.network, layers=layers)
    return replace(saved, network=network)


def _set_buffers(model: Network, fitted: Mapping[str, Standardization]) -> None:
    """Set the preprocessing layers' buffers to the training split's statistics."""
    import torch

    with torch.no_grad():
        for name, stats in fitted.items():
            layer = model.get_submodule(name)
            for buffer, values in (("mean", stats.mean), ("scale", stats.scale)):
                target = getattr(layer, buffer)
                target.copy_(torch.tensor(values).reshape(target.shape))


def _targets(
    model: Network, table: Table, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """The targets as the loss takes them: class indices, or a regression target
    standardized like the network's standardized output."""
    import torch

    if table.kind != "regression":
        return torch.tensor(table.target, dtype=torch.int64, device=device)
    destandardize = model.get_submodule(OUTPUT_LAYER)
    mean, scale = destandardize.get_buffer("mean"), destandardize.get_buffer("scale")
    target = torch.tensor(table.target, dtype=dtype, device=device)
    with torch.no_grad():
        return (target - mean.reshape(())) / scale.reshape(())


def _core(
    model: Network, out_layer: str, skip_output_activation: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The network between its preprocessing layers, as the loss takes it: without
    the output activation when the loss takes the pre-activation.

    The modules are called through ``forward``: the task owns them while training
    and adds no hooks, and ``nn.Module.__call__``'s bookkeeping would cost more than
    a small layer's arithmetic.
    """
    modules = [
        module
        for name, module in model.named_children()
        if name not in (INPUT_LAYER, OUTPUT_LAYER)
        and not (skip_output_activation and name == f"{out_layer}_act")
    ]
    forwards = tuple(module.forward for module in modules)

    def logits(x: torch.Tensor) -> torch.Tensor:
        for forward in forwards:
            x = forward(x)
        return x

    return logits


# ------------------------------------------------------------------------------------
# Reporting
# ------------------------------------------------------------------------------------


def _history_row(record: EpochRecord, metric: str) -> dict[str, Any]:
    return {
        "epoch": record.epoch,
        "train_loss": record.train_loss,
        "val_loss": record.val_loss,
        f"val_{metric}": record.metric,
        f"train_{metric}": record.train_metric,
        "lr": record.lr,
        "seconds": record.seconds,
    }


def history_csv(history: Sequence[Mapping[str, Any]]) -> str:
    """The per-epoch table of ``metrics.json``'s history as CSV text."""
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(
            buffer, fieldnames=list(history[0]), lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(history)
    return buffer.getvalue()


def _print_header(
    out: TextIO,
    spec: RunSpec,
    table: Table,
    train_index: np.ndarray,
    val_index: np.ndarray,
    choice: LossChoice,
    options: TrainOptions,
) -> None:
    what = (
        f"{table.n_outputs} classes" if table.kind == "classification" else "regression"
    )
    print(
        f"data: {table.name}, {table.rows} rows x {table.n_features} features, "
        f"{what}; {len(train_index)} train / {len(val_index)} validation rows",
        file=out,
    )
    print(f"network: {spec.network.summary_line()}", file=out)
    for note in spec.notes:  # the sizes the data gave the network (annfactory.sizing)
        print(f"note: {note}", file=out)
    optimizer = spec.extras.get("optimizer")
    node = optimizer.to_dict() if optimizer is not None else {"name": "adam"}
    name = node.pop("name")
    described = f"{name}({', '.join(f'{k}={v}' for k, v in node.items())})"
    print(f"loss: {choice.formula}", file=out)
    print(
        f"optimizer: {described}; {options.epochs} epochs of batch "
        f"{options.batch_size}, schedule {options.schedule}",
        file=out,
    )


def _print_result(out: TextIO, summary: Mapping[str, Any], metric_key: str) -> None:
    stopped = " (stopped early)" if summary["stopped_early"] else ""
    print(
        f"trained {summary['epochs_run']} epochs in {summary['seconds']:.2f} s"
        f"{stopped}; kept epoch {summary['kept_epoch']} "
        f"(best val_loss at epoch {summary['best_epoch']})",
        file=out,
    )
    print(
        f"{metric_key}: {summary[metric_key]:.4f}  val_loss: {summary['val_loss']:.4f}"
        f"  train_loss: {summary['train_loss']:.4f}",
        file=out,
    )


def _in_sweep() -> bool:
    """Whether this job is one of a Hydra multirun (nothing printed per epoch)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover - hydra is a dependency
        return False
    if not HydraConfig.initialized():
        return False
    return bool(HydraConfig.get().mode == RunMode.MULTIRUN)


class _Progress:
    """Per-epoch progress: a bar on a terminal, a line every few epochs elsewhere,
    nothing in a sweep."""

    def __init__(self, out: TextIO, options: TrainOptions, metric: str) -> None:
        self._out = out
        self._metric = metric
        self._epochs = options.epochs
        self._bar: Any = None
        self._every = 0
        if _in_sweep():
            return
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=options.epochs, unit="epoch", file=sys.stderr, leave=True
            )
            return
        self._every = options.log_every or max(
            1, math.ceil(options.epochs / _PROGRESS_LINES)
        )

    def epoch(self, record: EpochRecord) -> None:
        figures = (
            f"train_loss {record.train_loss:.4f}  val_loss {record.val_loss:.4f}  "
            f"val_{self._metric} {record.metric:.4f}"
        )
        if self._bar is not None:
            self._bar.set_postfix_str(figures, refresh=False)
            self._bar.update(1)
        elif self._every and (
            record.epoch % self._every == 0 or record.epoch in (1, self._epochs)
        ):
            width = len(str(self._epochs))
            print(
                f"epoch {record.epoch:>{width}}/{self._epochs}  {figures}",
                file=self._out,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _figure_title(
    context: TaskContext, summary: Mapping[str, Any], metric_key: str
) -> str:
    overrides = context.own_overrides
    what = " ".join(overrides) if overrides else context.spec.network.summary_line()
    result = (
        f"kept epoch {summary['kept_epoch']}: {metric_key} {summary[metric_key]:.4f}, "
        f"val_loss {summary['val_loss']:.4f} ({summary['loss']})"
    )
    return "\n".join([*textwrap.wrap(what, _TITLE_WIDTH), result])


def plot_curves(
    history: Sequence[Mapping[str, Any]],
    metric: str,
    title: str,
    kept: int | None = None,
) -> Figure:
    """The figure of ``curves.png``: the train and validation loss against epoch
    (log scale when they span a decade), and the metric, train and validation.

    Args:
        history: ``metrics.json``'s per-epoch rows.
        metric: ``accuracy`` or ``r2``.
        title: The figure's title.
        kept: The epoch whose weights were saved (a dotted line), or None.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=_FIGURE_INCHES, dpi=_FIGURE_DPI, layout="constrained")
    loss_axes, metric_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    for column, label, style in (
        ("train_loss", "train", "-"),
        ("val_loss", "validation", "-"),
    ):
        values = [row[column] for row in history]
        loss_axes.plot(
            epochs, values, style, label=label, marker="." if len(epochs) < 30 else None
        )
    positive = [row[c] for row in history for c in ("train_loss", "val_loss")]
    if positive and min(positive) > 0 and max(positive) / min(positive) > 10:
        loss_axes.set_yscale("log")
    loss_axes.set_title("loss", fontsize=10)
    marker = "." if len(epochs) < 30 else None
    metric_axes.plot(
        epochs, [row[f"train_{metric}"] for row in history], label="train",
        marker=marker,
    )  # fmt: skip
    metric_axes.plot(
        epochs, [row[f"val_{metric}"] for row in history], label="validation",
        marker=marker,
    )  # fmt: skip
    if kept is not None:
        for axes in (loss_axes, metric_axes):
            axes.axvline(
                kept, color="0.5", linewidth=0.8, linestyle=":", label="kept weights"
            )
    metric_axes.set_title(
        "accuracy"
        if metric == "accuracy"
        else "R\u00b2 (coefficient of determination)",
        fontsize=10,
    )
    for axes in (loss_axes, metric_axes):
        axes.set_xlabel("epoch")
        # Epochs are whole: no tick at 1.5 in a short run.
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8, loc="best")
    figure.suptitle(title, fontsize=10)
    return figure
