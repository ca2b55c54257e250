"""Fixtures for the task queue: a real Redis database of its own, app servers in queue mode and
`python main.py worker` processes.

Redis is taken from TEST_REDIS_URL (default redis://127.0.0.1:6379; any database number in it is
ignored). Each test session picks an empty-looking database among 1-15 at random, marks it as
taken, and empties it before and after every test. Without Redis the tests are skipped with the
reason, and with REQUIRE_REDIS=1 they fail instead.
"""

from __future__ import annotations

import os
import random
from typing import Iterator
from urllib.parse import urlparse

import pytest

from tests.background.support import WorkerProcess
from tests.support import base_env

MARKER = "bolt_app_tests:database_in_use"


def _base_url() -> str:
    parsed = urlparse(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379"))
    return parsed._replace(path="", query="").geturl()


@pytest.fixture(scope="session")
def redis_database() -> Iterator[str]:
    """The URL of this session's Redis database."""
    import redis

    base = _base_url()
    try:
        redis.Redis.from_url(base, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        reason = f"Redis not reachable at {base}: {type(error).__name__} (set TEST_REDIS_URL or start redis-server)"
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail(f"{reason}; required by REQUIRE_REDIS=1")
        pytest.skip(reason)
    for number in random.sample(range(1, 16), 15):
        client = redis.Redis.from_url(f"{base}/{number}")
        # SET NX: of two sessions looking at the same empty database, one takes it.
        if client.dbsize() == 0 and client.set(MARKER, os.getpid(), nx=True):
            break
    else:
        pytest.fail(f"No empty Redis database among 1-15 at {base}")
    yield f"{base}/{number}"
    client.flushdb()
    client.close()


@pytest.fixture
def task_queue_url(redis_database) -> Iterator[str]:
    """The session's database, emptied before and after the test."""
    import redis

    client = redis.Redis.from_url(redis_database)
    client.flushdb()
    client.set(MARKER, os.getpid())
    yield redis_database
    client.flushdb()
    client.set(MARKER, os.getpid())
    client.close()


@pytest.fixture
def worker_factory(standin, tmp_path) -> Iterator[callable]:  # type: ignore[valid-type]
    """Start `python main.py worker` processes against the stand-in; stopped after the test."""
    workers: list[WorkerProcess] = []

    def start(database_url: str, queue_url: str, **env: str) -> WorkerProcess:
        worker = WorkerProcess(env={**base_env(standin, database_url), "TASK_QUEUE_URL": queue_url, **env},
                               workdir=tmp_path, name=f"worker-{len(workers)}")
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()
