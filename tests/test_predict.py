"""``task=predict``: a trained run's predictions for a new file, as predictions.csv.

The task runs in this process as the command line runs it (``compose``, ``to_spec``,
``run_named_task``) on the trained runs of ``tests/fixtures/table_runs/``; the
documented commands run end to end at the bottom (marked slow).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pcsv
import pytest
from omegaconf import OmegaConf

import annfactory
from annfactory import ConfigError
from annfactory.tasks import run_named_task

RunCli = Callable[..., Any]

TESTS = Path(__file__).resolve().parent
TABLE_RUNS = TESTS / "fixtures" / "table_runs"
SPECIES_RUN = TABLE_RUNS / "penguins_species"
BODY_MASS_RUN = TABLE_RUNS / "penguins_body_mass"
PENGUINS = TESTS / "data" / "tables" / "penguins.csv"


def run_task(
    overrides: Sequence[str], output_dir: Path | None, out: io.StringIO | None = None
) -> dict[str, Any]:
    """Run a task as the command line does, in this process."""
    cfg = annfactory.compose(list(overrides))
    spec = annfactory.to_spec(cfg)
    return run_named_task(
        OmegaConf.to_container(cfg.task, resolve=True),
        spec,
        output_dir,
        out=out if out is not None else io.StringIO(),
        overrides=overrides,
    )


def new_penguins(path: Path) -> Path:
    """The penguins without their species, with a column the run never saw, and an
    island that training never had in rows 3 and 10."""
    rows = list(csv.DictReader(PENGUINS.open(encoding="utf-8")))
    for index, row in enumerate(rows):
        del row["species"]
        row["note"] = f"seen on day {index}"
        if index in (2, 9):
            row["island"] = "Atlantis"
    with path.open("w", newline="", encoding="utf-8") as file:
        names = ["note", *(name for name in rows[0] if name != "note")]
        writer = csv.DictWriter(file, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.heavy
def test_predictions_csv_holds_what_the_predictor_predicts(tmp_path: Path) -> None:
    file = new_penguins(tmp_path / "new_penguins.csv")
    out = io.StringIO()
    metrics = run_task(
        ["task=predict", f"task.run={SPECIES_RUN}", f"data.path={file}"],
        tmp_path / "run",
        out,
    )
    written = pcsv.read_csv(tmp_path / "run" / "predictions.csv")
    predictor = annfactory.load_predictor(SPECIES_RUN)
    classes = ["Adelie", "Chinstrap", "Gentoo"]
    assert written.column_names == [
        "prediction",
        *(f"probability_{name}" for name in classes),
    ]
    assert written.num_rows == 344  # one row per input row, none dropped
    assert written["prediction"].to_pylist() == predictor.predict(file).tolist()
    probabilities = np.stack(
        [written[f"probability_{name}"].to_numpy() for name in classes], axis=1
    )
    np.testing.assert_array_equal(probabilities, predictor.predict_proba(file))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-12)

    section = metrics["predict"]
    assert section["rows"] == 344
    assert section["unknown_categories"] == {"island": 2, "sex": 0}
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["predict"]["unknown_categories"] == {"island": 2, "sex": 0}
    lines = out.getvalue().splitlines()
    assert lines[1] == f"file: {file}: 344 rows; 7 feature columns read; ignored: note"
    assert lines[2].startswith("unknown categories (")
    assert lines[2].endswith("island 2")
    assert lines[3].startswith("predicted 344 rows: Adelie ")
    assert lines[3].endswith(f"-> {tmp_path / 'run' / 'predictions.csv'}")


@pytest.mark.heavy
def test_a_regression_predicts_values_in_the_target_s_units(tmp_path: Path) -> None:
    metrics = run_task(
        ["task=predict", f"task.run={BODY_MASS_RUN}", f"data.path={PENGUINS}"],
        tmp_path / "run",
    )
    written = pcsv.read_csv(tmp_path / "run" / "predictions.csv")
    assert written.column_names == ["prediction"]
    expected = annfactory.load_predictor(BODY_MASS_RUN).predict(PENGUINS)
    np.testing.assert_array_equal(written["prediction"].to_numpy(), expected)
    unknown = {"species": 0, "island": 0, "sex": 0}
    assert metrics["predict"]["unknown_categories"] == unknown
    # The rows without a body mass are predicted too.
    assert written.num_rows == 344
    assert not np.isnan(expected).any()


@pytest.mark.heavy
def test_the_reading_options_come_from_the_run_and_can_be_overridden(
    tmp_path: Path,
) -> None:
    table = pcsv.read_csv(PENGUINS)
    semicolons = tmp_path / "semicolons.csv"
    text = PENGUINS.read_text(encoding="utf-8").replace(",", ";").replace(";NA", ";-")
    semicolons.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^data\.delimiter: is ',', but .* looks "):
        run_task(
            ["task=predict", f"task.run={SPECIES_RUN}", f"data.path={semicolons}"],
            tmp_path / "refused",
        )
    assert not (tmp_path / "refused").exists()  # nothing written
    run_task(
        ["task=predict", f"task.run={SPECIES_RUN}", f"data.path={semicolons}",
         "data.delimiter=semicolon", "data.na_values=[-]"],
        tmp_path / "run",
    )  # fmt: skip
    written = pcsv.read_csv(tmp_path / "run" / "predictions.csv")
    expected = annfactory.load_predictor(SPECIES_RUN).predict_proba(table)
    np.testing.assert_array_equal(
        written["probability_Gentoo"].to_numpy(), expected[:, 2]
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task=predict", "data=csv"],
         r"^data: task=predict reads the file with the saved run's data options, so "
         r"data=csv would be ignored\.\n  Drop it"),
        (["task=evaluate", "data.target=sex"],
         r"^data\.target: task=evaluate reads the file with the saved run's data "
         r"options; it takes data\.path, data\.delimiter, data\.na_values only\."),
        (["data.path=new.csv"], r"^data\.path: data is read by task=train only"),
        pytest.param(["task=predict", "data.path=new.csv", "model=mlp"], None,
                     marks=pytest.mark.heavy),
    ],
    ids=["a-data-set", "another-data-key", "without-the-task", "a-network-override"],
)  # fmt: skip
def test_data_takes_only_the_file_s_keys(
    overrides: list[str], message: str | None
) -> None:
    if message is not None:
        with pytest.raises(ConfigError, match=message):
            annfactory.compose(overrides)
        return
    with pytest.raises(ConfigError, match=r"^model: task=predict uses the saved run"):
        run_task([*overrides, f"task.run={SPECIES_RUN}"], None)


def test_a_run_trained_on_a_bundled_data_set_is_refused(tmp_path: Path) -> None:
    # What task=train data=iris saves: a network that takes the four measurements
    # (after standardize), and no record of a table's columns.
    spec = {
        "model": {
            "type": "sequential",
            "in_features": 4,
            "layers": {"out": {"type": "linear", "out_features": 3}},
        },
        "data": {
            "name": "iris",
            "fitted": {"kind": "classification", "features": 4, "outputs": 3},
        },
    }
    (tmp_path / "spec.yaml").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=r"^task\.run: the run '.*' was trained on data=iris, not on a table of "
        r"yours: .*\n  Predict with runs of task=train data=csv or data=parquet \(a "
        r"run's network takes raw rows from Python: annfactory\.load_run\)\.",
    ):
        annfactory.load_predictor(tmp_path)


@pytest.mark.slow
def test_train_predict_and_evaluate_on_the_command_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    trained = run_cli(
        "task=train", "model=mlp", "data=csv", f"data.path={PENGUINS}",
        "data.target=species", "task.epochs=5",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    run_dir = trained.run_dir.rename(tmp_path / "trained")
    new = new_penguins(tmp_path / "new_penguins.csv")

    predicted = run_cli("task=predict", f"task.run={run_dir}", f"data.path={new}")
    assert predicted.returncode == 0, predicted.stderr
    assert "unknown categories" in predicted.stdout
    written = pcsv.read_csv(predicted.run_dir / "predictions.csv")
    expected = annfactory.load_predictor(run_dir).predict(new)
    assert written["prediction"].to_pylist() == expected.tolist()
    predicted.run_dir.rename(tmp_path / "predicted")

    evaluated = run_cli("task=evaluate", f"task.run={run_dir}", f"data.path={PENGUINS}")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((evaluated.run_dir / "metrics.json").read_text())
    assert metrics["evaluate"]["rows"] == 344
    assert (evaluated.run_dir / "confusion_matrix.png").stat().st_size > 10_000
    assert "scored 344 rows: accuracy " in evaluated.stdout
