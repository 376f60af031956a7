"""Data sets that ``task=train`` learns from: the ``data`` config group's registry.

Each option of the ``data`` group (``data=digits``, ``data=csv``, ...) names an entry
of :data:`datasets`: a load function and the schema of its options. A run's ``data``
node is parsed into a :class:`DataSpec` (plain data, no arrays), which
:func:`load_table` turns into a :class:`Table` of float64 features and class indices
(or float64 targets). :func:`split_rows` splits it into training and validation rows
from a named stream of the run seed, and :func:`fit_standardization` fits the
preprocessing on the training rows.

The built-in options:

- ``digits``, ``iris``, ``wine``, ``breast_cancer`` (classification) and ``diabetes``
  (regression): scikit-learn's bundled data sets, read from the installed package;
- ``moons`` (scikit-learn's ``make_moons``) and ``spirals``: synthetic 2-D
  classification, drawn from the run seed;
- ``csv``: a file of the user's, read with the :mod:`csv` module (nothing in the file
  is ever evaluated).

A package adds a data set with the same decorator the built-in ones use::

    @datasets.register("blobs", kind="classification",
                       params={"n_samples": Param(int, 100, "rows", low=2)})
    def blobs(options: Mapping[str, Any], seed: int) -> Table:
        ...

Nothing here imports torch, numpy or scikit-learn at import time: the command line
imports this module on every start.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from annfactory.errors import (
    ConfigError,
    RegistrationError,
    UnknownNameError,
    closest_name,
)
from annfactory.layouts import SEQUENCE, layout_of, with_layout
from annfactory.params import (
    REQUIRED,
    Param,
    check_keys,
    require_mapping,
    validate_params,
)
from annfactory.plugins import load_plugins
from annfactory.prefetch import prefetch
from annfactory.registry import Registry

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from annfactory.columns import TableColumns

__all__ = [
    "KINDS",
    "SPIRAL_TURNS",
    "SPLIT_STREAM",
    "TEST_FRACTION",
    "VAL_FRACTION",
    "DataSet",
    "DataSpec",
    "Standardization",
    "Table",
    "data_image_shape",
    "data_sizes",
    "datasets",
    "delimiter_option",
    "fit_standardization",
    "load_table",
    "load_user_table",
    "parse_data",
    "split_rows",
    "split_three",
]

#: What a data set's target is.
KINDS: Final = ("classification", "regression")

#: The option every data set takes besides its own.
VAL_FRACTION: Final = Param(
    float,
    0.2,
    "share of the rows held out for validation, strictly between 0 and 1",
    low=0,
    high=1,
    low_open=True,
    high_open=True,
)

#: The option every data set takes besides its own: a test split, never trained on.
TEST_FRACTION: Final = Param(
    float,
    0.0,
    "share of the rows held out for a final test, never trained on; 0: none",
    low=0,
    high=1,
    high_open=True,
)

#: The stream of the run seed that the split is drawn from.
SPLIT_STREAM: Final = "data.split"

LoadFunction = Callable[[Mapping[str, Any], int], "Table"]
"""``load(options, seed) -> Table``: the options validated, with defaults filled in."""

OptionCheck = Callable[[Any, str], Any]
"""``check(value, key) -> value``: validates one option that a :class:`Param` cannot
describe (a list, a null), raising :class:`ConfigError` naming ``key``."""


# ------------------------------------------------------------------------------------
# The registry
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSet:
    """One data set: how to load it and the schema of its options.

    Args:
        load: ``load(options, seed) -> Table``.
        params: The options besides ``name`` and ``val_fraction``, with their types,
            defaults and meanings.
        kind: ``"classification"`` or ``"regression"``; None if it depends on the
            options (a CSV file's target).
        doc: One line for listings.
        sizes: ``sizes(options) -> (n_features, n_outputs)`` without loading, for a
            data set whose sizes are known; None: :func:`data_sizes` loads it.
        checks: Options that a :class:`Param` cannot describe (a list of column
            names, a null), each validated by its function instead of its Param
            (which still documents it).
        check: ``check(options, key)``: rules between options (at least one row per
            class), on the validated options; raises :class:`ConfigError`.
        image_shape: The shape of one row as an image, channels first (``(1, 8, 8)``
            for digits), which a model that takes images gets its rows in; None: the
            rows are vectors only.
        splits: The load function fits on the training split (a user's table: its
            medians and vocabularies): its options also hold ``val_fraction`` and
            ``test_fraction``, and the seed draws the split (:func:`split_three`).
        own_test: The data set has its own test part (a UCR set's; its table's
            ``test_index``), so it takes no ``test_fraction``.
    """

    load: LoadFunction
    params: Mapping[str, Param] = field(default_factory=dict)
    kind: str | None = None
    doc: str = ""
    sizes: Callable[[Mapping[str, Any]], tuple[int, int]] | None = None
    checks: Mapping[str, OptionCheck] = field(default_factory=dict)
    check: Callable[[Mapping[str, Any], str], None] | None = None
    image_shape: tuple[int, ...] | None = None
    splits: bool = False
    own_test: bool = False

    def __post_init__(self) -> None:
        if self.kind not in (None, *KINDS):
            raise RegistrationError(
                f"data set kind {self.kind!r} is not one of {', '.join(KINDS)} or None"
            )
        unknown = sorted(set(self.checks) - set(self.params))
        if unknown:
            raise RegistrationError(
                f"data set checks options it does not declare in params: "
                f"{', '.join(unknown)}"
            )

    @property
    def option_names(self) -> tuple[str, ...]:
        """Every key a ``data`` node of this data set may hold besides ``name``."""
        if self.own_test:
            return (*self.params, "val_fraction")
        return (*self.params, "val_fraction", "test_fraction")


def _dataset_from(obj: Any, *, name: str, **options: Any) -> DataSet:
    """Registry coercion: a :class:`DataSet`, or a load function with the DataSet's
    other fields as keyword options (``doc`` defaults to its docstring's first line)."""
    if isinstance(obj, DataSet):
        if options:
            raise RegistrationError(f"data set {name!r}: options given with a DataSet")
        return obj
    if not callable(obj):
        raise RegistrationError(
            f"data set {name!r}: expected a load function or a DataSet, got "
            f"{type(obj).__name__}"
        )
    doc = options.pop("doc", None) or (obj.__doc__ or "").strip().split("\n")[0]
    try:
        return DataSet(load=obj, doc=doc, **options)
    except (TypeError, RegistrationError) as error:
        raise RegistrationError(f"data set {name!r}: {error}") from None


datasets: Registry[DataSet] = Registry(
    "data set", coerce=_dataset_from, on_miss=load_plugins
)
"""The data set registry: ``data=<name>`` loads the entry called ``name``."""


# ------------------------------------------------------------------------------------
# The spec
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """A run's data set, as its config names it (what ``RunSpec.extras["data"]``
    holds): plain data, no arrays.

    Attributes:
        name: The data set (an entry of :data:`datasets`).
        options: Its options, validated, with defaults filled in (lists as tuples).
        val_fraction: Share of the rows held out for validation.
        test_fraction: Share of the rows held out for a final test (never used for
            training, early stopping or a search); 0: no test split.
        fitted: In a trained run's ``spec.yaml``, what training learnt of the data:
            its kind, sizes, feature and class names and the fitted standardization
            (see :data:`FITTED_KEYS`); None before training. A spec with it knows
            its sizes without loading the data.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    fitted: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``data`` node: :func:`parse_data` turns it back into an equal spec."""
        options = {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in self.options.items()
        }
        node = {
            "name": self.name,
            **options,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
        }
        if self.fitted is not None:
            node["fitted"] = dict(self.fitted)
        return node


#: The keys of a trained run's ``data.fitted`` record; the first three are required.
FITTED_KEYS: Final = (
    "kind",
    "features",
    "outputs",
    "rows",
    "feature_names",
    "class_names",
    "standardize",
    "destandardize",
    "columns",
    "sample_shape",
)


def _parse_fitted(node: Any, key: str) -> dict[str, Any]:
    """A trained run's ``data.fitted`` record, checked where its sizes are read."""
    path = f"{key}.fitted"
    require_mapping(node, path, "the record of a trained run")
    check_keys(node, FITTED_KEYS, path, "key")
    record = dict(node)
    if record.get("kind") not in KINDS:
        raise ConfigError(
            f"{path}.kind",
            f"{record.get('kind')!r} is not a kind of data.",
            f"Use one of: {', '.join(KINDS)}.",
        )
    for size in ("features", "outputs"):
        Param(int, REQUIRED, low=1).validate(record.get(size), f"{path}.{size}")
    return record


def parse_data(node: Any, key: str = "data") -> DataSpec:
    """The ``data`` node, checked: a data set's name, or ``{name: ..., <options>}``.

    Args:
        node: The node (plain data): a name stands for that data set with its
            defaults.
        key: Its config path.

    Raises:
        UnknownNameError: An unknown data set or option (names the closest).
        ConfigError: A value is not allowed; the message names ``<key>.<option>``.
    """
    if isinstance(node, str):
        node = {"name": node}
    if not isinstance(node, Mapping):
        raise ConfigError(
            key,
            f"{node!r} is not a data set.",
            f"Write {key}=<name>; data sets: {', '.join(datasets.names())}.",
        )
    if node.get("name") is None:
        raise ConfigError(
            f"{key}.name",
            "no data set is named.",
            f"Set {key}=<name> (valid: {', '.join(datasets.names())}).",
        )
    name = node["name"]
    if not isinstance(name, str):
        raise ConfigError(
            f"{key}.name",
            f"{name!r} is not a data set name.",
            f"Use one of: {', '.join(datasets.names())}.",
        )
    entry = datasets.get(name, key=f"{key}.name")
    what = f"data set {name!r}"
    given = {k: v for k, v in node.items() if k != "name"}
    fitted = given.pop("fitted", None)
    if entry.own_test and given.get("test_fraction", 0) != 0:
        raise ConfigError(
            f"{key}.test_fraction",
            f"data={name} keeps its own test part, so test_fraction "
            f"{given['test_fraction']!r} does not apply.",
            f"Leave {key}.test_fraction out.",
        )
    if entry.own_test:
        given.pop("test_fraction", None)  # 0, as a saved spec writes it
    check_keys(given, entry.option_names, key, "parameter", where=f" for {what}")
    val_fraction = _val_fraction(given.pop("val_fraction", VAL_FRACTION.default), key)
    test_fraction = _test_fraction(
        given.pop("test_fraction", TEST_FRACTION.default), val_fraction, key
    )
    plain = {k: p for k, p in entry.params.items() if k not in entry.checks}
    values = validate_params(
        {k: v for k, v in given.items() if k in plain}, plain, key, what
    )
    for option, check in entry.checks.items():
        param, path = entry.params[option], f"{key}.{option}"
        value = given.get(option, param.default)
        if value is REQUIRED:
            raise ConfigError(
                path, f"{what} needs {option!r}.", f"Set {path}= ({param.doc})."
            )
        values[option] = check(value, path)
    options = {option: values[option] for option in entry.params if option in values}
    if entry.check is not None:
        entry.check(options, key)
    return DataSpec(
        name=name,
        options=options,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        fitted=None if fitted is None else _parse_fitted(fitted, key),
    )


def _val_fraction(value: Any, key: str) -> float:
    path = f"{key}.val_fraction"
    number = Param(float, VAL_FRACTION.default).validate(value, path)
    if not 0 < number < 1:
        raise ConfigError(
            path,
            f"{number!r} is outside (0, 1).",
            "It is the share of the rows held out for validation: a number strictly "
            "between 0 and 1 (default 0.2).",
        )
    return float(number)


def _test_fraction(value: Any, val_fraction: float, key: str) -> float:
    path = f"{key}.test_fraction"
    number = float(Param(float, TEST_FRACTION.default).validate(value, path))
    if not 0 <= number < 1:
        raise ConfigError(
            path,
            f"{number!r} is outside [0, 1).",
            "It is the share of all rows held out for a final test: 0 (none, the "
            "default) or more, below 1.",
        )
    if number + val_fraction >= 1:
        raise ConfigError(
            path,
            f"{number:g} + data.val_fraction {val_fraction:g} = "
            f"{number + val_fraction:g} leaves no row to train on.",
            "Both are shares of all rows: keep their sum below 1 (e.g. "
            "data.val_fraction=0.2 data.test_fraction=0.2).",
        )
    return number


# ------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Table:
    """A loaded data set, before any split.

    Construction checks the contract and stores read-only, C-contiguous arrays, so a
    cached table cannot be changed by a caller.

    Attributes:
        name: The data set.
        kind: ``"classification"`` or ``"regression"``.
        features: float64 ``[rows, n_features]``, all finite; for a user's table
            (``columns`` set), float32, one number per feature column as the network's
            ``encode_table`` layer takes it: NaN where a cell is missing, a category's
            code (see :mod:`annfactory.columns`).
        target: classification: int64 class indices in ``[0, n_classes)``;
            regression: float64, all finite. ``[rows]``.
        feature_names: One per feature column.
        class_names: classification: the class labels as strings, in index order
            (at least two); regression: None.
        columns: A user's table: its feature columns and what was fitted on the
            training rows; None for a data set of numbers only.
        notes: What reading the table decided that a run prints once (columns left
            out, rows without a target).
        sample_shape: The shape of one row as the network takes it, with its layout
            (a UCR set's ``[time, dimensions]``, a sequence); None: a vector, or the
            data set's image shape.
        test_index: The rows of a test part that the data set fixes (a UCR set's own
            test part): the test split, whatever ``data.test_fraction``; the
            validation rows come from the others. None: drawn by the seed.
        time_gap: Rows in time order (``data=series``'s windows): the split takes
            consecutive blocks, train, validation, test, and leaves out this many
            rows before each later block (a forecast's horizon less one). None:
            the rows are drawn by the seed.
        baseline: regression: each row's forecast by a reference method, in the
            target's units (``data=series``: the seasonal-naive forecast), scored
            beside the network; None: no reference.
        baseline_name: What ``baseline`` is, in words.
    """

    name: str
    kind: str
    features: npt.NDArray[np.floating[Any]]
    target: npt.NDArray[Any]
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...] | None = None
    columns: TableColumns | None = None
    notes: tuple[str, ...] = ()
    sample_shape: tuple[int, ...] | None = None
    test_index: npt.NDArray[np.int64] | None = None
    time_gap: int | None = None
    baseline: npt.NDArray[np.float64] | None = None
    baseline_name: str = ""

    def __post_init__(self) -> None:
        import numpy as np

        what = f"data set {self.name!r}"
        if self.kind not in KINDS:
            raise ValueError(f"{what}: kind {self.kind!r} is not one of {KINDS}")
        classes = self.kind == "classification"
        # A user's table keeps its float32 codes: a million rows of 20 columns are
        # 80 MB, not 160.
        features = _frozen(
            self.features, np.float64 if self.columns is None else np.float32
        )
        target = _frozen(self.target, np.int64 if classes else np.float64)
        if features.ndim != 2 or target.shape != (features.shape[0],):
            raise ValueError(
                f"{what}: features {features.shape} and target {target.shape} are not "
                "[rows, n_features] and [rows]"
            )
        finite = np.isfinite(features) | (
            np.isnan(features) if self.columns is not None else False
        )
        if not finite.all() or not np.isfinite(target).all():
            what_may = "finite or NaN (missing)" if self.columns else "finite"
            raise ValueError(f"{what}: features must be {what_may}, targets finite")
        if self.columns is not None and self.columns.names != tuple(self.feature_names):
            raise ValueError(f"{what}: the feature names are not the columns'")
        if len(self.feature_names) != features.shape[1]:
            raise ValueError(f"{what}: one feature name per column is needed")
        if classes:
            names = self.class_names
            if names is None or len(names) < 2:
                raise ValueError(f"{what}: a classification needs two class names")
            if target.size and (target.min() < 0 or target.max() >= len(names)):
                raise ValueError(f"{what}: class indices outside [0, {len(names)})")
        elif self.class_names is not None:
            raise ValueError(f"{what}: a regression has no class names")
        if self.baseline is not None:
            baseline = _frozen(self.baseline, np.float64)
            if classes or baseline.shape != target.shape:
                raise ValueError(
                    f"{what}: a baseline is one forecast per regression row"
                )
            object.__setattr__(self, "baseline", baseline)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(self.class_names))

    @property
    def rows(self) -> int:
        """The number of rows (samples)."""
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        """The input size of a model that learns it."""
        return int(self.features.shape[1])

    @property
    def input_width(self) -> int:
        """The inputs of the layer after the first: the encoded width of a user's
        table, else :attr:`n_features`."""
        return self.columns.width if self.columns is not None else self.n_features

    @property
    def n_outputs(self) -> int:
        """The output size: the number of classes, or 1 for regression."""
        return len(self.class_names) if self.class_names is not None else 1


def _frozen(values: npt.ArrayLike, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A read-only C-contiguous copy (the caller's array stays writable); an array
    that is already read-only, C-contiguous and of ``dtype`` is kept as it is (a
    user's table hands its codes over so: 88 MB for a million rows of 22 columns)."""
    import numpy as np

    if (
        isinstance(values, np.ndarray)
        and values.dtype == dtype
        and values.flags.c_contiguous
        and not values.flags.writeable
        and values.base is None  # not a view of an array someone may still write
    ):
        return values
    array = np.array(values, dtype=dtype, order="C", copy=True)
    array.flags.writeable = False
    return array


def load_table(spec: DataSpec, seed: int, dtype: str | None = None) -> Table:
    """Load the data set ``spec`` names (generated ones are drawn from ``seed``).

    Args:
        spec: The data set.
        seed: The run seed.
        dtype: The dtype the values go into (``"float32"``); a value too large for
            it is an error. None: not checked.

    Raises:
        ConfigError: The data cannot be loaded (a missing file, a bad cell, a value
            that the dtype cannot hold); the message names ``data.<option>``.
    """
    import dataclasses

    entry = datasets.get(spec.name, key="data.name")
    options = spec.options
    if entry.splits:
        options = {
            **options,
            "val_fraction": spec.val_fraction,
            "test_fraction": spec.test_fraction,
        }
    table = entry.load(options, seed)
    if table.name != spec.name:
        table = dataclasses.replace(table, name=spec.name)
    if dtype is not None:
        _check_range(table, spec, dtype)
    return table


def load_user_table(
    path: Path,
    *,
    name: str,
    target: str,
    features: Sequence[str] | None = None,
    types: Mapping[str, str] | None = None,
    kind: str | None = None,
    delimiter: str = ",",
    na_values: Sequence[str] | None = None,
    max_onehot: int = 16,
    min_frequency: int = 1,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    format: str | None = None,
) -> Table:
    """A user's table (CSV, TSV, gzip'd CSV or Parquet) as a :class:`Table` whose
    columns are fitted on the training split that :func:`split_three` draws for
    ``seed``, ``val_fraction`` and ``test_fraction``.

    Reads with :func:`~annfactory.table_reading.read_table`, infers each column's
    type (``types`` overrides), leaves out the rows without a target (a note says
    how many), fits medians, scales and vocabularies on the training rows only, and
    encodes every row as the network's ``encode_table`` layer takes it: one number
    per feature column (NaN where missing, a category's code).

    Raises:
        ConfigError: The file cannot be read, a column is mixed or unknown, the
            target has no value; the message names ``data.<option>``.
    """
    import numpy as np
    import pyarrow as pa

    from annfactory.table_fitting import (
        encode_cells,
        fit_columns,
        infer_types,
        target_column,
    )
    from annfactory.table_reading import NA_VALUES, read_table

    markers = tuple(NA_VALUES if na_values is None else na_values)
    arrow = read_table(path, delimiter=delimiter, na_values=markers, format=format)
    pool = pa.default_memory_pool()
    column_types, ignored, notes = infer_types(
        arrow, target=target, features=features, types=types or {}, na_values=markers
    )
    if not column_types:
        raise _no_feature_column(path, target, {}, {})
    pool.release_unused()  # the inference's temporaries (whole text columns)
    labels = target_column(arrow, target, kind=kind)
    notes.extend(labels.notes)
    # The rows without a target are left out of the codes, not of the table: a
    # message about a cell then names its row in the file.
    kept = np.flatnonzero(~labels.missing)
    values = labels.values[kept]
    if labels.missing_count:
        notes.append(
            f"{labels.missing_count} of {arrow.num_rows} rows have no {target!r}: "
            "left out."
        )
    rows = len(values)
    split_view = Table(
        name, labels.kind, np.zeros((rows, 0)), values, (), labels.class_names
    )
    train_rows, _, _ = split_three(split_view, val_fraction, test_fraction, seed)
    columns = fit_columns(
        arrow,
        column_types,
        rows=kept[train_rows],
        max_onehot=max_onehot,
        min_frequency=min_frequency,
        ignored=ignored,
    )
    if not columns.features:
        raise _no_feature_column(path, target, columns.ignored, column_types)
    codes, _ = encode_cells(arrow, columns)
    if labels.missing_count:
        codes = np.ascontiguousarray(codes[kept])
    del arrow  # the cells are codes now: give pyarrow's buffers back
    pa.default_memory_pool().release_unused()
    codes.flags.writeable = False  # the table takes it over without a copy
    return Table(
        name,
        labels.kind,
        codes,
        values,
        columns.names,
        labels.class_names,
        columns=columns,
        notes=tuple(notes),
    )


def _no_feature_column(
    path: Path, target: str, ignored: Mapping[str, str], types: Mapping[str, str]
) -> ConfigError:
    """Every feature column is left out (or there is none besides the target)."""
    from annfactory.table_fitting import types_override

    shown = repr(str(path))
    if not types:
        return ConfigError(
            "data.features",
            f"{shown} has no column besides the target {target!r}.",
            "Add the feature columns to the file.",
        )
    why = {
        "ignore": "ignore in data.types",
        "identifier": "an identifier",
        "empty": "empty in every training row",
    }
    listed = ", ".join(
        f"{name} ({why.get(reason, reason)})" for name, reason in ignored.items()
    )
    kept = [name for name, reason in ignored.items() if reason == "identifier"]
    fix = (
        f"Keep one: {types_override(kept[0], 'categorical')}."
        if kept
        else "Give the file a feature column that holds values."
    )
    return ConfigError(
        "data.features", f"every feature column of {shown} is left out: {listed}.", fix
    )


def _check_range(table: Table, spec: DataSpec, dtype: str) -> None:
    """Every feature (and a regression target) fits ``dtype``: 1e300 is finite in
    float64 but infinite in float32, where training would only diverge."""
    import numpy as np
    import torch

    largest = float(torch.finfo(getattr(torch, dtype)).max)
    checked = [(table.features, tuple(table.feature_names))]
    if table.kind == "regression":
        checked.append((table.target.reshape(-1, 1), ("<target>",)))
    for values, names in checked:
        if values.dtype == np.float32 and largest >= np.finfo(np.float32).max:
            continue  # a float32 array holds nothing too large for float32
        with np.errstate(invalid="ignore"):
            too_large = np.abs(values) > largest  # a missing cell (NaN) is not
        if too_large.any():
            # The first in file order.
            row, column = (int(i) for i in np.argwhere(too_large)[0])
            value = float(values[row, column])
            _too_large(spec, table, dtype, largest, names[column], value, row)


def _too_large(
    spec: DataSpec,
    table: Table,
    dtype: str,
    largest: float,
    name: str,
    value: float,
    row: int,
) -> None:
    allowed = f"{dtype}, the run's dtype (it holds values within ±{largest:.2g})"
    if table.columns is not None:
        # A user's table: the rows are the file's data rows that have a target.
        target = name == "<target>"
        name = spec.options["target"] if target else name
        wider = " or use dtype=float32," if largest < 1e38 else ""
        raise ConfigError(
            "data.target" if target else "data.path",
            f"{spec.options['path']!r}, column {name!r}: {value:g} is "
            f"too large for {allowed}.",
            f"Rescale the column (e.g. to other units),{wider} or fix the cell.",
        )
    name = "the target" if name == "<target>" else name
    raise ConfigError(
        "data",
        f"data={spec.name}, row {row + 1}, {name!r}: {value:g} is too "
        f"large for {allowed}.",
        "Rescale the data set's values.",
    )


def data_sizes(spec: DataSpec, seed: int) -> tuple[int, int, str]:
    """``(n_features, n_outputs, kind)`` of the data set ``spec`` names.

    Known without loading for the bundled and generated sets; a CSV file is loaded
    (and kept, so :func:`load_table` does not read it again).

    Raises:
        ConfigError: As :func:`load_table`.
    """
    if spec.fitted is not None:
        fitted = spec.fitted
        return int(fitted["features"]), int(fitted["outputs"]), str(fitted["kind"])
    entry = datasets.get(spec.name, key="data.name")
    if entry.sizes is not None and entry.kind is not None:
        n_features, n_outputs = entry.sizes(spec.options)
        return n_features, n_outputs, entry.kind
    table = load_table(spec, seed)
    return table.input_width, table.n_outputs, table.kind


def data_sample_shape(spec: DataSpec, seed: int) -> tuple[int, ...] | None:
    """The shape of one row of the data set ``spec`` names as a sequence, with its
    layout (a UCR set's ``[time, dimensions]``); None for vectors and images. Read
    from a trained run's record, else from the table (a UCR set is loaded once)."""
    if spec.fitted is not None:
        shape = spec.fitted.get("sample_shape")
        return None if shape is None else with_layout(shape, SEQUENCE)
    entry = datasets.get(spec.name, key="data.name")
    if entry.sizes is not None or entry.image_shape is not None:
        return None
    return load_table(spec, seed).sample_shape


def data_image_shape(spec: DataSpec) -> tuple[int, ...] | None:
    """The shape of one row of the data set ``spec`` names as an image, channels
    first (``(1, 8, 8)`` for digits); None if its rows are vectors only."""
    return datasets.get(spec.name, key="data.name").image_shape


# ------------------------------------------------------------------------------------
# Splitting and standardization
# ------------------------------------------------------------------------------------


def split_rows(
    table: Table, val_fraction: float, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(train_index, val_index)``: :func:`split_three` without a test split."""
    train, val, _ = split_three(table, val_fraction, 0.0, seed)
    return train, val


def split_three(
    table: Table, val_fraction: float, test_fraction: float, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(train_index, val_index, test_index)``: the rows of each split, from a
    permutation drawn from the run seed's ``data.split`` stream.

    ``round(rows * test_fraction)`` rows go to the test split first, then
    ``round(rows * val_fraction)`` of the others to validation (both are shares of
    all rows). For classification each split is stratified, as scikit-learn's
    ``train_test_split(stratify=y)``: each class is split in proportion (largest
    remainders get the rounding), and keeps at least one training row. The index
    arrays are in the permutation's order. Without a test split, the training and
    validation rows are those of earlier releases, bit for bit.

    Raises:
        ConfigError: The table is too small for the split (no validation row, no
            training row, a class without a training row); names
            ``data.val_fraction`` or ``data.test_fraction``.
    """
    import numpy as np
    import torch

    from annfactory.seeding import seeded_generator

    if table.test_index is not None:
        return _split_fixed_test(table, val_fraction, test_fraction, seed)
    if table.time_gap is not None:
        return _split_in_time(table, val_fraction, test_fraction, table.time_gap)
    rows = table.rows
    n_val, n_test = _split_counts(
        rows, val_fraction, test_fraction, "use a data set with more rows"
    )
    key = "data.val_fraction"
    share = f"{val_fraction:g} of {rows} rows"
    if n_val + n_test >= rows:
        held = share if not n_test else f"{share} (and {n_test} test rows)"
        raise ConfigError(
            key,
            f"{held} leaves no training row.",
            "Lower data.val_fraction, or use a data set with more rows.",
        )
    permutation = torch.randperm(
        rows, generator=seeded_generator(seed, SPLIT_STREAM)
    ).numpy()
    # By position in the permutation: the test rows, then the validation rows.
    test_share = f"{test_fraction:g} of {rows} rows for the test split"
    is_test = _held_out(
        table, permutation, None, n_test, "data.test_fraction", test_share
    )
    is_val = _held_out(table, permutation, is_test, n_val, key, share)
    kept = ~(is_val | is_test)
    return (
        permutation[kept].astype(np.int64),
        permutation[is_val].astype(np.int64),
        permutation[is_test].astype(np.int64),
    )


def _split_fixed_test(
    table: Table, val_fraction: float, test_fraction: float, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """:func:`split_three` for a table whose test part is fixed (a UCR set's): the
    validation rows are ``round(train part * val_fraction)`` of the others,
    stratified, drawn from the run seed's ``data.split`` stream."""
    import numpy as np
    import torch

    from annfactory.seeding import seeded_generator

    assert table.test_index is not None
    if test_fraction > 0:
        raise ConfigError(
            "data.test_fraction",
            f"data={table.name} keeps its own test part ({len(table.test_index)} "
            f"rows), so {test_fraction:g} would hold out a second one.",
            "Leave data.test_fraction out (0).",
        )
    rows = table.rows
    permutation = torch.randperm(
        rows, generator=seeded_generator(seed, SPLIT_STREAM)
    ).numpy()
    is_test = np.isin(permutation, table.test_index)
    train_part = rows - int(is_test.sum())
    n_val = round(train_part * val_fraction)
    key = "data.val_fraction"
    share = f"{val_fraction:g} of the {train_part} rows of the train part"
    if n_val < 1 or n_val >= train_part:
        problem = "no validation row" if n_val < 1 else "no training row"
        raise ConfigError(
            key,
            f"{share} leaves {problem}.",
            "Use a share strictly between "
            f"{1 / train_part:.3g} and {1 - 1 / train_part:.3g}.",
        )
    is_val = _held_out(table, permutation, is_test, n_val, key, share)
    kept = ~(is_val | is_test)
    return (
        permutation[kept].astype(np.int64),
        permutation[is_val].astype(np.int64),
        np.sort(permutation[is_test]).astype(np.int64),
    )


def _split_counts(
    rows: int, val_fraction: float, test_fraction: float, more_rows: str
) -> tuple[int, int]:
    """``(n_val, n_test)``: the shares of ``rows``, rounded; a share that rounds
    to no row is refused (``more_rows``: how to get more, in the message)."""
    n_test = round(rows * test_fraction)
    n_val = round(rows * val_fraction)
    if test_fraction > 0 and n_test < 1:
        raise ConfigError(
            "data.test_fraction",
            f"{test_fraction:g} of {rows} rows rounds to no test row.",
            f"Raise data.test_fraction, set it to 0 (no test split), or {more_rows}.",
        )
    if n_val < 1:
        raise ConfigError(
            "data.val_fraction",
            f"{val_fraction:g} of {rows} rows rounds to no validation row.",
            f"Raise data.val_fraction, or {more_rows}.",
        )
    return n_val, n_test


def _split_in_time(
    table: Table, val_fraction: float, test_fraction: float, gap: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """:func:`split_three` for rows in time order: the last ``round(rows *
    test_fraction)`` rows test, the ``round(rows * val_fraction)`` before them
    validate, the first ones train, and ``gap`` rows before each later block are
    left out. The seed does not enter."""
    import numpy as np

    rows = table.rows
    n_val, n_test = _split_counts(
        rows, val_fraction, test_fraction, "use a longer series"
    )
    test_start = rows - n_test
    val_end = test_start - (gap if n_test else 0)
    train_end = val_end - n_val - gap
    if train_end < 1:
        left = f" and {gap} left out before each later part" if gap else ""
        raise ConfigError(
            "data.val_fraction",
            f"{rows} rows leave no training row: {n_val} validate and {n_test} "
            f"test{left}.",
            "Lower data.val_fraction or data.test_fraction, shorten data.window or "
            "data.horizon, or use a longer series.",
        )
    return (
        np.arange(train_end, dtype=np.int64),
        np.arange(val_end - n_val, val_end, dtype=np.int64),
        np.arange(test_start, rows, dtype=np.int64),
    )


def _held_out(
    table: Table,
    permutation: npt.NDArray[Any],
    taken: npt.NDArray[np.bool_] | None,
    count: int,
    key: str,
    share: str,
) -> npt.NDArray[np.bool_]:
    """``count`` rows of the permutation not ``taken`` yet, by position: the first
    ones, or for classification the first ones of each class in proportion."""
    import numpy as np

    rows = table.rows
    free = np.ones(rows, dtype=bool) if taken is None else ~taken
    held = np.zeros(rows, dtype=bool)
    if count == 0:
        return held
    positions = np.flatnonzero(free)
    if table.kind != "classification":
        held[positions[:count]] = True
        return held
    shuffled = table.target[permutation[positions]]
    per_class = _stratified_counts(
        np.bincount(shuffled, minlength=table.n_outputs), count
    )
    if per_class is None:
        raise ConfigError(
            key,
            f"{share} leaves {len(positions) - count} training rows for "
            f"{table.n_outputs} classes, and each class needs one.",
            f"Lower {key}, or use a data set with more rows.",
        )
    for label, n in enumerate(per_class):
        held[positions[np.flatnonzero(shuffled == label)[:n]]] = True
    return held


def _stratified_counts(counts: npt.NDArray[np.int64], n_val: int) -> list[int] | None:
    """Validation rows per class: in proportion to ``counts``, summing to ``n_val``,
    each class keeping a training row; None if that cannot be done."""
    rows = int(counts.sum())
    exact = [int(count) * n_val / rows for count in counts]
    cap = [max(int(count) - 1, 0) for count in counts]
    share = [
        min(math.floor(value), limit) for value, limit in zip(exact, cap, strict=True)
    ]
    left = n_val - sum(share)
    if left > sum(cap) - sum(share):
        return None
    # Largest remainder first, then the lower class index: deterministic.
    order = sorted(range(len(counts)), key=lambda c: (share[c] - exact[c], c))
    while left > 0:
        for label in order:
            if left and share[label] < cap[label]:
                share[label] += 1
                left -= 1
    return share


@dataclass(frozen=True, eq=False)
class Standardization:
    """``(values - mean) / scale``, fitted on the training rows.

    Attributes:
        mean: Per column (or a scalar array for one column of values).
        scale: The standard deviation per column (population, as scikit-learn's
            ``StandardScaler``); 1.0 for a constant column, which is left unscaled.
    """

    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]

    def to_dict(self) -> dict[str, list[float]]:
        """``{"mean": [...], "scale": [...]}`` (plain floats, for ``spec.yaml``)."""
        import numpy as np

        return {
            "mean": [float(value) for value in np.atleast_1d(self.mean)],
            "scale": [float(value) for value in np.atleast_1d(self.scale)],
        }

    def transform(self, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(values - mean) / scale``."""
        import numpy as np

        return (np.asarray(values, dtype=np.float64) - self.mean) / self.scale

    def inverse(self, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``values * scale + mean``: standardized values back in their own units."""
        import numpy as np

        return np.asarray(values, dtype=np.float64) * self.scale + self.mean


def fit_standardization(
    values: npt.ArrayLike, sample_shape: tuple[int, ...] | None = None
) -> Standardization:
    """The mean and scale of ``values`` (``[rows, columns]`` or ``[rows]``).

    A column whose values are all equal, or whose spread is within rounding of its
    mean, gets scale 1.0: dividing by (almost) zero would blow it up.

    Args:
        values: The rows.
        sample_shape: With a shape of more than one dimension (``(1, 8, 8)``), the
            rows are samples of that shape, channels first, and each channel gets one
            mean and scale over all its positions, as images are standardized; for a
            sequence ``[time, features]`` (its layout), each feature over the steps.

    Raises:
        ValueError: No rows.
    """
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    if sample_shape is not None and layout_of(sample_shape) == SEQUENCE:
        # [rows, T * F] -> [rows * T, F]: one column per feature, over the steps.
        array = array.reshape(-1, sample_shape[-1])
    elif sample_shape is not None and len(sample_shape) > 1:
        # [rows, C, positions] -> [rows * positions, C]: one column per channel.
        channels = sample_shape[0]
        array = array.reshape(len(array), channels, -1).transpose(0, 2, 1)
        array = array.reshape(-1, channels)
    if array.ndim not in (1, 2) or array.shape[0] == 0:
        raise ValueError(f"cannot standardize values of shape {array.shape}")
    mean = array.mean(axis=0)
    std = array.std(axis=0)
    equal = np.ptp(array, axis=0) == 0
    # The value itself, not its mean up to rounding: a constant column becomes 0.
    mean = np.where(equal, array[0], mean)
    tiny = 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)
    scale = np.where(equal | (std <= tiny), 1.0, std)
    return Standardization(mean=np.asarray(mean), scale=np.asarray(scale))


# ------------------------------------------------------------------------------------
# Bundled data sets (scikit-learn's, read from the installed package)
# ------------------------------------------------------------------------------------


def _bundled(name: str, kind: str, **arguments: Any) -> Table:
    """scikit-learn's ``load_<name>`` as a table (no download: the files ship with
    the package)."""
    from sklearn import datasets as sklearn_datasets  # type: ignore[import-untyped]

    bunch = getattr(sklearn_datasets, f"load_{name}")(**arguments)
    classes = kind == "classification"
    return Table(
        name,
        kind,
        bunch.data,
        bunch.target,
        tuple(str(feature) for feature in bunch.feature_names),
        tuple(str(label) for label in bunch.target_names) if classes else None,
    )


def _known(n_features: int, n_outputs: int) -> Callable[[Mapping[str, Any]], Any]:
    return lambda options: (n_features, n_outputs)


@datasets.register(
    "digits", kind="classification", sizes=_known(64, 10), image_shape=(1, 8, 8)
)
def digits(options: Mapping[str, Any], seed: int) -> Table:
    """8x8 images of handwritten digits: 1797 rows, 64 pixels (0 to 16), 10 classes."""
    return _bundled("digits", "classification")


@datasets.register("iris", kind="classification", sizes=_known(4, 3))
def iris(options: Mapping[str, Any], seed: int) -> Table:
    """Fisher's iris flowers: 150 rows, 4 measurements in cm, 3 species."""
    return _bundled("iris", "classification")


@datasets.register("wine", kind="classification", sizes=_known(13, 3))
def wine(options: Mapping[str, Any], seed: int) -> Table:
    """Wines of three cultivars: 178 rows, 13 chemical measurements, 3 classes."""
    return _bundled("wine", "classification")


@datasets.register("breast_cancer", kind="classification", sizes=_known(30, 2))
def breast_cancer(options: Mapping[str, Any], seed: int) -> Table:
    """Breast tumour cell nuclei: 569 rows, 30 features, malignant or benign."""
    return _bundled("breast_cancer", "classification")


@datasets.register("diabetes", kind="regression", sizes=_known(10, 1))
def diabetes(options: Mapping[str, Any], seed: int) -> Table:
    """Diabetes progression after one year: 442 rows, 10 raw features, regression."""
    # scaled=False: the features in their own units (age in years); the run
    # standardizes them itself, and the saved model takes raw rows.
    return _bundled("diabetes", "regression", scaled=False)


# ------------------------------------------------------------------------------------
# Generated data sets (drawn from the run seed)
# ------------------------------------------------------------------------------------

_NOISE: Final = Param(float, 0.1, "std of the Gaussian noise on each coordinate", low=0)


@datasets.register(
    "moons",
    kind="classification",
    sizes=_known(2, 2),
    params={
        "n_samples": Param(int, 1000, "rows, split evenly between the moons", low=2),
        "noise": _NOISE,
    },
)
def moons(options: Mapping[str, Any], seed: int) -> Table:
    """Two interleaving half circles (scikit-learn's make_moons), from the seed."""
    from sklearn.datasets import make_moons  # type: ignore[import-untyped]

    from annfactory.seeding import parameter_seed

    features, target = make_moons(
        n_samples=options["n_samples"],
        noise=options["noise"],
        random_state=parameter_seed(seed, "data.moons") % 2**32,
    )
    return Table("moons", "classification", features, target, ("x", "y"), ("0", "1"))


#: Turns of each spiral arm from the centre to radius 1.
SPIRAL_TURNS: Final = 1.25


def _spiral_check(options: Mapping[str, Any], key: str) -> None:
    if options["n_samples"] < options["n_classes"]:
        raise ConfigError(
            f"{key}.n_samples",
            f"{options['n_samples']} rows cannot fill {options['n_classes']} arms.",
            f"Set {key}.n_samples to at least {key}.n_classes.",
        )


@datasets.register(
    "spirals",
    kind="classification",
    sizes=lambda options: (2, options["n_classes"]),
    check=_spiral_check,
    params={
        "n_samples": Param(int, 1000, "rows, split evenly between the arms", low=2),
        "n_classes": Param(int, 2, "spiral arms, one class each", low=2),
        "noise": Param(
            float, 0.05, "std of the Gaussian noise on each coordinate", low=0
        ),
    },
)
def spirals(options: Mapping[str, Any], seed: int) -> Table:
    """Interleaved spiral arms in 2-D, one class each, drawn from the seed."""
    import torch

    from annfactory.seeding import seeded_generator

    generator = seeded_generator(seed, "data.spirals")
    rows, arms = options["n_samples"], options["n_classes"]
    labels = torch.arange(rows) % arms
    offset = labels.to(torch.float64) / arms
    # sqrt: points spread evenly along the arm, not crowded at the centre.
    radius = torch.rand(rows, generator=generator, dtype=torch.float64).sqrt()
    angle = 2 * math.pi * (offset + SPIRAL_TURNS * radius)
    points = torch.stack((radius * angle.cos(), radius * angle.sin()), dim=1)
    noise = torch.randn(rows, 2, generator=generator, dtype=torch.float64)
    points = points + options["noise"] * noise
    return Table(
        "spirals",
        "classification",
        points.numpy(),
        labels.numpy(),
        ("x", "y"),
        tuple(str(label) for label in range(arms)),
    )


# ------------------------------------------------------------------------------------
# Time series: the UCR/UEA archive's sets that sktime ships (annfactory[sequences])
# ------------------------------------------------------------------------------------


def _ucr_dataset(value: Any, key: str) -> str:
    """A set sktime ships, by name (the closest and the list if not); sktime itself,
    or how to install it."""
    from annfactory.ucr import ucr_names

    name = Param(str, REQUIRED).validate(value, key)
    names = ucr_names()
    if name not in names:
        raise UnknownNameError(key, "UCR/UEA set", name, names)
    return str(name)


@datasets.register(
    "ucr",
    kind="classification",
    params={
        "dataset": Param(
            str,
            "ItalyPowerDemand",
            "a UCR/UEA set that sktime ships (ItalyPowerDemand, GunPoint, ArrowHead, "
            "BasicMotions, JapaneseVowels, ...)",
        ),
    },
    checks={"dataset": _ucr_dataset},
    own_test=True,
)
def ucr(options: Mapping[str, Any], seed: int) -> Table:
    """A UCR/UEA time-series classification set that sktime ships (no download): rows
    of ``[time, dimensions]``, the archive's own test part kept."""
    import numpy as np

    from annfactory.ucr import read_ucr

    series = read_ucr(options["dataset"], key="data.dataset")
    train, test = series.train_x, series.test_x
    _, steps, dimensions = train.shape
    notes: tuple[str, ...] = ()
    if series.padded:
        shortest, longest = series.lengths
        notes = (
            f"data=ucr {series.name}: series of {shortest} to {longest} steps, padded "
            f"at the end to {longest} by repeating their last step",
        )
    return Table(
        "ucr",
        "classification",
        np.concatenate((train, test)).reshape(len(train) + len(test), -1),
        np.concatenate((series.train_y, series.test_y)),
        tuple(
            f"t{step}" if dimensions == 1 else f"t{step}.d{dimension}"
            for step in range(steps)
            for dimension in range(dimensions)
        ),
        series.class_names,
        notes=notes,
        sample_shape=with_layout((steps, dimensions), SEQUENCE),
        test_index=np.arange(len(train), len(train) + len(test), dtype=np.int64),
    )


# ------------------------------------------------------------------------------------
# A table of the user's: CSV (TSV, gzip'd) or Parquet
# ------------------------------------------------------------------------------------


def _column_name(value: Any, key: str) -> str:
    # data.target=3 reaches us as the integer 3: a header may name a column "3".
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            key, f"{value!r} is not a column name.", "Give a column of the header row."
        )
    return value.strip()


def _file_path(value: Any, key: str) -> str:
    # data.path= (an empty value) would read as the directory ".".
    path = Param(str, REQUIRED).validate(value, key)
    if not str(path).strip():
        raise ConfigError(
            key,
            "is empty.",
            "Give the path of a data file, relative to the directory the command "
            "runs in.",
        )
    return str(path)


def _feature_list(value: Any, key: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(
            key,
            f"{value!r} is not a list of column names.",
            f"Write {key}=[a,b] (or null: every column but the target).",
        )
    if not value:
        raise ConfigError(
            key,
            "the list of columns is empty.",
            f"List at least one column, or set {key}=null for every column but the "
            "target.",
        )
    names = tuple(_column_name(item, key) for item in value)
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ConfigError(key, f"column {name!r} is listed twice.", "List it once.")
    return names


def _kind(value: Any, key: str) -> str | None:
    if value is None or value in KINDS:
        return value  # type: ignore[no-any-return]
    suggestion = closest_name(value, KINDS)
    guess = f" Did you mean {suggestion!r}?" if suggestion else ""
    raise ConfigError(
        key,
        f"unknown kind {value!r}.{guess}",
        f"Allowed: {', '.join(KINDS)}, or null (inferred from the target column).",
    )


#: What ``data.delimiter=tab`` stands for.
_DELIMITER_WORDS: Final = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}


def delimiter_option(value: Any, key: str) -> str:
    """``data.delimiter``: one character, or comma, semicolon, tab or pipe."""
    if isinstance(value, str) and value.lower() in _DELIMITER_WORDS:
        return _DELIMITER_WORDS[value.lower()]
    if isinstance(value, str) and len(value) == 1 and value not in '"\r\n':
        return value
    raise ConfigError(
        key,
        f"{value!r} is not one character to separate cells.",
        f"Give one character, or one of: {', '.join(_DELIMITER_WORDS)} "
        f"(e.g. {key}=semicolon).",
    )


def _types(value: Any, key: str) -> dict[str, str] | None:
    """``data.types``: column name -> numeric, categorical or ignore."""
    from annfactory.columns import COLUMN_TYPES
    from annfactory.errors import UnknownNameError

    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(
            key,
            f"{value!r} is not a mapping of column names to types.",
            f"Write '{key}={{year: categorical}}' (types: {', '.join(COLUMN_TYPES)}).",
        )
    types: dict[str, str] = {}
    for name, kind in value.items():
        column = _column_name(name, key)
        if kind not in COLUMN_TYPES:
            raise UnknownNameError(f"{key}.{column}", "column type", kind, COLUMN_TYPES)
        types[column] = str(kind)
    return types


def _na_values(value: Any, key: str) -> tuple[str, ...] | None:
    """``data.na_values``: the cells that mean "missing"; null: the defaults."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(
            key,
            f"{value!r} is not a list of missing markers.",
            f"Write \"{key}=['',NA,'-']\" (or null: the defaults).",
        )
    markers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ConfigError(
                key, f"{item!r} is not a cell's text.", "List the markers as text."
            )
        markers.append(item if isinstance(item, str) else str(item))
    return tuple(markers)


def _table_params(format: str) -> dict[str, Param]:
    what = "a CSV file (TSV, .csv.gz)" if format == "csv" else "a Parquet file"
    params = {
        "path": Param(str, REQUIRED, f"{what}; relative to the directory you run in"),
        "target": Param(str, REQUIRED, "the column to predict"),
        "features": Param(
            str, None, "the input columns, a list of names; null: all but the target"
        ),
        "types": Param(
            dict,
            None,
            "column -> numeric, categorical or ignore; null: inferred from the values",
        ),
        "kind": Param(
            str,
            None,
            "classification, regression, or null: inferred from the target",
            choices=KINDS,
        ),
        "delimiter": Param(
            str,
            ",",
            "the character between cells; comma, semicolon, tab or pipe name one",
        ),
        "na_values": Param(
            str, None, "the cells that mean missing, a list; null: the defaults"
        ),
        "max_onehot": Param(
            int,
            16,
            "levels up to which a text column is one-hot (above: embedded)",
            low=1,
        ),
        "min_frequency": Param(
            int, 1, "rarer levels (fewer training rows) fold into one <other>", low=1
        ),
    }
    if format != "csv":
        del params["delimiter"]
    return params


_TABLE_CHECKS: Final[dict[str, OptionCheck]] = {
    "path": _file_path,
    "target": _column_name,
    "features": _feature_list,
    "types": _types,
    "kind": _kind,
    "na_values": _na_values,
}

#: Tables read from a user's files, by file (path, size, modification time),
#: options, split and seed, so that data_sizes and load_table read a file once.
_TABLE_CACHE: dict[tuple[Any, ...], Table] = {}
_TABLE_CACHE_SIZE: Final = 4


def _first_optimizer() -> None:
    """The first optimizer imports torch's compiler stack (about 2 s)."""
    import torch

    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def _file_and_key(
    options: Mapping[str, Any], *more: Any
) -> tuple[Path, tuple[Any, ...] | None]:
    """The file ``options["path"]`` names, and the key a table read from it is
    kept under: the file (resolved path, size, modification time), the options and
    ``more``; None for a file that cannot be looked at (its reader says why)."""
    path = Path(os.path.expanduser(options["path"]))
    try:
        status = path.stat()
    except OSError:
        return path, None
    options_key = tuple(sorted((k, repr(v)) for k, v in options.items()))
    file_key = (str(path.resolve()), status.st_size, status.st_mtime_ns)
    return path, (*more, file_key, options_key)


def _user_table(format: str) -> LoadFunction:
    def load(options: Mapping[str, Any], seed: int) -> Table:
        path, key = _file_and_key(options, format, seed)
        if key is None or key not in _TABLE_CACHE:
            # While pyarrow reads without the GIL: what the steps after the read
            # import (pyarrow's compute functions, and pandas, which pyarrow imports
            # where it is installed), then torch.
            prefetch("pyarrow.compute", "pandas", "torch", then=_first_optimizer)
            table = load_user_table(
                path,
                name=format,
                target=options["target"],
                features=options.get("features"),
                types=options.get("types"),
                kind=options.get("kind"),
                delimiter=options.get("delimiter", ","),
                na_values=options.get("na_values"),
                max_onehot=options.get("max_onehot", 16),
                min_frequency=options.get("min_frequency", 1),
                val_fraction=options.get("val_fraction", VAL_FRACTION.default),
                test_fraction=options.get("test_fraction", TEST_FRACTION.default),
                seed=seed,
                format=format,
            )
            if key is None:
                return table
            while len(_TABLE_CACHE) >= _TABLE_CACHE_SIZE:
                del _TABLE_CACHE[next(iter(_TABLE_CACHE))]
            _TABLE_CACHE[key] = table
        return _TABLE_CACHE[key]

    load.__doc__ = (
        "A CSV file of yours (TSV, gzip'd): text and numbers, missing cells."
        if format == "csv"
        else "A Parquet file of yours: text and numbers, missing cells."
    )
    return load


datasets.register(
    "csv",
    params=_table_params("csv"),
    checks={**_TABLE_CHECKS, "delimiter": delimiter_option},
    splits=True,
)(_user_table("csv"))
datasets.register(
    "parquet", params=_table_params("parquet"), checks=_TABLE_CHECKS, splits=True
)(_user_table("parquet"))


# ------------------------------------------------------------------------------------
# A time series of the user's, cut into windows (annfactory.series)
# ------------------------------------------------------------------------------------

_SERIES_CACHE: dict[tuple[Any, ...], Table] = {}


@datasets.register(
    "series",
    kind="regression",
    params={
        "path": Param(
            str,
            REQUIRED,
            "a CSV file (TSV, .csv.gz) or a Parquet file (.parquet, .pq); relative "
            "to the directory you run in",
        ),
        "column": Param(
            str, REQUIRED, "the column of the series, one value a step, in time order"
        ),
        "window": Param(
            int, 24, "steps in each row's window: the input's length", low=1
        ),
        "horizon": Param(
            int, 1, "the target's distance in steps after a window's last step", low=1
        ),
        "season": Param(
            int,
            1,
            "the seasonal-naive forecast's period in steps (12: monthly values with a "
            "yearly cycle); 1: the naive forecast",
            low=1,
        ),
        "delimiter": Param(
            str,
            ",",
            "a CSV file's character between cells; comma, semicolon, tab "
            "or pipe name one",
        ),
    },
    checks={
        "path": _file_path,
        "column": _column_name,
        "delimiter": delimiter_option,
    },
)
def series(options: Mapping[str, Any], seed: int) -> Table:
    """A time series of yours (a column of a CSV or Parquet file), cut into windows
    for forecasting, split in time order."""
    from annfactory.series import describe, read_series, windows

    path, key = _file_and_key(options)
    if key is not None and key in _SERIES_CACHE:
        return _SERIES_CACHE[key]
    column, window = options["column"], options["window"]
    horizon, season = options["horizon"], options["season"]
    values = read_series(path, column, delimiter=options["delimiter"])
    cut = windows(values, window, horizon, season, column=f"column {column!r}")
    table = Table(
        "series",
        "regression",
        cut.features,
        cut.target,
        tuple(f"t{step}" for step in range(window)),
        notes=tuple(
            describe(column, len(values), len(cut.target), window, horizon, season)
        ),
        sample_shape=with_layout((window, 1), SEQUENCE),
        time_gap=horizon - 1,
        baseline=cut.naive,
        baseline_name="naive" if season == 1 else f"seasonal naive (season {season})",
    )
    _SERIES_CACHE.clear()  # one series at a time: its windows may be large
    if key is not None:
        _SERIES_CACHE[key] = table
    return table
