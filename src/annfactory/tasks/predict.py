"""The predict task: a trained run's predictions for a new file, as predictions.csv.

``task=predict task.run=<dir> data.path=<file>`` loads the run of ``task=train
data=csv`` (or ``data=parquet``) in ``<dir>`` as a :class:`~annfactory.predictor.
Predictor`, reads the file with the run's reading options (its delimiter and missing
markers; the format from the name's ending), and writes ``predictions.csv`` into the
new run directory: one row per row of the file, in order, none dropped; a
``prediction`` column (the class name as it was in the training file, or the value
in the target's units) and, for a classifier, one ``probability_<class>`` column per
class, each row summing to 1.

No ``data=`` is chosen: the ``data`` node holds only the file to read
(:class:`TableFile`): ``data.path``, and ``data.delimiter`` and ``data.na_values``
where the file is written otherwise than the training file. The target column may
be there or not, other columns are ignored, and a feature column the run needs but
the file lacks is an error naming it. A category that training never saw is
encoded as training decided, never an error; the count per column is printed and
kept in ``metrics.json`` as ``predict.unknown_categories``. ``task=evaluate``
(:mod:`annfactory.tasks.evaluate`) scores the same predictions against the file's
labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from annfactory.errors import ConfigError
from annfactory.params import Param, validate_params
from annfactory.tasks import TaskContext, refuse_group_overrides, tasks

if TYPE_CHECKING:
    import pyarrow as pa

    from annfactory.predictor import Predictions, Predictor

# torch, pyarrow and the predictor are imported inside the functions: the override
# check and --help import this module for the task's schema.

__all__ = [
    "FILE_KEYS",
    "FILE_TASKS",
    "OPTIONS",
    "PREDICTIONS_FILE",
    "Opened",
    "PredictOptions",
    "TableFile",
    "open_run",
    "options_parser",
    "parse_options",
    "parse_table_file",
    "run",
    "write_predictions",
]

PREDICTIONS_FILE: Final = "predictions.csv"
#: The tasks whose ``data`` node is a file to read with a saved run (a
#: :class:`TableFile`), not a data set to train on: no ``data=`` is chosen.
FILE_TASKS: Final = ("predict", "evaluate")
#: The keys of that node.
FILE_KEYS: Final = ("path", "delimiter", "na_values")
#: What ``data.delimiter=tab`` stands for (as for ``task=train``).
#: Top-level keys and groups that define a network: the saved run defines it, so
#: an override of one would be ignored; it is refused.
_NETWORK_KEYS: Final = ("model", "init", "activation", "dtype", "optimizer")
#: The classes whose counts the printout lists by name.
_LISTED_CLASSES: Final = 8

#: The options of ``task=predict`` and ``task=evaluate``.
OPTIONS: Final = {
    "run": Param(
        str,
        None,
        "the directory of a run of task=train on a file; null: none, refused",
    ),
}


@dataclass(frozen=True)
class TableFile:
    """The ``data`` node of ``task=predict`` and ``task=evaluate``: the file to read
    (what ``RunSpec.extras["data"]`` holds for them).

    Attributes:
        path: The file (CSV, TSV, gzip'd CSV or Parquet), as given.
        delimiter: The character between cells; None: the training file's.
        na_values: The cells that mean "missing"; None: the training file's.
    """

    path: str | None = None
    delimiter: str | None = None
    na_values: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "delimiter": self.delimiter,
            "na_values": None if self.na_values is None else list(self.na_values),
        }


def parse_table_file(node: Any, task: str, key: str = "data") -> TableFile:
    """The ``data`` node of a task in :data:`FILE_TASKS`, checked.

    Raises:
        ConfigError: A data set is named, a key other than :data:`FILE_KEYS`, or a
            value of the wrong type; the message names ``<key>.<option>``.
    """
    if node is None:
        return TableFile()
    if not isinstance(node, Mapping):
        raise _not_a_data_set(key, task, repr(node))
    if node.get("name") is not None:
        raise _not_a_data_set(key, task, f"data={node['name']}")
    for option in node:
        if option != "name" and option not in FILE_KEYS:
            raise ConfigError(
                f"{key}.{option}",
                f"task={task} reads the file with the run's own data options; it "
                f"takes {', '.join(f'{key}.{k}' for k in FILE_KEYS)} only.",
                f"Drop {key}.{option} (the run's {option} applies).",
            )
    path = node.get("path")
    if path is not None and (not isinstance(path, str) or not path.strip()):
        raise ConfigError(
            f"{key}.path",
            f"{path!r} is not the path of a file.",
            f"Give the file to predict, e.g. {key}.path=new_penguins.csv.",
        )
    return TableFile(
        path=path,
        delimiter=_delimiter(node.get("delimiter"), f"{key}.delimiter"),
        na_values=_na_values(node.get("na_values"), f"{key}.na_values"),
    )


def _not_a_data_set(key: str, task: str, given: str) -> ConfigError:
    return ConfigError(
        key,
        f"task={task} reads a file with the saved run's data options, so {given} "
        "would be ignored.",
        f"Drop it; give the file as {key}.path=<file>.",
    )


def _delimiter(value: Any, key: str) -> str | None:
    """``data.delimiter`` as data=csv takes it, or null: the run's."""
    from annfactory.data import delimiter_option

    return None if value is None else delimiter_option(value, key)


def _na_values(value: Any, key: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            key,
            f"{value!r} is not a list of text cells.",
            f"Give a list, e.g. '{key}=[\"\",NA,-]'.",
        )
    return tuple(value)


@dataclass(frozen=True)
class PredictOptions:
    """The validated options of ``task=predict`` and ``task=evaluate``.

    Attributes:
        run: The directory of the trained run; None (the default) is refused when
            the task runs.
    """

    run: str | None = None


def options_parser(task: str) -> Callable[[Mapping[str, Any], str], PredictOptions]:
    """The ``parse_options`` of ``task`` (``predict`` or ``evaluate``): its
    messages name the task."""

    def parse(given: Mapping[str, Any], key: str) -> PredictOptions:
        """Validate the task's options (the ``task`` node without ``name``).

        Raises:
            ConfigError: An unknown option (names the closest one), or an empty
                run.
        """
        options = validate_params(given, OPTIONS, key, f"task {task!r}")
        run_dir = options["run"]
        if run_dir is not None and not run_dir.strip():
            raise ConfigError(
                f"{key}.run",
                "is empty.",
                "Give the directory of a trained run, e.g. "
                "task.run=outputs/2026-12-07/10-00-00.",
            )
        return PredictOptions(run=run_dir)

    return parse


parse_options = options_parser("predict")


@tasks.register(
    "predict",
    params=OPTIONS,
    parse_options=parse_options,
    reads_batch_size=False,
    metric=("predict.rows",),
)
def run(context: TaskContext) -> dict[str, Any]:
    """Predict every row of the file with the saved run; write predictions.csv.

    Raises:
        ConfigError: No ``task.run``, no ``data.path``, a run that was not trained
            on a file, or a file that lacks a column the run needs.
    """
    opened = open_run(context, "predict")
    predictor = opened.predictor
    predictions = predictor.predictions(opened.table, key="data.path")
    written = write_predictions(context, predictor, predictions)
    print_predictions(context.out, predictor, predictions, written)
    return {"predict": predict_metrics(predictor, predictions, opened.file)}


@dataclass(frozen=True, eq=False)
class Opened:
    """What ``task=predict`` and ``task=evaluate`` work on.

    Attributes:
        predictor: The run of ``task.run``.
        table: The file of ``data.path``, read.
        run: ``task.run`` as given.
        file: ``data.path`` as given.
    """

    predictor: Predictor
    table: pa.Table
    run: str
    file: str


def open_run(context: TaskContext, task: str) -> Opened:
    """The run of ``task.run`` as a predictor and the file of ``data.path`` read with
    its options (``data.delimiter`` and ``data.na_values`` override them); a summary
    line of each printed."""
    from hydra.utils import to_absolute_path

    from annfactory.predictor import Predictor

    options = context.options
    assert isinstance(options, PredictOptions)
    if options.run is None:
        raise ConfigError(
            "task.run",
            f"task={task} needs the trained run to predict with.",
            "Add task.run=<the directory of a task=train run on a file> (such as "
            "outputs/2026-12-07/10-00-00).",
        )
    _refuse_network_overrides(context.own_overrides, task)
    if context.spec.device == "meta":
        raise ConfigError(
            "device",
            f"task={task} computes predictions, and device=meta allocates no values.",
            "Use device=cpu (or cuda).",
        )
    data = context.spec.extras.get("data")
    file = data if isinstance(data, TableFile) else TableFile()
    # Under hydra.job.chdir=true a job runs in its run directory; a relative path
    # still means one from where the command was typed (outside Hydra: the cwd).
    predictor = Predictor(
        Path(to_absolute_path(options.run)),
        device=context.spec.device,
        lazy=True,  # the weights are read once the file is known to fit
        shown=options.run,
    )
    if file.path is None:
        raise ConfigError(
            "data.path",
            f"task={task} needs the file to predict.",
            f"Add data.path=<file> (a CSV or Parquet file with the columns "
            f"{_listed(predictor.columns.names)}).",
        )
    table = predictor.read(
        Path(to_absolute_path(file.path)),
        delimiter=file.delimiter,
        na_values=file.na_values,
        key="data.path",
    )
    predictor.check_columns(table, key="data.path")
    print_opening(context.out, predictor, options.run, file.path, table)
    return Opened(predictor, table, options.run, file.path)


def _refuse_network_overrides(overrides: Sequence[str], task: str) -> None:
    """The saved run defines the network: an override of the model, an init, an
    activation, the dtype or the optimizer would be ignored, so it is refused."""
    refuse_group_overrides(
        overrides,
        _NETWORK_KEYS,
        f"task={task} uses the saved run's network (task.run), so {{override}} "
        "would be ignored.",
        "Drop it.",
    )


def write_predictions(
    context: TaskContext, predictor: Predictor, predictions: Predictions
) -> Path | None:
    """Stage ``predictions.csv``; return where it lands (None: no run directory)."""
    import pyarrow.csv as pcsv

    path = context.path(PREDICTIONS_FILE)
    if path is None or context.output_dir is None:
        return None
    pcsv.write_csv(predictions.to_arrow(predictor.classes), path)
    return context.output_dir / PREDICTIONS_FILE


def predict_metrics(
    predictor: Predictor, predictions: Predictions, file: str
) -> dict[str, Any]:
    """``metrics.json``'s ``predict`` section."""
    section: dict[str, Any] = {
        "run": str(predictor.run_dir),
        "file": file,
        "rows": predictions.rows,
        "kind": predictor.kind,
        "target": predictor.target,
        "unknown_categories": dict(predictions.unknown_categories),
    }
    if predictor.classes is not None:
        section["classes"] = list(predictor.classes)
        section["predicted_counts"] = _class_counts(predictor, predictions)
    return section


def _class_counts(predictor: Predictor, predictions: Predictions) -> dict[str, int]:
    import numpy as np

    names, counts = np.unique(predictions.values.astype(str), return_counts=True)
    found = dict(zip(names.tolist(), counts.tolist(), strict=True))
    return {name: int(found.get(name, 0)) for name in predictor.classes or ()}


# ------------------------------------------------------------------------------------
# The printout
# ------------------------------------------------------------------------------------


def print_opening(
    out: TextIO, predictor: Predictor, run_dir: str, path: str, table: pa.Table
) -> None:
    """Two lines: the run (what it predicts) and the file (rows, columns read)."""
    if predictor.classes is not None:
        what = (
            f"classification of {predictor.target!r}, {len(predictor.classes)} classes"
        )
    else:
        what = f"regression of {predictor.target!r}"
    print(f"run:  {run_dir} ({what})", file=out)
    needed = set(predictor.columns.names)
    ignored = [
        name
        for name in table.column_names
        if name not in needed and name != predictor.target
    ]
    target = " and the target" if predictor.target in table.column_names else ""
    note = f"; ignored: {_listed(ignored)}" if ignored else ""
    print(
        f"file: {path}: {table.num_rows} rows; {len(needed)} feature columns"
        f"{target} read{note}",
        file=out,
    )


def print_predictions(
    out: TextIO,
    predictor: Predictor,
    predictions: Predictions,
    written: Path | None,
) -> None:
    """The unknown categories per column, what was predicted, and the file."""
    import numpy as np

    unknown = {k: v for k, v in predictions.unknown_categories.items() if v}
    if unknown:
        cells = ", ".join(f"{name} {count}" for name, count in unknown.items())
        print(
            f"unknown categories (levels never seen in training, encoded as unseen): "
            f"{cells}",
            file=out,
        )
    if predictor.classes is not None:
        counts = sorted(
            _class_counts(predictor, predictions).items(), key=lambda item: -item[1]
        )
        shown = ", ".join(f"{name} {count}" for name, count in counts[:_LISTED_CLASSES])
        more = f", ... ({len(counts)} classes)" if len(counts) > _LISTED_CLASSES else ""
        summary = f"{shown}{more}"
    elif predictions.rows:
        values = predictions.values.astype(float)
        summary = (
            f"{predictor.target} from {np.min(values):.4g} to {np.max(values):.4g}, "
            f"mean {np.mean(values):.4g}"
        )
    else:
        summary = "no rows"
    where = f" -> {_shown_path(written)}" if written is not None else ""
    print(f"predicted {predictions.rows} rows: {summary}{where}", file=out)


def _shown_path(path: Path) -> str:
    """``path`` as the user would type it: relative to the directory the command
    ran in, where it is inside it (``outputs/...``); else absolute."""
    from hydra.utils import to_absolute_path

    start = Path(to_absolute_path("."))
    try:
        return str(path.resolve().relative_to(start.resolve()))
    except ValueError:
        return str(path)


def _listed(names: Sequence[str], most: int = 6) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")
