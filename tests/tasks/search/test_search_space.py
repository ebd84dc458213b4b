"""Search spaces as data, and the strategies' plans: refused early, named precisely."""
import math

import pytest

from tasks.core.params import TrainParams
from tasks.search.plan import Proposer, SearchPlan, default_space, heaviest_first, trial_params
from tasks.search.space import COURSE_SPACE, COURSE_SWEEP, SpaceError, parse_space, read_space


def test_the_course_space_is_the_default():
    assert [(d.name, d.kind, d.low, d.high) for d in COURSE_SPACE] == [
        ("depth", "int", 1, 4), ("width", "int", 1, 99), ("learning_rate", "loguniform", 1e-4, 1e-2)]
    assert default_space("sweep", COURSE_SPACE) == (COURSE_SWEEP,)
    assert COURSE_SWEEP.choices == (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def test_a_space_from_the_command_line_and_from_toml_agree(tmp_path):
    text = "learning_rate=loguniform(1e-4,3e-2) depth=int(1,4) width=int(16,256) optimizer=choice(sgd,adam)"
    (tmp_path / "space.toml").write_text('[space]\nlearning_rate = {loguniform = [1e-4, 3e-2]}\n'
                                         'depth = {int = [1, 4]}\nwidth = {int = [16, 256]}\n'
                                         'optimizer = {choice = ["sgd", "adam"]}\n')
    assert parse_space(text) == read_space(tmp_path / "space.toml")
    assert parse_space(text)[3].choices == ("sgd", "adam")


@pytest.mark.parametrize("text, message", [
    ("dropout=uniform(0,1)", "cannot search 'dropout'"),
    ("learning_rate=loguniform(1e-2,1e-4)", "learning_rate: the range's low end 0.01 must be below"),
    ("learning_rate=loguniform(0,1e-2)", "loguniform needs a positive low end"),
    ("depth=uniform(1,4)", "depth: use int"),
    ("depth=int(1)", "takes two numbers"),
    ("width=int(a,b)", "needs numbers"),
    ("optimizer=int(1,2)", "optimizer takes names"),
    ("depth=int(1,4) depth=int(2,3)", "given twice"),
    ("depth:int(1,4)", "write name=kind"),
    ("", "empty"),
])
def test_a_bad_space_is_refused_naming_the_parameter(text, message):
    with pytest.raises(SpaceError, match=message):
        parse_space(text)


def test_plans_refuse_what_cannot_run():
    with pytest.raises(ValueError, match="unknown strategy 'bayes'"):
        SearchPlan("bayes", COURSE_SPACE)
    with pytest.raises(ValueError, match="a sweep varies one parameter"):
        SearchPlan("sweep", COURSE_SPACE)
    with pytest.raises(ValueError, match="at least 1"):
        SearchPlan("random", COURSE_SPACE, n_iter=0)
    with pytest.raises(ValueError, match="--grid-points"):
        SearchPlan("grid", COURSE_SPACE, grid_points=0)
    with pytest.raises(ValueError, match="--startup-trials must be between 1 and --n-iter"):
        SearchPlan("heuristic", COURSE_SPACE, n_iter=10, startup_trials=11)
    with pytest.raises(ValueError, match="unknown surrogate 'smac'"):
        SearchPlan("heuristic", COURSE_SPACE, surrogate="smac")
    with pytest.raises(ValueError, match="--surrogate chooses heuristic's model; --strategy is random"):
        SearchPlan("random", COURSE_SPACE, surrogate="gp")


def test_a_gaussian_process_without_pytorch_is_refused_with_how_to_install_it(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
    with pytest.raises(ValueError, match=r"--surrogate gp needs PyTorch.*pip install -e '\.\[gp\]'"):
        SearchPlan("heuristic", COURSE_SPACE, surrogate="gp")


def test_heuristic_draws_its_startup_trials_as_random_search_does_then_proposes_from_its_model():
    plan = SearchPlan("heuristic", COURSE_SPACE, n_iter=8, seed=5, startup_trials=4)
    random = Proposer(SearchPlan("random", COURSE_SPACE, n_iter=8, seed=5)).ask(5)
    heuristic = Proposer(plan)
    startup = heuristic.ask(4)
    for params in startup:
        heuristic.tell(params, 1.0 - params["learning_rate"] * 50)  # the higher the rate, the better
    assert startup == random[:4] and plan.startup == 4
    assert heuristic.ask(1) != random[4:]  # the fifth comes from the model of the four
    assert SearchPlan("heuristic", COURSE_SPACE, n_iter=30).startup == 5  # the default: half, at most 5


@pytest.mark.parametrize("surrogate", ["tpe", "gp"])
def test_either_model_proposes_near_the_best_of_the_trials_it_was_told(surrogate):
    """After random start-up trials, the model's proposals move towards the told optimum
    (learning rate 3e-3), where random draws spread over the whole log range. The gp case needs
    PyTorch, the [gp] extra (CI installs its CPU build; README, "Two commands")."""
    if surrogate == "gp":
        pytest.importorskip("torch", reason="the Gaussian process needs PyTorch: pip install -e '.[gp]'")

    plan = SearchPlan("heuristic", COURSE_SPACE, n_iter=16, seed=3, startup_trials=4, surrogate=surrogate)
    proposer, distances = Proposer(plan), []
    for _ in range(plan.trials):
        (params,) = proposer.ask(1)
        distance = abs(math.log10(params["learning_rate"] / 3e-3))
        proposer.tell(params, distance)
        distances.append(distance)
    startup, proposed = distances[:4], sorted(distances[4:])
    assert proposed[len(proposed) // 2] < 0.5 * sum(startup) / len(startup)  # the median proposal: twice as near


def test_a_search_whose_trials_all_diverged_is_the_users_to_fix_one_whose_trials_crashed_is_not():
    from tasks.core.errors import InputError
    from tasks.search.plan import SearchFailed, TrialsCrashed, search_stopped

    diverged = search_stopped("3 trials in a row failed", ["diverged"] * 3)
    assert isinstance(diverged, SearchFailed) and isinstance(diverged, InputError)
    assert "lower learning rate" in str(diverged)
    crashed = search_stopped("3 trials in a row failed", ["diverged", "failed", "diverged"])
    assert isinstance(crashed, TrialsCrashed) and not isinstance(crashed, InputError)


def test_grid_and_sweep_run_every_combination_in_order():
    grid = SearchPlan("grid", parse_space("depth=int(1,3) learning_rate=loguniform(1e-4,1e-2)"), grid_points=3)
    assert grid.grid == {"depth": [1, 2, 3], "learning_rate": [1e-4, 1e-3, 1e-2]} and grid.trials == 9
    proposed = Proposer(grid).ask(20)
    assert len(proposed) == 9 and proposed[0] == {"depth": 1, "learning_rate": 1e-4}
    sweep = SearchPlan("sweep", (COURSE_SWEEP,))
    assert [p["learning_rate"] for p in Proposer(sweep).ask(6)] == list(COURSE_SWEEP.choices)


@pytest.mark.parametrize("strategy", ["random", "genetic", "heuristic"])
def test_seeded_strategies_propose_the_same_configurations_inside_the_space(strategy):
    plan = SearchPlan(strategy, COURSE_SPACE, n_iter=6, seed=3, population=3)

    def proposals():
        proposer, seen = Proposer(plan), []
        for _ in range(2):  # two batches, told in between, as the flow does
            batch = proposer.ask(3)
            for i, params in enumerate(batch):
                proposer.tell(params, 0.5 + 0.1 * i if i else None)  # one failure per batch
            seen += batch
        return seen

    first = proposals()
    assert first == proposals() and len(first) == 6
    for params in first:
        assert 1 <= params["depth"] <= 4 and 1 <= params["width"] <= 99 and 1e-4 <= params["learning_rate"] <= 1e-2


def test_a_trial_is_the_fixed_settings_with_its_values_on_top():
    fixed = TrainParams("mlp30", epochs=100, patience=10, min_delta=0.0)
    trial = trial_params(fixed, {"depth": 3.0, "width": 58, "learning_rate": 0.0057})
    assert (trial.depth, trial.width, trial.learning_rate, trial.epochs, trial.patience) == (3, 58, 0.0057, 100, 10)
    assert isinstance(trial.depth, int)


def test_a_batch_goes_to_the_workers_longest_trial_first():
    fixed = TrainParams(model="mlp30", epochs=30)
    trials = [trial_params(fixed, p) for p in ({"depth": 1, "width": 29}, {"depth": 4, "width": 96},
                                               {"depth": 2, "width": 95}, {"depth": 4, "width": 22},
                                               {"depth": 1, "width": 29})]
    assert heaviest_first(trials) == [1, 3, 2, 0, 4]  # equals keep their order
    more_epochs = trial_params(fixed, {"depth": 1, "width": 29, "epochs": 100})
    bigger_batches = trial_params(fixed, {"depth": 4, "width": 96, "batch_size": 512})
    assert heaviest_first([bigger_batches, trials[0], more_epochs]) == [2, 1, 0]
