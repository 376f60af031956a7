"""What ``scripts/run.py`` does around Hydra: check overrides first, run the task."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annfactory.config import (
    check_overrides,
    config_dirs_from_argv,
    full_error_requested,
    overrides_from_argv,
    to_spec,
)
from annfactory.errors import AnnFactoryError

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["precheck_argv", "run_task"]


def precheck_argv(argv: Sequence[str], script_dir: Path | None = None) -> None:
    """Check the overrides of a command line before Hydra composes them.

    On an unknown group option or parameter, prints the error (names the override, the
    bad value and the closest valid one) and exits with status 1, as Hydra does for its
    own errors; ``HYDRA_FULL_ERROR=1`` raises instead.
    """
    try:
        check_overrides(overrides_from_argv(argv), config_dirs_from_argv(argv))
    except AnnFactoryError as error:
        if full_error_requested():
            raise
        print(f"Error in the overrides: {error}", file=sys.stderr)
        sys.exit(1)


def run_task(cfg: DictConfig) -> dict[str, Any]:
    """Validate ``cfg`` into a spec, then run the forward task in Hydra's output dir."""
    from hydra.core.hydra_config import HydraConfig

    spec = to_spec(cfg)
    from annfactory.tasks.forward import run_forward

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    return run_forward(spec, output_dir)
