"""Reading a user's table: CSV (any delimiter; TSV), gzip'd CSV and Parquet, with
pyarrow's readers (nothing in a file is ever evaluated).

:func:`read_table` returns a ``pyarrow.Table``: missing markers
(:data:`NA_VALUES`) are nulls, dates and times stay text. Where pyarrow fails, the
file's text is scanned (on that path only) to name the row and the cause: a row
with the wrong number of cells, or another delimiter than ``data.delimiter``.
:mod:`annfactory.table_fitting` turns the table into a network's inputs.

pyarrow is imported inside the functions, so that importing annfactory stays cheap.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from annfactory.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["FORMATS", "NA_VALUES", "read_table"]

#: The cells read as missing unless ``data.na_values`` says otherwise.
NA_VALUES: Final[tuple[str, ...]] = (
    "",
    "NA",
    "N/A",
    "NaN",
    "nan",
    "null",
    "NULL",
    "None",
    "?",
)
#: The formats :func:`read_table` reads, and the file name endings that pick them.
FORMATS: Final = {
    "csv": (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz"),
    "parquet": (".parquet", ".pq"),
}
_SNIFFED: Final = ",;\t|"
_DELIMITER_WORDS: Final = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_ROWS_NOTE: Final = "rows are counted as lines in an editor: the header is row 1"


# ------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------


def read_table(
    path: Path,
    *,
    delimiter: str = ",",
    na_values: Sequence[str] = NA_VALUES,
    key: str = "data.path",
    format: str | None = None,
) -> pa.Table:
    """The file at ``path`` as a ``pyarrow.Table``, one column per header name.

    Args:
        path: A CSV (any delimiter; gzip'd where the name ends in ``.gz``) or
            Parquet file.
        delimiter: The character between cells of a CSV file (``"\\t"``: TSV).
        na_values: The cells of a CSV file that mean "missing" (compared whole,
            quoted or not).
        key: The config path of ``path``, for messages.
        format: ``csv`` or ``parquet``; None: from the name's ending (``.parquet``
            and ``.pq`` are Parquet, anything else CSV).

    Returns:
        The table. A CSV file's columns are int64, float64, bool, string or null
        (every cell missing); dates and times stay text.

    Raises:
        ConfigError: The file does not exist, is empty, has no header or no data
            rows, is not Parquet, has a row with the wrong number of cells (the
            message names its row), or looks separated by another delimiter.
    """
    shown = repr(str(path))
    chosen = _format(path, format, key)
    if not path.exists():
        where = "" if path.is_absolute() else f" (relative to {os.getcwd()})"
        raise ConfigError(
            key,
            f"no file {shown}{where}.",
            "Give the path of a data file; a relative path starts at the directory "
            "the command runs in.",
        )
    if path.is_dir():
        raise ConfigError(key, f"{shown} is a directory.", "Give the path of a file.")
    if path.stat().st_size == 0:
        raise ConfigError(
            key,
            f"{shown} is empty.",
            "A table needs a header row (the column names), then one row per sample.",
        )
    table = (
        _read_parquet(path, shown, key)
        if chosen == "parquet"
        else _read_csv(path, shown, key, delimiter, na_values)
    )
    # Spaces around a name are a spreadsheet's slip, as in annfactory.data.
    table = table.rename_columns([name.strip() for name in table.column_names])
    _check_names(table.column_names, shown, key)
    _check_text(table, shown, key)
    if table.num_rows == 0:
        raise ConfigError(
            key,
            f"{shown} has a header row but no data rows.",
            "Add one row per sample below the header.",
        )
    return table


def _format(path: Path, format: str | None, key: str) -> str:
    if format is None:
        name = path.name.lower()
        return "parquet" if name.endswith(FORMATS["parquet"]) else "csv"
    if format not in FORMATS:
        raise UnknownNameError(
            key.rsplit(".", 1)[0] + ".format", "format", format, FORMATS
        )
    return format


def _read_parquet(path: Path, shown: str, key: str) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise ConfigError(
            key,
            f"{shown} is not a Parquet file ({_first_line(error)}).",
            "Give a Parquet file, or a CSV file (its name not ending in .parquet or "
            ".pq).",
        ) from None
    # A date or a timestamp is text to the network, as in a CSV file.
    return _temporal_as_text(table)


def _temporal_as_text(table: pa.Table) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, field in enumerate(table.schema):
        kind = field.type
        if pa.types.is_temporal(kind) or pa.types.is_dictionary(kind):
            table = table.set_column(
                index, field.name, pc.cast(table.column(index), pa.string())
            )
    return table


def _read_csv(
    path: Path, shown: str, key: str, delimiter: str, na_values: Sequence[str]
) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    def read(column_types: Mapping[str, Any], newlines: bool) -> pa.Table:
        convert = pcsv.ConvertOptions(
            null_values=list(na_values),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            column_types=dict(column_types),
        )
        parse = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=newlines)
        return pcsv.read_csv(path, parse_options=parse, convert_options=convert)

    # Line breaks in quoted cells cost pyarrow a third of its speed, and are rare:
    # read without them first. pyarrow fails (the parser out of step with the
    # chunker, or a row too short) where a quoted cell holds one; read again.
    newlines = False
    try:
        try:
            table = read({}, newlines)
        except pa.ArrowInvalid:
            newlines = True
            table = read({}, newlines)
        temporal = {
            field.name: pa.string()
            for field in table.schema
            if pa.types.is_temporal(field.type)
        }
        if temporal:
            # Dates stay text: read those columns again as text, as written.
            table = read(temporal, newlines)
    except pa.ArrowInvalid as error:
        raise _csv_error(path, shown, key, delimiter, error) from None
    except OSError as error:  # a gzip'd file that is not gzip, a file not readable
        raise ConfigError(
            key,
            f"{shown} cannot be read: {_first_line(error)}.",
            "A name ending in .gz is read as gzip'd; check that the file is whole.",
        ) from None
    if table.num_columns == 1:
        _check_delimiter(_header_line(path), shown, delimiter, 1)
    return table


def _csv_error(
    path: Path, shown: str, key: str, delimiter: str, error: Exception
) -> ConfigError:
    """The cause of pyarrow's failure, found in the file's text (only on this path,
    where the file could not be read): a row with the wrong number of cells, or
    another delimiter."""
    text = _text(path)
    if text is None:
        return ConfigError(
            key,
            f"{shown} is not UTF-8 text.",
            "Save it as UTF-8 (a spreadsheet's 'CSV UTF-8' format).",
        )
    if not text.strip():
        return ConfigError(
            key,
            f"{shown} has no header row.",
            "A table needs a header row (the column names), then one row per sample.",
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    start = 1
    try:
        for cells in reader:
            if not "".join(cells).strip():
                start = reader.line_num + 1
                continue
            if header is None:
                header = cells
                _check_delimiter(delimiter.join(cells), shown, delimiter, len(cells))
            elif len(cells) != len(header):
                ends = len(cells) == len(header) + 1 and not cells[-1].strip()
                mark = _delimiter_name(delimiter)
                return ConfigError(
                    key,
                    f"{shown}, row {start} has {len(cells)} cells, but the header has "
                    f"{len(header)} columns"
                    + (f": the row ends with a {mark}." if ends else "."),
                    (
                        f"Delete the {mark} at the end of the row"
                        if ends
                        else "Give every row one cell per column"
                    )
                    + f" ({_ROWS_NOTE}).",
                )
            start = reader.line_num + 1
    except csv.Error as csv_error:
        return ConfigError(key, f"{shown}, row {reader.line_num}: {csv_error}.")
    return ConfigError(key, f"{shown} cannot be read: {_first_line(error)}.")


def _check_delimiter(header: str, shown: str, delimiter: str, columns: int) -> None:
    """Raise where another delimiter would split the header into more columns."""
    header = header.lstrip("\ufeff")
    for found in _SNIFFED:
        if found == delimiter or found not in header:
            continue
        if len(next(csv.reader([header], delimiter=found))) > columns:
            raise ConfigError(
                "data.delimiter",
                f"is {_delimiter_name(delimiter)}, but {shown} looks separated by "
                f"{_delimiter_name(found)}: its header row is {_shorten(header)!r}.",
                f"Set {_delimiter_override(found)}.",
            )


def _text(path: Path) -> str | None:
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _header_line(path: Path) -> str:
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as file:
        for line in file:
            if line.strip():
                return str(line).rstrip("\r\n")
    return ""


def _check_names(names: Sequence[str], shown: str, key: str) -> None:
    for index, name in enumerate(names):
        if not name.strip():
            raise ConfigError(
                key,
                f"{shown}: column {index + 1} of the header row has no name.",
                "Name every column"
                + (
                    " (pandas writes its index there unnamed: save with index=False)."
                    if index == 0
                    else "."
                ),
            )
        if name in names[:index]:
            raise ConfigError(
                key,
                f"{shown}: the header names column {name!r} twice.",
                "Give every column its own name.",
            )


def _check_text(table: pa.Table, shown: str, key: str) -> None:
    """Raise where a column is bytes, not text: pyarrow reads a CSV cell that is
    not UTF-8 so (a file saved as Latin-1), and a Parquet file may hold bytes."""
    import pyarrow as pa

    for field in table.schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            cells = table.column(field.name).to_pylist()  # on this error path only
            row = next((i for i, cell in enumerate(cells) if not _is_utf8(cell)), 0)
            raise ConfigError(
                key,
                f"{shown}: column {field.name!r} is not UTF-8 text (data row "
                f"{row + 1}: {cells[row]!r}).",
                "Save the file as UTF-8 (a spreadsheet's 'CSV UTF-8' format).",
            )


def _is_utf8(cell: bytes | None) -> bool:
    try:
        return cell is None or bool(cell.decode("utf-8") or True)
    except UnicodeDecodeError:
        return False


def _delimiter_name(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


def _delimiter_override(delimiter: str) -> str:
    """The override that sets ``delimiter``, quoted for a shell and for Hydra."""
    if delimiter in _DELIMITER_WORDS and delimiter != ";":
        return f"data.delimiter={_DELIMITER_WORDS[delimiter]}"
    return f"\"data.delimiter='{delimiter}'\""


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _first_line(error: Exception) -> str:
    return str(error).strip().split("\n")[0].rstrip(".")
