"""annfactory's command line: build a network from config and run a task on it.

    python scripts/run.py model=demo
    python scripts/run.py --help

Thin by design: Hydra composes, the package does the work.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from annfactory.cli import precheck_argv, run_task
from annfactory.run import check_command_flags, parse_hydra_flags


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    """Hydra's task function: one job of a run or a sweep."""
    return run_task(cfg)


if __name__ == "__main__":
    args = parse_hydra_flags(sys.argv[1:])
    if args is not None:  # else Hydra reports the bad flag itself
        check_command_flags(args)
        precheck_argv(sys.argv[1:])
    main()
