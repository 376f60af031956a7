"""The ``tasks`` registry: each task module registers its run function and the schema
of its options; ``run_named_task`` runs an entry by name."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

import annfactory
from annfactory import ConfigError, Param, RegistrationError, UnknownNameError
from annfactory.config import conf_dir
from annfactory.tasks import (
    TASKS,
    Task,
    TaskContext,
    check_option_names,
    parse_task_options,
    run_named_task,
    tasks,
)

BUILT_IN = (
    "activations", "diagnose", "evaluate", "export", "forward", "init_report",
    "predict", "train",
)  # fmt: skip


def _spec(*overrides: str) -> annfactory.RunSpec:
    return annfactory.to_spec(annfactory.compose(list(overrides)))


def test_the_built_in_tasks_are_registered_by_their_modules() -> None:
    assert set(BUILT_IN) <= set(tasks.names())
    for name in BUILT_IN:
        assert TASKS[name] == f"annfactory.tasks.{name}"
        assert tasks.origin(name).startswith(f"annfactory.tasks.{name}.run")
    assert tasks.get("forward").compiles
    assert not any(tasks.get(name).compiles for name in BUILT_IN if name != "forward")


@pytest.mark.parametrize("name", tasks.names())
def test_the_task_file_holds_every_option_and_its_defaults(name: str) -> None:
    assert (conf_dir() / "task" / f"{name}.yaml").is_file()
    node = OmegaConf.to_container(annfactory.compose([f"task={name}"]).task)
    assert isinstance(node, dict)
    assert node.pop("name") == name
    task = tasks.get(name)
    assert set(node) == set(task.option_names)
    # The file's values are the schema's defaults: both parse to the same options.
    assert parse_task_options(name, node) == parse_task_options(name, {})
    assert task.doc.startswith(f"The {name} task: ")


def test_importing_the_tasks_imports_neither_torch_nor_matplotlib() -> None:
    code = (
        "import sys\n"
        "from annfactory.tasks import tasks\n"
        "print(len(tasks))\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'torchinfo') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [str(len(BUILT_IN)), "[]"]


def test_a_registered_run_function_runs_by_name(tmp_path: Path) -> None:
    seen: list[TaskContext] = []

    @tasks.register("count_layers", params={"scale": Param(int, 1, "", low=1)})
    def run(context: TaskContext) -> dict[str, Any]:
        seen.append(context)
        print("counted", file=context.out)
        return {"layers": context.options["scale"] * len(context.spec.network.layers)}

    assert run.__name__ == "run"  # the decorator returns the function
    out = io.StringIO()
    metrics = run_named_task(
        {"name": "count_layers", "scale": 2}, _spec(), tmp_path, out=out
    )
    assert metrics == {"task": "count_layers", "layers": 6}
    assert seen[0].options == {"scale": 2}
    assert out.getvalue() == "counted\n"
    assert (tmp_path / "metrics.json").is_file()
    # The doc line defaults to the first line of the run function's module.
    assert tasks.get("count_layers").doc == (__doc__ or "").split("\n")[0]


def test_an_unknown_option_names_the_closest_the_same_way_everywhere() -> None:
    message = (
        r"^task\.los: unknown key 'los' for task 'diagnose'\. Did you mean 'loss'\?\n"
        r"  Valid keys: batch_size, exploding_above, loss, vanishing_below\.$"
    )
    with pytest.raises(UnknownNameError, match=message):
        check_option_names("diagnose", ["los"])
    with pytest.raises(UnknownNameError, match=message):
        parse_task_options("diagnose", {"los": "mean"})
    with pytest.raises(UnknownNameError, match=message):
        run_named_task({"name": "diagnose", "los": "mean"}, _spec(), None)


def test_a_task_without_options_says_so() -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"^task\.bins: unknown key 'bins' for task 'forward'\.\n"
        r"  No key exists\.$",
    ):
        parse_task_options("forward", {"bins": 3})


def test_options_without_parse_options_are_validated_by_their_params() -> None:
    tasks.register("scaled", lambda context: {}, params={"k": Param(int, 2, low=0)})
    assert parse_task_options("scaled", {}) == {"k": 2}
    with pytest.raises(ConfigError, match=r"^task\.k: -1 is out of range\."):
        parse_task_options("scaled", {"k": -1})


def test_an_unknown_task_names_the_closest() -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"^task\.name: unknown task 'diagnoze'\. Did you mean 'diagnose'\?",
    ):
        run_named_task({"name": "diagnoze"}, _spec(), None)


def test_compile_is_refused_naming_every_task_that_compiles(tmp_path: Path) -> None:
    tasks.register("compiled_too", lambda context: {}, compiles=True)
    spec = _spec("compile=true")
    assert run_named_task({"name": "compiled_too"}, spec, None) == {
        "task": "compiled_too"
    }
    with pytest.raises(
        ConfigError, match=r"use it with task=compiled_too or task=forward\.$"
    ):
        run_named_task({"name": "init_report"}, spec, tmp_path, out=io.StringIO())


# ------------------------------------------------------------------------------------
# The top-level batch_size: read by some tasks, refused by the others (issue 19)
# ------------------------------------------------------------------------------------


def test_each_built_in_task_declares_whether_it_reads_the_top_level_batch_size() -> (
    None
):
    diagnose = tasks.get("diagnose")
    assert tasks.get("forward").reads_batch_size is True
    assert tasks.get("export").reads_batch_size is True
    for name in ("train", "activations", "init_report"):
        assert tasks.get(name).reads_batch_size is False, name
    # diagnose reads it with task.batch_size=null only.
    assert diagnose.reads_batch_size_with(parse_task_options("diagnose", {})) is False
    assert diagnose.reads_batch_size_with(
        parse_task_options("diagnose", {"batch_size": None})
    )


def test_a_top_level_batch_size_that_train_would_ignore_is_refused(
    tmp_path: Path,
) -> None:
    node = {"name": "train", "epochs": 1}
    with pytest.raises(
        ConfigError,
        match=r"^batch_size: task 'train' does not read the top-level batch_size "
        r"\(7\): task\.batch_size sets its rows \(rows per optimizer step\)\.\n"
        r"  Use task\.batch_size=7 instead\.$",
    ):
        run_named_task(node, _spec("batch_size=7"), tmp_path, out=io.StringIO())
    assert not list(tmp_path.iterdir())


def test_a_batch_size_named_with_its_default_value_is_refused_too() -> None:
    """``batch_size=5`` on the command line is as ignored as ``batch_size=7``."""
    spec = _spec("batch_size=5")
    with pytest.raises(
        ConfigError,
        match=r"^batch_size: task 'init_report' draws no batch of rows, so "
        r"batch_size=5 would do nothing\.\n"
        r"  Leave batch_size out, or use it with task=export or task=forward\.$",
    ):
        run_named_task(
            {"name": "init_report"}, spec, None, out=io.StringIO(),
            overrides=["task=init_report", "batch_size=5"],
        )  # fmt: skip
    # Without the override, the default value is no setting at all.
    assert run_named_task({"name": "init_report"}, spec, None, out=io.StringIO())


def test_a_task_reads_the_batch_size_unless_it_declares_otherwise() -> None:
    """A plugin task that says nothing keeps reading spec.batch_size."""
    tasks.register("rows", lambda context: {"rows": context.spec.batch_size})
    tasks.register("no_rows", lambda context: {}, reads_batch_size=False)
    spec = _spec("batch_size=9")
    assert run_named_task({"name": "rows"}, spec, None)["rows"] == 9
    assert run_named_task({"name": "diagnose", "batch_size": None}, spec, None)
    with pytest.raises(ConfigError, match=r"^batch_size: task 'no_rows' draws no"):
        run_named_task({"name": "no_rows"}, spec, None)


def test_registration_takes_a_task_or_a_run_function() -> None:
    entry = Task(run=lambda context: {}, doc="does nothing")
    assert tasks.register("nothing", entry) is entry
    with pytest.raises(RegistrationError, match=r"task 'nothing2': options given"):
        tasks.register("nothing2", entry, compiles=True)
    with pytest.raises(RegistrationError, match=r"task 'bad': expected a run func"):
        tasks.register("bad", 3)
    with pytest.raises(RegistrationError, match=r"task 'odd': .*'colour'"):
        tasks.register("odd", lambda context: {}, colour="red")
    with pytest.raises(RegistrationError, match=r"task 'forward' is already"):
        tasks.register("forward", entry)


# A task declares the config groups it reads and its headline metric (issue 20)


def test_a_task_that_declares_a_group_is_named_by_the_check() -> None:
    from annfactory.config import check_overrides

    tasks.register("fit", lambda context: {}, groups=("data",))
    with pytest.raises(
        ConfigError,
        match=r"data is read by task=fit or task=train only, and the task is forward",
    ):
        check_overrides(["data=iris"])


def test_the_groups_each_built_in_task_reads() -> None:
    readers = {name: task.groups for name, task in tasks.items() if task.groups}
    assert readers == {"train": ("data", "optimizer")}


def test_a_task_s_headline_metric_is_its_sweep_line_s() -> None:
    from annfactory.sweep import key_metric

    tasks.register("count", lambda context: {}, metric=("count.rows", "count.n"))
    metrics = {"task": "count", "count": {"n": 4, "rows": 7}, "total_params": 26}
    assert key_metric(metrics) == "rows=7"
    assert key_metric({**metrics, "count": {"n": 4}}) == "n=4"
    assert key_metric({**metrics, "count": {}}) == "total_params=26"
