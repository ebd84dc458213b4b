"""The champion gate: its margins, the metric it reads, its decisions, their history and their errors."""
from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from tasks.core.errors import OptionError
from tasks.serving.champion import (
    RULES,
    Decision,
    Rule,
    champion_for,
    current,
    decide,
    gate_name,
    gate_value,
    gates,
    history,
    history_path,
    markdown,
    matching_gates,
)
from tasks.store.artifacts import ArtifactStore
from tasks.store.lineage import ArtifactRef

HOUSING_GATE = gate_name("housing", "regression", "MedHouseVal")
FASHION_GATE = gate_name("fashion", "classification", "label")


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def artifact(store) -> Callable[[str, float], ArtifactRef]:
    """A small real Parquet artifact in the store's ``stage`` folder; ``value`` makes its bytes (and hash) its own."""

    def put(stage: str, value: float) -> ArtifactRef:
        return store.put_table(pa.table({"value": [value]}), stage, dataset="housing")

    return put


@pytest.fixture
def meet(store, artifact) -> Callable[..., Decision | None]:
    """Put a distinct model artifact (its data and scaler shared) before a gate with ``scores``."""

    def meet_gate(model_number: float, scores: dict[str, float], dataset: str = "housing",
                  task_name: str = "regression", target: str = "MedHouseVal",
                  heads: tuple[str, ...] | None = None) -> Decision | None:
        return decide(store, dataset, task_name, target, artifact("model", model_number), artifact("scaler", 0.0),
                      artifact("scaled", 0.0), scores, heads)

    return meet_gate


# ---- Rule.beats ------------------------------------------------------------------------------
def test_accuracy_must_win_by_the_margin_in_points():
    """Classification: 0.001 accuracy points over the champion; a tie or a smaller gain keeps it."""
    rule = RULES["classification"]
    assert (rule.metric, rule.higher_is_better, rule.margin) == ("accuracy", True, 0.001)
    assert rule.beats(0.9015, 0.900)
    assert not rule.beats(0.9005, 0.900)
    assert not rule.beats(0.900, 0.900)
    assert not rule.beats(0.850, 0.900)
    assert rule.beats(0.3015, 0.300)  # points, whatever the level


def test_a_loss_must_fall_by_a_share_of_the_champion_s():
    """Regression: 0.5% below the champion's loss, in the target's units or any other scale."""
    rule = RULES["regression"]
    assert (rule.metric, rule.higher_is_better, rule.margin) == ("loss", False, 0.005)
    for old in (2.0, 200.0):  # 0.55% lower beats, 0.45% lower does not, at either scale
        assert rule.beats(old * 0.9945, old)
        assert not rule.beats(old * 0.9955, old)
        assert not rule.beats(old, old)
        assert not rule.beats(old * 1.1, old)
    assert not rule.beats(199.1, 200.0)  # 0.9 lower in points, but only 0.45% of 200


def test_a_rule_says_its_margin_in_words():
    assert str(RULES["classification"]) == "accuracy +0.001 or more"
    assert str(RULES["regression"]) == "loss 0.5% lower or more"
    assert str(Rule("accuracy", True, 0.01)) == "accuracy +0.01 or more"


# ---- gate_value ------------------------------------------------------------------------------
def test_a_model_with_several_heads_is_judged_on_its_first_head_not_the_summed_loss():
    """Keras reports ``loss`` as the sum of the heads' losses; the gate reads the main head's."""
    scores = {"loss": 1.69, "main_loss": 0.60, "aux_loss": 1.09}
    assert gate_value(scores, RULES["regression"], ("main", "aux")) == ("main_loss", 0.60)
    assert gate_value(scores, RULES["regression"], ("aux", "main")) == ("aux_loss", 1.09)


def test_a_model_with_one_output_is_judged_on_the_rule_s_metric():
    assert gate_value({"loss": 0.7}, RULES["regression"], None) == ("loss", 0.7)
    assert gate_value({"loss": 0.7}, RULES["regression"], ()) == ("loss", 0.7)
    assert gate_value({"loss": 0.4, "accuracy": 0.85}, RULES["classification"], None) == ("accuracy", 0.85)
    # heads declared, but no score of the first one's: the plain metric, not a KeyError
    assert gate_value({"loss": 0.7}, RULES["regression"], ("main",)) == ("loss", 0.7)


def test_the_gate_promotes_a_multi_head_model_whose_main_head_is_better_though_its_sum_is_worse(meet):
    first = meet(1, {"loss": 1.50, "main_loss": 0.60, "aux_loss": 0.90}, heads=("main", "aux"))
    second = meet(2, {"loss": 1.80, "main_loss": 0.50, "aux_loss": 1.30}, heads=("main", "aux"))
    assert (first.metric, first.value) == ("main_loss", 0.60)
    assert second.promoted and (second.metric, second.value, second.value_before) == ("main_loss", 0.50, 0.60)
    third = meet(3, {"loss": 1.00, "main_loss": 0.55, "aux_loss": 0.45}, heads=("main", "aux"))
    assert not third.promoted  # a far lower sum, but a worse main head


# ---- decide ----------------------------------------------------------------------------------
def test_a_gate_s_first_model_becomes_its_champion(store, meet):
    decision = meet(1, {"loss": 0.70})
    assert decision.promoted and decision.reason == "the dataset's first model"
    assert decision.champion_before is None and decision.value_before is None
    assert (decision.dataset, decision.task, decision.target, decision.metric) == (
        "housing", "regression", "MedHouseVal", "loss")
    assert current(store, HOUSING_GATE) == decision


def test_a_better_model_replaces_the_champion_and_a_worse_one_keeps_it(store, meet):
    first = meet(1, {"loss": 0.70})
    better = meet(2, {"loss": 0.60})
    worse = meet(3, {"loss": 0.65})
    barely = meet(4, {"loss": 0.60 * 0.997})  # 0.3% lower: inside the 0.5% margin
    assert [d.promoted for d in (first, better, worse, barely)] == [True, True, False, False]
    assert better.champion_before == first.model.sha256 and better.value_before == 0.70
    assert worse.champion_before == better.model.sha256 and worse.value_before == 0.60
    assert better.reason == "loss 0.6000 beats 0.7000 (needs loss 0.5% lower or more)"
    assert worse.reason == "loss 0.6500 does not beat 0.6000 (needs loss 0.5% lower or more)"
    assert current(store, HOUSING_GATE).model == better.model


def test_a_classifier_s_gate_reads_accuracy_higher_is_better(store, meet):
    def classify(number, accuracy, loss):
        return meet(number, {"accuracy": accuracy, "loss": loss}, dataset="fashion", task_name="classification",
                    target="label")

    assert classify(1, 0.80, 0.60).promoted
    assert not classify(2, 0.79, 0.40).promoted  # a lower loss does not count: accuracy decides
    assert classify(3, 0.82, 0.70).promoted
    assert current(store, FASHION_GATE).value == 0.82


@pytest.mark.parametrize("broken", [math.nan, math.inf, -math.inf])
def test_a_non_finite_score_is_never_promoted(store, meet, broken):
    """Not as a gate's first model, and not over a champion (a NaN loss compares False both ways)."""
    first = meet(1, {"loss": broken})
    assert not first.promoted and first.reason == f"loss is {broken}: not a score"
    assert current(store, HOUSING_GATE) is None
    finite = meet(2, {"loss": 0.70})
    assert finite.promoted and finite.reason == "the dataset's first model"
    later = meet(3, {"loss": broken})
    assert not later.promoted and current(store, HOUSING_GATE).model == finite.model


def test_the_same_model_is_decided_only_once(store, meet):
    """A re-run that reuses a cached model adds nothing, whatever scores it brings."""
    assert meet(1, {"loss": 0.70}).promoted
    meet(2, {"loss": 0.80})
    assert meet(2, {"loss": 0.10}) is None  # decided before: not promoted now, not recorded again
    assert meet(1, {"loss": 0.70}) is None
    assert len(history(store, HOUSING_GATE)) == 2
    assert current(store, HOUSING_GATE).value == 0.70


def test_every_decision_is_appended_to_the_gate_s_json_file_in_the_store(store, meet):
    decisions = [meet(1, {"loss": 0.70}), meet(2, {"loss": 0.80}), meet(3, {"loss": 0.50})]
    path = store.root / "champions" / "housing-regression-medhouseval.json"
    assert history_path(store, HOUSING_GATE) == path
    raw = json.loads(path.read_text())
    assert [entry["model"]["sha256"] for entry in raw] == [d.model.sha256 for d in decisions]
    assert [entry["promoted"] for entry in raw] == [True, False, True]
    assert history(store, HOUSING_GATE) == decisions
    assert not list(path.parent.glob(".tmp-*"))  # written atomically, no temporary file left


def test_gates_are_one_per_dataset_task_and_target(store, meet):
    meet(1, {"loss": 0.70})
    meet(2, {"loss": 0.90}, target="HouseAge")  # worse, but another target's gate: its first model
    meet(3, {"accuracy": 0.8, "loss": 0.5}, dataset="fashion", task_name="classification", target="label")
    assert gates(store) == {"fashion-classification-label": "fashion (classification, label)",
                            "housing-regression-houseage": "housing (regression, HouseAge)",
                            "housing-regression-medhouseval": "housing (regression, MedHouseVal)"}
    assert all(d.promoted for gate in gates(store) for d in history(store, gate))


def test_a_moved_store_reads_its_own_files_from_the_history(tmp_path, store, meet):
    """The history records absolute paths; a store moved to another folder finds its own copies."""
    kept = meet(1, {"loss": 0.70})
    meet(2, {"loss": 0.80})
    moved_root = tmp_path / "elsewhere" / "store"
    shutil.move(store.root, moved_root)
    moved = ArtifactStore(moved_root)
    decisions = history(moved, HOUSING_GATE)
    for decision in decisions:
        for ref in (decision.model, decision.scaler, decision.scaled):
            assert Path(ref.path).parent.parent == moved_root and Path(ref.path).is_file()
    champion = champion_for(moved, "housing")
    assert champion.model.sha256 == kept.model.sha256
    assert champion.model.path == str(moved_root / "model" / Path(kept.model.path).name)


# ---- matching_gates, champion_for ------------------------------------------------------------
def test_an_empty_store_says_to_train_first(store):
    with pytest.raises(OptionError, match="no champion yet: run a training flow first"):
        matching_gates(store, None)
    with pytest.raises(OptionError, match="no champion yet"):
        champion_for(store, "housing")


def test_gates_are_matched_by_dataset_name_or_by_gate_name(store, meet):
    meet(1, {"loss": 0.70})
    meet(2, {"accuracy": 0.8, "loss": 0.5}, dataset="fashion", task_name="classification", target="label")
    assert matching_gates(store, None) == gates(store)
    assert matching_gates(store, "housing") == {HOUSING_GATE: "housing (regression, MedHouseVal)"}
    assert matching_gates(store, FASHION_GATE) == {FASHION_GATE: "fashion (classification, label)"}
    assert champion_for(store, "fashion").metric == "accuracy"


def test_an_unknown_dataset_is_refused_naming_the_gates_there_are(store, meet):
    meet(1, {"loss": 0.70})
    meet(2, {"accuracy": 0.8, "loss": 0.5}, dataset="fashion", task_name="classification", target="label")
    with pytest.raises(OptionError) as refused:
        champion_for(store, "iris")
    message = str(refused.value)
    assert message.startswith(f"{store.root}: no champion for dataset 'iris' (there are: ")
    assert "fashion (classification, label) as --dataset fashion-classification-label" in message
    assert "housing (regression, MedHouseVal) as --dataset housing-regression-medhouseval" in message


def test_several_gates_and_no_dataset_named_is_refused_with_the_choices(store, meet):
    meet(1, {"loss": 0.70})
    meet(2, {"loss": 0.90}, target="HouseAge")
    for dataset in (None, "housing"):  # the store's two gates, and the two gates of one dataset
        with pytest.raises(OptionError, match="name one with --dataset") as refused:
            champion_for(store, dataset)
        assert "housing (regression, HouseAge) as --dataset housing-regression-houseage" in str(refused.value)
        assert "housing (regression, MedHouseVal) as --dataset housing-regression-medhouseval" in str(refused.value)
    assert champion_for(store, "housing-regression-houseage").value == 0.90


def test_a_gate_whose_models_all_failed_has_no_champion(store, meet):
    meet(1, {"loss": math.nan})
    with pytest.raises(OptionError, match=r"housing \(regression, MedHouseVal\) has no champion: no model had a "
                                          "finite test score"):
        champion_for(store, None)


# ---- markdown --------------------------------------------------------------------------------
def test_the_markdown_names_the_champion_and_lists_the_decisions_newest_first(store, meet):
    first, worse, better = meet(1, {"loss": 0.70}), meet(2, {"loss": 0.80}), meet(3, {"loss": 0.50})
    text = markdown(store, HOUSING_GATE)
    lines = text.splitlines()
    assert lines[0] == "### housing (regression, MedHouseVal): champion"
    assert f"- **champion** model `{better.model.sha256[:16]}` (loss 0.5000)" in lines
    assert f"- **model file** `{better.model.path}`" in lines
    rows = [line for line in lines if line.startswith(f"| {first.decided_at[:4]}")]
    assert [row.split(" | ")[1] for row in rows] == [f"`{d.model.sha256[:12]}`" for d in (better, worse, first)]
    assert "promoted: loss 0.5000 beats 0.7000" in rows[0] and f"`{first.model.sha256[:12]}` 0.7000" in rows[0]
    assert "kept the champion: loss 0.8000 does not beat 0.7000" in rows[1]
    assert rows[2].endswith("| - | promoted: the dataset's first model |")


def test_the_markdown_of_a_gate_without_a_champion_shows_only_the_history(store, meet):
    meet(1, {"loss": math.inf})
    text = markdown(store, HOUSING_GATE)
    assert "**champion**" not in text and "kept the champion: loss is inf: not a score" in text
