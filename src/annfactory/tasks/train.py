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

import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, TextIO

from annfactory.errors import ConfigError
from annfactory.figures import save_figure
from annfactory.losses import LossChoice, loss_for, losses
from annfactory.spec import LayerSpec, RunSpec
from annfactory.tasks import TaskContext, tasks
from annfactory.tasks.train_options import OPTIONS, TrainOptions, parse_options
from annfactory.tasks.train_report import (
    Progress,
    figure_title,
    history_csv,
    history_row,
    plot_curves,
    plot_forecast,
    print_header,
    print_result,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from annfactory.data import Standardization, Table
    from annfactory.network import Network
    from annfactory.optimizers import OptimizerSpec
    from annfactory.training import TrainResult

# torch, numpy, matplotlib and the data loaders are imported inside the functions that
# use them: the override check and --help import this module for the task's schema.

__all__ = [
    "CURVES_FILE",
    "FORECAST_FILE",
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
#: data=series: the series' validation and test part with both forecasts.
FORECAST_FILE: Final = "forecast.png"
#: Names of the preprocessing layers the saved network gets.
INPUT_LAYER: Final = "standardize"
#: A user's table's first layer (``encode_table``): codes in, encoded features out.
ENCODE_LAYER: Final = "encode"
OUTPUT_LAYER: Final = "destandardize"

# ------------------------------------------------------------------------------------
# The task
# ------------------------------------------------------------------------------------


@tasks.register(
    "train",
    params=OPTIONS,
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
        "train.val_balanced_accuracy": "maximize",
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
    from annfactory.optimizers import parse_optimizer

    spec, options = context.spec, context.options
    assert isinstance(options, TrainOptions)
    data_spec = _data_of(spec)
    optimizer_spec = spec.extras.get("optimizer") or parse_optimizer("adam")
    prepared = _prepare(spec, data_spec, options)
    tuning, notes = _fine_tune(prepared, options)
    result = _fit_network(context, prepared, optimizer_spec, options, notes)
    summary = _summary(prepared, result, optimizer_spec, data_spec.name, options)
    metric_key = f"val_{prepared.metric}"
    print_result(context.out, summary, metric_key)
    _save_outputs(context, prepared, summary, metric_key)
    return {
        "total_params": sum(p.numel() for p in prepared.model.parameters()),
        "output_shape": [
            len(prepared.val_index),
            *prepared.saved_spec.network.output_shape,
        ],
        **tuning,
        "train": summary,
    }


def _fine_tune(
    prepared: _Prepared, options: TrainOptions
) -> tuple[dict[str, Any], list[str]]:
    """``task.init_from`` and ``task.freeze``: what metrics.json records of them,
    and the lines the run prints. A resumed run's weights are its checkpoint's."""
    from annfactory.tasks.train_init import describe, freeze_layers, init_from_run

    model = prepared.model
    report = None
    if options.resume is None:
        report = init_from_run(model, prepared.saved_spec, options)
    frozen = freeze_layers(model, options.freeze)
    metrics: dict[str, Any] = {}
    if report is not None:
        metrics["init_from"] = report
    if frozen:
        metrics["frozen"] = frozen
    return metrics, describe(report, frozen, model)


@dataclass
class _Prepared:
    """What a run trains: the data, its split, the loss, and the network with its
    preprocessing layers, on the device.

    Attributes:
        spec: The run's spec.
        table: The loaded data set.
        train_index: The training rows.
        val_index: The validation rows.
        test_index: The test rows (none without ``data.test_fraction``).
        choice: The loss.
        metric: ``accuracy`` or ``r2``.
        saved_spec: The spec the saved run gets (preprocessing layers, the data's
            record).
        model: The network, float32 while training in mixed precision.
        tensors: ``x_train``, ``y_train``, ``x_val``, ``y_val``, ``x_test``,
            ``y_test`` on the device.
        device: Where it trains.
        saved_dtype: The dtype the network is saved in.
        mixed: Half precision trains as mixed precision.
        scoring_rows: Rows per forward pass when scoring validation and test rows
            (:func:`scoring_rows`).
        forecasts: ``data=series``: the kept weights' forecasts of the ``"val"``
            and ``"test"`` rows in the target's units, once scored.
    """

    spec: RunSpec
    table: Table
    train_index: np.ndarray
    val_index: np.ndarray
    test_index: np.ndarray
    choice: LossChoice
    metric: str
    saved_spec: RunSpec
    model: Network
    tensors: tuple[torch.Tensor, ...]
    device: torch.device
    saved_dtype: torch.dtype
    mixed: bool
    scoring_rows: int
    forecasts: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def _data_of(spec: RunSpec) -> Any:
    """The run's data set; refuses a run without one, or on the meta device."""
    from annfactory.data import datasets

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
    return data_spec


def _prepare(spec: RunSpec, data_spec: Any, options: TrainOptions) -> _Prepared:
    """Load and split the data, choose the loss, build the network around the
    training split's statistics, and put the rows on the device."""
    import torch

    from annfactory.data import load_table, split_three
    from annfactory.factory import build_network, check_memory, resolve_device
    from annfactory.training import AUTOCAST_DTYPES, has_batch_norm

    network_spec = spec.network
    table = load_table(data_spec, spec.seed, spec.dtype)
    choice = loss_for(
        options.loss,
        network_spec.layers[-1].activation,
        table.kind,
        network_spec.out_features,
        table.n_outputs,
    )
    train_index, val_index, test_index = split_three(
        table, data_spec.val_fraction, data_spec.test_fraction, spec.seed
    )
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
    # Mixed precision trains float32 weights: its memory is float32's at most.
    trained_spec = (
        dataclasses.replace(saved_spec, dtype="float32") if mixed else saved_spec
    )
    model = build_network(trained_spec)
    _check_batch_norm(has_batch_norm(model), options.batch_size, len(train_index))
    # The build checked the memory for the top-level batch; a step takes this one.
    step_rows = min(options.batch_size, len(train_index))
    check_memory(
        dataclasses.replace(trained_spec, batch_size=step_rows),
        [model.get_submodule(layer.name) for layer in network_spec.layers],
        batch_key="task.batch_size",
    )
    _set_buffers(model, fitted)
    tensors = _split_tensors(
        model,
        table,
        network_spec.input_shape,
        (train_index, val_index, test_index),
        device,
        dtype,
    )
    return _Prepared(
        spec=spec,
        table=table,
        train_index=train_index,
        val_index=val_index,
        test_index=test_index,
        choice=choice,
        metric="r2" if table.kind == "regression" else "accuracy",
        saved_spec=saved_spec,
        model=model,
        tensors=tensors,
        device=device,
        saved_dtype=saved_dtype,
        mixed=mixed,
        scoring_rows=scoring_rows(saved_spec),
    )


def _split_tensors(
    model: Network,
    table: Table,
    input_shape: tuple[int, ...],
    split: tuple[np.ndarray, ...],
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, ...]:
    """``x_train, y_train, x_val, y_val, x_test, y_test``: the rows standardized by
    the network's first layer, and the targets as the loss takes them, on the
    device."""
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        # The table's read-only array is shared, not copied (a million rows of a
        # user's table: 88 MB); only the split's rows are copied out of it below.
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        features = torch.as_tensor(table.features, dtype=dtype, device=device)
        # Rows as the network takes them: vectors, or images ([rows, 1, 8, 8]).
        x = features
        if table.columns is None:
            x = model.get_submodule(INPUT_LAYER)(x.reshape(table.rows, *input_shape))
        # A user's table stays codes: its encode layer (embeddings learn) runs in
        # every step, as part of the network that trains.
    y = _targets(model, table, device, dtype)
    tensors: list[torch.Tensor] = []
    for index in split:
        rows = torch.as_tensor(index, device=device)
        tensors += [x[rows], y[rows]]
    return tuple(tensors)


def _fit_network(
    context: TaskContext,
    prepared: _Prepared,
    optimizer_spec: OptimizerSpec,
    options: TrainOptions,
    notes: Sequence[str] = (),
) -> TrainResult:
    """Print the plan (and ``notes`` after it), train the parameters that are not
    frozen with progress, and cast a mixed-precision network to its saved
    dtype."""
    from annfactory.optimizers import build_optimizer, build_schedule
    from annfactory.prefetch import prefetch
    from annfactory.seeding import DROPOUT_STREAM, parameter_seed, seeded_generator
    from annfactory.tasks.train_checkpoints import checkpointing, resumed_state
    from annfactory.training import train

    # matplotlib for curves.png, while torch trains (its kernels release the GIL).
    prefetch("matplotlib.figure", "matplotlib.backends.backend_agg")
    spec, model = prepared.spec, prepared.model
    logits = _core(model, spec.network.layers[-1].name, prepared.choice.logits)
    trainable = (p for p in model.parameters() if p.requires_grad)
    optimizer = build_optimizer(optimizer_spec, trainable, prepared.device)
    schedule = build_schedule(
        options.schedule,
        optimizer,
        epochs=options.epochs,
        step_size=options.step_size,
        gamma=options.gamma,
    )
    resume = resumed_state(context, options)
    _print_plan(context.out, prepared, options)
    for line in notes:
        print(line, file=context.out)
    threads = _threads(context.out, options.threads)
    if resume is not None:
        where = f", step {resume.step}" if resume.step else ""
        print(
            f"continuing from the checkpoint of epoch {resume.epoch}{where} "
            f"(of {options.epochs}) in {options.resume or context.output_dir}",
            file=context.out,
        )
    x_train, y_train, x_val, y_val, *_ = prepared.tensors
    progress = Progress(
        context.out, options, prepared.metric, done=resume.epoch if resume else 0
    )
    try:
        result = train(
            logits=logits,
            module=model,
            loss=losses.get(prepared.choice.name).build(),
            metric=prepared.metric,
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
            autocast=prepared.saved_dtype if prepared.mixed else None,
            resume=resume,
            checkpoints=checkpointing(context, options),
            threads=threads,
            validation_rows=prepared.scoring_rows,
            clip_grad_norm=options.clip_grad_norm,
        )
    finally:
        progress.close()
    result.scores = _scores(prepared, logits)
    if prepared.mixed:
        model.to(prepared.saved_dtype)
    return result


#: The most memory that one forward pass of validation or test rows may take, as
#: :func:`~annfactory.factory.batch_bytes` estimates it (for a training step: an upper
#: bound of a pass without gradients).
SCORING_BYTES: Final = 1 << 30


def scoring_rows(spec: RunSpec) -> int:
    """Rows per forward pass when scoring validation and test rows: as many as fit in
    :data:`SCORING_BYTES` (at least one; at most ``scoring.VALIDATION_ROWS``). A
    transformer on 1,344 steps keeps about 170 MB a row, so its rows go a few at a
    time; a vector network's, thousands at a time. From the spec alone, so that a
    resumed run scores in the same chunks."""
    from annfactory.factory import batch_bytes
    from annfactory.scoring import VALIDATION_ROWS

    row = batch_bytes(dataclasses.replace(spec, batch_size=1))
    return max(1, min(VALIDATION_ROWS, SCORING_BYTES // max(row, 1)))


def _threads(out: TextIO, threads: int | None) -> int | None:
    """``task.threads``, at most the CPUs this process may run on (a note says so
    when it asked for more)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = cores or os.cpu_count() or 1
    if threads is None or threads <= cores:
        return threads
    print(
        f"note: task.threads={threads} is more than the {cores} CPU cores this run "
        f"may use; training on {cores} threads.",
        file=out,
    )
    return cores


def _scores(
    prepared: _Prepared, logits: Callable[[torch.Tensor], torch.Tensor]
) -> dict[str, float]:
    """The kept weights' figures beyond the history: balanced accuracy on the
    validation rows (classification), the test split's loss and metric, and a
    forecast's errors beside the data set's baseline (``data=series``), each
    computed once."""
    import torch

    from annfactory.scoring import balanced_accuracy, evaluate

    _, _, x_val, y_val, x_test, y_test = prepared.tensors
    loss = losses.get(prepared.choice.name).build()
    metric = prepared.metric
    autocast = prepared.saved_dtype if prepared.mixed else None

    baseline = prepared.table.baseline
    forecasts: dict[str, torch.Tensor] = {}

    def score(x: torch.Tensor, y: torch.Tensor, split: str) -> dict[str, float]:
        scored = evaluate(
            logits=logits,
            module=prepared.model,
            loss=loss,
            metric=metric,
            x=x,
            y=y,
            autocast=autocast,
            chunk_rows=prepared.scoring_rows,
            keep_outputs=baseline is not None,
        )
        if scored.outputs is not None:
            forecasts[split] = scored.outputs
        figures = {f"{split}_{metric}": scored.metric, f"{split}_loss": scored.loss}
        if scored.predicted is not None:
            truth = y.reshape(-1).long().cpu().numpy()
            figures[f"{split}_balanced_accuracy"] = balanced_accuracy(
                truth, scored.predicted.numpy()
            )
        return figures

    scores = {}
    if metric == "accuracy" or baseline is not None:
        val = score(x_val, y_val, "val")
        if metric == "accuracy":
            scores["val_balanced_accuracy"] = val["val_balanced_accuracy"]
    if len(prepared.test_index):
        scores |= score(x_test, y_test, "test")
    if baseline is not None:
        from annfactory.series import forecast_errors

        # The forecasts in the target's units, through the network's destandardize.
        to_units = prepared.model.get_submodule(OUTPUT_LAYER)
        for split, index in (
            ("val", prepared.val_index),
            ("test", prepared.test_index),
        ):
            if split in forecasts:
                with torch.inference_mode():
                    forecast = to_units(forecasts[split].to(prepared.device))
                values = forecast.reshape(-1).double().cpu().numpy()
                prepared.forecasts[split] = values
                scores |= forecast_errors(
                    split, prepared.table.target[index], values, baseline[index]
                )
    return scores


def _print_plan(out: TextIO, prepared: _Prepared, options: TrainOptions) -> None:
    """The header, and the notes on mixed precision and a batch of one row."""
    from annfactory.training import batch_sizes, has_batch_norm

    spec = prepared.spec
    print_header(
        out,
        spec,
        prepared.table,
        prepared.train_index,
        prepared.val_index,
        prepared.choice,
        options,
        test_rows=len(prepared.test_index),
    )
    if prepared.mixed:
        print(
            f"precision: {spec.dtype} mixed: float32 weights and optimizer state, "
            f"autocast forward passes"
            + (", loss scaling" if spec.dtype == "float16" else "")
            + f"; saved in {spec.dtype}",
            file=out,
        )
    rows = len(prepared.train_index)
    batch_norm = has_batch_norm(prepared.model)
    steps = batch_sizes(rows, options.batch_size, batch_norm=batch_norm)
    if steps != batch_sizes(rows, options.batch_size, batch_norm=False):
        print(
            f"note: {rows} training rows leave 1 row for the last batch "
            "of an epoch, and batch norm needs 2 or more: it joins the batch before "
            f"it ({options.batch_size + 1} rows).",
            file=out,
        )


def _summary(
    prepared: _Prepared,
    result: TrainResult,
    optimizer_spec: OptimizerSpec,
    data_name: str,
    options: TrainOptions,
) -> dict[str, Any]:
    """``metrics.json``'s ``train`` section: the kept epoch's figures first."""
    kept = result.history[
        (result.best_epoch if options.keep == "best" else result.epochs_run) - 1
    ]
    metric = prepared.metric
    return {
        # The sweep table lists these first.
        f"val_{metric}": kept.metric,
        **{k: v for k, v in result.scores.items() if k.startswith("val_")},
        "val_loss": kept.val_loss,
        "train_loss": kept.train_loss,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "kept_epoch": kept.epoch,
        "seconds": result.seconds,
        "threads": result.threads,
        "stopped_early": result.stopped_early,
        "loss": prepared.choice.name,
        "loss_formula": prepared.choice.formula,
        "optimizer": optimizer_spec.to_dict(),
        "data": data_name,
        "rows_train": len(prepared.train_index),
        "rows_val": len(prepared.val_index),
        **({"rows_test": len(prepared.test_index)} if len(prepared.test_index) else {}),
        **{k: v for k, v in result.scores.items() if k.startswith("test_")},
        **(
            {"baseline": prepared.table.baseline_name}
            if prepared.table.baseline is not None
            else {}
        ),
        "history": [history_row(record, metric) for record in result.history],
    }


def _save_outputs(
    context: TaskContext,
    prepared: _Prepared,
    summary: Mapping[str, Any],
    metric_key: str,
) -> None:
    """Stage ``history.csv``, ``curves.png`` and the run (``spec.yaml``, weights)."""
    history_path = context.path(HISTORY_FILE)
    if history_path is not None:
        history_path.write_text(history_csv(summary["history"]), encoding="utf-8")
    curves_path = context.path(CURVES_FILE)
    title = figure_title(context, summary, metric_key)
    if curves_path is not None:
        save_figure(
            plot_curves(
                summary["history"], prepared.metric, title, summary["kept_epoch"]
            ),
            curves_path,
            format="png",
            metadata={"Title": title},
        )
    forecast_path = context.path(FORECAST_FILE)
    if forecast_path is not None and prepared.forecasts:
        splits = {"val": prepared.val_index, "test": prepared.test_index}
        save_figure(
            plot_forecast(prepared.table, splits, prepared.forecasts, title),
            forecast_path,
            format="png",
            metadata={"Title": title},
        )
    spec_path = context.path("spec.yaml")
    if spec_path is not None:
        from annfactory.runs import save_run

        save_run(spec_path.parent, prepared.saved_spec, prepared.model)


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

    fitted: dict[str, Standardization] = {}
    if table.columns is None:
        # A user's table's encode layer holds its own, from the columns' record.
        features = table.features[train_index]
        fitted[INPUT_LAYER] = fit_standardization(features, input_shape)
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
    first = INPUT_LAYER if table.columns is None else ENCODE_LAYER
    taken = [name for name in (first, OUTPUT_LAYER) if name in model["layers"]]
    if taken:
        raise ConfigError(
            f"model.layers.{taken[0]}",
            f"task=train names its preprocessing layer {taken[0]!r}, and the "
            "network has a layer of that name.",
            "Rename that layer.",
        )
    if table.columns is None:
        layers = {INPUT_LAYER: {"type": INPUT_LAYER}, **model["layers"]}
    else:
        encode = {"type": "encode_table", "columns": table.columns.to_dict()}
        layers = {ENCODE_LAYER: encode, **model["layers"]}
        # The network takes one number per feature column.
        if "in_features" in model:
            model["in_features"] = table.n_features
        else:
            model["input_shape"] = [table.n_features]
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
    if table.columns is not None:
        record["columns"] = table.columns.to_dict()
    if table.sample_shape is not None:
        record["sample_shape"] = list(table.sample_shape)
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

    Each module is called as ``module(x)`` (``nn.Module.__call__``), so that hooks
    a user's layer registers, and anything else torch does there, apply while
    training too.
    """
    modules = [
        module
        for name, module in model.named_children()
        if name not in (INPUT_LAYER, OUTPUT_LAYER)
        and not (skip_output_activation and name == f"{out_layer}_act")
    ]
    called = tuple(modules)

    def logits(x: torch.Tensor) -> torch.Tensor:
        for module in called:
            x = module(x)
        return x

    return logits
