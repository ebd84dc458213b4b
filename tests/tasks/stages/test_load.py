import os
import shutil

import numpy as np
import pandas as pd
import pytest

from tasks.core.errors import DataError
from tasks.stages import load
from tasks.stages.load import RawDataError, load_california_housing, load_fashion_mnist, load_table, parse_idx
from tasks.stages.table import TableOptions


def test_fashion_mnist_matches_the_published_figures(fashion):
    assert fashion.X.shape == (70_000, 784) and fashion.X.dtype == np.uint8
    assert list(fashion.y[:10]) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert list(fashion.y[60_000:60_010]) == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert fashion.X[:60_000].mean() / 255 == pytest.approx(0.286041, abs=1e-6)
    assert np.bincount(fashion.y[:60_000]).tolist() == [6_000] * 10
    assert (fashion.split[:60_000] == "train").all() and (fashion.split[60_000:] == "test").all()


def test_housing_is_transformed_like_scikit_learn(housing):
    assert housing.X.shape == (20_640, 8)
    np.testing.assert_allclose(housing.X[0], [8.3252, 41, 6.984127, 1.023810, 322, 2.555556, 37.88, -122.23],
                               rtol=1e-6)
    assert housing.y[0] == pytest.approx(4.526)
    assert housing.y.mean() == pytest.approx(2.068558, abs=1e-6)
    np.testing.assert_allclose(housing.X.mean(axis=0), [3.870671, 28.639486, 5.429000, 1.096675,
                                                        1425.476744, 3.070655, 35.631861, -119.569704],
                               rtol=1e-6)


def test_housing_reads_the_tgz_when_the_data_file_is_absent(tmp_path, monkeypatch, housing):
    mirror = tmp_path / "mirror" / "california-housing"
    mirror.mkdir(parents=True)
    shutil.copy(os.path.join(os.environ["DATA_MIRROR"], "california-housing", "cal_housing.tgz"), mirror)
    monkeypatch.setenv("DATA_MIRROR", str(tmp_path / "mirror"))
    frame, sources = load_california_housing()
    np.testing.assert_array_equal(frame.X, housing.X)
    assert sources[0].startswith("cal_housing.tgz:13f461d5")


def test_parse_idx_reads_header_and_data():
    blob = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") \
        + bytes(range(12))
    assert parse_idx(blob).tolist() == [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]]
    with pytest.raises(DataError, match="x.idx: the file ends inside its header"):
        parse_idx(blob[:9], "x.idx")  # three dimensions promised, one and a bit given


def test_a_wrong_checksum_is_refused_with_the_file_named(corrupt_mirror, monkeypatch):
    monkeypatch.setenv("DATA_MIRROR", str(corrupt_mirror("train-labels-idx1-ubyte.gz")))
    with pytest.raises(RawDataError, match=r"checksum mismatch for .*train-labels-idx1-ubyte\.gz"):
        load_fashion_mnist()


def test_the_cache_comes_before_the_mirror(tmp_path, monkeypatch, corrupt_mirror):
    original = os.path.join(os.environ["DATA_MIRROR"], "fashion-mnist", "t10k-labels-idx1-ubyte.gz")
    monkeypatch.setenv("DATA_MIRROR", str(corrupt_mirror("t10k-labels-idx1-ubyte.gz")))
    cache = tmp_path / "cache"
    (cache / "fashion-mnist").mkdir(parents=True)
    shutil.copy(original, cache / "fashion-mnist")
    monkeypatch.setenv("PIPELINE_DATA", str(cache))
    frame, _ = load_fashion_mnist()  # the good cached copy wins over the mirror's bad one
    assert len(frame) == 70_000


def test_no_source_gives_one_error_naming_files_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setattr(load, "_download", lambda raw, target: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(RawDataError) as error:
        load_fashion_mnist()
    message = str(error.value)
    assert "DATA_MIRROR" in message and "train-images-idx3-ubyte.gz" in message and "t10k-labels" in message


def test_user_table_errors_name_the_problem(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": [1, 2], "color": ["red", "blue"], "y": [0, 1]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"t.csv: no column 'label' \(the --target\); its columns are 'a', 'color'"):
        load_table(path, "label", "classification")
    with pytest.raises(DataError, match=r"feature column 'color' holds text where numbers are expected: 'red', 'blue' "
                                        r"at rows 1, 2"):
        load_table(path, "y", "classification", TableOptions(numeric=("color",)))  # text, declared numeric
    with pytest.raises(DataError, match="no such file"):
        load_table(tmp_path / "nope.csv", "y", "classification")


def test_user_table_keeps_its_own_split(housing_csv, tmp_path):
    df = pd.read_csv(housing_csv)
    df["split"] = np.where(np.arange(len(df)) % 5 == 0, "test", "train")
    path = tmp_path / "with-split.parquet"
    df.to_parquet(path)
    frame, sources = load_table(path, "MedHouseVal", "regression")
    assert frame.spec.split.method == "given" and (frame.split[::5] == "test").all()
    assert frame.spec.features == tuple(c for c in df.columns if c not in ("MedHouseVal", "split"))
    assert sources[0].startswith("with-split.parquet:")
