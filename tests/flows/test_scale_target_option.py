"""Which regressions learn their target standardised (``--scale-target``): a user's table by
default, never the course's housing unless asked, never a classifier."""
from __future__ import annotations

import pytest

from flows.steps.pipeline import scales_target, source_for
from tasks.core.errors import OptionError


def test_auto_scales_a_user_table_s_target_and_not_the_course_s_housing():
    assert scales_target(source_for("regression", "houses.csv", "price"), "auto")
    assert not scales_target(source_for("regression", None, None), "auto")
    assert scales_target(source_for("regression", None, None), "yes")
    assert not scales_target(source_for("regression", "houses.csv", "price"), "no")
    assert not scales_target(source_for("classification", "wine.csv", "target"), "auto")


def test_a_classifier_s_labels_are_never_scaled_and_a_bad_value_is_named():
    with pytest.raises(OptionError, match="only a regression target is scaled"):
        scales_target(source_for("classification", "wine.csv", "target"), "yes")
    with pytest.raises(OptionError, match="scale_target 'maybe': use one of auto, yes, no"):
        scales_target(source_for("regression", None, None), "maybe")
