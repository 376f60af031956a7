"""The launcher configs in ``conf/hydra/launcher``: complete, tuned, and working.

Each of our files has the name of a launcher plugin's structured config, so Hydra
merges it over the plugin's dataclass (and warns that this matching is deprecated).
Should Hydra stop merging, our file alone becomes the config; so each file lists every
field of the dataclass, and a plugin upgrade that adds one fails a test here.

The subprocess tests are marked slow; each sweep starts Python and imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra_plugins.hydra_joblib_launcher import config as joblib_config
from hydra_plugins.hydra_submitit_launcher import config as submitit_config
from omegaconf import OmegaConf

from annfactory.config import conf_dir

RunCli = Callable[..., Any]

LAUNCHER_DIR = conf_dir() / "hydra" / "launcher"

#: Each launcher option and the plugin dataclass it shadows.
SCHEMAS: dict[str, type] = {
    "joblib": joblib_config.JobLibLauncherConf,
    "submitit_local": submitit_config.LocalQueueConf,
    "submitit_slurm": submitit_config.SlurmQueueConf,
}

#: The values we tuned (the rest of each file follows the plugin's defaults).
TUNED: dict[str, dict[str, Any]] = {
    "joblib": {"n_jobs": 4, "backend": "loky", "prefer": "processes"},
    "submitit_local": {
        "submitit_folder": "${hydra.sweep.dir}/.submitit/%j",
        "timeout_min": 10,
        "cpus_per_task": 1,
        "gpus_per_node": 0,
        "mem_gb": 1,
        "tasks_per_node": 1,
    },
    "submitit_slurm": {
        "submitit_folder": "${hydra.sweep.dir}/.submitit/%j",
        "timeout_min": 15,
        "cpus_per_task": 2,
        "gpus_per_node": None,
        "mem_gb": 2,
        "tasks_per_node": 1,
        "partition": None,
        "account": None,
        "array_parallelism": 32,
        "max_num_timeout": 0,
        "setup": None,
    },
}

SCHEMA_MATCHING = "validated against ConfigStore schema with the same name"


def plugin_target(name: str) -> str:
    """The ``_target_`` default of the plugin's dataclass."""
    target = {f.name: f.default for f in dataclasses.fields(SCHEMAS[name])}["_target_"]
    assert isinstance(target, str)
    return target


def our_file(name: str) -> dict[str, Any]:
    """Our launcher file as written, interpolations unresolved."""
    node = OmegaConf.to_container(OmegaConf.load(LAUNCHER_DIR / f"{name}.yaml"))
    assert isinstance(node, dict)
    return node


def printed_launcher(stdout: str) -> dict[str, Any]:
    """The ``hydra.launcher`` node that ``--cfg hydra`` printed."""
    launcher: dict[str, Any] = yaml.safe_load(stdout)["hydra"]["launcher"]
    return launcher


def test_each_plugin_launcher_has_our_file() -> None:
    assert sorted(path.stem for path in LAUNCHER_DIR.glob("*.yaml")) == sorted(SCHEMAS)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_our_file_lists_every_field_of_the_plugin_schema(name: str) -> None:
    fields = [field.name for field in dataclasses.fields(SCHEMAS[name])]
    assert sorted(our_file(name)) == sorted(fields)
    assert our_file(name)["_target_"] == plugin_target(name)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_composed_launcher_is_our_file_over_the_plugin_schema(name: str) -> None:
    from hydra import compose, initialize_config_dir

    # The warning shows that Hydra merges our file over the plugin's dataclass.
    with (
        initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"),
        pytest.warns(UserWarning, match=SCHEMA_MATCHING),
    ):
        cfg = compose(
            "config",
            overrides=[f"hydra/launcher={name}"],
            return_hydra_config=True,
        )
    launcher = OmegaConf.to_container(cfg.hydra.launcher)
    assert launcher == our_file(name)
    assert launcher["_target_"] == plugin_target(name)
    assert TUNED[name].items() <= launcher.items()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_cfg_hydra_prints_the_tuned_launcher(run_cli: RunCli, name: str) -> None:
    # Hydra takes either -m or --cfg, not both; the launcher node composes either way.
    result = run_cli("--cfg", "hydra", f"hydra/launcher={name}")
    assert result.returncode == 0, result.stderr
    launcher = printed_launcher(result.stdout)
    assert launcher["_target_"] == plugin_target(name)
    assert TUNED[name].items() <= launcher.items()
    assert sorted(launcher) == sorted(f.name for f in dataclasses.fields(SCHEMAS[name]))


@pytest.mark.slow
def test_slurm_partition_override_shows_in_cfg(run_cli: RunCli) -> None:
    result = run_cli(
        "--cfg",
        "hydra",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=gpu",
    )
    assert result.returncode == 0, result.stderr
    launcher = printed_launcher(result.stdout)
    assert launcher["partition"] == "gpu"
    assert launcher["_target_"] == plugin_target("submitit_slurm")
    assert launcher["timeout_min"] == TUNED["submitit_slurm"]["timeout_min"]


RECORD_PID = """\
import os
from pathlib import Path

from hydra.experimental.callback import Callback


class RecordPid(Callback):
    def on_multirun_start(self, config, **kwargs):
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / "launcher.pid").write_text(str(os.getpid()))

    def on_job_start(self, config, **kwargs):
        output_dir = Path(config.hydra.runtime.output_dir)
        (output_dir / "job.pid").write_text(str(os.getpid()))
"""


def on_pythonpath(folder: Path) -> dict[str, str]:
    """Environment that puts ``folder`` first on the subprocess's import path."""
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths)}


@pytest.mark.slow
def test_joblib_sweep_runs_jobs_in_worker_processes(
    run_cli: RunCli, tmp_path: Path
) -> None:
    # A Hydra callback, imported from tmp_path, writes the pid of the launching
    # process and of each job; src stays untouched.
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "record_pid.py").write_text(RECORD_PID)
    inits = ["xavier_normal", "kaiming_normal"]
    result = run_cli(
        "-m",
        "hydra/launcher=joblib",
        "model=demo",
        f"init={','.join(inits)}",
        "+hydra.callbacks.record_pid._target_=record_pid.RecordPid",
        env=on_pythonpath(plugins),
    )
    assert result.returncode == 0, result.stderr
    assert "Joblib.Parallel(n_jobs=4,backend=loky" in result.stdout + result.stderr
    sweep = tmp_path / "multirun"
    launcher_pid = (sweep / "launcher.pid").read_text()
    for job, init in enumerate(inits):
        metrics = json.loads((sweep / str(job) / "metrics.json").read_text())
        assert metrics["total_params"] == 26
        assert metrics["parameters"]["linear1.weight"]["init"].startswith(init)
        # loky ran the job in a worker, not in the launching process. (Whether the
        # two jobs got two workers is up to loky's scheduling, so it is not checked.)
        assert (sweep / str(job) / "job.pid").read_text() != launcher_pid
    # Each worker's staging folder went with it.
    assert not list(sweep.glob(".staging-*"))


@pytest.mark.slow
def test_submitit_local_sweep_runs_each_seed(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli(
        "-m", "hydra/launcher=submitit_local", "model=demo", "seed=1,2", timeout=240
    )
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "multirun"
    metrics = [
        json.loads((sweep / str(job) / "metrics.json").read_text()) for job in (0, 1)
    ]
    assert [m["seed"] for m in metrics] == [1, 2]
    assert all(m["total_params"] == 26 for m in metrics)
    weights = [m["parameters"]["linear1.weight"] for m in metrics]
    assert (weights[0]["mean"], weights[0]["std"]) != (
        weights[1]["mean"],
        weights[1]["std"],
    )
    # submitit kept its logs under the sweep dir, one folder per job.
    logs = list((sweep / ".submitit").glob("*/*_0_log.out"))
    assert len(logs) == 2


FAKE_SBATCH = """\
#!/bin/sh
# Keeps the script that submitit hands to sbatch, and submits nothing.
for script; do :; done
cp "$script" "$SBATCH_COPY"
echo "fake sbatch: nothing submitted" >&2
exit 1
"""


@pytest.mark.slow
def test_slurm_settings_reach_sbatch(run_cli: RunCli, tmp_path: Path) -> None:
    # submitit needs srun and sbatch on PATH; fakes stand in for them, so this runs
    # without a cluster and nothing is submitted.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, text in {"sbatch": FAKE_SBATCH, "srun": "#!/bin/sh\nexit 0\n"}.items():
        path = bin_dir / tool
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    script = tmp_path / "sbatch.sh"
    result = run_cli(
        "-m",
        "hydra/launcher=submitit_slurm",
        "model=mlp",
        "model.depth=2,4,8",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.account=my_project",
        'hydra.launcher.setup=["source .venv/bin/activate"]',
        env={
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "SBATCH_COPY": str(script),
        },
    )
    assert result.returncode != 0
    assert "fake sbatch: nothing submitted" in result.stderr
    lines = script.read_text().splitlines()
    for line in [
        "#SBATCH --partition=gpu",
        "#SBATCH --account=my_project",
        "#SBATCH --time=15",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=2GB",
        "#SBATCH --nodes=1",
        "#SBATCH --array=0-2%3",
        "source .venv/bin/activate",
    ]:
        assert line in lines
    assert not any("--gpus" in line for line in lines)


@pytest.mark.slow
def test_a_cluster_config_of_ones_own_under_another_name(
    run_cli: Any, tmp_path: Path
) -> None:
    # README: copy submitit_slurm.yaml under another name into --config-dir.
    own = tmp_path / "my_configs" / "hydra" / "launcher"
    own.mkdir(parents=True)
    text = (LAUNCHER_DIR / "submitit_slurm.yaml").read_text()
    (own / "my_cluster.yaml").write_text(
        re.sub(r"(?m)^timeout_min: .*$", "timeout_min: 99", text)
    )
    result = run_cli(
        "--config-dir", str(tmp_path / "my_configs"), "--cfg", "hydra",
        "hydra/launcher=my_cluster",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "timeout_min: 99" in result.stdout
    assert "SlurmLauncher" in result.stdout


# --------------------------------------------------------------------------------------
# --help lists the launchers and sweepers Hydra accepts
# --------------------------------------------------------------------------------------


def help_lines(text: str) -> dict[str, list[str]]:
    """The ``hydra/sweeper: ...`` and ``hydra/launcher: ...`` lines of the help."""
    found = re.findall(r"^(hydra/sweeper|hydra/launcher): (.+)$", text, re.M)
    return {group: options.split(", ") for group, options in found}


def composed_help(
    overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, dict[str, list[str]]]:
    """The help template as ``--help`` renders it, and Hydra's own option lists."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import annfactory.run  # registers the help's resolver

    monkeypatch.setattr(annfactory.run, "_help_requested", True)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
        groups = {
            group: sorted(loader.get_group_options(group))
            for group in ("hydra/sweeper", "hydra/launcher")
        }
        return str(cfg.hydra.help.template), groups


def test_help_lists_every_sweeper_and_launcher_hydra_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text, groups = composed_help(["hydra/sweeper=basic"], monkeypatch)
    listed = help_lines(text)
    assert listed == {
        "hydra/sweeper": [
            option + " (selected)" * (option == "basic")
            for option in groups["hydra/sweeper"]
        ],
        "hydra/launcher": [
            option + " (selected)" * (option == "basic")
            for option in groups["hydra/launcher"]
        ],
    }
    assert {"annfactory", "basic"} <= set(groups["hydra/sweeper"])
    assert {"basic", *SCHEMAS} <= set(groups["hydra/launcher"])
    assert "annfactory" not in groups["hydra/launcher"]  # gone: basic is the default


def test_the_readme_shows_what_help_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    text, _ = composed_help([], monkeypatch)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = re.search(r"```\n(hydra/sweeper: .*?\nhydra/launcher: .*?)\n```", readme)
    assert shown is not None
    assert help_lines(shown.group(1)) == help_lines(text)


def test_help_marks_a_launcher_whose_plugin_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import annfactory.run

    installed = annfactory.run._plugin_targets()
    monkeypatch.setattr(
        annfactory.run,
        "_plugin_targets",
        lambda: installed - {plugin_target("joblib")},
    )
    listed = help_lines(composed_help([], monkeypatch)[0])
    assert "joblib (plugin not installed)" in listed["hydra/launcher"]
    assert "submitit_local" in listed["hydra/launcher"]
    assert "annfactory (selected)" in listed["hydra/sweeper"]


def test_options_are_listed_only_for_the_help(monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra import compose, initialize_config_dir

    import annfactory.run

    calls: list[str] = []
    monkeypatch.setattr(annfactory.run, "_plugin_targets", lambda: calls.append("x"))
    # Composing merges the hydra config, which evaluates the help's resolvers.
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
        text = str(cfg.hydra.help.template)
    assert re.search(r"^hydra/sweeper: $", text, re.M)
    assert re.search(r"^hydra/launcher: $", text, re.M)
    assert calls == []


@pytest.mark.slow
def test_help_lists_launchers_of_ones_own_config_dir(
    run_cli: RunCli, tmp_path: Path
) -> None:
    own = tmp_path / "my_configs" / "hydra" / "launcher"
    own.mkdir(parents=True)
    (own / "my_cluster.yaml").write_text(
        (LAUNCHER_DIR / "submitit_slurm.yaml").read_text()
    )
    (own / "nowhere.yaml").write_text("_target_: nowhere.NoLauncher\n")
    result = run_cli(
        "--help", "--config-dir", str(tmp_path / "my_configs"), "hydra/launcher=joblib"
    )
    assert result.returncode == 0, result.stderr
    listed = help_lines(result.stdout)
    launchers = listed["hydra/launcher"]
    assert {
        "basic",
        "joblib (selected)",
        "my_cluster",
        "nowhere (plugin not installed)",
        "submitit_local",
        "submitit_slurm",
    } <= set(launchers)
    assert launchers == sorted(launchers)
    assert listed["hydra/sweeper"][0] == "annfactory (selected)"
    assert "Traceback" not in result.stderr


def test_help_examples_show_the_command_that_was_typed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import annfactory.run

    monkeypatch.setattr(annfactory.run, "_command", "python -m annfactory")
    text = composed_help([], monkeypatch)[0]
    footer = OmegaConf.load(conf_dir() / "hydra" / "help" / "annfactory.yaml").footer
    examples = [
        line for line in footer.splitlines() if line.startswith("  annfactory ")
    ]
    assert len(examples) >= 5
    for line in examples:
        assert line.replace("annfactory", "python -m annfactory", 1) in text
    # Prose that names annfactory elsewhere is left alone.
    assert "annfactory: build a PyTorch network from config" in text
