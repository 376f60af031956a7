"""``annfactory.load_predictor``: a trained table run predicts rows given every way.

The runs are the trained runs kept in ``tests/fixtures/table_runs/`` (see its
README.md for the commands that made them): a classifier of the penguins' species
and a regression of their body mass, each loaded once per module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
import torch

import annfactory
from annfactory import ConfigError, Predictor
from annfactory.predictor import class_probabilities

TESTS = Path(__file__).resolve().parent
TABLE_RUNS = TESTS / "fixtures" / "table_runs"
SPECIES_RUN = TABLE_RUNS / "penguins_species"
BODY_MASS_RUN = TABLE_RUNS / "penguins_body_mass"
PENGUINS = TESTS / "data" / "tables" / "penguins.csv"
FORWARD_RUN = TESTS / "fixtures" / "runs" / "demo"


@pytest.fixture(scope="module")
def species() -> Predictor:
    return annfactory.load_predictor(SPECIES_RUN)


@pytest.fixture(scope="module")
def body_mass() -> Predictor:
    return annfactory.load_predictor(BODY_MASS_RUN)


def with_na_strings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with every missing cell written as the text ``NA``."""
    return [
        {
            k: "NA" if v is None or (isinstance(v, float) and v != v) else v
            for k, v in r.items()
        }
        for r in rows
    ]


@pytest.mark.heavy  # pandas, and six ways through the same 344 rows
def test_rows_given_every_way_get_the_same_predictions(species: Predictor) -> None:
    import pandas as pd

    frame = pd.read_csv(PENGUINS)
    records = frame.to_dict(orient="records")
    expected = species.predict_proba(PENGUINS)
    given: dict[str, Any] = {
        "str": str(PENGUINS),
        "DataFrame": frame,
        "Table": pcsv.read_csv(PENGUINS),
        "dicts with NaN": records,
        "dicts with 'NA'": with_na_strings(records),
        "dicts with None": [
            {k: None if v != v else v for k, v in r.items()} for r in records
        ],
    }
    for how, rows in given.items():
        np.testing.assert_array_equal(species.predict_proba(rows), expected, how)
    assert expected.shape == (len(frame), 3)  # every row, none dropped
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert species.classes == ("Adelie", "Chinstrap", "Gentoo")
    names = species.predict(PENGUINS)
    assert names.tolist() == [species.classes[i] for i in expected.argmax(axis=1)]
    # A trained network: the rows' own species, nearly always.
    assert np.mean(names == frame["species"].to_numpy()) > 0.9


def test_an_unseen_category_is_counted_and_encoded_like_a_missing_cell(
    species: Predictor,
) -> None:
    row = {
        "island": "Biscoe",
        "bill_length_mm": 46.1,
        "bill_depth_mm": 13.2,
        "flipper_length_mm": 211,
        "body_mass_g": 4500,
        "sex": "female",
        "year": 2007,
    }
    unseen = {**row, "island": "Atlantis"}
    missing = {**row, "island": None}
    table = species.table([row, unseen, missing, unseen])
    predictions = species.predictions(table)
    assert predictions.unknown_categories["island"] == 2
    assert predictions.unknown_categories["sex"] == 0
    # The training split had no missing island: a missing cell is an unseen level.
    assert predictions.probabilities is not None
    # Equal inputs; a batched matrix product may round rows apart by 1 ulp or so.
    np.testing.assert_allclose(
        predictions.probabilities[1], predictions.probabilities[2], rtol=1e-6
    )
    assert predictions.values[0] == "Gentoo"


def test_a_regression_predicts_values_and_refuses_probabilities(
    body_mass: Predictor,
) -> None:
    values = body_mass.predict(PENGUINS)
    assert values.dtype == np.float64
    assert len(values) == 344
    assert body_mass.classes is None
    # In grams, the target's units (the network ends with destandardize).
    assert 3000 < np.nanmean(values) < 5500
    with pytest.raises(ConfigError, match=r"^predict_proba: .* is a regression of "):
        body_mass.predict_proba(PENGUINS)


@pytest.mark.parametrize(
    ("activation", "units", "expected"),
    [
        ("identity", 3, lambda x: torch.softmax(x, 1)),
        ("softmax", 3, lambda x: x),  # never a second softmax
        ("log_softmax", 3, lambda x: x.exp()),
        ("tanh", 3, lambda x: torch.softmax(x, 1)),
        ("sigmoid", 1, lambda x: torch.cat([1 - x, x], 1)),
        ("identity", 1, lambda x: torch.cat([1 - x.sigmoid(), x.sigmoid()], 1)),
    ],
)
def test_outputs_become_probabilities_as_the_loss_read_them(
    activation: str, units: int, expected: Any
) -> None:
    logits = torch.randn(50, units, generator=torch.Generator().manual_seed(0)).double()
    outputs = {
        "softmax": torch.softmax(logits, 1),
        "log_softmax": torch.log_softmax(logits, 1),
        "sigmoid": torch.sigmoid(logits),
        "tanh": torch.tanh(logits),
    }.get(activation, logits)
    got = class_probabilities(outputs.numpy(), activation, max(units, 2))
    np.testing.assert_allclose(got, expected(outputs).numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"island": "Biscoe"}, r"^rows: is one dict; .*\n  Pass \[row\]"),
        (7, r"^rows: rows of type int are not rows\."),
        (["Biscoe"], r"^rows\[0\]: is a str, not a dict"),
        (
            [{"island": "Biscoe"}],
            r"^rows: the file has no column 'bill_length_mm', which the run was "
            r"trained on\.",
        ),
        (
            [{"island": "Biscoe", "bill_length_mm": "long", "bill_depth_mm": 1,
              "flipper_length_mm": 1, "body_mass_g": 1, "sex": "male", "year": 1}],
            r"^rows: column 'bill_length_mm' is numeric, but holds 'long' in (data )?"
            r"row 1",
        ),
    ],
    ids=["one-dict", "a-number", "not-dicts", "missing-column", "text-in-numbers"],
)  # fmt: skip
def test_rows_that_cannot_be_predicted_name_the_problem(
    species: Predictor, rows: Any, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        species.predict(rows)


@pytest.mark.parametrize(
    ("run_dir", "message"),
    [
        (TESTS / "no_such_run", r"^task\.run: '.*no_such_run' does not exist\.\n"),
        (
            TABLE_RUNS / "penguins_specie",
            r"^task\.run: '.*penguins_specie' does not exist\. Did you mean "
            r"'.*table_runs/penguins_species'\?",
        ),
        (TESTS / "data", r"^task\.run: '.*data' is not a saved run: it has no spec"),
        (FORWARD_RUN, r"^task\.run: the run '.*demo' was not trained"),
    ],
    ids=["missing", "mistyped", "not-a-run", "forward-run"],
)
def test_a_run_that_cannot_predict_is_refused(run_dir: Path, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        annfactory.load_predictor(run_dir)


def test_predictions_have_one_row_each_in_the_order_given(species: Predictor) -> None:
    table = pcsv.read_csv(PENGUINS)
    backwards = table.take(pa.array(range(table.num_rows - 1, -1, -1)))
    forwards = species.predict_proba(table)
    np.testing.assert_array_equal(species.predict_proba(backwards), forwards[::-1])
    assert species.predict([]).shape == (0,)
