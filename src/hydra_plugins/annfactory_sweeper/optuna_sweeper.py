"""annfactory's Optuna sweeper: a search over Hydra overrides, on Optuna >= 4.

Selected with ``hydra/sweeper=optuna``::

    python scripts/run.py -m hydra/sweeper=optuna task=train model=mlp data=digits \\
        hydra.sweeper.n_trials=40 'model.width=choice(16,32,64,128)' \\
        'model.depth=range(1,6)' 'optimizer.lr=tag(log,interval(0.0001,0.1))'

The search space is Hydra's own override grammar (``choice``, ``range`` with Hydra's
exclusive end, ``interval``, ``tag(log, ...)``, ``tag(int, ...)``); plain values are
fixed. Trials are asked from the study in batches of ``n_jobs``, launched through
Hydra's configured launcher (basic, joblib, submitit) and told the objective, a dotted
path into each job's metrics. As with annfactory's grid sweeper, a trial that fails
(a config that does not compose, a task that raises, a NaN objective) is recorded, as
a FAIL trial in the study and an ``error`` row in the summary, and the search goes
on; the sweep exits non-zero at the end, without a traceback.

The study lives in a real database (default: ``<sweep dir>/optuna.db``, SQLite), so a
later run with the same ``storage`` and ``study_name`` adds trials to it, and several
processes or machines can share one study through a server URL.

Kept light: Hydra imports every plugin module at start-up, so Optuna and annfactory
are imported only when a search runs.
"""

# No "from __future__ import annotations": OmegaConf needs real types on the dataclass.
import importlib
import json
import logging
import math
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    Glob,
    IntervalSweep,
    Override,
    RangeSweep,
)
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

# The package's shared helpers; its __init__ defines them before importing this module.
from hydra_plugins.annfactory_sweeper._conf import OptunaSweeperConf

from . import (
    _compose_message,
    _consecutive,
    _exit_interrupted,
    _raise_for_failures,
    interrupted_records,
    sweeper_params,
)

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

    from annfactory.sweep import ComposeOnce, JobRecord

log = logging.getLogger(__name__)

__all__ = [
    "DIRECTIONS",
    "SAMPLERS",
    "OptunaSweeper",
    "OptunaSweeperConf",
    "SearchSpace",
    "check_same_search",
    "override_value",
    "search_space",
]

#: The values of ``hydra.sweeper.sampler``.
SAMPLERS = ("tpe", "random", "grid", "cmaes")
#: The values of ``hydra.sweeper.direction``.
DIRECTIONS = ("minimize", "maximize")
#: The tags ``interval`` takes in a search: ``tag(log, interval(...))``.
SEARCH_TAGS = ("int", "log")
#: What a bad search-space value may be instead (for messages).
_SEARCH_FORMS = (
    "choice(a,b,...), range(start,stop[,step]), interval(low,high), "
    "tag(log,interval(low,high)), tag(int,interval(low,high)), or a plain value"
)
#: The largest ``hydra.sweeper.seed``: numpy's generators take 0 to 2**32 - 1.
MAX_SAMPLER_SEED = 2**32 - 1
#: The file of the sweep directory with the study's result.
RESULTS_FILE = "optimization_results.yaml"
#: How long a process waits for a locked SQLite database (seconds). Trials of
#: concurrent processes write to one file; Optuna's default (5 s) is too short when
#: jobs finish together.
_SQLITE_TIMEOUT_S = 60


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="optuna",
    node=OptunaSweeperConf,
    provider="annfactory",
)


# ------------------------------------------------------------------------------------
# The search space
# ------------------------------------------------------------------------------------


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
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from annfactory.errors import ConfigError, UnknownNameError

    if not override.is_sweep_override():
        return None
    value = override.value()
    text = override.input_line or where
    if isinstance(value, ChoiceSweep):
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
    if isinstance(value, RangeSweep):
        steps: list[Any] = list(override.sweep_iterator())
        if not steps:
            raise ConfigError(
                where,
                f"{text!r} is empty (Hydra's range excludes its end).",
                "Give range(start,stop) with stop beyond start, e.g. range(1,6) for "
                "1..5.",
            )
        if value.shuffle:
            return CategoricalDistribution(steps)
        assert value.step is not None
        step = abs(value.step)
        low, high = min(steps), max(steps)
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return IntDistribution(int(low), int(high), step=int(step))
        return FloatDistribution(float(low), float(high), step=float(step))
    if isinstance(value, IntervalSweep):
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
    if isinstance(value, Glob):
        raise ConfigError(
            where,
            f"{text!r}: glob() is not searchable.",
            "List the options with choice(...) instead.",
        )
    raise ConfigError(where, f"{text!r} cannot be searched.", f"Use {_SEARCH_FORMS}.")


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


# ------------------------------------------------------------------------------------
# The objective
# ------------------------------------------------------------------------------------


def choose_objective(
    task_names: Sequence[str],
    objective: Optional[str],  # noqa: UP045
    direction: Optional[str],  # noqa: UP045
) -> tuple[str, str]:
    """The objective and direction of a search over jobs of ``task_names``.

    The objective defaults to the first task's first declared objective
    (``Task.objectives``), the direction to the objective's natural one.

    Raises:
        ConfigError: A task that declares no objective, an objective a task does not
            produce (names the closest one), or a direction other than minimize or
            maximize.
    """
    from annfactory.errors import ConfigError, UnknownNameError
    from annfactory.tasks import tasks

    declared: dict[str, str] = {}
    for name in task_names:
        objectives = dict(tasks.get(name, key="task").objectives)
        if not objectives:
            searchable = [n for n in tasks.names() if tasks.get(n).objectives]
            raise ConfigError(
                "hydra.sweeper.objective",
                f"task {name!r} reports no metric to search on.",
                f"Search with a task that does: {', '.join(searchable) or 'none'}.",
            )
        chosen = objective or next(iter(objectives))
        if chosen not in objectives:
            raise UnknownNameError(
                "hydra.sweeper.objective",
                "objective",
                chosen,
                objectives,
                where=f" for task {name!r}",
            )
        declared.setdefault(chosen, objectives[chosen])
    chosen = objective or next(iter(declared))
    if direction is not None and direction not in DIRECTIONS:
        raise UnknownNameError(
            "hydra.sweeper.direction", "direction", direction, DIRECTIONS
        )
    return chosen, direction or declared[chosen]


def objective_value(
    record: "JobRecord", objective: str
) -> tuple[Optional[float], Optional[str]]:  # noqa: UP045
    """The objective of one job's record, or why there is none.

    Returns:
        ``(value, None)``, or ``(None, problem)`` when the job failed, or its metrics
        lack the objective, or it is not a finite number.
    """
    from annfactory.errors import closest_name
    from annfactory.sweep import flatten

    if record["status"] != "ok":
        return None, record["error"] or "the job failed"
    raw = _select(record["metrics"], objective)
    if raw is _MISSING:
        flat = flatten(record["metrics"])
        numbers = [k for k, v in flat.items() if _is_number(v)]
        near = closest_name(objective, numbers)
        hint = f" Did you mean {near!r}?" if near else ""
        return None, f"the job's metrics have no {objective!r}.{hint}"
    if not _is_number(raw):
        return None, f"the objective {objective!r} is {raw!r}, not a number."
    value = float(raw)
    if not math.isfinite(value):
        return None, f"the objective {objective!r} is {value} (training diverged?)."
    return value, None


_MISSING = object()


def _select(metrics: Mapping[str, Any], path: str) -> Any:
    node: Any = metrics
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------
# Samplers and storage
# ------------------------------------------------------------------------------------


def make_sampler(
    name: str,
    seed: Optional[int],  # noqa: UP045
    space: SearchSpace,
) -> "optuna.samplers.BaseSampler":
    """The Optuna sampler ``hydra.sweeper.sampler`` names.

    Raises:
        ConfigError: An unknown name (names the closest), ``cmaes`` without the
            ``cmaes`` package, ``grid`` over a continuous interval.
    """
    import optuna

    from annfactory.errors import ConfigError, UnknownNameError

    if name not in SAMPLERS:
        raise UnknownNameError("hydra.sweeper.sampler", "sampler", name, SAMPLERS)
    if name == "tpe":
        return make_tpe_sampler(seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid_of(space), seed=seed)
    try:
        # Optuna imports it only when the first trial samples, which would leave
        # that trial RUNNING in the study.
        importlib.import_module("cmaes")
    except ImportError:
        raise ConfigError(
            "hydra.sweeper.sampler",
            "cmaes needs the cmaes package, which is not installed.",
            'Install it (pip install cmaes, or the "search" extra), or use '
            "sampler=tpe.",
        ) from None
    categorical = [
        key
        for key, distribution in space.distributions.items()
        if isinstance(distribution, optuna.distributions.CategoricalDistribution)
    ]
    if categorical:
        log.warning(
            "sampler=cmaes searches numbers only; %s are drawn at random.",
            ", ".join(categorical),
        )
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def make_tpe_sampler(seed: Optional[int]) -> "optuna.samplers.TPESampler":  # noqa: UP045
    """Optuna's TPE, set up so that a seed asks the same trials on Optuna 4.9 to 5.x.

    Optuna 5.0 changed two defaults: ``multivariate`` (False -> True for one
    objective) and ``constant_liar`` (False -> True), and 5.0's multivariate TPE
    computes its kernel bandwidths differently from 4.x's, so only the independent
    (univariate) TPE asks the same trials on both. ``constant_liar`` counts the
    trials still running as bad ones, so that the ``n_jobs`` trials of one batch,
    asked before any is told, spread out: it asks the same on both. The others are
    the defaults of both (``group`` needs ``multivariate``). Optuna 4.x calls
    ``constant_liar`` experimental; its warning says nothing a user can act on.
    """
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=False,
            group=False,
            constant_liar=True,
            n_startup_trials=10,
            n_ei_candidates=24,
        )


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


def grid_left(study: "optuna.Study", grid: Mapping[str, Sequence[Any]]) -> int:
    """How many combinations of ``grid`` no trial of ``study`` has taken yet
    (finished or running)."""
    taken = set()
    for trial in study.get_trials(deepcopy=False):
        if set(trial.params) == set(grid) and all(
            trial.params[key] in values for key, values in grid.items()
        ):
            taken.add(tuple(trial.params[key] for key in grid))
    return math.prod(len(values) for values in grid.values()) - len(taken)


def open_storage(url: str) -> "optuna.storages.RDBStorage":
    """Optuna's database storage at ``url``, waiting for a busy SQLite file.

    Raises:
        ConfigError: The database cannot be opened (names the URL, password hidden).
    """
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from annfactory.errors import ConfigError

    shown = url
    try:
        shown = make_url(url).render_as_string(hide_password=True)
        sqlite = make_url(url).get_backend_name() == "sqlite"
    except ArgumentError:
        raise ConfigError(
            "hydra.sweeper.storage",
            f"{url!r} is not a database URL.",
            "Give e.g. sqlite:///study.db or postgresql://user@host/db.",
        ) from None
    engine_kwargs: dict[str, Any] = {}
    if sqlite:
        engine_kwargs["connect_args"] = {"timeout": _SQLITE_TIMEOUT_S}
    else:
        engine_kwargs["pool_pre_ping"] = True  # servers drop idle connections
    # Two processes that open a new database at once race to create its tables;
    # the loser sees them half made and tries again.
    attempts = 5
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (SQLAlchemyError, ImportError, ValueError) as error:
            if isinstance(error, SQLAlchemyError) and attempt < attempts - 1:
                time.sleep(0.2 * (attempt + 1))
                continue
            reason = str(error).splitlines()[0]
            raise ConfigError(
                "hydra.sweeper.storage",
                f"{shown!r} cannot be opened: {reason}",
                "Check the URL, the database server and its driver package.",
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


#: The study's user attributes that record its overrides.
FIXED_ATTRIBUTE = "fixed_overrides"
SPACE_ATTRIBUTE = "search_space"


def check_same_search(study: "optuna.Study", space: SearchSpace) -> None:
    """Refuse to add trials to ``study`` over other overrides than its own; record
    them in a study that has none.

    A study records its fixed overrides (``fixed_overrides``: the lines as given)
    and its search space (``search_space``: key -> ``{"value": "choice(16,32)",
    "distribution": <Optuna's JSON>}``) as user attributes. A resumed study must
    have the same (in any order; searched values compare as distributions, so
    ``16,32`` is ``choice(16,32)``): Optuna cannot change a categorical's values
    within a study, and trials over other fixed values (another data set) are not
    comparable. A study made before these attributes existed gets this command's.

    Raises:
        ConfigError: Another search space or other fixed overrides (names what
            the study has and what this command gives instead).
    """
    from optuna.distributions import distribution_to_json

    from annfactory.errors import ConfigError

    searched = {
        key: {
            "value": space.texts.get(key, ""),
            "distribution": distribution_to_json(distribution),
        }
        for key, distribution in space.distributions.items()
    }
    attributes = study.user_attrs
    if FIXED_ATTRIBUTE not in attributes or SPACE_ATTRIBUTE not in attributes:
        if study.get_trials(deepcopy=False):
            log.warning(
                "Study %r has no record of its overrides (made by an older "
                "annfactory); recording this command's.",
                study.study_name,
            )
        study.set_user_attr(FIXED_ATTRIBUTE, space.fixed())
        study.set_user_attr(SPACE_ATTRIBUTE, searched)
        return

    def items(fixed: Sequence[str], space: Mapping[str, Any]) -> dict[Any, str]:
        """Each override: what identifies it -> how it is shown."""
        shown: dict[Any, str] = {line: line for line in fixed}
        for key, entry in space.items():
            shown[(key, entry["distribution"])] = f"{key}={entry['value']}"
        return shown

    old = items(attributes[FIXED_ATTRIBUTE], attributes[SPACE_ATTRIBUTE])
    new = items(space.fixed(), searched)
    removed = [text for item, text in old.items() if item not in new]
    added = [text for item, text in new.items() if item not in old]
    if not removed and not added:
        return
    name = study.study_name
    if removed and added:
        problem = (
            f"study {name!r} was made with {' '.join(removed)}; this command "
            f"gives {' '.join(added)} instead."
        )
    elif added:
        problem = f"study {name!r} was made without {' '.join(added)}."
    else:
        problem = (
            f"study {name!r} was made with {' '.join(removed)}, which this "
            "command leaves out."
        )
    raise ConfigError(
        "hydra.sweeper.study_name",
        problem,
        "Give the study's overrides as they were, or another study_name for a new "
        "study.",
    )


# ------------------------------------------------------------------------------------
# The sweeper
# ------------------------------------------------------------------------------------


class OptunaSweeper(Sweeper):
    """A search: Optuna asks for trials, Hydra's launcher runs them as jobs."""

    def __init__(
        self,
        n_trials: int,
        n_jobs: int,
        direction: Optional[str],  # noqa: UP045
        objective: Optional[str],  # noqa: UP045
        sampler: str,
        seed: Optional[int],  # noqa: UP045
        storage: Optional[str],  # noqa: UP045
        study_name: Optional[str],  # noqa: UP045
        params: Any,
    ) -> None:
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.direction = direction
        self.objective = objective
        self.sampler = sampler
        self.seed = seed
        self.storage = storage
        self.study_name = study_name
        self.params = params
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> Any:
        from annfactory.hydra_report import reported

        # annfactory's errors reach Hydra as its compact errors: no traceback.
        return reported(self._sweep)(arguments)

    def _sweep(self, arguments: list[str]) -> Any:
        from annfactory.errors import ConfigError
        from annfactory.sweep import (
            ComposeOnce,
            plot_search,
            write_summary,
        )

        try:
            importlib.import_module("optuna")
        except ImportError:
            raise ConfigError(
                "hydra/sweeper",
                "optuna needs the optuna package (>= 4.9), which is not installed.",
                'Install it: pip install "optuna>=4.9,<6" (or the "search" extra).',
            ) from None
        assert self.config is not None
        assert self.hydra_context is not None
        space = self.checked_space(arguments)
        objective, direction = choose_objective(
            self._task_names(space), self.objective, self.direction
        )
        sampler = make_sampler(self.sampler, self.seed, space)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        url = self.storage or f"sqlite:///{(sweep_dir / 'optuna.db').resolve()}"
        study = self._open_study(url, sampler, objective, direction, space)
        log.info(
            "Study %r: %s %s over %s, sampler %s",
            study.study_name,
            direction,
            objective,
            ", ".join(space.distributions) or "nothing (every value fixed)",
            self.sampler,
        )

        # The launcher shares this context: each job is composed once, not twice.
        loader = ComposeOnce(self.hydra_context.config_loader)
        self.hydra_context.config_loader = loader
        grid = grid_of(space) if self.sampler == "grid" else None
        records: list[JobRecord] = []
        returns: list[Any] = []
        interrupted = False
        started = time.time() - 2.0  # a file system's clock may round down
        while len(records) < self.n_trials:
            size = min(self.n_jobs, self.n_trials - len(records))
            if grid is not None:
                # Combinations not started yet (a resumed grid, or another process
                # took some): the grid sampler would repeat running ones instead.
                size = min(size, grid_left(study, grid))
            if size == 0:
                log.info("Every combination of the grid has a trial in the study.")
                break
            trials = [study.ask(space.distributions) for _ in range(size)]
            batch = _Batch(study, trials, objective)
            try:
                with _terminate_as_exit():
                    self._run(batch, space, loader, returns)
            except KeyboardInterrupt:
                interrupted = True
                batch.recover(sweep_dir, started)
            finally:
                batch.fail_untold()  # interrupted: no trial is left RUNNING
                loader.forget()
            records += batch.records
            if interrupted:
                break
            if _objective_never_produced(records):
                log.error(
                    "Stopping the search: no job reports %s (%s)",
                    objective,
                    records[0]["error"],
                )
                break

        records.sort(key=lambda record: record["job"])
        if records:
            table = write_summary(sweep_dir, records, plot=False)
            if any(record["status"] == "ok" for record in records):
                plot_search(records, objective, direction, sweep_dir, space.log_scale())
            where = sweep_dir / "summary.md"
            print(f"\nSearch summary ({where}):\n{table}", flush=True)
        self._report(study, sweep_dir, url, objective, direction)
        if interrupted:
            _exit_interrupted(records, self.n_trials, "trial", sweep_dir / "summary.md")
        _raise_for_failures(
            records, "trial", sweep_dir / "summary.md", "; they are FAIL in the study"
        )
        return returns

    def checked_space(self, arguments: Sequence[str]) -> SearchSpace:
        """The search space of ``arguments`` and ``params``, after checking the
        settings (counts, seed)."""
        self._check_settings()
        return search_space(arguments, sweeper_params(self.params))

    def _check_settings(self) -> None:
        from annfactory.errors import ConfigError

        for key, value in (("n_trials", self.n_trials), ("n_jobs", self.n_jobs)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"hydra.sweeper.{key}",
                    f"{value!r} is out of range.",
                    "Allowed: an integer >= 1.",
                )
        seed = self.seed
        if seed is not None and not (
            isinstance(seed, int) and 0 <= seed <= MAX_SAMPLER_SEED
        ):
            # numpy's generators, under every sampler, take 0 to 2**32 - 1.
            raise ConfigError(
                "hydra.sweeper.seed",
                f"{seed!r} is out of range.",
                f"Allowed: an integer from 0 to {MAX_SAMPLER_SEED}, or null (a "
                "different search each run).",
            )

    def _task_names(self, space: SearchSpace) -> list[str]:
        """The tasks the trials run: a searched ``task=choice(...)``, a fixed
        ``task=...``, or the task of the composed config."""
        from annfactory.tasks import task_name

        assert self.config is not None
        if "task" in space.choices:
            return [str(choice) for choice in space.choices["task"]]
        fixed = space.fixed_value("task")
        if fixed is not None:
            return [str(fixed)]
        return [task_name(OmegaConf.select(self.config, "task"))]

    def _open_study(
        self,
        url: str,
        sampler: "optuna.samplers.BaseSampler",
        objective: str,
        direction: str,
        space: SearchSpace,
    ) -> "optuna.Study":
        """Create the study, or load the one of this name (a resume, or another
        process of the same search), after checking it optimizes the same thing
        over the same overrides (:func:`check_same_search`)."""
        import optuna

        from annfactory.errors import ConfigError

        study = optuna.create_study(
            storage=open_storage(url),
            sampler=sampler,
            study_name=self.study_name,
            direction=optuna.study.StudyDirection[direction.upper()],
            load_if_exists=True,
        )
        stored = study.direction.name.lower()
        if stored != direction:
            raise ConfigError(
                "hydra.sweeper.direction",
                f"{direction!r}, but study {study.study_name!r} is to {stored}.",
                f"Use direction={stored}, or another study_name for a new study.",
            )
        attributes = study.user_attrs
        if "objective" not in attributes:
            study.set_user_attr("objective", objective)
        elif attributes["objective"] != objective:
            raise ConfigError(
                "hydra.sweeper.objective",
                f"{objective!r}, but study {study.study_name!r} optimizes "
                f"{attributes['objective']!r}.",
                f"Use objective={attributes['objective']}, or another study_name.",
            )
        check_same_search(study, space)
        return study

    def _run(
        self,
        batch: "_Batch",
        space: SearchSpace,
        loader: "ComposeOnce",
        returns: list[Any],
    ) -> None:
        """Compose, launch and tell one batch of trials."""
        from . import _error_record, _record_of

        assert self.config is not None
        jobs: list[tuple[int, list[str]]] = []
        for trial in batch.trials:
            overrides = space.overrides(trial.params)
            try:
                loader.compose(self.config, overrides)
            except Exception as error:
                from annfactory.sweep import job_line

                message = _compose_message(error, overrides)
                record = _error_record(trial.number, overrides, message)
                print(job_line(record), flush=True)
                batch.tell(trial.number, record)
                continue
            jobs.append((trial.number, overrides))
        for start, run in _consecutive(jobs):
            batch.launched.update(enumerate(run, start=start))
            try:
                results = self.launcher.launch(run, initial_job_idx=start)
            except Exception as error:  # the launcher itself (no srun, sbatch...)
                message = f"{type(self.launcher).__name__} failed: {error}"
                log.error(message)
                for index, job_overrides in enumerate(run):
                    batch.tell(
                        start + index,
                        _error_record(start + index, job_overrides, message),
                    )
                continue
            returns.append(results)
            for index, result in enumerate(results):
                batch.tell(
                    start + index,
                    _record_of(result, start + index, run[index]),
                    _output_dir(result),
                )

    def _report(
        self,
        study: "optuna.Study",
        sweep_dir: Path,
        url: str,
        objective: str,
        direction: str,
    ) -> None:
        """Write ``optimization_results.yaml`` and print the study's best trial."""
        from optuna.trial import TrialState

        from annfactory.files import write_atomic

        states = [trial.state for trial in study.get_trials(deepcopy=False)]
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": study.study_name,
            "storage": _shown_url(url),
            "objective": objective,
            "direction": direction,
            "trials": {
                "total": len(states),
                "complete": states.count(TrialState.COMPLETE),
                "fail": states.count(TrialState.FAIL),
            },
        }
        complete = results["trials"]["complete"]
        if complete:
            best = study.best_trial
            results.update(
                best_trial=best.number,
                best_params=dict(best.params),
                best_value=best.value,
                best_run_dir=best.user_attrs.get("run_dir"),
            )
        write_atomic(
            sweep_dir / RESULTS_FILE,
            OmegaConf.to_yaml(OmegaConf.create(results)),
        )
        if complete:
            print(
                f"Best of study {study.study_name!r} ({len(states)} trials): "
                f"{objective} = {results['best_value']!r}, trial "
                f"{results['best_trial']} ({_params_text(results['best_params'])}), "
                f"in {results['best_run_dir']}",
                flush=True,
            )
        else:
            print(f"No trial of study {study.study_name!r} completed.", flush=True)
        print(
            f"More trials: add hydra.sweeper.storage={_shown_url(url)} "
            f"hydra.sweeper.study_name={study.study_name}",
            flush=True,
        )


class _Batch:
    """The trials of one batch and their records: tells each trial once."""

    def __init__(
        self, study: "optuna.Study", trials: Sequence["optuna.Trial"], objective: str
    ) -> None:
        self.study = study
        self.trials = list(trials)
        self.objective = objective
        self.records: list[JobRecord] = []
        #: Trial number -> overrides, of the trials handed to the launcher.
        self.launched: dict[int, Sequence[str]] = {}
        self._untold = {trial.number: trial for trial in trials}

    def tell(
        self,
        number: int,
        record: Any,
        run_dir: Optional[str] = None,  # noqa: UP045
    ) -> None:
        """Tell trial ``number`` its job's result: COMPLETE with the objective, or
        FAIL (its row becomes an ``error`` with the reason)."""
        from optuna.trial import TrialState

        trial = self._untold.pop(number)
        value, problem = objective_value(record, self.objective)
        if problem is not None and record["status"] == "ok":
            record = {**record, "status": "error", "error": problem}
        trial.set_user_attr("overrides", " ".join(record["overrides"]))
        if run_dir is not None:
            trial.set_user_attr("run_dir", run_dir)
        if problem is not None:
            trial.set_user_attr("error", problem)
        _tell(self.study, trial, value, TrialState.FAIL if value is None else None)
        self.records.append(record)

    def recover(self, sweep_dir: Path, since: float) -> None:
        """After Ctrl-C: tell the launched trials their jobs' records (``job.json``)
        where the launcher could not hand them back; the one that was running is
        told FAIL, its row ``interrupted``."""
        from annfactory.sweep import JOB_FILE

        rows = interrupted_records(self.records, self.launched, sweep_dir, since)
        run_dirs: dict[int, str] = {}
        for path in sweep_dir.rglob(JOB_FILE):
            try:
                run_dirs.setdefault(
                    json.loads(path.read_text())["job"], str(path.parent)
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue
        for row in rows:
            if row["job"] in self._untold:
                self.tell(row["job"], row, run_dirs.get(row["job"]))

    def fail_untold(self) -> None:
        """Tell every trial not told yet that it failed (the batch was cut short)."""
        from optuna.trial import TrialState

        for trial in self._untold.values():
            _tell(self.study, trial, None, TrialState.FAIL)
        self._untold.clear()


def _tell(
    study: "optuna.Study",
    trial: "optuna.Trial",
    value: Optional[float],  # noqa: UP045
    state: Any,
) -> None:
    try:
        if state is None:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
    except RuntimeError as error:
        # The grid sampler calls study.stop() once the grid is done, which only
        # works inside study.optimize(); the trial is stored all the same.
        if "Study.stop" not in str(error):
            raise


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """Within: SIGTERM (``kill``, a scheduler's time limit) raises SystemExit, so
    the trials of the batch are told FAIL instead of staying RUNNING in the study."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _objective_never_produced(records: Sequence["JobRecord"]) -> bool:
    """Every job ran but none reported the objective: a whole search would too."""
    ran = [r for r in records if r["metrics"]]
    return bool(ran) and all(
        r["status"] != "ok" and "metrics have no" in (r["error"] or "") for r in ran
    )


def _output_dir(result: Any) -> Optional[str]:  # noqa: UP045
    try:
        return str(result.hydra_cfg.hydra.runtime.output_dir)
    except Exception:  # a launcher that returns no Hydra config
        return None


def _shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:
        return url


def _params_text(params: Mapping[str, Any]) -> str:
    return " ".join(f"{key}={override_value(value)}" for key, value in params.items())
