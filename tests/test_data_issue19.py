"""Issue 19's data fixes: non-ASCII paths, column names and directories on the command
line, values too large for the run's dtype, CSV layout messages (delimiter, comment,
quote, trailing comma, ``~``), the distinct-value count of a continuous target given as
classes, and text class labels (spaces stripped, case variants named)."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

import annfactory
from annfactory import ConfigError
from annfactory.config import check_overrides
from annfactory.data import Table, load_table, parse_data
from annfactory.tasks import run_named_task
from cli_server import script_server

RUN_PY = Path(__file__).resolve().parents[1] / "scripts" / "run.py"

CYRILLIC_IE = "\N{CYRILLIC SMALL LETTER IE}"

#: A CSV file with a German and a Japanese column name: two classes, well apart.
UNICODE_CSV = "größe,höhe,ラベル\n" + "".join(
    f"{x},{x % 3},{'hoch' if x > 10 else 'tief'}\n" for x in range(1, 21)
)


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def csv_table(
    path: str, target: str = "label", dtype: str | None = None, **options: Any
) -> Table:
    spec = parse_data({"name": "csv", "path": path, "target": target, **options})
    return load_table(spec, 0) if dtype is None else load_table(spec, 0, dtype)


def load_error(
    path: str, target: str = "label", dtype: str | None = None, **options: Any
) -> str:
    """The message of the ConfigError that loading the file raises (<= 3 lines)."""
    with pytest.raises(ConfigError) as caught:
        csv_table(path, target, dtype, **options)
    message = str(caught.value)
    assert len(message.splitlines()) <= 3, message
    return message


def train(overrides: Sequence[str], output_dir: Path | None = None) -> dict[str, Any]:
    cfg = annfactory.compose(["task=train", "model=mlp", "task.epochs=1", *overrides])
    spec = annfactory.to_spec(cfg)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    return run_named_task(task, spec, output_dir, out=io.StringIO())


# ------------------------------------------------------------------------------------
# Item 1: non-ASCII text is data where it is a path, a column or a directory
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("data.path=/data/Données/clean.csv", "data.path", "/data/Données/clean.csv"),
        ("data.target=ラベル", "data.target", "ラベル"),
        ("data.features=[größe]", "data.features", ["größe"]),
        ("data.features=[größe, ラベル2]", "data.features", ["größe", "ラベル2"]),
        ("hydra.run.dir=/tmp/ünï", "hydra.run.dir", "/tmp/ünï"),
    ],
)
def test_non_ascii_paths_columns_and_directories_are_accepted(
    override: str, key: str, value: Any
) -> None:
    overrides = ["task=train", "data=csv", override]
    for_hydra = check_overrides(overrides)
    if key.startswith("hydra."):
        assert for_hydra[-1] == f"{key}='{value}'"
        return
    data = OmegaConf.to_container(annfactory.compose(overrides).data)
    assert isinstance(data, dict)
    assert data[key.split(".")[1]] == value


def test_a_sweep_over_non_ascii_columns_stays_a_sweep() -> None:
    assert check_overrides(["task=train", "data=csv", "data.target=ラベル,größe"])[
        -1
    ] == ("data.target='ラベル','größe'")


@pytest.mark.parametrize(
    ("override", "key", "fixed"),
    [
        (f"activation=r{CYRILLIC_IE}lu", "activation", "activation=relu"),
        (f"model=d{CYRILLIC_IE}mo", "model", "model=demo"),
        (
            f"model.layers.linear1.type=lin{CYRILLIC_IE}ar",
            "model.layers.linear1.type",
            "model.layers.linear1.type=linear",
        ),
        ("device=\N{CYRILLIC SMALL LETTER ES}pu", "device", "device=cpu"),
    ],
)
def test_a_lookalike_letter_in_a_name_is_still_refused(
    override: str, key: str, fixed: str
) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"^{re.escape(key)}: .* contains the non-ASCII character .*\n"
        rf"  Type it in ASCII: {re.escape(fixed)}$",
    ):
        check_overrides([override])


def test_a_csv_with_non_ascii_directory_and_columns_trains_in_process(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "Données" / "clean.csv", UNICODE_CSV)
    summary = train(
        [
            "data=csv",
            f"data.path={path}",
            "data.target=ラベル",
            "data.features=[größe, höhe]",
        ],
        tmp_path / "ünï",
    )
    assert summary["train"]["epochs_run"] == 1
    saved = (tmp_path / "ünï" / "spec.yaml").read_text(encoding="utf-8")
    assert "target: ラベル" in saved
    assert "- größe" in saved
    assert "- hoch" in saved  # the class names
    model = annfactory.load_run(tmp_path / "ünï")
    assert model(torch.zeros(1, 2)).shape == (1, 2)


@pytest.mark.slow
def test_a_csv_with_non_ascii_directory_and_columns_trains_on_the_command_line(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "Données" / "clean.csv", UNICODE_CSV)
    run_dir = tmp_path / "ünï"
    # Not the run_cli fixture: it sets hydra.run.dir itself.
    result = script_server().run(
        [
            sys.executable,
            str(RUN_PY),
            "task=train",
            "model=mlp",
            "data=csv",
            f"data.path={path}",
            "data.target=ラベル",
            "data.features=[größe]",
            "task.epochs=1",
            f"hydra.run.dir={run_dir}",
        ],
        timeout=120,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["epochs_run"] == 1
    spec = (run_dir / "spec.yaml").read_text(encoding="utf-8")
    assert "target: ラベル" in spec
    assert "- größe" in spec


# ------------------------------------------------------------------------------------
# Item 8: a value that the run's dtype cannot hold names its cell
# ------------------------------------------------------------------------------------

SMALL = "x,y,label\n1,2,a\n2,3,b\n3,4,a\n4,5,b\n5,6,a\n6,7,b\n"


def test_a_cell_too_large_for_float32_names_file_row_column_and_value(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "big.csv", SMALL.replace("3,4,a", "3,1e300,a"))
    message = load_error(path, dtype="float32")
    assert message.startswith(
        "data.path: column 'y' holds 1e+300 in row 4: too large for float32, the "
        "network's dtype (it holds values within ±3.4e+38)."
    )
    assert "the header is row 1" in message
    # A user's table is encoded in float32 whatever the run's dtype.
    assert "too large for float32" in load_error(path, dtype="float64")


def test_a_regression_target_too_large_for_float32_names_the_target(
    tmp_path: Path,
) -> None:
    rows = "".join(f"{i},{i * 1.5}\n" for i in range(10)).replace("4.5", "-5e38")
    path = write(tmp_path / "reg.csv", "x,label\n" + rows)
    assert load_error(path, dtype="float32").startswith(
        "data.target: column 'label' holds -5e+38 in row 5: too large for float32"
    )


def test_training_on_a_cell_too_large_for_float32_is_refused_before_it_trains(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "big.csv", SMALL.replace("3,4,a", "3,1e300,a"))
    with pytest.raises(
        ConfigError, match=r"column 'y' holds 1e\+300 in row 4: too large"
    ):
        train(["data=csv", f"data.path={path}", "data.target=label"])


# ------------------------------------------------------------------------------------
# CSV layout: delimiter, comment line, unterminated quote, trailing comma, ~
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delimiter", "shown", "word", "fix"),
    [
        (";", "';'", "semicolon", "\"data.delimiter=';'\""),
        ("\t", "tab", "tab", "data.delimiter=tab"),
        ("|", "'|'", "pipe", "data.delimiter=pipe"),
    ],
)
def test_another_delimiter_is_named_and_data_delimiter_reads_it(
    tmp_path: Path, delimiter: str, shown: str, word: str, fix: str
) -> None:
    path = write(tmp_path / "d.csv", SMALL.replace(",", delimiter))
    message = load_error(path)
    assert message == (
        f"data.delimiter: is ',', but {path!r} looks separated by {shown}: its "
        f"header row is {'x,y,label'.replace(',', delimiter)!r}.\n"
        f"  Set {fix}."
    )
    for value in (word, delimiter):
        table = csv_table(path, delimiter=value)
        assert table.feature_names == ("x", "y")
        assert table.class_names == ("a", "b")


def test_a_semicolon_file_with_decimal_commas_is_named_too(tmp_path: Path) -> None:
    text = "x;y;label\n1,5;2,5;a\n2,5;3;b\n3;4,5;a\n"
    assert "looks separated by ';'" in load_error(write(tmp_path / "d.csv", text))


def test_data_delimiter_is_one_character_or_a_name() -> None:
    with pytest.raises(
        ConfigError,
        match=r"data\.delimiter: ';;' is not one character to separate cells\.\n"
        r"  Give one character, or one of: comma, semicolon, tab, pipe",
    ):
        parse_data({"name": "csv", "path": "a.csv", "target": "y", "delimiter": ";;"})
    spec = parse_data(
        {"name": "csv", "path": "a.csv", "target": "y", "delimiter": "TAB"}
    )
    assert spec.options["delimiter"] == "\t"
    assert parse_data(spec.to_dict()) == spec


def test_a_comment_line_above_the_header_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", "# exported by a tool, v2\n" + SMALL)
    assert load_error(path) == (
        f"data.path: {path!r}, row 1: '# exported by a tool, v2' looks like a "
        "comment, and a CSV file has none: its first row must be the header.\n"
        "  Delete the comment lines, so that the column names are row 1."
    )


def test_a_column_named_with_a_hash_is_still_a_column(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", SMALL.replace("x,y", "#rooms,y"))
    assert csv_table(path).feature_names == ("#rooms", "y")


def test_an_unterminated_quote_is_named_with_its_row(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", SMALL.replace("3,4,a", '3,"4,a'))
    assert load_error(path).startswith(
        f'data.path: {path!r}, row 4: a quote (") opens a cell that is never closed'
    )


def test_quoted_cells_with_line_breaks_are_still_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "q.csv", 'x,y,label\n1,2,"a"\n2,3,"b\nb"\n3,4,a\n4,5,"b\nb"\n'
    )
    assert csv_table(path).class_names == ("a", "b\nb")


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("x,y,label,\n1,2,a,\n2,3,b,\n3,4,a,\n", "at the end of every row"),
        ("x,y,label,\n1,2,a\n2,3,b\n3,4,a\n", "at the end of the header row"),
    ],
)
def test_a_trailing_comma_in_the_header_is_named(
    tmp_path: Path, text: str, fix: str
) -> None:
    path = write(tmp_path / "t.csv", text)
    message = load_error(path)
    assert message == (
        f"data.path: {path!r}: the header row ends with a ',', so its last column (4) "
        f"has no name.\n  Delete the ',' {fix}, or name the column."
    )
    assert "index=False" not in message


def test_the_pandas_index_hint_is_for_the_first_column_only(tmp_path: Path) -> None:
    first = load_error(write(tmp_path / "a.csv", ",x,label\n0,1,a\n1,2,b\n"))
    assert "column 1 of the header row has no name" in first
    assert "index=False" in first
    middle = load_error(write(tmp_path / "b.csv", "x,,label\n0,1,a\n1,2,b\n"))
    assert "column 2 of the header row has no name" in middle
    assert "index=False" not in middle


def test_a_row_that_ends_with_a_comma_says_so(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", SMALL.replace("2,3,b", "2,3,b,"))
    assert load_error(path).startswith(
        f"data.path: {path!r}, row 3 has 4 cells, but the header has 3 columns: the "
        "row ends with a ','."
    )


def test_a_tilde_path_on_the_command_line_says_it_is_not_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "x.csv").write_text("a,label\n1,0\n", encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=r"^data\.path: '~/x\.csv': '~' is not expanded here .*\n"
        rf"  Give the absolute path: data\.path={re.escape(str(tmp_path))}/x\.csv$",
    ):
        check_overrides(["task=train", "data=csv", "data.path=~/x.csv"])


def test_a_tilde_path_to_no_file_suggests_no_path_that_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(
        ConfigError,
        match=r"^data\.path: '~/x\.csv': '~' is not expanded here .*, and "
        rf"{re.escape(str(tmp_path))}/x\.csv, what it would name, does not exist "
        r"either\.\n  Give the absolute path of an existing file\.$",
    ):
        check_overrides(["task=train", "data=csv", "data.path=~/x.csv"])
    with pytest.raises(
        ConfigError,
        match=rf"Give the absolute path: hydra\.run\.dir={re.escape(str(tmp_path))}/r$",
    ):
        check_overrides(["hydra.run.dir=~/r"])


# ------------------------------------------------------------------------------------
# A continuous target given as classes
# ------------------------------------------------------------------------------------


def test_classification_of_a_continuous_target_counts_its_distinct_values(
    tmp_path: Path,
) -> None:
    rows = "".join(f"{i},{150 + i * 0.37:.2f}\n" for i in range(120))
    path = write(tmp_path / "c.csv", "x,label\n" + rows)
    assert load_error(path, kind="classification") == (
        "data.kind: is classification, but target column 'label' has 120 distinct "
        "values in 120 rows: fewer than two rows a class.\n"
        "  Set data.kind=regression (or leave it out: it is inferred), or choose a "
        "column of class labels."
    )
    assert csv_table(path).kind == "regression"


def test_an_identifier_column_as_target_counts_its_distinct_values(
    tmp_path: Path,
) -> None:
    rows = "".join(f"{i},id{i}\n" for i in range(40))
    message = load_error(write(tmp_path / "i.csv", "x,label\n" + rows))
    assert message.startswith(
        "data.target: target column 'label' has 40 distinct values in 40 rows"
    )


# ------------------------------------------------------------------------------------
# Text class labels: spaces stripped, case variants named
# ------------------------------------------------------------------------------------


def test_spaces_around_text_labels_are_stripped_quoted_or_not(tmp_path: Path) -> None:
    text = 'x,label\n1,yes\n2, yes\n3,"yes"\n4, "yes"\n5,"yes "\n6,no\n7, "no"\n'
    assert csv_table(write(tmp_path / "s.csv", text)).class_names == ("no", "yes")


def test_classes_that_differ_only_in_case_are_named_in_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "x,label\n1,yes\n2,Yes\n3, yes\n4,no\n5,No\n6,maybe\n"
    table = csv_table(write(tmp_path / "c.csv", text))
    assert table.class_names == ("No", "Yes", "maybe", "no", "yes")
    # A note of the table's, which task=train prints with the column types.
    assert table.notes == (
        "note: data.target: column 'label' has classes that differ only in case, "
        "kept apart: 'No' and 'no', 'Yes' and 'yes'. Fix the cells if they are one "
        "class.",
    )


def test_no_note_without_case_variants(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert csv_table(write(tmp_path / "n.csv", SMALL)).notes == ()
    assert capsys.readouterr().err == ""


def test_a_comment_line_with_the_header_s_commas_is_named(tmp_path: Path) -> None:
    # The comment becomes the header, and the real header a row of text cells.
    path = write(tmp_path / "c.csv", "# x,y,label\n" + SMALL)
    assert "row 1: '# x,y,label' looks like a comment" in load_error(path)


def test_a_quote_closed_rows_later_names_the_cell_that_spans_lines(
    tmp_path: Path,
) -> None:
    text = SMALL.replace("2,3,b", '2,"3,b').replace("4,5,b", '4,5",b')
    path = write(tmp_path / "q.csv", text)
    assert load_error(path).startswith(
        f"data.path: {path!r}, row 3, column 'y': a quoted cell runs over several "
        "lines ('3,b\\n3,4,a\\n4,5'), so a quote (\") is not closed where it should be."
    )


def test_a_cell_too_large_for_float16_suggests_float32(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", SMALL.replace("3,4,a", "3,70000,a"))
    message = load_error(path, dtype="float16")
    assert "70000 is too large for float16" in message
    assert "±6.6e+04" in message
    assert "or use dtype=float32" in message
    assert "dtype=float32" not in load_error(
        write(tmp_path / "b.csv", SMALL.replace("3,4,a", "3,1e39,a")), dtype="float32"
    )


def test_a_decimal_comma_is_named_once_the_delimiter_is_right(tmp_path: Path) -> None:
    text = "x;y;label\n1,5;2;a\n2;3;b\n3;4;a\n"
    message = load_error(write(tmp_path / "d.csv", text), delimiter="semicolon")
    assert message.startswith(
        "data.path: column 'x' holds numbers, but '1,5' (a decimal comma: a number "
        "is written 1.5) in row 2 is not one"
    )


def test_a_bad_cell_under_a_header_that_starts_with_a_hash_is_named_as_it_is(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "h.csv", SMALL.replace("x,y", "#id,y").replace("3,4", "3,z")
    )
    assert load_error(path).startswith(
        "data.path: column 'y' holds numbers, but 'z' in row 4 is not one"
    )


def test_a_non_ascii_run_directory_to_export_is_accepted() -> None:
    assert check_overrides(["task=export", "task.run=/runs/ünï"])[-1] == (
        "task.run='/runs/ünï'"
    )
