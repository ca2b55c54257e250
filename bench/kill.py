"""The kill scenario of the task queue, shared by tests/background/test_kill.py and
`python bench/run.py --kill`: a burst of mentions over several workspaces, two queue workers;
once a third of the replies are out, one worker is killed with SIGKILL and another is started.
At least once means every mention answered 200 gets its reply; a second reply comes only from a
job that was mid-call when its worker died."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from slack_standin import SlackStandIn


@dataclass
class KillFigures:
    mentions: int
    workspaces: int
    threads: int
    answered: dict[tuple[str, str], int]  # (team, event ts) -> status
    replied_at_kill: int
    replies_per_mention: Counter
    rerun_first_s: float  # first reply more than 5 s after the kill: the killed worker's jobs re-run
    rerun_last_s: float  # last reply after the kill
    took_s: float

    @property
    def acknowledged(self) -> set[tuple[str, str]]:
        return {key for key, status in self.answered.items() if status == 200}

    @property
    def unreplied(self) -> set[tuple[str, str]]:
        return self.acknowledged - set(self.replies_per_mention)

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.replies_per_mention.values())

    def summary(self) -> str:
        return (f"kill test: {self.mentions} mentions over {self.workspaces} workspaces, 2 workers x {self.threads} "
                f"threads; killed after {self.replied_at_kill} replies; answered 200: {len(self.acknowledged)}; "
                f"without reply: {len(self.unreplied)}; duplicates: {self.duplicates} (at most {self.threads} "
                f"jobs were mid-call); killed worker's jobs re-run {self.rerun_first_s:.1f}-{self.rerun_last_s:.1f} s "
                f"after the kill; {self.took_s:.0f} s in all")


def replies(standin: SlackStandIn) -> list:
    return [c for c in standin.calls_for("chat.postMessage") if c.ok]


def replies_per_mention(standin: SlackStandIn) -> Counter:
    return Counter((c.team_id, c.params.get("thread_ts")) for c in replies(standin))


def run_kill(standin: SlackStandIn, workspaces: list, start_worker: Callable[[], Any], *, mentions: int,
             threads: int, waiting: Callable[[], int], timeout: float = 90) -> KillFigures:
    """`start_worker()` starts a `python main.py worker` (with `threads` threads) and returns it;
    `waiting()` is the queue's length. The app and the workspaces' installs are the caller's."""
    started = time.monotonic()
    standin.clear_calls()
    doomed = start_worker()
    start_worker()
    answered: dict[tuple[str, str], int] = {}
    lock = threading.Lock()

    def mention(n: int) -> None:
        ws = workspaces[n % len(workspaces)]
        sent = standin.send_mention(ws, text=f"mention {n}")
        with lock:
            answered[(ws.team_id, sent.payload["event"]["ts"])] = sent.status

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(mention, n) for n in range(mentions)]
        _wait(lambda: len(replies(standin)) >= mentions // 3, timeout)
        doomed.kill()
        killed_at = time.time()
        replied_at_kill = len(replies(standin))
        start_worker()
        for future in futures:
            future.result()
    acknowledged = {key for key, status in answered.items() if status == 200}
    _wait(lambda: acknowledged <= set(replies_per_mention(standin)) and waiting() == 0, timeout)
    after_kill = sorted(r.at - killed_at for r in replies(standin) if r.at > killed_at)
    late = [t for t in after_kill if t > 5]
    return KillFigures(
        mentions=mentions, workspaces=len(workspaces), threads=threads, answered=answered,
        replied_at_kill=replied_at_kill, replies_per_mention=replies_per_mention(standin),
        rerun_first_s=late[0] if late else 0.0, rerun_last_s=after_kill[-1] if after_kill else 0.0,
        took_s=time.monotonic() - started,
    )


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()
