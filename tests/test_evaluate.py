"""``task=evaluate``: a trained run scored on a labelled file, by ``sklearn.metrics``.

The task runs in this process as the command line runs it, on the trained runs of
``tests/fixtures/table_runs/`` (the command line: ``test_predict.py``).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest
from PIL import Image
from sklearn import metrics as sk  # type: ignore[import-untyped]

import annfactory
from annfactory import ConfigError
from test_predict import BODY_MASS_RUN, PENGUINS, SPECIES_RUN, run_task

pytestmark = pytest.mark.heavy  # each test loads a run and scores a file


def labelled_penguins(path: Path, unlabelled: int) -> Path:
    """The penguins with the species of the first ``unlabelled`` rows left blank."""
    table = pcsv.read_csv(PENGUINS)
    species = table["species"].to_pylist()
    species[:unlabelled] = [None] * unlabelled
    table = table.set_column(0, "species", pa.array(species, pa.string()))
    pcsv.write_csv(table, path)
    return path


def test_a_classifier_is_scored_by_sklearn_on_the_labelled_rows(
    tmp_path: Path,
) -> None:
    file = labelled_penguins(tmp_path / "labelled.csv", unlabelled=3)
    out = io.StringIO()
    metrics = run_task(
        ["task=evaluate", f"task.run={SPECIES_RUN}", f"data.path={file}"],
        tmp_path / "run",
        out,
    )
    section = metrics["evaluate"]
    classes = ["Adelie", "Chinstrap", "Gentoo"]
    predictor = annfactory.load_predictor(SPECIES_RUN)
    probabilities = predictor.predict_proba(file)[3:]
    species = pcsv.read_csv(PENGUINS)["species"].to_pylist()
    truth = [classes.index(name) for name in species[3:]]
    predicted = probabilities.argmax(axis=1)
    assert section["rows"] == 341
    assert section["rows_without_target"] == 3
    assert section["classes"] == classes
    assert section["accuracy"] == sk.accuracy_score(truth, predicted) > 0.95
    assert section["balanced_accuracy"] == sk.balanced_accuracy_score(truth, predicted)
    assert section["f1_macro"] == sk.f1_score(truth, predicted, average="macro")
    assert section["log_loss"] == sk.log_loss(truth, probabilities, labels=[0, 1, 2])
    assert section["confusion_matrix"] == sk.confusion_matrix(truth, predicted).tolist()
    assert section["roc_auc"] is None  # three classes
    assert metrics["predict"]["rows"] == 344  # predictions.csv has every row
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["evaluate"]["confusion_matrix"] == section["confusion_matrix"]
    with Image.open(tmp_path / "run" / "confusion_matrix.png") as image:
        assert image.size[0] >= 400
        assert image.size[1] >= 350
    text = out.getvalue()
    # The target is read (to score), not listed among the columns left unread.
    assert "7 feature columns and the target read" in text.splitlines()[1]
    assert "note: 3 of 344 rows have no 'species': left out of the scores." in text
    assert f"scored 341 rows: accuracy {section['accuracy']:.4f}, balanced" in text
    matrix = text.split("confusion matrix (rows: true class; columns: predicted):\n")
    assert matrix[1].splitlines()[0].split() == [
        "Adelie",
        *(str(n) for n in section["confusion_matrix"][0]),
    ]


def test_a_regression_is_scored_in_the_target_s_units(tmp_path: Path) -> None:
    metrics = run_task(
        ["task=evaluate", f"task.run={BODY_MASS_RUN}", f"data.path={PENGUINS}"],
        tmp_path / "run",
    )
    section = metrics["evaluate"]
    table = pcsv.read_csv(PENGUINS)
    labelled = pc.is_valid(table["body_mass_g"]).to_numpy(zero_copy_only=False)
    truth = table["body_mass_g"].to_numpy(zero_copy_only=False)[labelled]
    values = annfactory.load_predictor(BODY_MASS_RUN).predict(PENGUINS)[labelled]
    assert section["rows"] == 342
    assert section["rows_without_target"] == 2
    assert section["r2"] == sk.r2_score(truth, values) > 0.8
    assert section["mae"] == sk.mean_absolute_error(truth, values)
    assert math.isclose(
        section["rmse"], math.sqrt(sk.mean_squared_error(truth, values)), rel_tol=1e-12
    )
    assert 100 < section["rmse"] < 500  # grams
    assert (tmp_path / "run" / "residuals.png").stat().st_size > 10_000
    assert not (tmp_path / "run" / "confusion_matrix.png").exists()


@pytest.mark.parametrize(
    ("run", "column", "cell", "message"),
    [
        (SPECIES_RUN, "species", None,
         r"^data\.path: the file has no column 'species', the run's target: "
         r"task=evaluate scores the predictions against it\.\n  Give a labelled file"),
        (SPECIES_RUN, "species", "Emperor",
         r"^data\.path: column 'species' holds the class 'Emperor' in .*row .*, "
         r"which the run was not trained on.*\n  Its classes: Adelie, Chinstrap, "
         r"Gentoo\."),
        # Not data.kind=classification, as task=train would say: the run's kind is
        # settled.
        (BODY_MASS_RUN, "body_mass_g", "heavy",
         r"^data\.path: column 'body_mass_g' holds 'heavy' .*\n  Fix the cell, or add "
         r"it to the missing markers \(data\.na_values\)\.$"),
    ],
    ids=["no-target-column", "a-class-never-trained-on", "text-in-a-regression"],
)  # fmt: skip
def test_a_file_that_cannot_be_scored_is_refused(
    tmp_path: Path, run: Path, column: str, cell: str | None, message: str
) -> None:
    table = pcsv.read_csv(PENGUINS)
    if cell is None:
        table = table.drop_columns([column])
    else:
        index = table.column_names.index(column)
        values = [str(value) for value in table[column].to_pylist()]
        table = table.set_column(index, column, pa.array([cell, *values[1:]]))
    file = tmp_path / "labelled.csv"
    pcsv.write_csv(table, file)
    with pytest.raises(ConfigError, match=message):
        run_task(
            ["task=evaluate", f"task.run={run}", f"data.path={file}"], tmp_path / "run"
        )
    assert not (tmp_path / "run").exists()  # nothing written
