"""The Optuna sweeper's search space: Hydra's overrides -> Optuna's distributions.

``choice`` is categorical; ``range`` the integers (or float steps) Hydra's ``range``
gives, its end excluded; ``interval`` floats; ``tag(log, ...)`` a log scale;
``tag(int, interval(...))`` integers; a plain value is fixed. A trial's values go back
to override text (:func:`override_value`) that Hydra parses to the same values.

Hydra's plugin scan skips modules whose name starts with ``_``: this one is imported
by :mod:`.optuna_sweeper` only, and imports Optuna and annfactory only when called.
"""

# No "from __future__ import annotations", as in every module of this package.
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    Glob,
    IntervalSweep,
    Override,
    RangeSweep,
)

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = [
    "SEARCH_TAGS",
    "SearchSpace",
    "distribution_of",
    "grid_of",
    "override_value",
    "search_space",
]

#: The tags ``interval`` takes in a search: ``tag(log, interval(...))``.
SEARCH_TAGS = ("int", "log")
#: What a bad search-space value may be instead (for messages).
_SEARCH_FORMS = (
    "choice(a,b,...), range(start,stop[,step]), interval(low,high), "
    "tag(log,interval(low,high)), tag(int,interval(low,high)), or a plain value"
)


@dataclass
class SearchSpace:
    """The searched parameters and the fixed overrides, in command-line order.

    Attributes:
        distributions: Override key (as written, ``+a/b`` included) -> its Optuna
            distribution.
        items: ``(key, line)`` per override in order: ``line`` is the fixed override
            as written, or None for a searched key.
        choices: Override key -> its ``choice(...)`` values, for keys that name a
            choice (what a task override may be).
        texts: Searched key -> its value as written (``choice(16,32)``).
    """

    distributions: dict[str, "BaseDistribution"]
    items: list[tuple[str, Optional[str]]]  # noqa: UP045
    choices: dict[str, list[Any]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """One trial's overrides: the fixed ones as given, the searched ones set to
        ``params`` (a trial's values)."""
        return [
            line if line is not None else f"{key}={override_value(params[key])}"
            for key, line in self.items
        ]

    def log_scale(self) -> list[str]:
        """The keys searched on a log scale (``tag(log, ...)``)."""
        return [
            key
            for key, distribution in self.distributions.items()
            if getattr(distribution, "log", False)
        ]

    def fixed(self) -> list[str]:
        """The fixed overrides, as written, in order."""
        return [line for _, line in self.items if line is not None]

    def fixed_value(self, key: str) -> Any:
        """The value a fixed override ``key=value`` sets (None: not fixed here)."""
        for item_key, line in self.items:
            if item_key == key and line is not None:
                return _parser().parse_override(line).value()
        return None


def search_space(
    arguments: Sequence[str],
    params: Optional[Mapping[str, Any]] = None,  # noqa: UP045
) -> SearchSpace:
    """Parse the search space from the sweeper's ``params`` and the command line.

    Args:
        arguments: The command line's overrides (Hydra's override grammar).
        params: ``hydra.sweeper.params``: key -> override value text. A key also on
            the command line takes the command line's value.

    Raises:
        ConfigError: A value that cannot be searched (names the key, says why and
            what is allowed).
    """
    from annfactory.errors import ConfigError

    parsed: list[tuple[Override, str]] = []
    for key, value in (params or {}).items():
        where = f"hydra.sweeper.params.{key}"
        try:
            parsed.append((_parser().parse_override(f"{key}={value}"), where))
        except Exception as error:  # Hydra's parse error: its first line says it
            raise ConfigError(
                where,
                f"{value!r} is not an override value: {str(error).splitlines()[-1]}",
                f"Use {_SEARCH_FORMS}.",
            ) from None
    given = _parser().parse_overrides(list(arguments))
    parsed += [(override, override.get_key_element()) for override in given]

    distributions: dict[str, BaseDistribution] = {}
    items: dict[str, tuple[str, str | None]] = {}
    choices: dict[str, list[Any]] = {}
    texts: dict[str, str] = {}
    for override, where in parsed:
        key = override.get_key_element()
        # The same key twice (params and the command line): the later one wins.
        identity = f"{override.key_or_group}@{override.package}"
        items.pop(identity, None)
        distributions.pop(key, None)
        choices.pop(key, None)
        texts.pop(key, None)
        distribution = distribution_of(override, where)
        if distribution is None:
            assert override.input_line is not None
            items[identity] = (key, override.input_line)
            continue
        items[identity] = (key, None)
        distributions[key] = distribution
        texts[key] = str(override.input_line).partition("=")[2]
        if isinstance(override.value(), ChoiceSweep):
            choices[key] = list(getattr(distribution, "choices", ()))
    return SearchSpace(distributions, list(items.values()), choices, texts)


def distribution_of(override: Override, where: str) -> Optional["BaseDistribution"]:
    """The Optuna distribution of one override (None: a fixed value).

    ``choice`` -> categorical; ``range`` -> the integers (or float steps) Hydra's
    ``range`` gives, its end excluded; ``interval`` -> floats; ``tag(log, ...)`` ->
    log scale; ``tag(int, interval(...))`` -> integers, both ends included.

    Raises:
        ConfigError: An empty range or interval, a ``glob``, a choice of lists or
            mappings, an unknown tag, a log interval that is not positive.
    """
    from annfactory.errors import ConfigError

    if not override.is_sweep_override():
        return None
    value = override.value()
    text = override.input_line or where
    if isinstance(value, ChoiceSweep):
        return _choice_distribution(value, where, text)
    if isinstance(value, RangeSweep):
        return _range_distribution(override, value, where, text)
    if isinstance(value, IntervalSweep):
        return _interval_distribution(value, where, text)
    if isinstance(value, Glob):
        raise ConfigError(
            where,
            f"{text!r}: glob() is not searchable.",
            "List the options with choice(...) instead.",
        )
    raise ConfigError(where, f"{text!r} cannot be searched.", f"Use {_SEARCH_FORMS}.")


def _choice_distribution(
    value: ChoiceSweep, where: str, text: str
) -> "BaseDistribution":
    """``choice(...)``: categorical over its values, each once (``1`` and ``1.0``
    and ``true`` stay apart).

    Raises:
        ConfigError: A choice of lists or mappings.
    """
    from optuna.distributions import CategoricalDistribution

    from annfactory.errors import ConfigError

    values: list[Any] = []
    for item in value.list:
        if not (item is None or isinstance(item, str | int | float | bool)):
            raise ConfigError(
                where,
                f"{text!r}: a choice of {type(item).__name__} values cannot be "
                "searched; Optuna chooses among str, int, float, bool or null.",
                "Sweep such values with the annfactory sweeper instead.",
            )
        if item not in values or any(
            type(item) is not type(seen) for seen in values if seen == item
        ):
            values.append(item)
    return CategoricalDistribution(values)


def _range_distribution(
    override: Override, value: RangeSweep, where: str, text: str
) -> "BaseDistribution":
    """``range(start,stop[,step])``: the integers (or float steps) Hydra's range
    gives, its end excluded; categorical over them if shuffled.

    Raises:
        ConfigError: An empty range.
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from annfactory.errors import ConfigError

    steps: list[Any] = list(override.sweep_iterator())
    if not steps:
        raise ConfigError(
            where,
            f"{text!r} is empty (Hydra's range excludes its end).",
            "Give range(start,stop) with stop beyond start, e.g. range(1,6) for 1..5.",
        )
    if value.shuffle:
        return CategoricalDistribution(steps)
    assert value.step is not None
    step = abs(value.step)
    low, high = min(steps), max(steps)
    if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
        return IntDistribution(int(low), int(high), step=int(step))
    return FloatDistribution(float(low), float(high), step=float(step))


def _interval_distribution(
    value: IntervalSweep, where: str, text: str
) -> "BaseDistribution":
    """``interval(low,high)``: floats; ``tag(log, ...)`` on a log scale,
    ``tag(int, ...)`` integers, both ends included.

    Raises:
        ConfigError: An unknown tag, an empty interval, a log interval that is not
            positive, ``tag(int, ...)`` with fractional ends.
    """
    from optuna.distributions import FloatDistribution, IntDistribution

    from annfactory.errors import ConfigError, UnknownNameError

    unknown = sorted(set(value.tags) - set(SEARCH_TAGS))
    if unknown:
        raise UnknownNameError(
            where, "search tag", unknown[0], SEARCH_TAGS, where=f" in {text!r}"
        )
    assert value.start is not None
    assert value.end is not None
    start, end, log = float(value.start), float(value.end), "log" in value.tags
    if not start <= end:
        raise ConfigError(
            where,
            f"{text!r} is empty: its low end is above its high end.",
            "Give interval(low,high) with low <= high.",
        )
    if log and start <= 0:
        raise ConfigError(
            where,
            f"{text!r}: a log scale needs a low end above 0.",
            "Give tag(log,interval(low,high)) with 0 < low, e.g. 0.0001.",
        )
    if "int" in value.tags:
        if not (start.is_integer() and end.is_integer()):
            raise ConfigError(
                where,
                f"{text!r}: tag(int, ...) needs whole-number ends.",
                "Give e.g. tag(int,interval(1,10)).",
            )
        return IntDistribution(int(start), int(end), log=log)
    return FloatDistribution(start, end, log=log)


def override_value(value: Any) -> str:
    """A trial's value as override text that Hydra parses back to the same value.

    Strings that Hydra would read as something else (``null``, ``1``, ``a,b``, a
    space) are quoted.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # full precision: the run gets the value Optuna tells
    text = str(value)
    try:
        parsed = _parser().parse_override(f"k={text}")
        if not parsed.is_sweep_override() and parsed.value() == text:
            return text
    except Exception:  # not a bare string in Hydra's grammar: quote it
        pass
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


_PARSER: list[OverridesParser] = []


def _parser() -> OverridesParser:
    if not _PARSER:
        _PARSER.append(OverridesParser.create())
    return _PARSER[0]


def grid_of(space: SearchSpace) -> dict[str, list[Any]]:
    """Every value of each searched key, for the grid sampler.

    Raises:
        ConfigError: A key searched over a continuous interval.
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from annfactory.errors import ConfigError

    grid: dict[str, list[Any]] = {}
    for key, distribution in space.distributions.items():
        if isinstance(distribution, CategoricalDistribution):
            grid[key] = list(distribution.choices)
        elif isinstance(distribution, IntDistribution) and not distribution.log:
            grid[key] = list(
                range(distribution.low, distribution.high + 1, distribution.step)
            )
        elif isinstance(distribution, FloatDistribution) and distribution.step:
            count = round((distribution.high - distribution.low) / distribution.step)
            grid[key] = [
                distribution.low + index * distribution.step
                for index in range(count + 1)
            ]
        else:
            raise ConfigError(
                key,
                "sampler=grid needs a finite set of values; an interval has none.",
                "Use choice(...) or range(...) for this key, or sampler=tpe.",
            )
    return grid
