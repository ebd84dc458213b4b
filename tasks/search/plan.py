"""Hyperparameter search: strategies as Optuna samplers, trials as training-stage runs.

The course tunes by hand (a loop over learning rates), then with scikit-learn's random
search, and names grid, random, genetic and heuristic (model-guided) search. Here each is
an Optuna sampler asked for configurations over a declared space (``tasks/search/space.py``):

    sweep      one parameter over a list (default: the course's six learning rates)
    grid       every combination of a few points per parameter
    random     independent draws (the course's RandomizedSearchCV, without the folds)
    genetic    NSGA-II: a population per generation, selection on the validation loss,
               crossover and mutation; each generation waits for the one before
    heuristic  TPE (or, with --surrogate gp, a Gaussian process): a model of the finished
               trials proposes the next ones
    halving    successive halving with epochs as the budget: random draws, each trained a
               rung at a time; Optuna's pruner keeps the best 1/reduction_factor at each rung
               and the kept ones continue from their backups (``flows/steps/halving.py``)

and ``sklearn-random``, ``sklearn-grid``, ``sklearn-halving``: scikit-learn's own searches
with 3-fold cross-validation, as the course runs them (``tasks/search/sklearn_search.py``).

A trial is the ordinary training stage (``tasks/stages/train.py``) with the trial's parameters:
it trains on the train split, is scored on the valid split, stores its model and history
with lineage, and is cached by (parameters, seed, data hash, code hash), so a search run
again re-uses every finished trial. A diverged trial is a record, not a failed search.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.errors import InputError, OptionError
from tasks.core.params import TrainParams
from tasks.search.space import COURSE_SPACE, COURSE_SWEEP, Space, parse_space, read_space

TRIAL_STRATEGIES = ("sweep", "grid", "random", "genetic", "heuristic", "halving")  # trials as training stages
SKLEARN_STRATEGIES = ("sklearn-random", "sklearn-grid", "sklearn-halving")  # scikit-learn's own, 3 folds
STRATEGIES = TRIAL_STRATEGIES + SKLEARN_STRATEGIES
RUNNERS = ("process", "dask")  # where trials run (flows/launch/runners.py)
SURROGATES = ("tpe", "gp")  # heuristic's model of the finished trials: TPE, or a Gaussian process (needs PyTorch)


class SearchFailed(InputError, RuntimeError):
    """Too many trials in a row diverged: the space or the fixed settings are wrong."""


class TrialsCrashed(RuntimeError):
    """Trials failed for another reason than divergence: the program's fault (exit 1, traceback)."""


def search_stopped(message: str, statuses: list[str]) -> Exception:
    """The error that ends a search whose trials failed (``statuses``: their ``trials.Status``):
    the user's when they all diverged."""
    if all(s == "diverged" for s in statuses):
        return SearchFailed(f"{message}; narrow the space (e.g. a lower learning rate) or raise --max-failures")
    return TrialsCrashed(f"{message}; trials crashed, which is not the data's or the options' fault")


@dataclass(frozen=True)
class SearchPlan:
    """What to search and how: the strategy, the space, the budget and the seed."""

    strategy: str
    space: Space
    n_iter: int = 10
    seed: int = 42
    grid_points: int = 3  # per numeric parameter, for grid
    population: int = 4  # genetic: trials per generation
    max_failures: int = 3  # this many failed trials in a row stop the search
    min_epochs: int | None = None  # halving: epochs of the first rung (default: from --epochs)
    reduction_factor: int = 3  # halving: about 1 in this many trials goes on at each rung
    startup_trials: int | None = None  # heuristic: random trials before the model proposes (default: from n_iter)
    surrogate: str = "tpe"  # heuristic: the model that proposes

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise OptionError(f"unknown strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}")
        if self.n_iter < 1 or self.grid_points < 1 or self.population < 2 or self.max_failures < 1:
            raise OptionError("--n-iter, --grid-points and --max-failures must be at least 1, "
                              "the population at least 2")
        if self.reduction_factor < 2 or (self.min_epochs is not None and self.min_epochs < 1):
            raise OptionError("--reduction-factor must be at least 2 and --min-epochs at least 1")
        if self.startup_trials is not None and not 1 <= self.startup_trials <= self.n_iter:
            raise OptionError(f"--startup-trials must be between 1 and --n-iter ({self.n_iter}), "
                              f"not {self.startup_trials}")
        if self.surrogate not in SURROGATES:
            raise OptionError(f"unknown surrogate {self.surrogate!r}; choose from {', '.join(SURROGATES)}")
        if self.surrogate != "tpe" and self.strategy != "heuristic":
            raise OptionError(f"--surrogate chooses heuristic's model; --strategy is {self.strategy}")
        if self.surrogate == "gp" and importlib.util.find_spec("torch") is None:
            raise OptionError("--surrogate gp needs PyTorch, which is not installed: pip install -e '.[gp]' "
                              "(on a machine without a GPU: pip install torch --index-url "
                              "https://download.pytorch.org/whl/cpu)")
        if self.strategy == "sweep" and len(self.space) != 1:
            raise OptionError(f"a sweep varies one parameter; the space has {[d.name for d in self.space]}")

    @property
    def grid(self) -> dict[str, list[Any]]:
        return {d.name: d.points(self.grid_points) for d in self.space}

    @property
    def sklearn(self) -> bool:
        return self.strategy in SKLEARN_STRATEGIES

    def first_rung(self, epochs: int) -> int:
        """Epochs of the first halving rung: given, or so that about four rungs reach ``epochs``."""
        return self.min_epochs or max(1, round(epochs / self.reduction_factor ** 3))

    def rungs(self, epochs: int) -> list[int]:
        """The epochs at which halving judges its trials: r, r*f, r*f^2, ... and finally ``epochs``."""
        budgets, budget = [], self.first_rung(epochs)
        while budget < epochs:
            budgets.append(budget)
            budget *= self.reduction_factor
        return [*budgets, epochs]

    @property
    def startup(self) -> int:
        """Heuristic: the random trials that give TPE its first model (half the budget, at most 5)."""
        return self.startup_trials or max(2, min(5, self.n_iter // 2))

    @property
    def trials(self) -> int:
        """How many trials the search runs: the whole grid, or ``n_iter``."""
        if self.strategy in ("sweep", "grid", "sklearn-grid"):
            return math.prod(len(points) for points in self.grid.values())
        return self.n_iter

    def batch(self, workers: int) -> int:
        """Trials asked for at once: a generation, as many as there are workers (so a model-
        guided proposal sees the finished trials), or all of them."""
        if self.strategy == "genetic":
            return self.population
        if self.strategy in ("heuristic", "halving"):
            return max(workers, 1)
        return self.trials


def default_space(strategy: str, course: Space) -> Space:
    return (COURSE_SWEEP,) if strategy == "sweep" else course


def make_plan(strategy: str, space: str | None, **budget: Any) -> SearchPlan:
    """A plan from a space given as text (``"depth=int(1,4) ..."``), as a TOML file's path, or
    not at all (the course's space; for a sweep its learning rates); ``budget``: SearchPlan's
    other fields. A bad space or budget raises an OptionError naming it."""
    dims = (read_space(space) if space and Path(space).is_file() else
            parse_space(space) if space else default_space(strategy, COURSE_SPACE))
    return SearchPlan(strategy, dims, **budget)


# What each plan setting means, for the search flow's parameters (the UI's run form)
PLAN_HELP = {
    "strategy": "sweep, grid, random, genetic, heuristic, halving, sklearn-grid, sklearn-random or sklearn-halving",
    "space": 'e.g. "learning_rate=loguniform(1e-4,3e-2) depth=int(1,4)", or a TOML file (empty: the course\'s)',
    "n_iter": "trials of random, genetic, heuristic and halving; candidates of the sklearn searches",
    "grid_points": "grid: points per numeric parameter",
    "population": "genetic: trials per generation",
    "max_failures": "failed trials in a row that stop the search",
    "min_epochs": "halving: epochs of the first rung (empty: from epochs)",
    "reduction_factor": "halving: about 1 trial in this many goes on at each rung",
    "startup_trials": "heuristic: random trials before the model proposes (empty: from n_iter)",
    "surrogate": "heuristic: tpe, or gp (a Gaussian process; needs PyTorch)",
}


class Proposer:
    """Asks a strategy for configurations and tells it how they did (validation loss, or None
    for a failed trial). Grid and sweep are every combination in the declared order (the
    course's loop), needing no model; the others are Optuna samplers behind ask/tell."""

    def __init__(self, plan: SearchPlan):
        self.plan, self._asked = plan, {}
        if plan.strategy in ("sweep", "grid"):
            names = list(plan.grid)
            self._grid = [dict(zip(names, values)) for values in itertools.product(*plan.grid.values())]
            return
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=plan.reduction_factor) \
            if plan.strategy == "halving" else None  # rungs at 1, f, f^2... of our rung numbers
        self._study = optuna.create_study(direction="minimize", sampler=_sampler(plan), pruner=pruner)
        self._space = {d.name: d.distribution() for d in plan.space}

    def ask(self, n: int) -> list[dict[str, Any]]:
        if self.plan.strategy in ("sweep", "grid"):
            batch, self._grid = self._grid[:n], self._grid[n:]
            return batch
        batch = []
        for _ in range(n):
            trial = self._study.ask(self._space)
            params = trial.params
            self._asked[id(params)] = trial  # told back by the very dict handed out
            batch.append(params)
        return batch

    def promote(self, params: dict[str, Any], rung: int, val_loss: float) -> bool:
        """Halving: report a trial's best validation loss at a rung; whether it goes on."""
        trial = self._asked[id(params)]
        trial.report(val_loss, step=self.plan.reduction_factor ** (rung - 1))
        return not trial.should_prune()

    def tell(self, params: dict[str, Any], val_loss: float | None, pruned: bool = False) -> None:
        if self.plan.strategy in ("sweep", "grid"):
            return
        from optuna.trial import TrialState

        trial = self._asked.pop(id(params))
        if val_loss is None:
            self._study.tell(trial, state=TrialState.FAIL)
        elif pruned:
            self._study.tell(trial, state=TrialState.PRUNED)
        else:
            self._study.tell(trial, val_loss)


def _sampler(plan: SearchPlan):
    """The Optuna sampler behind a model-free or model-guided strategy, seeded."""
    import optuna

    if plan.strategy in ("random", "halving"):  # halving draws as random does: the same first trials
        return optuna.samplers.RandomSampler(seed=plan.seed)
    if plan.strategy == "genetic":
        return optuna.samplers.NSGAIISampler(population_size=plan.population, seed=plan.seed)
    if plan.surrogate == "gp":  # its first trials are random draws with the same seed, as TPE's are
        return optuna.samplers.GPSampler(seed=plan.seed, n_startup_trials=plan.startup)
    return optuna.samplers.TPESampler(seed=plan.seed, n_startup_trials=plan.startup, multivariate=True)


def trial_params(fixed: TrainParams, proposed: dict[str, Any]) -> TrainParams:
    """The fixed training settings with one trial's values on top."""
    return dataclasses.replace(fixed, **{k: (int(v) if isinstance(v, float) and v.is_integer()
                                             and k in ("depth", "width", "batch_size") else v)
                                         for k, v in proposed.items()})


def heaviest_first(trials: list[TrainParams]) -> list[int]:
    """The order in which to hand a batch of trials to the workers: the likely longest first, so
    that a batch ends on short trials and no worker waits long for a lone long one. A trial's
    likely time: its batches (epochs times rows over the batch size) times a batch's cost,
    which for these small networks is mostly fixed and grows a little with depth and width
    (the weights were fitted to timed housing trials)."""
    def cost(params: TrainParams) -> float:
        return params.epochs / params.batch_size * (20 + (params.depth or 1) * (1 + (params.width or 30) / 100))

    return sorted(range(len(trials)), key=lambda i: -cost(trials[i]))  # stable: equal ones keep their order


THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def thread_limits(workers: int) -> dict[str, str]:
    """The environment that gives each of ``workers`` trial processes its share of the cores,
    read by TensorFlow as it loads there: trials side by side on a 2-core machine that each
    took both cores would only get in each other's way."""
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    return {name: str(threads) for name in THREAD_VARIABLES} | {"TF_CPP_MIN_LOG_LEVEL": "2"}
