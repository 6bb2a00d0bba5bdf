"""The evaluation requests a web process gathers (`dispatch.Gatherer`), against a fake
Celery app that records what it is asked to send (the broker is the port here; the
integration test `test_dispatch_broker.py` uses a real Redis)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from rehab.services.dispatch import MAX_IDS_PER_TASK, Gatherer

TASK = "rehab.evaluate_patients"


class FakeCelery:
    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[tuple[str, list[int]]] = []
        self.lock = threading.Lock()
        self.fail_first = fail_first

    def send_task(self, name: str, args: list[list[int]]) -> None:
        with self.lock:
            if self.fail_first:
                self.fail_first -= 1
                raise ConnectionError("broker down")
            assert len(args) == 1
            self.sent.append((name, list(args[0])))

    def ids(self) -> list[int]:
        with self.lock:
            return [i for _, batch in self.sent for i in batch]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_ids_from_many_threads_go_out_gathered_each_once() -> None:
    celery = FakeCelery()
    gatherer = Gatherer()
    per_thread, threads = 300, 8

    def submit(offset: int) -> None:
        for i in range(per_thread):
            # Every patient twice: two logs of one patient in a window need one evaluation.
            gatherer.add(celery, TASK, offset + i % (per_thread // 2), window=0.02)

    workers = [threading.Thread(target=submit, args=(n * 1000,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    expected = {n * 1000 + i for n in range(threads) for i in range(per_thread // 2)}
    wait_for(lambda: set(celery.ids()) == expected)
    gatherer.flush()
    with celery.lock:
        sent = list(celery.sent)
    assert {name for name, _ in sent} == {TASK}
    for _, batch in sent:
        assert len(batch) == len(set(batch)) <= MAX_IDS_PER_TASK
        assert batch == sorted(batch)
    # Gathered: far fewer messages than the 2,400 requests.
    assert len(sent) < threads * per_thread / 4


def test_a_lone_request_goes_out_after_the_window_without_a_flush() -> None:
    celery = FakeCelery()
    gatherer = Gatherer()
    started = time.monotonic()
    gatherer.add(celery, TASK, 7, window=0.05)
    wait_for(lambda: celery.ids() == [7])
    assert time.monotonic() - started >= 0.05
    gatherer.add(celery, TASK, 8, window=0.0)
    wait_for(lambda: celery.ids() == [7, 8])


def test_a_broker_failure_is_logged_and_later_requests_still_go_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    celery = FakeCelery(fail_first=1)
    gatherer = Gatherer()
    with caplog.at_level(logging.WARNING, logger="rehab.services.dispatch"):
        gatherer.add(celery, TASK, 1, window=0.0)
        wait_for(lambda: any("periodic scan" in r.getMessage() for r in caplog.records))
    gatherer.add(celery, TASK, 2, window=0.0)
    wait_for(lambda: celery.ids() == [2])


def test_more_ids_than_one_task_takes_are_split() -> None:
    celery = FakeCelery()
    gatherer = Gatherer()
    for i in range(MAX_IDS_PER_TASK * 2 + 1):
        gatherer.add(celery, TASK, i, window=60.0)  # the thread waits; the flush sends
    gatherer.flush()
    assert [len(batch) for _, batch in celery.sent] == [MAX_IDS_PER_TASK, MAX_IDS_PER_TASK, 1]


class SlowCelery(FakeCelery):
    """A broker that takes its time: the first send waits until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.sending = threading.Event()
        self.release = threading.Event()

    def send_task(self, name: str, args: list[list[int]]) -> None:
        self.sending.set()
        assert self.release.wait(10)
        super().send_task(name, args)


def test_a_flush_waits_for_the_send_in_flight() -> None:
    """A process about to exit (or a test reading the broker) flushes: what the background
    thread took and is still sending is sent when the flush returns."""
    celery = SlowCelery()
    gatherer = Gatherer()
    gatherer.add(celery, TASK, 5, window=0.0)
    assert celery.sending.wait(10)  # the background thread took the id and is sending
    flushed = threading.Event()
    flusher = threading.Thread(target=lambda: (gatherer.flush(), flushed.set()))
    flusher.start()
    assert not flushed.wait(0.2)  # nothing pending, but a send in flight: it waits
    celery.release.set()
    flusher.join(10)
    assert flushed.is_set() and celery.ids() == [5]
