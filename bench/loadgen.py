"""A small closed-loop HTTP load generator: processes × threads with keep-alive connections.

Requests are prepared (and signed) up front, so the generator spends its time sending, not
hashing. Several processes keep Python's GIL from being the limit on a small machine.
"""

from __future__ import annotations

import http.client
import multiprocessing
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse


@dataclass(frozen=True)
class PreparedRequest:
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class LoadResult:
    latencies: list[float]  # seconds, one per request
    statuses: dict[int, int]
    seconds: float

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))
        return ordered[index]


def _worker(base_url: str, requests: list[PreparedRequest], threads: int, start_at: float, queue) -> None:  # type: ignore[no-untyped-def]
    parsed = urlparse(base_url)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    index = [0]

    def run() -> None:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        while True:
            with lock:
                i = index[0]
                index[0] += 1
            if i >= len(requests):
                break
            request = requests[i]
            began = time.perf_counter()
            try:
                conn.request("POST", request.path, body=request.body, headers=request.headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    while time.time() < start_at:
        time.sleep(0.001)
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put((latencies, statuses))


def run_load(base_url: str, requests: list[PreparedRequest], concurrency: int, processes: int = 2) -> LoadResult:
    """Send every request once with `concurrency` connections in flight; returns latencies."""
    processes = max(1, min(processes, concurrency))
    threads = max(1, concurrency // processes)
    chunks = [requests[i::processes] for i in range(processes)]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 0.3
    workers = [ctx.Process(target=_worker, args=(base_url, chunk, threads, start_at, queue)) for chunk in chunks]
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]
    finished = time.time()
    for w in workers:
        w.join()
    latencies = [lat for result in results for lat in result[0]]
    statuses: dict[int, int] = {}
    for _, part in results:
        for status, count in part.items():
            statuses[status] = statuses.get(status, 0) + count
    return LoadResult(latencies, statuses, finished - start_at)
