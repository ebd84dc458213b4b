"""Data-parallel training's rules, without training: the global batch shared evenly or refused
(on the command line and from a flow's parameters), and the warning for an epoch whose last batch
the devices cannot share evenly."""
from __future__ import annotations

import pytest

from tasks.core.errors import OptionError
from tasks.core.params import REGRESSION, training
from tasks.model.devices import check_batch, uneven_last_batch


def test_a_batch_the_devices_cannot_share_evenly_is_refused_naming_both():
    check_batch(2, 32)
    with pytest.raises(OptionError, match=r"--batch-size 33 does not split evenly over --devices 2: give a multiple"):
        check_batch(2, 33)
    with pytest.raises(OptionError, match="--devices 0: must be at least 1"):
        check_batch(0, 32)


def test_the_command_line_refuses_an_uneven_batch_before_anything_runs(capfd, tmp_path):
    from flows.__main__ import main

    assert main(["regression", "--devices", "3", "--batch-size", "32", "--artifacts", str(tmp_path / "a")]) == 2
    err = capfd.readouterr().err
    assert "--batch-size 32 does not split evenly over --devices 3" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists()


def test_a_flow_run_given_an_uneven_batch_is_refused_before_its_first_stage(tmp_path):
    from flows.regression import regression

    with pytest.raises(OptionError, match="does not split evenly over --devices 2"):
        regression.fn(devices=2, batch_size=31, artifacts=str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()


def test_an_epoch_whose_last_batch_the_devices_cannot_share_evenly_is_named_or_on_jax_refused():
    even, odd = {"train": 11_610, "valid": 3_870}, {"train": 1_687, "valid": 562}
    assert uneven_last_batch(even, 32, 2, "tensorflow") is None  # 26 and 30 rows left: 13 and 15 each
    assert uneven_last_batch(odd, 32, 1, "jax") is None  # one device: nothing to share
    said = uneven_last_batch(odd, 32, 2, "tensorflow")
    assert said and "the last batch of each epoch (23 of 1,687 train rows) does not split evenly over 2" in said
    with pytest.raises(OptionError, match=r"--devices 2: the last batch of each epoch's train rows \(23 of .* jax"):
        uneven_last_batch(odd, 32, 2, "jax")
    with pytest.raises(OptionError, match=r"valid rows \(5 of 5\) .* tensorflow cannot"):  # a split of one batch
        uneven_last_batch({"train": 1_686, "valid": 5}, 32, 2, "tensorflow")
    with pytest.raises(OptionError, match=r"valid rows \(19 of 563\)"):
        uneven_last_batch({"train": 1_686, "valid": 563}, 32, 2, "jax")
    assert uneven_last_batch(even, 32, 2, "jax") is None
    assert training(REGRESSION, devices=2).devices == 2


def test_more_training_processes_than_a_local_dask_cluster_runs_at_once_are_refused(capfd, tmp_path):
    from flows.__main__ import main

    assert main(["regression", "--hosts", "2", "--runner", "dask", "--artifacts", str(tmp_path / "a")]) == 2
    assert "--hosts 2 with --runner dask: a local cluster of --workers 1" in capfd.readouterr().err
    assert main(["regression", "--hosts", "2", "--devices", "2", "--artifacts", str(tmp_path / "a")]) == 2
    assert "--devices 2 with --hosts 2: give one or the other" in capfd.readouterr().err
    assert not (tmp_path / "a").exists()
