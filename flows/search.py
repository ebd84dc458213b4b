"""Hyperparameter search: prepare the data once, run the trials, score the best once on test.

    prepare -> trials (training stages, in parallel across --workers) -> record -> evaluate best

The loop is the same for every strategy: ask the sampler for a batch of configurations,
train them (cached: a search run again re-uses every finished trial), tell the sampler
their validation losses, until the plan's trials are done. The test split plays no part
until the best configuration, chosen on the validation loss, is scored once.
"""
from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.pipeline import prepare, source_for, summary, value
from tasks.evaluate import evaluate_task
from tasks.params import TrainParams
from tasks.search import Proposer, SearchFailed, SearchPlan, trial_params
from tasks.stage import logger
from tasks.train import train_task
from tasks.trials import best_row, record_search_task, trial_row


def _outcome(future) -> dict | BaseException:
    """A trial's refs, or the exception that ended it (a diverged or crashed trial)."""
    future.wait()
    result = future.result(raise_on_failure=False)
    if isinstance(result, State):
        result = result.result(raise_on_failure=False)
    return result


@flow(name="search", task_runner=ThreadPoolTaskRunner(max_workers=1))  # one training at a time in
# this process (Keras's seed and session are process-wide); with_workers() swaps in processes
def search(plan: SearchPlan, train: TrainParams, task: str = "regression", data: str | None = None,
           target: str | None = None, artifacts: str = "artifacts", force: bool = False,
           workers: int = 1) -> dict[str, Any]:
    """Search ``plan`` over the training settings ``train`` (its fixed part); return the best."""
    prepared = prepare(source_for(task, data, target), artifacts, force)
    proposer = Proposer(plan)
    rows, trials, failed_in_a_row = [], [], 0
    while len(rows) < plan.trials:
        asked = proposer.ask(min(plan.batch(workers), plan.trials - len(rows)))
        futures = [train_task.submit(prepared["scaled"], trial_params(train, params), artifacts, force)
                   for params in asked]
        for params, future in zip(asked, futures):
            outcome = _outcome(future)
            row = trial_row(len(rows) + 1, params, outcome)
            rows.append(row)
            proposer.tell(params, row["val_loss"] if row["status"] == "ok" else None)
            if row["status"] == "ok":
                trials.append(outcome["model"])
            failed_in_a_row = 0 if row["status"] == "ok" else failed_in_a_row + 1
            best = best_row(rows)
            logger().info("trial %d/%d %s: %s%s", len(rows), plan.trials, params,
                          f"val_loss {row['val_loss']:.4f}" if row["status"] == "ok" else row["reason"],
                          f" (best so far {best['val_loss']:.4f}, trial {best['trial']})" if best else "")
        if failed_in_a_row >= plan.max_failures:
            raise SearchFailed(f"{failed_in_a_row} trials in a row failed, the last with {rows[-1]['reason']}; "
                               "narrow the space (e.g. a lower learning rate) or raise --max-failures")
    recorded = value(record_search_task(rows, trials, prepared["scaled"], plan.strategy, artifacts, force))
    best = best_row(rows)
    if best is None:
        raise SearchFailed(f"none of the {len(rows)} trials finished; see {recorded['trials'].path}")
    best_params = {d.name: best[d.name] for d in plan.space}
    # the chosen trial is the training stage with these values: taken from the cache, not retrained
    chosen = value(train_task(prepared["scaled"], trial_params(train, best_params), artifacts))
    metrics, test = value(evaluate_task(chosen["model"], prepared["scaled"], artifacts, force))
    result = summary({**prepared, **chosen, "metrics": metrics, **recorded}, test)
    statuses = [r["status"] for r in rows]
    return {**result, "best_params": best_params, "best_val_loss": best["val_loss"],
            "trials": {status: statuses.count(status) for status in sorted(set(statuses))}}


def with_workers(workers: int):
    """The search flow with its trials in ``workers`` processes (one TensorFlow each, its
    threads limited before TensorFlow loads); in this process when ``workers`` is 1."""
    if workers <= 1:
        return search
    import os

    from prefect.task_runners import ProcessPoolTaskRunner

    from tasks.search import limit_threads

    threads = max(1, (os.cpu_count() or 1) // workers)
    return search.with_options(task_runner=ProcessPoolTaskRunner(max_workers=workers, initializer=limit_threads,
                                                                 initargs=(threads,)))
