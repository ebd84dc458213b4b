"""Great Expectations suites run in this process and through a real GxWorker helper process."""
from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from multiprocessing import resource_tracker
from pathlib import Path

import pandas as pd
import pytest

from tasks.checks import gx
from tasks.checks.gx import Check, Failure, Outcome, expect, run_suites, run_suites_here

ROOMS_LIMIT = 7.0  # rooms per household: 9 of the 200 real districts below have more
FIRST_DISTRICT = 1_000  # labels that are not positions in the frame


@pytest.fixture(scope="module")
def districts(housing) -> pd.DataFrame:
    """Two columns of 200 real housing districts, indexed by their row id."""
    names = list(housing.spec.features)
    rows = slice(FIRST_DISTRICT, FIRST_DISTRICT + 200)
    return pd.DataFrame(housing.X[rows][:, [names.index("AveRooms"), names.index("Population")]],
                        columns=["AveRooms", "Population"], index=pd.Index(housing.row_id[rows], name="district"))


def _passing(frame: pd.DataFrame) -> Check:
    return Check("districts", frame, [
        expect("ExpectColumnValuesToNotBeNull", column="AveRooms"),
        expect("ExpectColumnValuesToBeBetween", column="Population", min_value=3, max_value=40_000),
        expect("ExpectTableRowCountToEqual", value=len(frame)),
    ], "district")


def _failing(frame: pd.DataFrame, name: str = "districts") -> Check:
    return Check(name, frame, [
        expect("ExpectColumnValuesToBeBetween", column="AveRooms", max_value=ROOMS_LIMIT),
        expect("ExpectTableRowCountToEqual", value=len(frame) + 1),
    ], "district")


def _pages_by_check(pages: list[str]) -> dict[str, Path]:
    return {Path(page).stem: Path(page) for page in pages}


@dataclass
class WorkerRun:
    """What one real helper process did before it was stopped: the outcome it sent back, the same
    checks validated in this process meanwhile, and the Data Docs pages it promised for a site."""

    worker: gx.GxWorker
    here: Outcome
    there: Outcome
    seconds: float
    alive_while_serving: bool
    site: Path
    pages: list[str]


@pytest.fixture(scope="module", autouse=True)
def _resource_tracker_stopped():
    """A spawned helper starts multiprocessing's resource tracker (its Event is a semaphore); it
    lives as long as this process unless stopped: stop it here when this module started it."""
    started_here = resource_tracker._resource_tracker._fd is None
    yield
    gx.stop_worker()
    gc.collect()  # the helpers' semaphores unregister before the tracker goes
    if started_here:
        resource_tracker._resource_tracker._stop()


@pytest.fixture(scope="module")
def worker_run(districts, tmp_path_factory) -> WorkerRun:
    """One helper process for the expensive part: it imports Great Expectations while this process
    does too (each on its own core), validates two checks, then a Data Docs request, and is stopped."""
    checks = [_passing(districts), _failing(districts, "rooms")]
    site = tmp_path_factory.mktemp("data-docs") / "run-through-worker"
    worker = gx.start_worker()
    try:
        assert gx.start_worker() is worker  # started once
        here = run_suites_here("in-process", checks)
        there, seconds = run_suites("through-worker", checks)
        pages = run_suites("raw", checks, str(site))[0].pages
        alive = worker.process.is_alive()
    finally:
        gx.stop_worker()
    return WorkerRun(worker, here, there, seconds, alive, site, list(pages))


@pytest.fixture
def no_worker_left():
    """Whatever a test starts, no helper process is left for the next one."""
    yield
    gx.stop_worker()


def test_a_worker_gives_the_outcome_of_this_process(worker_run):
    assert worker_run.there == worker_run.here and worker_run.there.failures
    assert worker_run.seconds > 0 and worker_run.alive_while_serving
    source = gx.context().data_sources.get("pipeline")
    assert source.get_asset("in-process-rooms").name == "in-process-rooms"  # validated here
    with pytest.raises(LookupError):  # validated there: this process's Great Expectations never saw that point
        source.get_asset("through-worker-rooms")


def test_stopping_the_worker_leaves_no_process(worker_run):
    assert not worker_run.worker.process.is_alive()
    assert worker_run.worker.process.exitcode is not None and gx._worker is None


def test_data_docs_pages_rendered_by_the_worker_exist_once_it_is_stopped(worker_run):
    pages = _pages_by_check(worker_run.pages)
    assert sorted(pages) == ["districts", "rooms"]
    assert all(page.is_file() and page.is_relative_to(worker_run.site / "validations") for page in pages.values())
    assert "run-through-worker" in pages["rooms"].read_text()  # the run's name is the site's folder
    assert (worker_run.site / "index.html").is_file()


def test_a_worker_that_died_is_replaced_by_validating_here_with_a_warning(districts, caplog, no_worker_left):
    worker = gx.start_worker()
    worker.process.kill()
    worker.process.join()
    checks = [_failing(districts)]

    with caplog.at_level(logging.WARNING):
        outcome, _ = run_suites("after-the-worker", checks)

    assert outcome == run_suites_here("demo", checks)
    assert "the Great Expectations worker process is gone (" in caplog.text
    assert "validating in this process" in caplog.text
    assert gx._worker is None and not worker.process.is_alive()


def test_a_passing_suite_gives_one_row_per_expectation_and_no_failure(districts):
    outcome = run_suites_here("demo", [_passing(districts)])

    assert outcome.rows == [
        {"frame": "districts", "expectation": "expect_column_values_to_not_be_null", "column": "AveRooms",
         "severity": "critical", "success": True, "unexpected": 0},
        {"frame": "districts", "expectation": "expect_column_values_to_be_between", "column": "Population",
         "severity": "critical", "success": True, "unexpected": 0},
        {"frame": "districts", "expectation": "expect_table_row_count_to_equal", "column": "",
         "severity": "critical", "success": True, "unexpected": 0},
    ]
    assert outcome.failures == [] and outcome.pages == [] and outcome.warnings == []


def test_a_failed_expectation_of_severity_warning_is_a_warning_not_a_failure(districts):
    check = Check("districts", districts, [expect("ExpectColumnValuesToBeBetween", column="Population",
                                                  max_value=10, severity="warning")], "district")
    outcome = run_suites_here("demo", [check])

    assert outcome.failures == [] and [w.column for w in outcome.warnings] == ["Population"]
    assert outcome.rows[0]["severity"] == "warning" and not outcome.rows[0]["success"]


def test_a_failing_expectation_is_a_failure_with_its_check_column_count_index_and_values(districts):
    over = districts["AveRooms"][districts["AveRooms"] > ROOMS_LIMIT]

    outcome = run_suites_here("demo", [_failing(districts)])

    assert [row["success"] for row in outcome.rows] == [False, False]
    assert outcome.rows[0]["unexpected"] == len(over) > 5
    rooms, row_count = outcome.failures
    assert isinstance(rooms, Failure)
    assert (rooms.check, rooms.expectation, rooms.column) == ("districts", "expect_column_values_to_be_between",
                                                             "AveRooms")
    assert rooms.kwargs == {"column": "AveRooms", "max_value": ROOMS_LIMIT}  # no batch id, no result format
    assert rooms.count == len(over)
    assert rooms.index == list(over.index) and rooms.values == list(over)
    assert min(rooms.index) >= FIRST_DISTRICT  # the frame's index labels, not positions in it
    examples = ", ".join(f"district {i}: {v!r}" for i, v in list(over.items())[:5])
    assert rooms.line == (f"expect_column_values_to_be_between {{'max_value': {ROOMS_LIMIT}}} on column 'AveRooms' "
                          f"of the districts frame: {len(over)} unexpected, e.g. {examples}")
    assert (row_count.column, row_count.count, row_count.index, row_count.observed) == ("", 0, [], len(districts))
    assert row_count.line == (f"expect_table_row_count_to_equal {{'value': {len(districts) + 1}}} on the districts "
                              f"frame: observed {len(districts)}")


def test_many_unexpected_values_are_counted_in_full_and_a_few_kept(districts):
    over = districts["AveRooms"][districts["AveRooms"] > 4]
    check = Check("districts", districts, [expect("ExpectColumnValuesToBeBetween", column="AveRooms", max_value=4)],
                  "district")

    failure, = run_suites_here("demo", [check]).failures

    assert failure.count == len(over) > 100
    assert 0 < len(failure.index) == len(failure.values) < len(over)
    assert failure.index == list(over.index[:len(failure.index)])
    assert failure.values == list(over[:len(failure.values)])
    assert failure.line.split(" e.g. ")[1].count("district ") == 5  # the line shows five


def test_an_expectation_great_expectations_does_not_have_is_refused_by_name(districts):
    check = _passing(districts)
    check.expectations.append(expect("ExpectRoomsToBeTidy", column="AveRooms"))

    with pytest.raises(ValueError) as refused:
        run_suites_here("demo", [check])

    assert str(refused.value) == "no Great Expectations expectation named ExpectRoomsToBeTidy " \
                                 "(in the districts check at demo)"


def test_data_docs_pages_rendered_here_exist_when_the_outcome_comes_back(districts, tmp_path):
    site = tmp_path / "run-here"

    outcome, _ = run_suites("raw", [_passing(districts)], str(site))

    page, = outcome.pages
    assert Path(page).is_file() and Path(page).is_relative_to(site) and Path(page).stem == "districts"
    assert outcome.rows == run_suites_here("raw", [_passing(districts)]).rows


def test_a_data_docs_site_that_cannot_be_written_warns_and_validation_still_answers(districts, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    with caplog.at_level(logging.WARNING):
        outcome, _ = run_suites("raw", [_failing(districts)], str(blocker / "run-blocked"))

    assert [f.column for f in outcome.failures] == ["AveRooms", ""]
    assert "no Data Docs for raw validation: " in caplog.text
    assert not any(Path(page).exists() for page in outcome.pages)
