"""The task queue's fixtures (a private Redis database, queue workers) for the metrics tests."""

from tests.background.conftest import redis_database, task_queue_url, worker_factory  # noqa: F401
