"""A trained run as a predictor of new rows: :func:`load_predictor`.

A run of ``task=train data=csv`` (or ``data=parquet``) saves its network with the
record of its table's columns (``spec.yaml``'s ``data.fitted.columns``). A
:class:`Predictor` turns new rows into the network's inputs with that record (the
text-to-code lookup, :func:`~annfactory.table_fitting.encode_cells`; everything
numeric happens in the network), runs the network, and gives each row's class and
class probabilities, or its value in the target's units::

    predictor = annfactory.load_predictor("outputs/2026-12-07/10-00-00")
    predictor.predict([{"island": "Biscoe", "bill_length_mm": 45.1, ...}])
    predictor.predict_proba("new_penguins.csv")

The rows may be a list of dicts (a raw value, ``None`` or a missing marker such as
``"NA"`` for a missing cell), a pandas DataFrame, a pyarrow Table, or the path of a
CSV or Parquet file (read with the run's delimiter and missing markers). Columns the
run does not need are ignored, the target's included; a needed column that is
absent is an error naming it. A category that training never saw is encoded as
training decided (all zeros, or the embedding's reserved row), never an error; the
count per column is in :attr:`Predictions.unknown_categories`.

``task=predict`` and ``task=evaluate`` (:mod:`annfactory.tasks.predict`) use the same
object, so their files hold exactly what :meth:`Predictor.predict` returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from annfactory.columns import TableColumns
from annfactory.errors import ConfigError
from annfactory.runs import (
    SPEC_FILE,
    WEIGHTS_FILE,
    closest_run,
    load_run,
    load_spec,
    run_load_error,
    saved_task,
)
from annfactory.table_reading import NA_VALUES, read_table

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa
    import torch

    from annfactory.network import Network
    from annfactory.spec import RunSpec

__all__ = [
    "PREDICTION_COLUMN",
    "Predictions",
    "Predictor",
    "load_predictor",
    "probability_column",
]

#: The column of ``predictions.csv`` that holds each row's class or value.
PREDICTION_COLUMN: Final = "prediction"
#: Rows per forward pass: a million-row file runs in bounded memory.
_CHUNK_ROWS: Final = 65536
#: The data sets whose runs a predictor takes: a user's file.
_TABLE_DATA: Final = ("csv", "parquet")
#: The layer type that starts a network trained on a user's table.
_ENCODER: Final = "encode_table"


def probability_column(name: str) -> str:
    """The column of ``predictions.csv`` with each row's probability of class
    ``name``: ``probability_<name>``."""
    return f"probability_{name}"


@dataclass(frozen=True, eq=False)
class Predictions:
    """A predictor's answer for a table of rows.

    Attributes:
        values: classification: each row's class name (an object array of str);
            regression: each row's value in the target's units (float64).
        probabilities: classification: ``[rows, classes]`` float64, each row
            summing to 1; regression: None.
        unknown_categories: Per categorical feature column, the cells that held a
            level training never had.
    """

    values: npt.NDArray[Any]
    probabilities: npt.NDArray[np.float64] | None
    unknown_categories: dict[str, int]

    @property
    def rows(self) -> int:
        return len(self.values)

    def to_arrow(self, classes: Sequence[str] | None) -> pa.Table:
        """The rows of ``predictions.csv``: ``prediction``, then one
        ``probability_<class>`` column per class (classification)."""
        import pyarrow as pa

        columns: dict[str, Any] = {
            PREDICTION_COLUMN: pa.array(
                self.values.tolist() if self.probabilities is not None else self.values
            )
        }
        if self.probabilities is not None and classes is not None:
            for index, name in enumerate(classes):
                columns[probability_column(name)] = pa.array(
                    self.probabilities[:, index]
                )
        return pa.table(columns)


class Predictor:
    """A trained run that predicts new rows (see :func:`load_predictor`).

    Attributes:
        run_dir: The run's directory.
        kind: ``classification`` or ``regression``.
        target: The column the run was trained to predict.
        classes: classification: the class names, in the order of the columns of
            :meth:`predict_proba`; regression: None.
        columns: The feature columns the rows must have, with what training fitted.
        spec: The run's spec.

    Args:
        run_dir: The run's directory.
        device: Where the network runs.
        lazy: Read the weights on the first prediction, not now: a task checks the
            file against the run's columns before it allocates anything.
        shown: The run's directory as messages name it (default: ``run_dir``).
    """

    def __init__(
        self,
        run_dir: str | Path,
        device: str = "cpu",
        *,
        lazy: bool = False,
        shown: str | None = None,
    ) -> None:
        path = Path(run_dir)
        self.run_dir = path
        self.device = device
        self.spec, record, options = _trained_table_run(
            path, str(path) if shown is None else shown
        )
        self.kind: str = str(record["kind"])
        self.target: str = str(options.get("target"))
        names = record.get("class_names")
        self.classes: tuple[str, ...] | None = (
            tuple(str(name) for name in names)
            if self.kind == "classification" and names
            else None
        )
        self.columns = _table_columns(self.spec)
        self.delimiter: str = str(options.get("delimiter") or ",")
        markers = options.get("na_values")
        self.na_values: tuple[str, ...] = tuple(
            NA_VALUES if markers is None else (str(m) for m in markers)
        )
        self._network: Network | None = None
        if not lazy:
            self._network = self.network

    @property
    def network(self) -> Network:
        """The run's network in eval mode, loaded on first use."""
        if self._network is None:
            self._network = load_run(self.run_dir, device=self.device)
        return self._network

    def __repr__(self) -> str:
        what = (
            f"{len(self.classes or ())} classes of {self.target!r}"
            if self.kind == "classification"
            else f"{self.target!r} (regression)"
        )
        return (
            f"Predictor({str(self.run_dir)!r}: {what} from "
            f"{len(self.columns.features)} columns)"
        )

    # --------------------------------------------------------------------------
    # The public API
    # --------------------------------------------------------------------------

    def predict(self, rows: Any) -> npt.NDArray[Any]:
        """Each row's class name (classification, an object array of str) or value
        in the target's units (regression, float64).

        Args:
            rows: A list of dicts, a pandas DataFrame, a pyarrow Table, or the path
                of a CSV or Parquet file.

        Raises:
            ConfigError: A needed column is missing, or a numeric column holds text.
        """
        return self.predictions(self.table(rows)).values

    def predict_proba(self, rows: Any) -> npt.NDArray[np.float64]:
        """Each row's probability of each class, ``[rows, classes]`` in
        :attr:`classes` order; each row sums to 1.

        Raises:
            ConfigError: The run is a regression, a needed column is missing, or a
                numeric column holds text.
        """
        if self.classes is None:
            raise ConfigError(
                "predict_proba",
                f"the run {str(self.run_dir)!r} is a regression of {self.target!r}: "
                "it predicts values, not class probabilities.",
                "Use predict(rows).",
            )
        probabilities = self.predictions(self.table(rows)).probabilities
        assert probabilities is not None
        return probabilities

    # --------------------------------------------------------------------------
    # The steps, for the tasks
    # --------------------------------------------------------------------------

    def read(
        self,
        path: str | Path,
        *,
        delimiter: str | None = None,
        na_values: Sequence[str] | None = None,
        key: str = "rows",
    ) -> pa.Table:
        """The file at ``path`` as a table, read with the run's delimiter and
        missing markers unless given (the format from the name's ending)."""
        return read_table(
            Path(path),
            delimiter=self.delimiter if delimiter is None else delimiter,
            na_values=self.na_values if na_values is None else tuple(na_values),
            key=key,
        )

    def table(self, rows: Any, key: str = "rows") -> pa.Table:
        """``rows`` (see :meth:`predict`) as a pyarrow Table whose missing cells
        are nulls: the run's missing markers in text cells count as missing, as
        they do in a file."""
        import pyarrow as pa

        if isinstance(rows, str | Path):
            return self.read(rows, key=key)
        if isinstance(rows, pa.Table):
            table = rows
        elif _is_data_frame(rows):
            table = _from_pandas(rows, key)
        elif isinstance(rows, Mapping):
            raise ConfigError(
                key,
                "is one dict; rows are a list of dicts (one per row), a pandas "
                "DataFrame, a pyarrow Table or a file's path.",
                "Pass [row] for one row.",
            )
        elif isinstance(rows, Sequence) and not isinstance(rows, bytes):
            table = _from_dicts(rows, key) if len(rows) else self._no_rows()
        else:
            raise ConfigError(
                key,
                f"rows of type {type(rows).__name__} are not rows.",
                "Pass a list of dicts, a pandas DataFrame, a pyarrow Table or the "
                "path of a CSV or Parquet file.",
            )
        return _with_missing_markers(table, self.na_values)

    def _no_rows(self) -> pa.Table:
        """A table of the needed columns without a row (an empty list of rows)."""
        import pyarrow as pa

        return pa.table({name: pa.nulls(0) for name in self.columns.names})

    def check_columns(self, table: pa.Table, key: str = "rows") -> None:
        """Raise where ``table`` lacks a feature column the run needs (before
        anything is encoded or the network loaded).

        Raises:
            ConfigError: Names the first missing column and the closest there is.
        """
        from annfactory.table_fitting import encode_cells

        names = set(table.column_names)
        if all(name in names for name in self.columns.names):
            return
        # encode_cells names the missing column, with the closest name there is.
        encode_cells(table.slice(0, 0), self.columns, key=key)

    def predictions(self, table: pa.Table, key: str = "rows") -> Predictions:
        """Every row of ``table`` predicted, in order, none dropped."""
        import numpy as np

        from annfactory.table_fitting import encode_cells

        codes, unseen = encode_cells(table, self.columns, key=key)
        outputs = self._outputs(codes)
        if self.classes is None:
            return Predictions(outputs.reshape(len(codes), -1)[:, 0], None, unseen)
        probabilities = class_probabilities(
            outputs, self._output_activation(), len(self.classes)
        )
        names = np.array(self.classes, dtype=object)
        return Predictions(names[probabilities.argmax(axis=1)], probabilities, unseen)

    def _outputs(self, codes: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """The network's outputs for ``codes``, in chunks, as float64."""
        import numpy as np
        import torch

        parameter = next(iter(self.network.parameters()), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        dtype: torch.dtype = getattr(torch, self.spec.dtype)
        width = self.spec.network.out_features
        chunks = [np.zeros((0, width))]
        with torch.inference_mode():
            for start in range(0, len(codes), _CHUNK_ROWS):
                batch = torch.from_numpy(codes[start : start + _CHUNK_ROWS])
                out: torch.Tensor = self.network(batch.to(device=device, dtype=dtype))
                chunks.append(out.double().cpu().numpy().reshape(len(batch), width))
        return np.concatenate(chunks)

    def _output_activation(self) -> str:
        return self.spec.network.layers[-1].activation.name


def load_predictor(run_dir: str | Path, device: str = "cpu") -> Predictor:
    """A trained run (``task=train data=csv`` or ``data=parquet``) as a predictor.

    Args:
        run_dir: The run's directory.
        device: Where the network runs (``cpu``, ``cuda``, ``cuda:N``).

    Raises:
        ConfigError: No such directory, not a saved run, or a run that was not
            trained on a file (it has no record of its columns).
    """
    return Predictor(run_dir, device=device)


def class_probabilities(
    outputs: npt.NDArray[np.float64], activation: str, classes: int
) -> npt.NDArray[np.float64]:
    """Each row's class probabilities from the network's outputs (after its output
    activation), read the way training's loss reads them
    (:func:`annfactory.losses.loss_for`): one sigmoid unit is the second class's
    probability, one identity unit its logit; a softmax output is the
    probabilities already (never a second softmax); log_softmax gives their
    logarithms; any other output is logits.

    Computed in float64 and renormalized, so that each row sums to 1 to rounding.
    """
    import numpy as np
    import torch

    values = torch.from_numpy(np.asarray(outputs, dtype=np.float64))
    if values.shape[1] == 1 and classes == 2:
        second = (
            values[:, 0] if activation == "sigmoid" else torch.sigmoid(values[:, 0])
        )
        probabilities = torch.stack([1.0 - second, second], dim=1)
    elif activation == "softmax":
        probabilities = values
    elif activation == "log_softmax":
        probabilities = values.exp()
    else:
        probabilities = torch.softmax(values, dim=1)
    probabilities = probabilities.clamp(min=0.0)
    totals = probabilities.sum(dim=1, keepdim=True)
    result: npt.NDArray[np.float64] = (
        probabilities / torch.where(totals > 0, totals, 1.0)
    ).numpy()
    return result


# ------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------


def _trained_table_run(
    path: Path, name: str
) -> tuple[RunSpec, Mapping[str, Any], Mapping[str, Any]]:
    """The spec of the run at ``path``, its ``data.fitted`` record and its data
    options, checked: a run of ``task=train`` on a user's file.

    Raises:
        ConfigError: Keyed ``task.run``.
    """
    hint = (
        f"Give the directory of a run of task=train data=csv (it holds {SPEC_FILE} "
        f"and {WEIGHTS_FILE}), e.g. task.run=outputs/2026-12-07/10-00-00."
    )
    shown = repr(name)
    if not path.is_dir():
        what = "is a file, not a directory" if path.exists() else "does not exist"
        guess = closest_run(path, name)
        raise ConfigError("task.run", f"{shown} {what}.{guess}", hint)
    if not (path / SPEC_FILE).is_file():
        raise ConfigError(
            "task.run", f"{shown} is not a saved run: it has no {SPEC_FILE}.", hint
        )
    try:
        spec = load_spec(path)
    except ConfigError as error:
        raise run_load_error(error, shown, hint) from error
    data = spec.extras.get("data")
    fitted = getattr(data, "fitted", None)
    if data is None or fitted is None:
        task = _task_of(path)
        raise ConfigError(
            "task.run",
            f"the run {shown} was not trained{task}: it has no trained network.",
            "Train one first: python scripts/run.py task=train model=mlp data=csv "
            "data.path=<file> data.target=<column>.",
        )
    layers = spec.network.layers
    if data.name not in _TABLE_DATA or not layers or layers[0].type != _ENCODER:
        raise ConfigError(
            "task.run",
            f"the run {shown} was trained on data={data.name}, not on a table of "
            "yours: it has no record of a table's columns to read new rows with.",
            "Predict with runs of task=train data=csv or data=parquet (a run's "
            "network takes raw rows from Python: annfactory.load_run).",
        )
    return spec, fitted, data.options


def _table_columns(spec: RunSpec) -> TableColumns:
    """The record of the table's columns that the network's first layer (an
    ``encode_table``) was built from: what turns new rows into its inputs."""
    first = spec.network.layers[0]
    record = first.options["columns"]
    if isinstance(record, TableColumns):
        return record
    return TableColumns.from_dict(record, f"model.layers.{first.name}.columns")


def _task_of(path: Path) -> str:
    """`` (it is a run of task=<name>)`` from its metrics.json, or nothing."""
    name = saved_task(path)
    return f" (it is a run of task={name})" if name is not None else ""


# ------------------------------------------------------------------------------------
# Rows in memory as a table
# ------------------------------------------------------------------------------------


def _is_data_frame(rows: Any) -> bool:
    kind = type(rows)
    return kind.__module__.split(".")[0] == "pandas" and kind.__name__ == "DataFrame"


def _from_pandas(frame: Any, key: str) -> pa.Table:
    import pyarrow as pa

    names = [str(name) for name in frame.columns]
    try:
        return pa.Table.from_pandas(frame, preserve_index=False).rename_columns(names)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A column of mixed Python objects (numbers and text): read it as dicts do.
        return _from_dicts(frame.to_dict(orient="records"), key)


def _from_dicts(rows: Sequence[Any], key: str) -> pa.Table:
    """A list of dicts as a table: each column numbers, booleans or text, as the
    file's reader would type it; ``None`` and NaN are missing."""
    import pyarrow as pa

    names: dict[str, None] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ConfigError(
                f"{key}[{index}]",
                f"is a {type(row).__name__}, not a dict of column name to value.",
                'Give each row as a dict, e.g. {"bill_length_mm": 39.1}.',
            )
        names.update(dict.fromkeys(str(name) for name in row))
    columns = {name: _column([row.get(name) for row in rows]) for name in names}
    if not rows:
        return pa.table({})
    return pa.table(columns)


def _column(cells: list[Any]) -> pa.Array:
    """One column of dict rows: float64 where every present cell is a number, bool
    where every one is a boolean, else text (each cell as ``str``)."""
    import pyarrow as pa

    cleaned = [
        None if cell is None or (isinstance(cell, float) and math.isnan(cell)) else cell
        for cell in cells
    ]
    present = [cell for cell in cleaned if cell is not None]
    if present and all(isinstance(cell, bool) for cell in present):
        return pa.array(cleaned, pa.bool_())
    if all(
        isinstance(cell, int | float) and not isinstance(cell, bool) for cell in present
    ):
        return pa.array(
            [None if cell is None else float(cell) for cell in cleaned], pa.float64()
        )
    return pa.array(
        [None if cell is None else str(cell) for cell in cleaned], pa.string()
    )


def _with_missing_markers(table: pa.Table, na_values: Sequence[str]) -> pa.Table:
    """Text cells that are one of the missing markers (compared whole, as in a
    file) become nulls; dates, times and dictionary columns become text, as the
    file reader makes them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    markers = pa.array(list(na_values), pa.string())
    for index, field in enumerate(table.schema):
        column = table.column(index)
        if pa.types.is_temporal(field.type) or pa.types.is_dictionary(field.type):
            column = pc.cast(column, pa.string())
        if pa.types.is_large_string(column.type):
            column = pc.cast(column, pa.string())
        if pa.types.is_string(column.type):
            column = pc.if_else(
                pc.is_in(column, value_set=markers),
                pa.scalar(None, pa.string()),
                column,
            )
        if column is not table.column(index):
            table = table.set_column(index, field.name, column)
    return table
