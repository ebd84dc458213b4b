"""Hyperparameter search: prepare the data once, run the trials, score the best once on test.

    prepare -> trials (training stages, in parallel across --workers) -> (record, evaluate best)

The loop is the same for every trial strategy: ask the sampler for a batch of
configurations, train them (cached: a search run again re-uses every finished trial),
tell the sampler their validation losses, until the plan's trials are done; halving walks
its trials through the rungs (``flows/steps/halving.py``). The scikit-learn strategies run
scikit-learn's own search as one stage, then train the configuration it chose. The test
split plays no part until the best configuration, chosen on validation, is scored once.
"""
from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.steps.halving import halving_trials
from flows.steps.parameters import described
from flows.steps.pipeline import prepare, score_and_gate, source_for, summary, table_options, value
from tasks.core.errors import OptionError
from tasks.core.params import TrainParams, setup, training
from tasks.search.plan import (
    PLAN_HELP,
    TRIAL_STRATEGIES,
    Proposer,
    SearchPlan,
    heaviest_first,
    make_plan,
    search_stopped,
    trial_params,
)
from tasks.search.trials import Progress, Status, TrialRow, best_row, record_search_task, trial_row, warm_up_task
from tasks.stages.table import TableOptions
from tasks.stages.train import train_task
from tasks.store.artifacts import ArtifactRef


def _outcome(future) -> dict | BaseException:
    """A trial's refs, or the exception that ended it (a diverged or crashed trial)."""
    future.wait()
    result = future.result(raise_on_failure=False)
    if isinstance(result, State):
        result = result.result(raise_on_failure=False)
    return result


def _trials(plan: SearchPlan, scaled: ArtifactRef, train: TrainParams, artifacts: str, force: bool,
            workers: int) -> tuple[list[TrialRow], dict[int, dict[str, ArtifactRef]]]:
    """Every trial of a trial strategy: its rows, and the training refs of the finished ones."""
    proposer, progress, refs = Proposer(plan), Progress(plan), {}

    def finished(row: TrialRow, outcome) -> None:
        progress.add(row)
        if row.status in (Status.OK, Status.PRUNED):
            refs[row.trial] = outcome
        if progress.failed_in_a_row >= plan.max_failures:
            last = [r.status for r in progress.rows[-progress.failed_in_a_row:]]
            message = f"{progress.failed_in_a_row} trials in a row failed, the last with {row.reason}"
            raise search_stopped(message, last) from (outcome if isinstance(outcome, BaseException) else None)

    if plan.strategy == "halving":
        halving_trials(proposer, scaled, train, artifacts, force, workers, _outcome, finished)
        return progress.rows, refs
    while len(progress.rows) < plan.trials:
        asked = proposer.ask(min(plan.batch(workers), plan.trials - len(progress.rows)))
        settings = [trial_params(train, params) for params in asked]
        futures = {i: train_task.submit(scaled, settings[i], artifacts, force) for i in heaviest_first(settings)}
        for i, params in enumerate(asked):  # numbered and told in the order asked
            outcome = _outcome(futures[i])
            row = trial_row(len(progress.rows) + 1, params, outcome)
            proposer.tell(params, row.val_loss if row.status is Status.OK else None)
            finished(row, outcome)
    return progress.rows, refs


def _sklearn_trials(plan: SearchPlan, scaled: ArtifactRef, train: TrainParams, task: str, artifacts: str,
                    force: bool, workers: int) -> list[TrialRow]:
    from tasks.search.sklearn_search import sklearn_search_task

    options = {"n_iter": plan.n_iter, "seed": plan.seed, "grid_points": plan.grid_points,
               "min_epochs": plan.first_rung(train.epochs), "reduction_factor": plan.reduction_factor}
    rows = value(sklearn_search_task(scaled, plan.strategy, plan.space, train, task, options, artifacts, force,
                                     workers))
    progress = Progress(plan)
    for row in rows:
        progress.add(row)
    return rows


@flow(name="search", task_runner=ThreadPoolTaskRunner(max_workers=1))  # one training at a time in
# this process (Keras's seed and session are process-wide); flows/launch/runners.py swaps in processes
@described(**PLAN_HELP, task="classification or regression: the course's dataset and set-up (or data's task)",
           model="the model every trial trains (empty: the task's course model)",
           epochs="most epochs of a trial (empty: the task's course set-up)",
           workers="trials in parallel (the flow's task runner decides where they run)")
def search(strategy: str = "random", space: str | None = None, n_iter: int = 10, grid_points: int = 3,
           population: int = 4, max_failures: int = 3, min_epochs: int | None = None, reduction_factor: int = 3,
           startup_trials: int | None = None, surrogate: str = "tpe", task: str = "regression",
           model: str | None = None, epochs: int | None = None, batch_size: int | None = None,
           learning_rate: float | None = None, optimizer: str | None = None, depth: int | None = None,
           width: int | None = None, activation: str | None = None, initializer: str | None = None,
           schedule: str | None = None, seed: int = 42, patience: int | None = None,
           min_delta: float | None = None, steps_per_execution: int | None = None, data: str | None = None,
           target: str | None = None, categorical: list[str] | None = None, numeric: list[str] | None = None,
           missing: str = "refuse", drop_constant: bool = False, scale_target: str = "auto",
           stream: bool | None = None, artifacts: str = "artifacts", force: bool = False,
           workers: int = 1) -> dict[str, Any]:
    """Search the space over the task's training set-up (the settings given here fix the rest of
    every trial); the best configuration, chosen on the validation loss, is scored once on test."""
    plan = make_plan(strategy, space, n_iter=n_iter, seed=seed, grid_points=grid_points, population=population,
                     max_failures=max_failures, min_epochs=min_epochs, reduction_factor=reduction_factor,
                     startup_trials=startup_trials, surrogate=surrogate)
    train = training(setup(task, data), model=model, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                     optimizer=optimizer, depth=depth, width=width, activation=activation, initializer=initializer,
                     schedule=schedule, seed=seed, patience=patience, min_delta=min_delta,
                     steps_per_execution=steps_per_execution)
    return run_search(plan, train, task, data, target, artifacts, force, workers, scale_target,
                      table_options(categorical, numeric, missing, drop_constant), stream)


def run_search(plan: SearchPlan, train: TrainParams, task: str = "regression", data: str | None = None,
               target: str | None = None, artifacts: str = "artifacts", force: bool = False,
               workers: int = 1, scale_target: str = "auto", table: TableOptions | None = None,
               stream: bool | None = None) -> dict[str, Any]:
    """Search ``plan`` over the training settings ``train`` (its fixed part); return the best."""
    # trial workers start while the data is prepared (scikit-learn's searches bring their own)
    warming = [warm_up_task.submit() for _ in range(workers)] if workers > 1 and not plan.sklearn else []
    # a trial strategy streams as training does (each trial a training stage reading the scaled
    # row groups); scikit-learn's searches fit arrays in memory, so they stream only when asked, and refuse it
    source = source_for(task, data, target, table, bool(stream) if plan.sklearn else stream)
    if source.stream and plan.sklearn:
        raise OptionError(f"search: {plan.strategy} fits its folds in memory, and a table streamed a row group at "
                          f"a time is not; use a trial strategy ({', '.join(TRIAL_STRATEGIES)}), each trial then "
                          "trains from the stream, or --no-stream if the table fits in memory")
    prepared = prepare(source, artifacts, force, scale_target)
    scaled = prepared["scaled"]
    if plan.sklearn:
        rows, refs = _sklearn_trials(plan, scaled, train, task, artifacts, force, workers), {}
    else:
        rows, refs = _trials(plan, scaled, train, artifacts, force, workers)
    best = best_row(rows)
    rungs = plan.rungs(train.epochs) if plan.strategy == "halving" else None
    # the record is drawn on the task runner: with workers, beside the best's scoring and reports
    recording = record_search_task.submit(rows, refs, scaled, plan.strategy, artifacts, force, rungs)
    if best is None:
        raise search_stopped(f"none of the {len(rows)} trials finished; see {value(recording.result())['trials'].path}",
                             [r.status for r in rows])
    best_params = best.params
    # a trial strategy's best is a trained stage already; scikit-learn's choice is trained now
    chosen = refs.get(best.trial) or value(train_task(scaled, trial_params(train, best_params), artifacts, force))
    for future in warming:
        future.wait()
    # with workers, scored and reported in them: this process then never loads TensorFlow
    scored, test, champion = score_and_gate(chosen["model"], prepared, artifacts, force, submit=True)
    result = summary({**prepared, **chosen, **scored, **value(recording.result())}, test, artifacts)
    statuses = [str(r.status) for r in rows]
    return {**result, "champion": champion, "best_params": best_params, "best_val_loss": best.val_loss,
            "trials": {status: statuses.count(status) for status in sorted(set(statuses))},
            "epochs": int(sum(r.epochs_run for r in rows))}
