"""From Hydra to the spec: compose the bundled config groups, check overrides, and turn
a composed ``DictConfig`` into a validated :class:`~annfactory.spec.RunSpec`.

This is the one place that knows about Hydra and OmegaConf; nothing here imports
torch. One module per job, from the top:

- :mod:`~annfactory.config.edge`: the command line (flags, overrides, config dirs);
- :mod:`~annfactory.config.composing`: :func:`compose` and :func:`to_spec`;
- :mod:`~annfactory.config.precheck` and :mod:`~annfactory.config.precheck_keys`:
  the override checks made before Hydra composes (:func:`check_overrides`);
- :mod:`~annfactory.config.diagnosis`: why a composition failed on one override;
- :mod:`~annfactory.config.rewriting`: overrides as Hydra must receive them;
- :mod:`~annfactory.config.rendering`: Hydra's and OmegaConf's errors in our words;
- :mod:`~annfactory.config.sources`: the bundled config and the options' files.
"""

from __future__ import annotations

from annfactory.config.composing import compose, to_spec
from annfactory.config.diagnosis import (
    composer,
    override_error,
    rerender_composition,
)
from annfactory.config.edge import (
    argv_for_hydra,
    config_dirs_from_argv,
    full_error_requested,
    overrides_from_argv,
)
from annfactory.config.precheck import check_overrides
from annfactory.config.rendering import rerender
from annfactory.config.rewriting import overrides_for_hydra, quote_free_text
from annfactory.config.sources import (
    CONFIG_NAME,
    GROUPS,
    conf_dir,
    group_options,
)
from annfactory.config.sources import (
    bundled_hydra as bundled_hydra,
)

__all__ = [
    "CONFIG_NAME",
    "GROUPS",
    "argv_for_hydra",
    "check_overrides",
    "compose",
    "composer",
    "conf_dir",
    "config_dirs_from_argv",
    "full_error_requested",
    "group_options",
    "override_error",
    "overrides_for_hydra",
    "overrides_from_argv",
    "quote_free_text",
    "rerender",
    "rerender_composition",
    "to_spec",
]
# bundled_hydra: imported by tests of other modules under this name.
