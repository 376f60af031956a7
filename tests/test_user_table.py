"""A user's table loaded as a Table (annfactory.data.load_user_table, issue 21): the
Palmer penguins file, fitted on the training split only."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from annfactory.data import Table, load_user_table, split_three

PENGUINS = Path(__file__).parent / "data" / "tables" / "penguins.csv"


def _file_column(name: str) -> list[str]:
    with PENGUINS.open(newline="") as handle:
        return [row[name] for row in csv.DictReader(handle)]


def test_the_penguins_species_table_is_fitted_on_its_training_rows() -> None:
    table = load_user_table(
        PENGUINS, name="csv", target="species", val_fraction=0.2, seed=3
    )
    assert table.kind == "classification"
    assert table.class_names == ("Adelie", "Chinstrap", "Gentoo")
    assert table.rows == 344  # every penguin has a species
    assert table.columns is not None
    types = {column.name: column.type for column in table.columns.features}
    assert types == {
        "island": "categorical", "bill_length_mm": "numeric",
        "bill_depth_mm": "numeric", "flipper_length_mm": "numeric",
        "body_mass_g": "numeric", "sex": "categorical", "year": "numeric",
    }  # fmt: skip
    assert table.feature_names == tuple(types)
    assert table.n_features == 7
    assert table.features.dtype == np.float32  # numbers-only data sets: float64
    # Medians from the training rows only, and missing cells left NaN.
    train_rows, _, _ = split_three(table, 0.2, 0.0, seed=3)
    bill = table.features[:, table.feature_names.index("bill_length_mm")]
    fitted = table.columns.features[table.feature_names.index("bill_length_mm")]
    assert fitted.median == pytest.approx(float(np.nanmedian(bill[train_rows])))
    assert fitted.indicator == bool(np.isnan(bill[train_rows]).any())
    assert int(np.isnan(bill).sum()) == _file_column("bill_length_mm").count("NA")
    sex = table.columns.features[table.feature_names.index("sex")]
    assert sex.vocabulary == ("female", "male")
    assert sex.missing_level  # NA cells among the training rows
    codes = table.features[:, table.feature_names.index("sex")]
    assert set(np.unique(codes[~np.isnan(codes)]).tolist()) == {0.0, 1.0}
    # island one-hot (3), four measurements with their indicators (2 each), sex
    # one-hot with its missing level (3), year (1).
    assert table.input_width == table.columns.width == 3 + 4 * 2 + 3 + 1


def test_rows_without_a_target_are_left_out_with_a_note() -> None:
    table = load_user_table(PENGUINS, name="csv", target="sex", seed=0)
    assert table.rows == 344 - _file_column("sex").count("NA")
    assert table.class_names == ("female", "male")
    assert any("have no 'sex': left out" in note for note in table.notes)
    assert "species" in table.feature_names


def test_types_override_inference_and_the_same_seed_gives_the_same_table() -> None:
    table = load_user_table(
        PENGUINS, name="csv", target="species", types={"year": "categorical"}, seed=1
    )
    assert table.columns is not None
    year = table.columns.features[table.feature_names.index("year")]
    assert (year.type, year.vocabulary) == ("categorical", ("2007", "2008", "2009"))
    again = load_user_table(
        PENGUINS, name="csv", target="species", types={"year": "categorical"}, seed=1
    )
    assert np.array_equal(table.features, again.features, equal_nan=True)
    assert again.columns == table.columns


def test_a_table_of_numbers_only_still_refuses_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        Table("x", "regression", np.array([[math.nan]]), np.array([1.0]), ("a",))
