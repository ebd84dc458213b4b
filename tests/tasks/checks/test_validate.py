import os
from pathlib import Path

import numpy as np
import pytest

from tasks.checks import gx
from tasks.core.errors import DataError
from tasks.stages.load import load_table
from tasks.stages.scale import scale
from tasks.stages.split import split
from tasks.stages.validate import (
    ScalingFault,
    ValidationFailed,
    raw_checks,
    validate_raw,
    validate_scaled,
    validate_split,
)
from tasks.store.dataset import Frame


def _copy(frame: Frame) -> Frame:
    return Frame(frame.spec, frame.X.copy(), frame.y.copy(), frame.row_id.copy(),
                 None if frame.split is None else frame.split.copy())


def test_the_real_datasets_pass_every_point(housing, fashion):
    for frame in (housing, fashion):
        report = validate_raw(frame)
        assert report.checks and all(c["success"] for c in report.checks)
        index = split(frame)
        for report in (validate_split(index, len(frame)), validate_scaled(scale(frame, index)[0])):
            checked = {c["expectation"] for c in report.checks}
            assert report.checks and all(c["success"] for c in report.checks), report.point
            if report.point == "split":  # sizes, disjoint rows and the course's split sizes were looked at
                expected = {"expect_column_values_to_be_unique", "expect_column_pair_values_to_be_equal"}
                assert expected <= checked, checked
            else:  # train mean ~0 and std ~1, no NaN or inf
                assert {c["column"] for c in report.checks} == {"mean", "std_gap", "nonfinite"}, report.checks


def test_a_pixel_out_of_range_names_the_pixel_and_value(fashion):
    bad = _copy(fashion)
    bad.X = bad.X.astype(np.int16)
    bad.X[7, 300] = 256
    with pytest.raises(ValidationFailed) as error:
        validate_raw(bad)
    assert str(error.value).splitlines()[1] == "  - pixel 300 of image is above its known range [0, 255] at row 8: 256"
    failure, = error.value.failures  # Great Expectations' own terms stay with the error and in the report
    assert failure.expectation == "expect_column_pair_values_a_to_be_greater_than_b" and failure.index == ["image[300]"]


def test_a_nan_names_the_feature(housing):
    bad = _copy(housing)
    bad.X[17, 2] = np.nan
    with pytest.raises(ValidationFailed, match=r"AveRooms has 1 missing value at row 18; fill or drop them"):
        validate_raw(bad)


def test_out_of_range_housing_values_and_a_wrong_label_set_fail(housing, fashion):
    bad = _copy(housing)
    bad.X[0, 6] = 55.0  # a latitude outside California
    with pytest.raises(ValidationFailed, match=r"Latitude is above its known range \[32.5, 42\] at row 1: 55.0"):
        validate_raw(bad)
    wrong = _copy(fashion)
    wrong.y[42] = 10
    with pytest.raises(ValidationFailed, match=r"the label column 'label' holds 10 at row 43; labels must be 0..9"):
        validate_raw(wrong)


def test_a_non_integer_label_in_a_user_table_fails(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    df["label"] = rng.integers(0, 3, 60).astype(float)
    df.loc[5, "label"] = 1.5
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"t.csv: the label column 'label' holds non-whole values 1.5 at row 6"):
        load_table(tmp_path / "t.csv", "label", "classification")


def test_a_row_in_two_splits_and_a_lopsided_split_fail(housing, fashion):
    index = split(housing)
    index.row_id = index.row_id.copy()
    index.row_id[0] = index.row_id[1]
    with pytest.raises(ValidationFailed, match=r"rows \d+ are in more than one split"):
        validate_split(index, len(housing))
    lopsided = split(fashion)
    lopsided.y = lopsided.y.copy()
    lopsided.y[lopsided.split == "valid"] = 3  # every valid image one class
    with pytest.raises(ValidationFailed, match=r"class 3 strays from its overall share in the valid split by"):
        validate_split(lopsided, len(fashion))


def test_unscaled_or_nonfinite_data_fails_after_scaling(housing):
    index = split(housing)
    scaled, _, *_ = scale(housing, index)
    raw_like = _copy(scaled)
    raw_like.X = housing.X[np.searchsorted(housing.row_id, scaled.row_id)].astype(np.float32)
    with pytest.raises(ScalingFault, match="after scaling, the train mean is not 0 for 'MedInc'"):
        validate_scaled(raw_like)
    inf = _copy(scaled)
    inf.X[-1, 0] = np.inf
    with pytest.raises(ScalingFault, match="after scaling, the values are not finite for 'MedInc'") as error:
        validate_scaled(inf)
    from tasks.core.errors import InputError

    assert not isinstance(error.value, InputError)  # the scaler's fault: exit 1 with its traceback


@pytest.fixture
def gx_worker():
    worker = gx.start_worker()
    yield worker
    gx.stop_worker()


def test_the_great_expectations_worker_process_gives_the_same_reports_and_errors(fashion, gx_worker):
    wrong = _copy(fashion)
    wrong.y[42] = 10
    here = gx.run_suites_here("raw", raw_checks(fashion))  # in this process, not the worker
    assert gx_worker.process.is_alive() and gx_worker.process.pid != os.getpid()
    sent = validate_raw(fashion)  # through the worker
    assert sent.checks == here.rows and sent.point == "raw"
    with pytest.raises(ValidationFailed) as error_sent:
        validate_raw(wrong)
    assert "holds 10 at row 43" in str(error_sent.value)
    outcome = gx.run_suites_here("raw", raw_checks(wrong))
    assert error_sent.value.failures == outcome.failures
    gx.stop_worker()
    assert not gx_worker.process.is_alive()


def test_a_dead_worker_is_replaced_by_validating_in_this_process(housing, gx_worker, caplog):
    gx_worker.process.kill()
    gx_worker.process.join()
    report = validate_raw(housing)
    assert report.checks and all(c["success"] for c in report.checks)
    assert "worker process is gone" in caplog.text and gx._worker is None


def test_an_error_inside_the_worker_comes_back_with_its_traceback(housing, gx_worker):
    checks = raw_checks(housing)
    checks[0].expectations.append(gx.expect("ExpectNothingAtAll"))
    with pytest.raises(ValueError, match="no Great Expectations expectation named ExpectNothingAtAll"):
        gx.run_suites_here("raw", checks)
    with pytest.raises(RuntimeError, match=r"(?s)in its worker process:.*Traceback.*ExpectNothingAtAll"):
        gx.run_suites("raw", checks)
    assert gx_worker.process.is_alive()  # one bad request does not end the worker


def test_a_failed_check_is_on_its_data_docs_page_and_another_runs_site_keeps_only_its_own(fashion, tmp_path):
    """Great Expectations' own site builder writes one page per check, at the path promised
    before it renders; a second run's site in the same process lists none of the first's pages."""
    wrong = _copy(fashion)
    wrong.y[42] = 10
    with pytest.raises(ValidationFailed) as failed:
        validate_raw(wrong, site=str(tmp_path / "run-1"))
    pages = dict(zip([p.rsplit("/", 1)[-1] for p in failed.value.report.pages], failed.value.report.pages))
    assert sorted(pages) == ["features.html", "target.html"]
    target = _text(Path(pages["target.html"]).read_text())
    assert "Expectation Validation Result" in target and "Status: Failed" in target, target[:600]
    assert "Unsuccessful Expectations 1" in target and "Run Name run-1" in target
    assert "Status: Succeeded" in _text(Path(pages["features.html"]).read_text())
    assert all(Path(page).is_relative_to(tmp_path / "run-1") for page in pages.values())
    validate_raw(fashion, site=str(tmp_path / "run-2"))
    index = (tmp_path / "run-2" / "index.html").read_text()
    assert "run-2" in index and "run-1/" not in index


def _text(html: str) -> str:
    """A page's words as a reader sees them (no tags, scripts or styles)."""
    import html as entities
    import re

    html = re.sub(r"(?s)<(script|style).*?</\1>", " ", html)
    return " ".join(entities.unescape(re.sub(r"<[^>]+>", " ", html)).split())
