"""bench/cpu.py: CPU read from /proc is charged to the right process group."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.cpu import group_cpu, process_cpu


def test_cpu_is_charged_to_workers_their_children_and_this_process() -> None:
    me = os.getpid()
    master, worker, lazy, stranger = 1000, 1001, 1002, 1003
    before = {me: (1, 1.0, 0.5), master: (me, 0.0, 0.0), worker: (master, 2.0, 0.1), lazy: (worker, 0.0, 0.0)}
    after = {me: (1, 1.5, 0.5), master: (me, 0.3, 0.0), worker: (master, 2.4, 0.3), lazy: (worker, 0.7, 0.1),
             stranger: (1, 9.0, 9.0)}
    spent = group_cpu(master, before, after)
    assert spent["workers"] == pytest.approx((0.4, 0.2))
    assert spent["lazy"] == pytest.approx((0.7, 0.1))  # it started after the first snapshot: all of it counts
    assert spent["stand-in"] == pytest.approx((0.5, 0.0))
    assert spent["loadgen"] == (0.0, 0.0)  # measured apart (os.times of the finished load processes)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc (Linux)")
def test_a_busy_child_shows_its_cpu_in_proc() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.5\n"
                             "while time.process_time() < end: pass\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            parent, user, system = process_cpu().get(busy.pid, (0, 0.0, 0.0))
            if user + system >= 0.4:
                break
            time.sleep(0.1)
        assert parent == os.getpid() and user + system >= 0.4
    finally:
        busy.kill()
        busy.wait()
