"""The Optuna sweeper's study: its sampler, its database, and the check that a resumed
study searches what it searched before.

Hydra's plugin scan skips modules whose name starts with ``_``: this one is imported
by :mod:`.optuna_sweeper` only, and imports Optuna and annfactory only when called.
"""

# No "from __future__ import annotations", as in every module of this package.
import importlib
import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from ._search_space import SearchSpace, grid_of

if TYPE_CHECKING:
    import optuna

# The sweeper's one logger, wherever its parts live (logging configs name it).
log = logging.getLogger("hydra_plugins.annfactory_sweeper.optuna_sweeper")

__all__ = [
    "FIXED_ATTRIBUTE",
    "SAMPLERS",
    "SPACE_ATTRIBUTE",
    "check_same_search",
    "grid_left",
    "make_sampler",
    "make_tpe_sampler",
    "open_storage",
]

#: The values of ``hydra.sweeper.sampler``.
SAMPLERS = ("tpe", "random", "grid", "cmaes")
#: How long a process waits for a locked SQLite database (seconds). Trials of
#: concurrent processes write to one file; Optuna's default (5 s) is too short when
#: jobs finish together.
_SQLITE_TIMEOUT_S = 60


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
