"""The export of a network trained on a user's table: the rows it is checked on, and
``preprocessing.json``, what a user of onnxruntime needs beside ``model.onnx``.

Such a network starts with an ``encode_table`` layer
(:class:`~annfactory.table_encoding.TableEncoder`): it takes one float number per
feature column, the raw value of a numeric column (NaN where missing) or a
categorical cell's code (its index in the column's vocabulary, NaN where missing,
-1 for a level training never had). Imputation, indicators, standardization,
one-hot and embeddings are in the graph; only the text-to-code lookup is not.
``preprocessing.json`` holds that lookup as plain JSON (no pickle, no NaN literal:
a code is a number or the text ``"NaN"``, and ``float(code)`` reads either), and
says what the output is: logits, probabilities or the target's units.

Random normal rows would be invalid codes, so the export of such a network is
checked on valid ones (:func:`table_batch`): numbers around each column's fitted
mean, codes drawn from each vocabulary, with rows whose every cell is missing and
rows whose every category is unseen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from annfactory.columns import MISSING_CODE, UNSEEN_CODE, Column, TableColumns
from annfactory.seeding import INPUT_STREAM, sampling_dtype, seeded_generator
from annfactory.table_reading import NA_VALUES

if TYPE_CHECKING:
    import torch

    from annfactory.spec import RunSpec

__all__ = [
    "ENCODE_TABLE",
    "FORMAT",
    "PREPROCESSING_FILE",
    "output_values",
    "preprocessing",
    "table_batch",
    "table_columns",
    "write_preprocessing",
]

PREPROCESSING_FILE: Final = "preprocessing.json"
#: The layer type that takes a table's codes.
ENCODE_TABLE: Final = "encode_table"
#: ``preprocessing.json``'s ``format``: a reader checks it before it trusts the rest.
FORMAT: Final = "annfactory-preprocessing-1"
#: JSON has no NaN: a missing cell's code is written as this text (``float`` reads
#: it back as NaN).
NAN_TEXT: Final = "NaN"


def table_columns(spec: RunSpec) -> TableColumns | None:
    """The feature columns of a network whose first layer is ``encode_table``;
    None for any other network."""
    layers = spec.network.layers
    if not layers or layers[0].type != ENCODE_TABLE:
        return None
    key = f"model.layers.{layers[0].name}.columns"
    return TableColumns.from_dict(layers[0].options["columns"], key)


def table_batch(
    columns: TableColumns,
    rows: int,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``rows`` valid input rows for ``columns``, seeded from ``(seed, "input")``
    like :func:`annfactory.seeding.random_input`.

    A numeric cell is drawn from N(mean, scale) of its column (its raw units); a
    categorical cell is a code drawn uniformly from its vocabulary. Row ``i`` with
    ``i % 3 == 1`` has every cell missing (NaN); with ``i % 3 == 2`` every
    categorical cell unseen (-1). So a batch of 3 rows or more goes through every
    path of the encoder, and its first row alone through the plain one.
    """
    import torch

    generator = seeded_generator(seed, INPUT_STREAM)
    sampling = sampling_dtype(dtype)
    batch = torch.empty((rows, len(columns.features)), dtype=sampling)
    for index, column in enumerate(columns.features):
        if column.type == "numeric":
            noise = torch.randn(rows, generator=generator, dtype=sampling)
            mean, scale = column.mean or 0.0, column.scale or 1.0
            batch[:, index] = mean + scale * noise
        else:
            levels = max(1, len(column.vocabulary))
            codes = torch.randint(0, levels, (rows,), generator=generator)
            batch[:, index] = codes.to(sampling)
    categorical = [
        index
        for index, column in enumerate(columns.features)
        if column.type == "categorical"
    ]
    for row in range(rows):
        if row % 3 == 1:
            batch[row] = MISSING_CODE
        elif row % 3 == 2 and categorical:
            batch[row, categorical] = UNSEEN_CODE
    return batch.to(device=device, dtype=dtype)


# ------------------------------------------------------------------------------------
# preprocessing.json
# ------------------------------------------------------------------------------------


def write_preprocessing(
    directory: Path,
    spec: RunSpec,
    columns: TableColumns,
    input_name: str,
    output_name: str,
) -> Path:
    """Write ``preprocessing.json`` (:func:`preprocessing`) into ``directory``."""
    path = directory / PREPROCESSING_FILE
    record = preprocessing(spec, columns, input_name, output_name)
    path.write_text(
        json.dumps(record, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    return path


def preprocessing(
    spec: RunSpec, columns: TableColumns, input_name: str, output_name: str
) -> dict[str, Any]:
    """What turns a raw row into the exported network's input, and what its output
    means: plain data for ``preprocessing.json``."""
    data = spec.extras.get("data")
    options: Mapping[str, Any] = getattr(data, "options", None) or {}
    fitted: Mapping[str, Any] = getattr(data, "fitted", None) or {}
    na_values = options.get("na_values")
    return {
        "format": FORMAT,
        "input": {
            "name": input_name,
            "shape": ["batch", len(columns.features)],
            "dtype": spec.dtype,
            "row": (
                "one number per feature column, in the order of 'columns': a "
                "numeric column's raw value, a categorical column's code"
            ),
            "missing_code": NAN_TEXT,
            "unseen_code": int(UNSEEN_CODE),
        },
        "reading": {
            "delimiter": options.get("delimiter", ","),
            "na_values": list(NA_VALUES if na_values is None else na_values),
            "note": (
                "a cell equal to one of na_values (or empty) is missing; a "
                "categorical cell is matched to its vocabulary as text, exactly "
                "(numbers as written, booleans as True/False)"
            ),
        },
        "columns": [
            _column_entry(position, column)
            for position, column in enumerate(columns.features)
        ],
        "ignored": dict(columns.ignored),
        "target": _target_entry(spec, options, fitted),
        "output": {
            "name": output_name,
            "shape": ["batch", *spec.network.output_shape],
            **output_values(spec, fitted),
        },
    }


def _column_entry(position: int, column: Column) -> dict[str, Any]:
    """One feature column: what its cell becomes in the input row."""
    entry: dict[str, Any] = {
        "position": position,
        "name": column.name,
        "type": column.type,
    }
    if column.type == "numeric":
        return entry | {
            "value": "raw value, NaN if missing",
            "missing_code": NAN_TEXT,
            # In the network already; for information.
            "in_the_network": {
                "median": column.median,
                "mean": column.mean,
                "scale": column.scale,
                "indicator": column.indicator,
            },
        }
    other = None
    if column.other is not None:
        other = {
            "level": column.other,
            "code": column.vocabulary.index(column.other),
            "folded": list(column.folded),
        }
    missing = (
        f"its own level (code {NAN_TEXT} in, level {len(column.vocabulary)} inside)"
        if column.missing_level
        else "like an unseen level: all zeros"
    )
    return entry | {
        "value": "code: the cell's index in vocabulary",
        "encoding": column.encoding,
        "vocabulary": list(column.vocabulary),
        "other": other,
        "missing_code": NAN_TEXT,
        "missing": missing,
        "unseen_code": int(UNSEEN_CODE),
        "unseen": "all zeros (one-hot) or a zero vector (embedding)",
    }


def _target_entry(
    spec: RunSpec, options: Mapping[str, Any], fitted: Mapping[str, Any]
) -> dict[str, Any] | None:
    kind = fitted.get("kind")
    if kind is None:
        return None
    names = fitted.get("class_names")
    return {
        "name": options.get("target"),
        "kind": kind,
        "class_names": None if names is None else list(names),
    }


def output_values(spec: RunSpec, fitted: Mapping[str, Any]) -> dict[str, Any]:
    """What the network's output is, in words a user of onnxruntime acts on:
    ``values`` (``logits``, ``probabilities``, ``log_probabilities``, ``logit``,
    ``probability``, ``target units`` or ``unknown``) and ``how`` to read it.

    It follows the loss that training derives from the output activation
    (:func:`annfactory.losses.loss_for`): one sigmoid unit on two classes is the
    second class's probability, one identity unit its logit; a softmax output is
    the probabilities, log_softmax their logarithms, any other activation logits.
    """
    kind = fitted.get("kind")
    classes: list[str] = list(fitted.get("class_names") or ())
    layers = spec.network.layers
    activation = layers[-1].activation.name if layers else "identity"
    if kind == "regression":
        return {
            "values": "target units",
            "how": "the predicted value, in the target's units",
        }
    if kind != "classification":
        return {"values": "unknown", "how": "the network's output"}
    if spec.network.output_shape[-1:] == (1,) and len(classes) == 2:
        second = classes[1]
        if activation == "sigmoid":
            return {
                "values": "probability",
                "how": f"the probability of class {second!r}",
            }
        return {
            "values": "logit",
            "how": f"sigmoid of it is the probability of class {second!r}",
        }
    order = "in class_names order"
    if activation == "softmax":
        return {"values": "probabilities", "how": f"each class's probability, {order}"}
    if activation == "log_softmax":
        return {
            "values": "log_probabilities",
            "how": f"exp of it is each class's probability, {order}",
        }
    return {
        "values": "logits",
        "how": f"softmax over the last axis gives each class's probability, {order}",
    }
