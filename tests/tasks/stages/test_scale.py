import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler as SkScaler

from tasks.stages.scale import NotFittedError, StandardScaler, checked_moments, scale
from tasks.stages.split import split


def test_matches_scikit_learn_on_train(housing):
    ours = StandardScaler().fit(housing.X)
    theirs = SkScaler().fit(housing.X)
    np.testing.assert_allclose(ours.mean_, theirs.mean_)
    np.testing.assert_allclose(ours.scale_, theirs.scale_)
    np.testing.assert_allclose(ours.transform(housing.X), theirs.transform(housing.X), rtol=1e-5, atol=1e-5)


def test_pixel_moments_from_integer_sums_match_scikit_learn(fashion):
    pixels = fashion.X[5_000:25_000]  # uint8: the exact integer path
    ours, theirs = StandardScaler().fit(pixels), SkScaler().fit(pixels.astype(np.float64))
    np.testing.assert_allclose(ours.mean_, theirs.mean_, rtol=1e-12)
    np.testing.assert_allclose(ours.scale_, theirs.scale_, rtol=1e-9, atol=1e-12)
    assert ours.mean_.dtype == np.float64


def test_transform_before_fit_is_refused():
    with pytest.raises(NotFittedError, match="before fit"):
        StandardScaler().transform(np.ones((2, 2)))


def test_valid_and_test_rows_never_enter_the_fit(housing):
    index = split(housing)
    _, scaler, *_ = scale(housing, index)
    poisoned = housing.take(np.arange(len(housing)))
    poisoned.X = poisoned.X.copy()
    poisoned.X[index.split != "train"] *= 1_000.0  # wildly different valid/test rows
    _, scaler_poisoned, *_ = scale(poisoned, index)
    np.testing.assert_array_equal(scaler.mean_, scaler_poisoned.mean_)
    np.testing.assert_array_equal(scaler.scale_, scaler_poisoned.scale_)
    train = housing.X[index.split == "train"]
    np.testing.assert_allclose(scaler.mean_, train.mean(axis=0))


def test_scaled_rows_come_train_valid_test_with_train_standardised(fashion):
    scaled, scaler, *_ = scale(fashion, split(fashion))
    assert scaled.X.dtype == np.float32
    assert list(dict.fromkeys(scaled.split)) == ["train", "valid", "test"]
    train = scaled.X[scaled.split == "train"].astype(np.float64)
    assert np.abs(train.mean(axis=0)).max() < 1e-4
    std = train.std(axis=0)
    assert np.all((np.abs(std - 1) < 1e-3) | (std == 0))
    assert set(scaled.row_id[scaled.split == "valid"]) == set(range(5_000))


def test_the_scaled_check_moments_in_one_pass_equal_the_direct_ones(fashion):
    scaled = scale(fashion.take(np.arange(20_000)), split(fashion.take(np.arange(20_000))))[0]
    X, n_train = scaled.X.copy(), 10_000 + 123  # a train block that ends inside a chunk
    X[[5, 15_000], 3], X[17_000, 7], X[18_000, 7] = np.nan, np.inf, -np.inf  # inf - inf in one column
    mean, std, nonfinite = checked_moments(X, n_train)
    with np.errstate(invalid="ignore"):
        train = X[:n_train].astype(np.float64)
    finite = np.isfinite(train).all(axis=0)
    np.testing.assert_allclose(mean[finite], train[:, finite].mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(std[finite], train[:, finite].std(axis=0), rtol=0, atol=1e-9)
    assert nonfinite.tolist() == (~np.isfinite(X)).sum(axis=0).tolist() and nonfinite[3] == 2 and nonfinite[7] == 2


def test_the_target_s_scaling_is_measured_on_train_rows_only_and_the_target_kept(housing):
    index = split(housing)
    scaled, _, *_ = scale(housing, index, scale_target=True)
    train_y = housing.y[np.isin(housing.row_id, index.row_id[index.split == "train"])]
    assert scaled.spec.target_scaling == pytest.approx((train_y.mean(), train_y.std()))
    poisoned = housing.take(np.arange(len(housing)))
    poisoned.y = np.where(np.isin(poisoned.row_id, index.row_id[index.split == "train"]), poisoned.y, 1e6)
    assert scale(poisoned, index, scale_target=True)[0].spec.target_scaling == scaled.spec.target_scaling
    np.testing.assert_array_equal(np.sort(scaled.y), np.sort(housing.y))  # the values stay in their own units
    unscaled, _, *_ = scale(housing, index)
    assert unscaled.spec.target_scaling is None
    assert "target_scaling" not in unscaled.spec.to_json()  # an unscaled spec keeps its bytes (and its hash)
