"""Resolving the champion, or a model named by a prefix of its hash, to the files scoring needs."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks.core.errors import DataError, OptionError
from tasks.core.params import TrainParams
from tasks.serving.champion import current, gate_name, history
from tasks.serving.resolve import Trained, trained
from tasks.store.artifacts import ArtifactStore

HOUSING_TARGET = "MedHouseVal"
GATE = gate_name("housing-train", "regression", HOUSING_TARGET)


@pytest.fixture(scope="module")
def two_models(build_store, housing_table, tmp_path_factory):
    """A store of one housing table with two models, both trained one epoch and gated: the course's
    MLP (the gate's first model) and the two-headed Wide & Deep (champion after it if its main head won)."""
    return build_store(tmp_path_factory.mktemp("resolve") / "artifacts", housing_table, HOUSING_TARGET,
                       "regression", [TrainParams("mlp30", epochs=1), TrainParams("wide_deep_multi_output", epochs=1)])


def test_the_champion_resolves_to_its_model_scaler_and_training_data(two_models):
    found = trained(two_models.store)
    champion = current(two_models.store, GATE)
    assert isinstance(found, Trained)
    assert found.model == champion.model and found.scaler == two_models.data["scaler"]
    assert (found.raw, found.split) == (two_models.data["raw"], two_models.data["split"])
    assert found.model_name == {m.sha256: name for name, m in two_models.models.items()}[champion.model.sha256]
    assert (found.spec.task, found.spec.target, found.spec.name) == ("regression", HOUSING_TARGET, "housing-train")
    assert trained(two_models.store, "champion", dataset="housing-train") == found
    assert trained(two_models.store, "champion", dataset=GATE) == found


def test_a_two_headed_model_met_the_gate_on_its_main_head(two_models):
    """The real scores Keras reports for the two heads, as the gate read them."""
    scores = two_models.scores["wide_deep_multi_output"]
    assert set(scores) == {"loss", "main_loss", "aux_loss"}
    decision, = (d for d in history(two_models.store, GATE) if d.model == two_models.models["wide_deep_multi_output"])
    assert (decision.metric, decision.value) == ("main_loss", pytest.approx(scores["main_loss"]))


@pytest.mark.parametrize("name", ["mlp30", "wide_deep_multi_output"])
def test_a_model_named_by_a_prefix_of_its_hash_resolves_to_its_own_files(two_models, name):
    """Champion or not, a model found by its hash gets its registry name and its scaler (from the scale
    stage's cache entry, the one that wrote the data the model was trained on)."""
    model = two_models.models[name]
    for length in (8, 64):
        found = trained(two_models.store, model.sha256[:length])
        assert found.model == model and found.model_name == name
        assert found.scaler == two_models.data["scaler"]
        assert (found.raw, found.split) == (two_models.data["raw"], two_models.data["split"])


def test_an_unknown_prefix_is_refused(two_models):
    taken = {m.sha256[0] for m in two_models.models.values()}
    unused = next(c for c in "0123456789abcdef" if c not in taken)
    known = sorted(m.sha256[:12] for m in two_models.models.values())
    with pytest.raises(OptionError, match=f"^--model {unused}: no model artifact's sha256 starts so; give 'champion' "
                                          rf"or a prefix of one of the store's models \({', '.join(known)}\)$"):
        trained(two_models.store, unused)
    for not_a_prefix in ("not-a-hash", "*", ""):  # never a pattern that matches every model
        with pytest.raises(OptionError, match="no model artifact's sha256 starts so"):
            trained(two_models.store, not_a_prefix)


def test_a_prefix_of_several_models_is_refused_asking_for_more_of_the_hash(two_models, tmp_path):
    """Two models whose hashes start alike (here a copy of one under a name that shares its first 8
    characters): which one is meant is not guessed."""
    copy = tmp_path / "store"
    shutil.copytree(two_models.store.root, copy)
    model = next(iter(two_models.models.values()))
    twin = model.sha256[:8] + ("e" if model.sha256[8] == "f" else "f") * 56  # parts at the 9th character
    for suffix in (".keras", ".json"):
        shutil.copy(copy / "model" / f"{model.sha256}{suffix}", copy / "model" / f"{twin}{suffix}")
    with pytest.raises(OptionError, match=f"^--model {model.sha256[:8]}: 2 models match: give more of the hash$"):
        trained(ArtifactStore(copy), model.sha256[:8])
    assert trained(ArtifactStore(copy), model.sha256[:9]).model.sha256 == model.sha256  # one more character


def test_a_moved_store_resolves_to_its_own_files(two_models, tmp_path):
    """Both ways in: the champion's history and the model's lineage record the old folder's paths."""
    moved = tmp_path / "moved"
    shutil.copytree(two_models.store.root, moved)
    store = ArtifactStore(moved)
    mlp = two_models.models["mlp30"]
    for found in (trained(store), trained(store, mlp.sha256[:10])):
        for ref in (found.model, found.scaler, found.raw, found.split):
            assert Path(ref.path).is_relative_to(moved) and Path(ref.path).is_file()


def test_a_model_whose_scaler_was_not_recorded_is_refused_with_what_to_do(two_models, tmp_path):
    """The scaler is found through the scale stage's cache entry; without it, train again."""
    copy = tmp_path / "copy"
    shutil.copytree(two_models.store.root, copy)
    shutil.rmtree(copy / "_cache" / "scaled")
    with pytest.raises(DataError, match="no scaler recorded with .*: run the training flow again"):
        trained(ArtifactStore(copy), two_models.models["mlp30"].sha256[:12])
