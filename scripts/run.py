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


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    """Hydra's task function: one job of a run or a sweep."""
    return run_task(cfg)


if __name__ == "__main__":
    sys.argv[1:] = precheck_argv(sys.argv[1:])
    main()
