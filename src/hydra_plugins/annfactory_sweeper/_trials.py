"""The Optuna sweeper's trials: the objective a search optimizes, read from each job's
record, and telling each trial of a batch its result once.

Hydra's plugin scan skips modules whose name starts with ``_``: this one is imported
by :mod:`.optuna_sweeper` only, and imports Optuna and annfactory only when called.
"""

# No "from __future__ import annotations", as in every module of this package.
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from . import interrupted_records

if TYPE_CHECKING:
    import optuna

    from annfactory.sweep import JobRecord

__all__ = [
    "DIRECTIONS",
    "Batch",
    "choose_objective",
    "objective_never_produced",
    "objective_value",
]

#: The values of ``hydra.sweeper.direction``.
DIRECTIONS = ("minimize", "maximize")


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


class Batch:
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


def objective_never_produced(records: Sequence["JobRecord"]) -> bool:
    """Every job ran but none reported the objective: a whole search would too."""
    ran = [r for r in records if r["metrics"]]
    return bool(ran) and all(
        r["status"] != "ok" and "metrics have no" in (r["error"] or "") for r in ran
    )
