"""At least once: a worker killed with -9 in the middle of a burst loses no job, and the re-runs
post a second reply only for jobs that were mid-call when it died.

The burst's size is a parameter: KILL_TEST_MENTIONS (default 600) mentions spread over
KILL_TEST_WORKSPACES (default 20) installed workspaces, two workers of KILL_TEST_THREADS (4)
threads; one is killed once a third of the replies are out, and another is started.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bolt_app.background import TaskQueue
from tests.background.support import replies, replies_per_thread
from tests.support import install, wait_for

MENTIONS = int(os.environ.get("KILL_TEST_MENTIONS", "600"))
WORKSPACES = int(os.environ.get("KILL_TEST_WORKSPACES", "20"))
THREADS = int(os.environ.get("KILL_TEST_THREADS", "4"))


def test_kill_9_loses_no_job_and_repeats_only_calls_in_flight(
        standin, sqlite_url, task_queue_url, app_server_factory, worker_factory) -> None:
    started = time.monotonic()
    server = app_server_factory(sqlite_url, TASK_QUEUE_URL=task_queue_url)
    workspaces = [standin.create_workspace(name=f"Kill {n}") for n in range(WORKSPACES)]
    for ws in workspaces:
        assert install(server.url, standin, ws.team_id).response.status == 200
    standin.clear_calls()
    standin.latency_seconds = 0.05  # every reply is a call in flight for a while
    doomed = worker_factory(sqlite_url, task_queue_url, WORKER_THREADS=str(THREADS))
    worker_factory(sqlite_url, task_queue_url, WORKER_THREADS=str(THREADS))

    answered: dict[tuple[str, str], int] = {}  # (team, event ts) -> status
    lock = threading.Lock()

    def mention(n: int) -> None:
        ws = workspaces[n % WORKSPACES]
        sent = standin.send_mention(ws, text=f"mention {n}")
        with lock:
            answered[(ws.team_id, sent.payload["event"]["ts"])] = sent.status

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(mention, n) for n in range(MENTIONS)]
        assert wait_for(lambda: len(replies(standin)) >= MENTIONS // 3, timeout=60), "the workers do not reply"
        doomed.kill()
        killed_at = time.time()
        replied_at_kill = len(replies(standin))
        worker_factory(sqlite_url, task_queue_url, WORKER_THREADS=str(THREADS))
        for future in futures:
            future.result()

    assert len(answered) == MENTIONS
    acknowledged = {key for key, status in answered.items() if status == 200}
    assert acknowledged == set(answered), {s for s in answered.values()}  # Slack got its 200s
    assert wait_for(lambda: acknowledged <= set(replies_per_thread(standin)), timeout=90), (
        f"{len(acknowledged - set(replies_per_thread(standin)))} acknowledged mention(s) never got a reply")
    queue = TaskQueue(task_queue_url)
    assert wait_for(lambda: queue.waiting() == 0, timeout=30)
    counts = replies_per_thread(standin)
    duplicates = sum(count - 1 for count in counts.values())
    after_kill = sorted(r.at - killed_at for r in replies(standin) if r.at > killed_at)
    late = [t for t in after_kill if t > 5]  # re-runs of the killed worker's jobs
    print(f"\nkill test: {MENTIONS} mentions over {WORKSPACES} workspaces, 2x{THREADS} threads; killed after "
          f"{replied_at_kill} replies; {duplicates} duplicate(s); killed worker's jobs re-run "
          f"{late[0] if late else 0:.1f}-{after_kill[-1]:.1f} s after the kill; test took "
          f"{time.monotonic() - started:.0f} s")
    # A job mid-call at the kill (posted, not yet recorded as done) is the only kind redone.
    assert duplicates <= THREADS, [key for key, count in counts.items() if count > 1]
    assert set(counts) == acknowledged  # nothing posted that was not asked for
