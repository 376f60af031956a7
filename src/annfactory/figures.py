"""Saving figures: one place writes a PNG and says what it could not draw.

matplotlib warns once per missing character when the machine's fonts lack a glyph
(a Japanese column name in a title on a machine with only DejaVu Sans): three
``UserWarning`` lines with a source line each, for one title. :func:`save_figure`
gathers them into one note that names the file and the characters, which the figure
shows as boxes.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path
from typing import Any, TextIO

__all__ = ["save_figure"]

#: matplotlib's text for a character its fonts lack, e.g.
#: ``Glyph 12521 (\N{KATAKANA LETTER RA}) missing from font(s) DejaVu Sans.``
_MISSING_GLYPH = re.compile(r"Glyph (\d+) .*missing from (?:current )?font")


def save_figure(
    figure: Any, path: Path, *, err: TextIO | None = None, **options: Any
) -> None:
    """Write ``figure`` to ``path`` (``figure.savefig(path, **options)``).

    Characters that no installed font has are drawn as boxes; instead of
    matplotlib's warning per character, one note on ``err`` (standard error by
    default) names the file and the characters.

    Args:
        figure: A matplotlib ``Figure``.
        path: Where to write it.
        err: Where the note goes; standard error when None.
        **options: Passed to ``Figure.savefig`` (``format``, ``dpi``, ``metadata``).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.savefig(path, **options)
    missing: list[str] = []
    for warning in caught:
        match = _MISSING_GLYPH.search(str(warning.message))
        if match is None:
            warnings.warn_explicit(
                warning.message,
                warning.category,
                warning.filename,
                warning.lineno,
                source=warning.source,
            )
            continue
        character = chr(int(match.group(1)))
        if character not in missing:
            missing.append(character)
    if missing:
        shown = " ".join(missing)
        print(
            f"note: {Path(path).name}: this machine's fonts have no glyph for {shown}; "
            "the figure shows boxes there (a font such as Noto Sans CJK has them).",
            file=err if err is not None else sys.stderr,
        )
