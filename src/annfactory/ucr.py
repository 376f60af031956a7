"""The UCR/UEA time series classification sets that sktime ships in its wheel.

:func:`ucr_names` lists them (ArrowHead, BasicMotions, GunPoint, ItalyPowerDemand,
JapaneseVowels, ...: the bundled sets that sktime's list of the archive's
classification problems names; its regression set Tecator and its own test set
UnitTest are left out). :func:`read_ucr` reads one, train and test parts, through
sktime's public loader ``sktime.datasets.load_UCR_UEA_dataset`` into float64 arrays
of shape ``(samples, time, dimensions)``. Nothing is ever downloaded: a set that is
not in the wheel is an unknown name.

sktime is an optional dependency (the extra ``sequences``, :data:`INSTALL`). It and
numpy are imported inside the functions, so that importing this module stays cheap:
the command line imports :mod:`annfactory.data` on every start.
"""

from __future__ import annotations

import functools
import importlib.resources
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from annfactory.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["INSTALL", "UcrSet", "read_ucr", "ucr_names"]

#: The command that installs sktime for ``data=ucr``, quoted in messages.
INSTALL: Final = "pip install 'annfactory[sequences]'"

_SPLITS: Final = ("train", "test")


@dataclass(frozen=True)
class UcrSet:
    """One UCR/UEA classification set, both parts, as arrays.

    The arrays are read-only: :func:`read_ucr` hands the same ones to every caller
    in a process.

    Attributes:
        name: The set's name in the archive (``"GunPoint"``).
        train_x: The training series, float64, ``[samples, time, dimensions]``.
        test_x: The test series, float64, ``[samples, time, dimensions]``, as long
            as the training ones.
        train_y: The class of each training series, int64 indices into
            :attr:`class_names`, ``[samples]``.
        test_y: The class of each test series, as :attr:`train_y`.
        class_names: The sorted unique labels of the training part, as strings.
        lengths: The shortest and the longest series, in time steps, over both parts
            before padding (equal for a set of equal lengths).
        padded: True where the series differ in length: each is then padded at its
            end to the longest by repeating its last step.
    """

    name: str
    train_x: npt.NDArray[np.float64]
    test_x: npt.NDArray[np.float64]
    train_y: npt.NDArray[np.int64]
    test_y: npt.NDArray[np.int64]
    class_names: tuple[str, ...]
    lengths: tuple[int, int]
    padded: bool


def ucr_names() -> tuple[str, ...]:
    """The UCR/UEA classification sets that the installed sktime ships, sorted.

    A set counts where sktime's data directory holds ``<name>/<name>_TRAIN.ts`` and
    ``<name>/<name>_TEST.ts`` and sktime's list of the archive's classification
    problems (``sktime.datasets.tsc_dataset_names``) names it.

    Raises:
        ConfigError: sktime is not installed (key ``data``).
    """
    _require_sktime()
    from sktime.datasets import tsc_dataset_names

    classification = {*tsc_dataset_names.univariate, *tsc_dataset_names.multivariate}
    data = importlib.resources.files("sktime.datasets") / "data"
    return tuple(
        sorted(
            entry.name
            for entry in data.iterdir()
            if entry.name in classification
            and all((entry / f"{entry.name}_{s.upper()}.ts").is_file() for s in _SPLITS)
        )
    )


def read_ucr(name: str, key: str = "data.dataset") -> UcrSet:
    """Read the UCR/UEA set ``name`` from the sktime wheel, both parts.

    A set of equal lengths is read as sktime's ``numpy3D``; one whose series differ
    in length (JapaneseVowels) as ``nested_univ`` (a pandas Series per cell), each
    series then padded at its end to the longest over both parts by repeating its
    last step, so that a recurrent layer's last step is the real series' last. The
    result is cached in the process. With sktime 1.2 on 2 shared cores, sktime's
    import takes 1 to 1.5 s (once a process), then GunPoint 15 to 25 ms and
    JapaneseVowels 0.3 to 0.5 s (sktime's parsing of its nested frame, mostly).

    Args:
        name: The set's name, as :func:`ucr_names` lists it (``"GunPoint"``).
        key: The config path of ``name``, for messages.

    Returns:
        Both parts as read-only arrays; see :class:`UcrSet`.

    Raises:
        ConfigError: sktime is not installed (key ``data``); the test part has a
            label that the training part lacks.
        UnknownNameError: ``name`` is not a set that sktime ships; it names the
            closest one and all of them.
    """
    names = ucr_names()
    if name not in names:
        raise UnknownNameError(
            key,
            "UCR/UEA set",
            name,
            names,
            advice="only the sets in sktime's wheel are read, never downloaded.",
        )
    return _read(name, key)


@functools.cache
def _read(name: str, key: str) -> UcrSet:
    import numpy as np
    from sktime.datasets import load_UCR_UEA_dataset, tsc_dataset_names

    equal = {
        *tsc_dataset_names.univariate_equal_length,
        *tsc_dataset_names.multivariate_equal_length,
    }
    return_type = "numpy3D" if name in equal else "nested_univ"
    parts = []
    with warnings.catch_warnings():
        # sktime 0.23 (the lowest we accept) on pandas 2.1 and later, for every set:
        # its converters call DataFrame.applymap, which pandas deprecated.
        warnings.filterwarnings(
            "ignore", "DataFrame.applymap has been deprecated", FutureWarning
        )
        for split in _SPLITS:
            parts.append(
                load_UCR_UEA_dataset(name, split=split, return_type=return_type)
            )
    (train_x, train_labels), (test_x, test_labels) = parts
    if return_type == "numpy3D":
        # sktime's numpy3D is [samples, dimensions, time].
        train_x, test_x = (np.transpose(x, (0, 2, 1)) for x in (train_x, test_x))
        length = int(train_x.shape[1])
        lengths, padded = (length, length), False
    else:
        train_x, test_x, lengths = _padded_at_the_end(train_x, test_x)
        padded = True
    class_names, train_y, test_y = _class_indices(
        name, key, np.asarray(train_labels), np.asarray(test_labels)
    )
    return UcrSet(
        name=name,
        train_x=_read_only(train_x, np.float64),
        test_x=_read_only(test_x, np.float64),
        train_y=_read_only(train_y, np.int64),
        test_y=_read_only(test_y, np.int64),
        class_names=class_names,
        lengths=lengths,
        padded=padded,
    )


def _padded_at_the_end(
    train: Any, test: Any
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], tuple[int, int]]:
    """Two nested frames (a Series per sample and dimension) as arrays
    ``[samples, time, dimensions]``, each series padded at its end to the longest
    of both by repeating its last step; and the shortest and longest lengths."""
    import numpy as np

    cells = [
        [[cell.to_numpy(dtype=np.float64) for cell in row] for row in frame.values]
        for frame in (train, test)
    ]
    sizes = [len(series) for part in cells for row in part for series in row]
    longest = max(sizes)
    arrays = []
    for part in cells:
        array = np.empty((len(part), longest, len(part[0]) if part else 0))
        for sample, row in enumerate(part):
            for dimension, series in enumerate(row):
                array[sample, : len(series), dimension] = series
                array[sample, len(series) :, dimension] = series[-1]
        arrays.append(array)
    return arrays[0], arrays[1], (min(sizes), longest)


def _class_indices(
    name: str, key: str, train: npt.NDArray[Any], test: npt.NDArray[Any]
) -> tuple[tuple[str, ...], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The sorted labels of ``train`` and each label's index in them, for both.
    Labels that are all numbers sort by value ('2' before '10'), as a table's do."""
    import numpy as np

    train, test = train.astype(str), test.astype(str)
    labels = np.unique(train)
    unseen = np.setdiff1d(test, labels)
    if unseen.size:
        raise ConfigError(
            key,
            f"the test part of {name!r} has labels that its train part lacks: "
            f"{', '.join(map(repr, unseen.tolist()))}.",
            "Choose another set: a network learns only the classes it is shown.",
        )
    class_names = labels.tolist()
    if all(_is_number(label) for label in class_names):
        class_names.sort(key=float)
    index = {label: position for position, label in enumerate(class_names)}
    return (
        tuple(class_names),
        np.array([index[label] for label in train.tolist()], dtype=np.int64),
        np.array([index[label] for label in test.tolist()], dtype=np.int64),
    )


def _is_number(label: str) -> bool:
    try:
        float(label)
    except ValueError:
        return False
    return True


def _read_only(values: Any, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A C-contiguous copy of ``values`` as ``dtype``, not writable."""
    import numpy as np

    array = np.array(values, dtype=dtype, order="C")
    array.flags.writeable = False
    return array


def _require_sktime() -> None:
    """Import ``sktime.datasets``; a ConfigError where sktime cannot be imported."""
    try:
        import sktime.datasets  # noqa: F401
    except ImportError as error:
        why = (
            "which is not installed"
            if error.name == "sktime"
            else f"which fails to import ({error})"
        )
        raise ConfigError(
            "data",
            f"data=ucr needs sktime (the optional extra 'sequences'), {why}.",
            f"Install it: {INSTALL}",
        ) from error
