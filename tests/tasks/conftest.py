"""Slices of the real data that the stage tests train on in seconds."""
import numpy as np
import pytest

from tasks.stages.scale import scale
from tasks.stages.split import split


@pytest.fixture(scope="session")
def small_housing(housing):
    rows = np.r_[0:2_000]
    frame = housing.take(rows)
    frame.spec = frame.spec.replace(rows=None)
    return scale(frame, split(frame))[0]


@pytest.fixture(scope="session")
def small_fashion(fashion):
    """1,000 train and 500 valid images of the real training file, scaled to [0, 1]."""
    rows = np.r_[0:1_500]
    frame = fashion.take(rows)
    frame.X = frame.X.astype(np.float32) / 255
    frame.split = np.array(["train"] * 1_000 + ["valid"] * 500)
    return frame
