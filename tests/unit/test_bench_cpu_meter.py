"""The benchmarks' CPU meter counts a process that exits between its readings (an autovacuum
worker, a recycled gunicorn worker) from what its parent reaped, instead of losing it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.ingest import _children, _CpuMeter

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="Linux /proc")

BURN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"


def test_a_child_that_exits_between_the_readings_is_counted() -> None:
    parent = os.getpid()
    # Started (and seen by start()) before it burns its CPU, gone before stop().
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()\n" + BURN],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while child.pid not in _children(parent) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Only this child: the test process may have other children (servers of fixtures).
        groups = {"children": lambda: [p for p in _children(parent) if p == child.pid]}
        counted, lost = _CpuMeter(groups, reaped_by={"children": parent}), _CpuMeter(groups)
        counted.start()
        lost.start()
        assert child.stdin is not None
        child.stdin.close()
        assert child.wait(timeout=30) == 0
        with_reaped, without = counted.stop()["children"], lost.stop()["children"]
    finally:
        child.kill()
    assert with_reaped >= 0.3  # its 0.4 s of CPU, at clock-tick resolution
    assert without < 0.1  # the old reading: an exited process is not there to be read
