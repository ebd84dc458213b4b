"""Environment variables set for a while, then each back as it was (or gone)."""
import os

import pytest

from tasks.core.environment import environment


def test_each_key_is_set_for_the_duration_then_restored_or_removed(monkeypatch):
    monkeypatch.setenv("KERAS_FLOWS_TEST_KEPT", "before")
    monkeypatch.delenv("KERAS_FLOWS_TEST_NEW", raising=False)
    with environment({"KERAS_FLOWS_TEST_KEPT": "during", "KERAS_FLOWS_TEST_NEW": "1"}):
        assert (os.environ["KERAS_FLOWS_TEST_KEPT"], os.environ["KERAS_FLOWS_TEST_NEW"]) == ("during", "1")
    assert os.environ["KERAS_FLOWS_TEST_KEPT"] == "before" and "KERAS_FLOWS_TEST_NEW" not in os.environ


def test_an_error_inside_restores_them_too(monkeypatch):
    monkeypatch.delenv("KERAS_FLOWS_TEST_NEW", raising=False)
    with pytest.raises(RuntimeError), environment({"KERAS_FLOWS_TEST_NEW": "1"}):
        raise RuntimeError("inside")
    assert "KERAS_FLOWS_TEST_NEW" not in os.environ
