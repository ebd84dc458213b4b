import contextvars
import threading
import time

import pytest

from tasks.store.read_ahead import read_ahead

WHO = contextvars.ContextVar("who", default="nobody")


def test_items_come_in_order_from_another_thread_seeing_the_callers_context():
    WHO.set("the flow's task")
    seen = []

    def items():
        for i in range(50):
            seen.append((threading.current_thread().name, WHO.get()))
            yield i

    assert list(read_ahead(items())) == list(range(50))
    assert set(seen) == {("read-ahead", "the flow's task")}


def test_an_error_is_raised_where_the_consumer_meets_it_after_the_items_before_it():
    def items():
        yield from range(3)
        raise ValueError("row 3 is bad")

    got = []
    with pytest.raises(ValueError, match="row 3 is bad"):
        for item in read_ahead(items()):
            got.append(item)
    assert got == [0, 1, 2]


def test_the_producer_runs_at_most_a_few_items_ahead_and_stops_with_the_consumer():
    made, closed = [], threading.Event()

    def items():
        try:
            for i in range(1_000):
                made.append(i)
                yield i
        finally:
            closed.set()

    ahead = read_ahead(items(), depth=2)
    assert next(ahead) == 0
    time.sleep(0.3)
    assert len(made) <= 4  # the one taken, two waiting, one being handed over
    ahead.close()
    assert closed.wait(5) and len(made) <= 5
