"""Successive halving with epochs as the budget: every trial climbs rungs until it is pruned.

A trial trains to the first rung's epochs; Optuna's successive-halving pruner compares its
best validation loss with every other trial's at that rung and keeps about one in
``reduction_factor``; a kept trial continues from its backup (the same training, not a new
one) to the next rung, up to the full ``--epochs``. Trials are taken ``workers`` at a time
and judged in trial order, so the same seed gives the same search for a given ``--workers``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

from tasks.core.params import TrainParams
from tasks.search.plan import Proposer, trial_params
from tasks.search.trials import Status, TrialRow, trial_row
from tasks.stages.train import discard_paused, train_task
from tasks.store.artifacts import ArtifactRef, ArtifactStore


def halving_trials(proposer: Proposer, scaled: ArtifactRef, train: TrainParams, artifacts: str, force: bool,
                   workers: int, outcome: Callable, on_row: Callable[[TrialRow, object], None]) -> None:
    """Run the plan's trials through the rungs; hand each finished trial's row and outcome
    (its training refs, or the exception that ended it) to ``on_row``."""
    plan, number = proposer.plan, 0
    rungs = plan.rungs(train.epochs)
    while number < plan.trials:
        batch = proposer.ask(min(max(workers, 1), plan.trials - number))
        alive = {number + i + 1: params for i, params in enumerate(batch)}
        number += len(batch)
        seconds = dict.fromkeys(alive, 0.0)
        for rung, budget in enumerate(rungs, start=1):
            futures = {n: train_task.submit(scaled, trial_params(train, params), artifacts, force, budget=budget)
                       for n, params in alive.items()}
            for n, future in futures.items():  # judged in trial order, whatever finished first
                params, result = alive[n], outcome(future)
                if isinstance(result, BaseException):
                    proposer.tell(params, None)
                    on_row(dataclasses.replace(trial_row(n, params, result), rung=rung, budget=budget), result)
                    del alive[n]
                    continue
                facts = ArtifactStore.record(result["model"]).training
                seconds[n] += facts.train_seconds
                finished = facts.stopped_early or budget >= train.epochs
                if finished or not proposer.promote(params, rung, facts.best_val_loss):
                    pruned = not finished
                    proposer.tell(params, facts.best_val_loss, pruned=pruned)
                    row = dataclasses.replace(trial_row(n, params, result), seconds=round(seconds[n], 2),
                                              rung=rung, budget=budget)
                    if pruned:
                        discard_paused(scaled, trial_params(train, params), artifacts)
                        row = dataclasses.replace(row, status=Status.PRUNED, reason=(
                            f"pruned after {budget} epochs (rung {rung} of {len(rungs)}): "
                            f"not in the best 1/{plan.reduction_factor}"))
                    on_row(row, result)
                    del alive[n]
            if not alive:
                break
