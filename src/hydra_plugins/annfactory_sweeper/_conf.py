"""The configs of annfactory's sweepers (``hydra/sweeper: annfactory``,
``hydra/sweeper: optuna``).

Apart from the plugin modules that register them: Hydra's plugin scan executes each
plugin module again after it has been imported, so a dataclass defined in one exists
twice, and a config holding it does not pickle (pickle finds the other class). The
scan skips modules whose name starts with ``_``; the plugin modules import these by
their absolute name: one class each, so a composed config pickles (a launcher may
send it to a worker process).
"""

# No "from __future__ import annotations": OmegaConf needs real types on a dataclass.
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["AnnFactorySweeperConf", "OptunaSweeperConf"]


@dataclass
class AnnFactorySweeperConf:
    _target_: str = "hydra_plugins.annfactory_sweeper.AnnFactorySweeper"
    # Jobs launched at once (None: the whole sweep in one batch, as Hydra's default).
    max_batch_size: Optional[int] = None  # noqa: UP045 (OmegaConf needs Optional)
    # Sweep parameters, as the basic sweeper takes them ({"seed": "range(0,5)"}).
    # Typed Any: OmegaConf 2.3 cannot merge the command line's mapping
    # (hydra.sweeper.params={seed: "range(0,5)"}) into a null Optional[Dict] node,
    # nor add its keys to an empty typed one under Hydra's struct flag; the
    # sweeper checks the value itself (sweeper_params).
    params: Any = None


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.annfactory_sweeper.optuna_sweeper.OptunaSweeper"
    # Trials this run adds to the study.
    n_trials: int = 20
    # Trials asked and launched at once, through the launcher.
    n_jobs: int = 1
    # minimize | maximize (null: the objective's natural direction).
    direction: Optional[str] = None  # noqa: UP045 (OmegaConf needs Optional)
    # A dotted path into each job's metrics (null: the task's default, e.g.
    # train.val_loss for task=train).
    objective: Optional[str] = None  # noqa: UP045
    # tpe | random | grid | cmaes
    sampler: str = "tpe"
    # Seed of the sampler (null: a different search each run).
    seed: Optional[int] = None  # noqa: UP045
    # An Optuna storage URL (null: sqlite:///<sweep dir>/optuna.db).
    storage: Optional[str] = None  # noqa: UP045
    # The study in the storage: an existing one gets more trials (null: a new one).
    study_name: Optional[str] = None  # noqa: UP045
    # The search space as a mapping, e.g. {"model.width": "choice(16,32)"}; the
    # command line's overrides of the same keys win. Typed Any: see above.
    params: Any = None
