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

Its parts: the search space (:mod:`._search_space`), the study's sampler, database and
resume check (:mod:`._study`), the objective and the telling of trials
(:mod:`._trials`). Hydra's plugin scan skips modules whose name starts with ``_``, so
they run once, when this module imports them.

Kept light: Hydra imports every plugin module at start-up, so Optuna and annfactory
are imported only when a search runs.
"""

# No "from __future__ import annotations": OmegaConf needs real types on the dataclass.
import importlib
import logging
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hydra.core.config_store import ConfigStore
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
    sweeper_params,
)
from ._search_space import SearchSpace, grid_of, override_value, search_space
from ._study import SAMPLERS, check_same_search, grid_left, make_sampler, open_storage
from ._trials import DIRECTIONS, Batch, choose_objective, objective_never_produced

if TYPE_CHECKING:
    import optuna

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

#: The largest ``hydra.sweeper.seed``: numpy's generators take 0 to 2**32 - 1.
MAX_SAMPLER_SEED = 2**32 - 1
#: The file of the sweep directory with the study's result.
RESULTS_FILE = "optimization_results.yaml"


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="optuna",
    node=OptunaSweeperConf,
    provider="annfactory",
)


# ------------------------------------------------------------------------------------
# The sweeper
# ------------------------------------------------------------------------------------


def _require_optuna() -> None:
    """Raise a ConfigError saying how to install Optuna if it is missing."""
    from annfactory.errors import ConfigError

    try:
        importlib.import_module("optuna")
    except ImportError:
        raise ConfigError(
            "hydra/sweeper",
            "optuna needs the optuna package (>= 4.9), which is not installed.",
            'Install it: pip install "optuna>=4.9,<6" (or the "search" extra).',
        ) from None


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
        self.loader: ComposeOnce | None = None

    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        from annfactory.sweep import launcher_composing_once

        self.config = config
        # Each trial is composed once: up front by the sweeper, through
        # self.loader, which hands the launcher that config.
        self.loader, self.hydra_context, self.launcher = launcher_composing_once(
            hydra_context, task_function, config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from annfactory.hydra_report import reported

        # annfactory's errors reach Hydra as its compact errors: no traceback.
        return reported(self._sweep)(arguments)

    def _sweep(self, arguments: list[str]) -> Any:
        _require_optuna()
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

        loader = self.loader
        assert loader is not None
        records, returns, interrupted = self._search(
            study, space, objective, loader, sweep_dir
        )
        self._summarize(records, objective, direction, sweep_dir, space)
        self._report(study, sweep_dir, url, objective, direction)
        if interrupted:
            _exit_interrupted(records, self.n_trials, "trial", sweep_dir / "summary.md")
        _raise_for_failures(
            records, "trial", sweep_dir / "summary.md", "; they are FAIL in the study"
        )
        return returns

    def _search(
        self,
        study: "optuna.Study",
        space: SearchSpace,
        objective: str,
        loader: "ComposeOnce",
        sweep_dir: Path,
    ) -> tuple[list["JobRecord"], list[Any], bool]:
        """Ask, launch and tell batches of ``n_jobs`` trials, until ``n_trials`` ran,
        the grid is done, Ctrl-C, or no job reports the objective.

        Returns:
            The trials' records, the launcher's returns, and whether Ctrl-C cut the
            search short.
        """
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
            batch = Batch(study, trials, objective)
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
            if objective_never_produced(records):
                log.error(
                    "Stopping the search: no job reports %s (%s)",
                    objective,
                    records[0]["error"],
                )
                break
        return records, returns, interrupted

    def _summarize(
        self,
        records: list["JobRecord"],
        objective: str,
        direction: str,
        sweep_dir: Path,
        space: SearchSpace,
    ) -> None:
        """Sort the trials' records by job, write and print the summary, and plot
        the search if any trial completed."""
        from annfactory.sweep import plot_search, write_summary

        records.sort(key=lambda record: record["job"])
        if records:
            table = write_summary(sweep_dir, records, plot=False)
            if any(record["status"] == "ok" for record in records):
                plot_search(records, objective, direction, sweep_dir, space.log_scale())
            where = sweep_dir / "summary.md"
            print(f"\nSearch summary ({where}):\n{table}", flush=True)

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
        batch: "Batch",
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
