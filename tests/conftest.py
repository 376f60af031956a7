"""Shared fixtures: registry snapshots, Hydra state, the CLI runner; the test tiers.

The tiers (``make test-fast``, ``make test``; the rule is also in pyproject.toml):

- ``slow``: the test starts a process (the command line, a sweep's jobs, a compiler).
  A test that uses ``run_cli`` or ``interrupt_after_first_job`` is marked here; one
  that starts a process another way is marked in its file or in :data:`SLOW`.
  ``run_cli`` forks the command from a process that has imported torch once
  (tests/cli_server.py), which the guard sees as a process started too. A test
  not marked slow that starts a process fails (:func:`no_process_in_the_fast_tier`).
- ``heavy``: in this process, but it trains beyond a few steps, exports, compiles, or
  takes more than about a second for another reason. Marked in its file or in
  :data:`HEAVY` (node-id prefixes, so that a file's owner need not change it).
- The fast tier is every test that is neither: ``-m "not slow and not heavy"``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from annfactory import activations, inits, layers, plugins
from annfactory.data import datasets
from annfactory.groups import groups
from annfactory.models import model_types
from annfactory.optimizers import optimizers
from annfactory.tasks import tasks
from cli_server import AUDIT_EVENT, close_script_server, script_server

REPO = Path(__file__).resolve().parents[1]
RUN_PY = REPO / "scripts" / "run.py"

# ------------------------------------------------------------------------------------
# Tiers
# ------------------------------------------------------------------------------------

#: Fixtures that start a process: a test that uses one is ``slow``.
PROCESS_FIXTURES = frozenset({"run_cli", "interrupt_after_first_job"})

#: Tests that start a process although they use none of PROCESS_FIXTURES: a file
#: (``tests/test_x.py::``) or a test function (every parameter of it).
SLOW = frozenset(
    {
        "tests/test_bench.py::test_bench_refuses_an_unknown_figure",
        "tests/test_config.py::test_import_and_compose_do_not_import_torch",
        "tests/test_data.py::test_importing_the_module_imports_no_numpy_torch_or_sklearn",
        "tests/test_factory.py::test_weights_are_identical_across_processes",
        "tests/test_factory.py::test_parameter_seed_is_stable_across_processes_and_distinct",
        "tests/test_layers.py::test_the_built_in_shape_rules_do_not_import_torch",
        "tests/test_plugins.py::test_import_and_compose_do_not_load_plugins",
        "tests/test_runs.py::test_a_tampered_spec_is_refused_without_importing_anything",
        "tests/test_runs.py::test_runs_of_one_process_share_a_staging_folder_removed_at_exit",
        "tests/test_tasks.py::test_importing_the_tasks_imports_neither_torch_nor_matplotlib",
    }
)  # fmt: skip

#: Tests that start no process but take a quarter of a second of CPU or more each
#: (measured with `--durations`): they compose several times, train, export,
#: compile or sweep. A file (``tests/test_x.py::``) or a test function.
HEAVY = frozenset(
    {
        "tests/test_config.py::test_every_activation_option_composes_and_builds",
        "tests/test_cli.py::test_bad_input_gets_a_short_message",
        "tests/test_config.py::test_every_init_option_fills_one_layer_slot",
        "tests/test_optimizers.py::test_builds_a_fused_optimizer_that_lowers_a_loss",
        "tests/test_optimizers.py::test_falls_back_where_the_fused_kernel_is_refused",
        "tests/test_task_activations.py::test_every_elementwise_activation_gets_a_png_and_a_metrics_entry",
        "tests/test_task_diagnose.py::test_bad_options_name_the_key",
        "tests/test_task_train.py::test_bad_training_input_names_the_key",
    "tests/test_compile.py::",  # 6 of 7
    "tests/test_table_train.py::",
    "tests/test_config.py::test_bad_configs_name_the_path_and_the_fix",
    "tests/test_config.py::test_dotted_names_are_never_imported",
    "tests/test_config.py::test_every_init_option_composes_and_builds_as_the_global_init",
    "tests/test_config.py::test_every_layer_option_composes_into_a_network",
    "tests/test_config.py::test_every_model_option_builds",
    "tests/test_config.py::test_gain_defaults_to_activation_gain_in_spec",
    "tests/test_config.py::test_global_init_covers_every_linear_layer_and_activation_keeps_output",
    "tests/test_config.py::test_group_option_parameters_apply",
    "tests/test_config.py::test_mlp_depth_zero_is_one_linear_layer",
    "tests/test_config.py::test_mlp_layers_are_named_and_sized",
    "tests/test_config.py::test_mlp_single_layer_can_be_addressed",
    "tests/test_config.py::test_mlp_unknown_layer_name_suggests_the_closest",
    "tests/test_config.py::test_spec_round_trips_through_its_dict",
    "tests/test_config.py::test_string_shorthand_means_the_option_with_its_defaults",
    "tests/test_conv.py::test_a_conv_stack_builds_exactly_when_torch_runs_it",
    "tests/test_data.py::test_every_data_set_loads_a_valid_table",
    "tests/test_data_issue19.py::test_a_csv_with_non_ascii_directory_and_columns_trains_in_process",
    "tests/test_data_issue19.py::test_non_ascii_paths_columns_and_directories_are_accepted",
    "tests/test_data_issue19.py::test_training_on_a_cell_too_large_for_float32_is_refused_before_it_trains",
    "tests/test_factory.py::test_activations_are_children_and_identity_is_skipped",
    "tests/test_factory.py::test_an_init_that_gives_non_finite_values_is_refused",
    "tests/test_factory.py::test_batch_norm_buffers_are_materialized",
    "tests/test_factory.py::test_changing_one_layer_leaves_the_others_unchanged",
    "tests/test_factory.py::test_default_init_matches_pytorch_distribution",
    "tests/test_factory.py::test_different_seed_gives_different_weights",
    "tests/test_factory.py::test_dtypes",
    "tests/test_factory.py::test_float64_draws_in_double_precision",
    "tests/test_factory.py::test_large_but_finite_init_values_pass",
    "tests/test_factory.py::test_meta_device_allocates_nothing_and_keeps_shapes",
    "tests/test_factory.py::test_resizing_a_later_layer_keeps_earlier_weights",
    "tests/test_factory.py::test_same_seed_gives_bit_identical_weights",
    "tests/test_factory.py::test_the_demo_weights_are_pinned",
    "tests/test_factory.py::test_the_suggested_init_options_build",
    "tests/test_files.py::test_a_run_config_reads_back_as_omegaconf_writes_it",
    "tests/test_files.py::test_spec_yaml_is_the_text_omegaconf_writes",
    "tests/test_forward_summary.py::",  # 2 of 2
    "tests/test_groups.py::test_the_run_keys_are_the_primary_config_s_keys",
    "tests/test_imports.py::test_no_module_imports_another_s_private_name",
    "tests/test_imports.py::test_require_mapping_is_defined_once",
    "tests/test_inits.py::test_the_ks_checks_reject_a_two_percent_scale_error",
    "tests/test_launcher.py::",  # 7 of 7
    "tests/test_launchers.py::test_help_examples_show_the_command_that_was_typed",
    "tests/test_launchers.py::test_help_lists_every_sweeper_and_launcher_hydra_accepts",
    "tests/test_launchers.py::test_help_marks_a_launcher_whose_plugin_is_missing",
    "tests/test_launchers.py::test_options_are_listed_only_for_the_help",
    "tests/test_launchers.py::test_the_readme_shows_what_help_lists",
    "tests/test_layers.py::test_a_class_that_takes_in_features_gets_the_last_dimension",
    "tests/test_network_fastpath.py::",  # 11 of 12
    "tests/test_optuna_sweeper.py::test_a_bad_setting_is_refused_in_process",
    "tests/test_optuna_sweeper.py::test_a_storage_that_cannot_be_opened_hides_the_password",
    "tests/test_optuna_sweeper.py::test_the_params_mapping_is_given_on_the_command_line",
    "tests/test_overrides.py::test_a_group_that_replaces_a_layer_setting_prints_a_note",
    "tests/test_overrides.py::test_a_layer_named_like_an_activation_module_is_refused",
    "tests/test_overrides.py::test_a_layer_named_like_an_identity_activation_is_allowed",
    "tests/test_overrides.py::test_a_mandatory_value_left_unset_names_its_path",
    "tests/test_overrides.py::test_a_mandatory_value_of_a_group_option_can_be_set",
    "tests/test_overrides.py::test_a_mapping_with_a_name_replaces_an_activation",
    "tests/test_overrides.py::test_a_mapping_with_a_name_works_in_every_slot",
    "tests/test_overrides.py::test_a_mapping_without_a_name_sets_parameters_of_the_option_there",
    "tests/test_overrides.py::test_compose_takes_a_single_string_as_one_override",
    "tests/test_overrides.py::test_every_hint_gives_a_command_that_works",
    "tests/test_overrides.py::test_no_note_when_the_layer_setting_stays",
    "tests/test_overrides.py::test_the_suggested_layer_name_builds_exactly_the_spec",
    "tests/test_plugins.py::test_callable_entry_point_is_called_once",
    "tests/test_plugins.py::test_compose_and_build_model_with_plugin_shorthands",
    "tests/test_properties.py::test_any_valid_spec_builds_and_runs",
    "tests/test_readme.py::test_a_task_example_prints_what_the_readme_shows",
    "tests/test_readme.py::test_readme_model_block_runs",
    "tests/test_readme.py::test_readme_plugin_module_registers_what_the_command_uses",
    "tests/test_readme.py::test_readme_registration_example_builds_what_it_says",
    "tests/test_readme.py::test_readme_task_example_runs_by_name_with_its_options",
    "tests/test_residual.py::test_a_meta_build_materializes_to_the_same_weights",
    "tests/test_residual.py::test_init_and_activation_reach_nested_layers_but_each_blocks_last",
    "tests/test_residual.py::test_overrides_reach_nested_layers",
    "tests/test_residual.py::test_resmlp_builds_its_blocks",
    "tests/test_residual.py::test_resmlp_trains_on_digits",
    "tests/test_residual.py::test_the_summary_indents_nested_layers_with_their_shapes",
    "tests/test_residual.py::test_zeroed_blocks_of_resmlp_leave_the_network_without_them",
    "tests/test_runs.py::test_every_build_path_gives_the_same_bits",
    "tests/test_runs.py::test_save_run_writes_what_the_forward_task_saves",
    "tests/test_sizing.py::test_an_mlp_s_size_set_on_purpose_must_agree",
    "tests/test_sizing.py::test_the_data_sizes_a_model_s_ends",
    "tests/test_sizing.py::test_the_demo_trains_on_iris_sized_by_the_data",
    "tests/test_sizing.py::test_the_demo_without_data_keeps_its_own_sizes",
    "tests/test_summary.py::test_a_diagnose_sweep_draws_the_ratio_on_a_log_axis_coloured_by_verdict",
    "tests/test_summary.py::test_a_search_draws_its_history_and_each_parameter",
    "tests/test_summary.py::test_a_search_marks_its_failed_trials_and_counts_trials_in_whole_numbers",
    "tests/test_summary.py::test_a_train_sweep_draws_every_job_s_validation_curves",
    "tests/test_sweep.py::test_wide_tables_print_the_first_columns_and_say_so",
    "tests/test_sweep_compose.py::",  # 35 of 35
    "tests/test_task_activations.py::test_config_file_defaults_and_a_slot_per_activation_with_parameters",
    "tests/test_task_activations.py::test_softmax_probabilities_are_exp_over_sum_exp",
    "tests/test_task_activations.py::test_the_third_command_composes_and_sets_alpha",
    "tests/test_task_diagnose.py::test_a_healthy_relu_stack_has_no_dead_layer",
    "tests/test_task_diagnose.py::test_a_log_softmax_output_takes_the_nll_of_its_output_by_default",
    "tests/test_task_diagnose.py::test_a_softmax_output_takes_cross_entropy_by_default",
    "tests/test_task_diagnose.py::test_an_output_that_is_not_a_vector_is_refused",
    "tests/test_task_diagnose.py::test_batch_size_null_takes_the_top_level_batch_size",
    "tests/test_task_diagnose.py::test_cross_entropy_is_torchs_on_the_same_logits_and_labels",
    "tests/test_init_from.py::",
    "tests/test_resume_loop.py::test_a_stopped_run_continues_bit_identical",
    "tests/test_task_diagnose.py::test_dead_relu_units_are_counted_and_stop_the_gradient",
    "tests/test_task_diagnose.py::test_files_and_printout",
    "tests/test_task_diagnose.py::test_gradient_norms_and_statistics_match_a_manual_pass",
    "tests/test_task_diagnose.py::test_saturated_tanh_explodes_and_thresholds_are_options",
    "tests/test_task_diagnose.py::test_sigmoid_stack_vanishes_where_relu_with_kaiming_is_healthy",
    "tests/test_task_diagnose.py::test_the_first_non_finite_layer_is_named_and_not_called_vanishing",
    "tests/test_task_diagnose.py::test_the_mean_of_a_softmax_over_the_batch_is_one_over_the_rows",
    "tests/test_task_diagnose.py::test_the_same_seed_gives_the_same_metrics",
    "tests/test_task_init_report.py::test_a_constant_tensor_is_drawn_as_a_line_at_its_value",
    "tests/test_task_init_report.py::test_a_registered_init_without_theory_reports_no_theory",
    "tests/test_task_init_report.py::test_one_histogram_per_parameter_of_a_fixed_pixel_size",
    "tests/test_task_init_report.py::test_the_legend_never_covers_the_bars",
    "tests/test_task_init_report.py::test_the_task_composes_from_the_config_group",
    "tests/test_task_train.py::test_a_csv_file_trains_and_keeps_its_class_names",
    "tests/test_task_train.py::test_a_softmax_output_trains_exactly_like_logits_with_cross_entropy",
    "tests/test_task_train.py::test_curves_png_is_a_figure",
    "tests/test_task_train.py::test_every_data_option_trains_and_saves_its_outputs",
    "tests/test_task_train.py::test_float16_sgd_learns",
    "tests/test_task_train.py::test_half_precision_trains_as_well_as_float32",
    "tests/test_task_train.py::test_history_csv_and_metrics_json_hold_the_same_table",
    "tests/test_task_train.py::test_log_softmax_output_trains_like_logits_too",
    "tests/test_task_train.py::test_one_sigmoid_unit_on_two_classes_trains_with_binary_cross_entropy",
    "tests/test_task_train.py::test_optimizer_options_reach_the_optimizer",
    "tests/test_task_train.py::test_patience_counts_the_epochs_since_the_last_improvement",
    "tests/test_task_train.py::test_patience_stops_early_and_keep_last_keeps_the_last_epoch",
    "tests/test_task_train.py::test_progress_is_a_bar_on_a_terminal",
    "tests/test_task_train.py::test_progress_is_a_line_every_few_epochs_off_a_terminal",
    "tests/test_task_train.py::test_the_default_recipe_reaches_97_percent_on_digits",
    "tests/test_task_train.py::test_the_same_seed_gives_a_bit_identical_history_and_another_seed_another",
    "tests/test_task_train.py::test_the_saved_classifier_takes_raw_rows_and_scores_the_runs_accuracy",
    "tests/test_task_train.py::test_the_saved_regressor_answers_in_the_targets_units",
    "tests/test_tasks.py::test_a_top_level_batch_size_that_train_would_ignore_is_refused",
    }
)  # fmt: skip


def _listed(item: pytest.Item, names: frozenset[str]) -> bool:
    function = item.nodeid.partition("[")[0]
    return function in names or function.partition("::")[0] + "::" in names


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put each test in its tier (see the module's docstring)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & PROCESS_FIXTURES or _listed(item, SLOW):
            item.add_marker(pytest.mark.slow)
        if _listed(item, HEAVY):
            item.add_marker(pytest.mark.heavy)


#: Audit events that start a process (https://docs.python.org/3/library/audit_events.html).
PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec",
     "os.fork", "os.forkpty", "pty.spawn", AUDIT_EVENT}
)  # fmt: skip
#: What the running test not marked slow started (empty while none runs).
_started: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _started and event in PROCESS_EVENTS:
        _started[-1].append(f"{event} {args[0]!r}" if args else event)


sys.addaudithook(_audit)


@pytest.fixture(autouse=True)
def no_process_in_the_fast_tier(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test not marked slow fails if it starts a process: the fast tier runs
    in-process only, and ``slow`` names every test that does not."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    started: list[str] = []
    _started.append(started)
    try:
        yield
    finally:
        _started.pop()
    if started:
        pytest.fail(
            f"a test of the fast tier started a process: {started[0]}\n"
            "  Mark it @pytest.mark.slow, or add its node id to SLOW in "
            "tests/conftest.py.",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def restore_registries() -> Iterator[None]:
    """Tests that register entries leave no trace."""
    registries = (
        activations, inits, layers, model_types, tasks, groups, datasets, optimizers
    )  # fmt: skip
    saved = [(registry, registry.snapshot()) for registry in registries]
    yield
    for registry, state in saved:
        registry.restore(state)
    plugins.reset()  # entries a plugin registered are gone, so it may load again


@pytest.fixture(autouse=True)
def clear_hydra() -> Iterator[None]:
    """Each test starts and ends with Hydra uninitialized."""
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path


def pytest_sessionfinish() -> None:
    close_script_server()


@pytest.fixture
def run_cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run ``python scripts/run.py ARGS`` with its run directory under ``tmp_path``.

    The command runs in a child forked from a process that has imported torch
    (tests/cli_server.py);
    ``fresh=True`` starts a new interpreter instead (a test that compares two
    processes runs one of them so: a forked child has its server's hash seed).
    """

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        fresh: bool = False,
        started: Callable[[int], None] | None = None,
    ) -> CliResult:
        run_dir = tmp_path / "run"
        command = [
            sys.executable,
            str(RUN_PY),
            *args,
            f"hydra.run.dir={run_dir}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ]
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        environment.pop("HYDRA_FULL_ERROR", None)  # a test asks for it explicitly
        environment.update(env or {})
        done = script_server().run(
            command,
            cwd=tmp_path,
            env=environment,
            timeout=timeout,
            fresh=fresh,
            started=started,
        )
        return CliResult(done.returncode, done.stdout, done.stderr, run_dir)

    return run


@pytest.fixture
def compositions(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The overrides of every composition Hydra makes (each builds a defaults list)."""
    from hydra._internal import config_loader_impl

    made: list[list[str]] = []
    original = config_loader_impl.create_defaults_list

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append([o.input_line for o in kwargs["overrides_list"]])
        return original(*args, **kwargs)

    monkeypatch.setattr(config_loader_impl, "create_defaults_list", counted)
    return made


def start_interruptible(command: list[str], cwd: Path) -> subprocess.Popen[str]:
    """``command`` started as a user's shell starts it, to be sent signals: a new
    interpreter, its output piped, SIGINT turning into KeyboardInterrupt."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=environment,
        # Python turns SIGINT into KeyboardInterrupt only where it is not ignored
        # (a test run started in the background ignores it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.fixture
def interrupt_after_first_job():  # type: ignore[no-untyped-def]
    """A function that runs a sweep's command and sends it SIGINT (Ctrl-C) once job
    0 has written its record and job 1 is training (its first checkpoint is
    written); returns the finished process."""

    def interrupt(
        command: list[str], sweep_dir: Path, cwd: Path
    ) -> subprocess.CompletedProcess[str]:
        process = start_interruptible(command, cwd)
        deadline = time.monotonic() + 240
        first = sweep_dir / "0" / "job.json"
        second = sweep_dir / "1" / "checkpoint.safetensors"
        while not first.exists() or not second.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    return interrupt
