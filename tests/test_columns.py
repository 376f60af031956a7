"""The record of a table's feature columns (annfactory.columns): widths, and the
round trip through spec.yaml's plain data."""

from __future__ import annotations

import math

import pytest

from annfactory import ConfigError
from annfactory.columns import (
    MISSING_CODE,
    UNSEEN_CODE,
    Column,
    TableColumns,
    embedding_dim,
)

BILL = Column("bill_length_mm", "numeric", median=44.45, mean=43.9, scale=5.46)
MASS = Column(
    "body_mass_g", "numeric", median=4050.0, mean=4201.8, scale=801.9, indicator=True
)
ISLAND = Column(
    "island", "categorical", vocabulary=("Biscoe", "Dream", "Torgersen"),
    encoding="onehot",
)  # fmt: skip
SEX = Column(
    "sex", "categorical", vocabulary=("female", "male"), missing_level=True,
    encoding="onehot",
)  # fmt: skip
CITY = Column(
    "city", "categorical", vocabulary=(*(f"c{i:02d}" for i in range(40)), "<other>"),
    other="<other>", folded=("c99", "c98"), encoding="embedding",
)  # fmt: skip
COLUMNS = TableColumns(
    (BILL, MASS, ISLAND, SEX, CITY), {"rowid": "identifier", "notes": "empty"}
)


def test_the_codes_of_missing_and_unseen_cells() -> None:
    assert math.isnan(MISSING_CODE)
    assert UNSEEN_CODE == -1.0


@pytest.mark.parametrize(
    ("levels", "dim"),
    [(1, 1), (2, 1), (3, 2), (17, 9), (99, 50), (100, 50), (10_000, 50)],
)
def test_an_embedding_has_min_50_half_the_levels_rounded_up(
    levels: int, dim: int
) -> None:
    assert embedding_dim(levels) == dim


def test_each_column_gives_its_inputs() -> None:
    assert BILL.width == 1  # standardized
    assert MASS.width == 2  # standardized, then 1 where missing
    assert (ISLAND.levels, ISLAND.width) == (3, 3)
    assert (SEX.levels, SEX.width) == (3, 3)  # female, male, missing
    assert (CITY.levels, CITY.width) == (41, 21)
    assert COLUMNS.width == 1 + 2 + 3 + 3 + 21
    assert COLUMNS.names == ("bill_length_mm", "body_mass_g", "island", "sex", "city")


def test_a_record_reads_back_equal() -> None:
    node = COLUMNS.to_dict()
    assert TableColumns.from_dict(node, "data.fitted.columns") == COLUMNS
    # Only each type's own keys are written.
    assert node["features"][0] == {
        "name": "bill_length_mm", "type": "numeric", "median": 44.45, "mean": 43.9,
        "scale": 5.46, "indicator": False,
    }  # fmt: skip
    assert node["features"][3] == {
        "name": "sex", "type": "categorical", "encoding": "onehot",
        "vocabulary": ["female", "male"], "missing_level": True,
    }  # fmt: skip
    assert node["features"][4]["folded"] == ["c99", "c98"]
    assert node["ignored"] == {"rowid": "identifier", "notes": "empty"}


@pytest.mark.parametrize(
    ("change", "where", "problem"),
    [
        ({"type": "text"}, "features[0].type", "'text' is not a column type"),
        ({"scale": 0.0}, "features[0].scale", "0.0 is not a positive number"),
        ({"median": None}, "features[0].median", "None is not a finite number"),
        ({"indicator": "yes"}, "features[0].indicator", "'yes' is not true or false"),
    ],
)
def test_a_damaged_record_names_its_key(
    change: dict[str, object], where: str, problem: str
) -> None:
    node = COLUMNS.to_dict()
    node["features"][0] |= change
    with pytest.raises(ConfigError, match=problem) as raised:
        TableColumns.from_dict(node, "data.fitted.columns")
    assert raised.value.key == f"data.fitted.columns.{where}"


def test_a_damaged_categorical_record_names_its_key() -> None:
    node = COLUMNS.to_dict()
    node["features"][2]["encoding"] = "hashing"
    with pytest.raises(ConfigError, match="'hashing' is not an encoding") as raised:
        TableColumns.from_dict(node, "c")
    assert raised.value.key == "c.features[2].encoding"
    node = COLUMNS.to_dict()
    node["features"][2]["vocabulary"] = "Biscoe"
    with pytest.raises(ConfigError, match="is not a list"):
        TableColumns.from_dict(node, "c")
    with pytest.raises(ConfigError, match="is not the record of a table's columns"):
        TableColumns.from_dict(["x"], "c")
