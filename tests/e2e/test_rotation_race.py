"""Rotation under a burst from several server processes on one database (all three backends)."""

from __future__ import annotations

from bench.rotation_race import run_rotation_race


def test_expired_tokens_rotate_once_per_workspace_across_processes(db_url, tmp_path) -> None:
    result = run_rotation_race(
        database_url=db_url, workdir=tmp_path, servers=2, workers=2, threads=4,
        workspaces=4, events=80, rounds=1, concurrency=16, latency=0.01,
    )
    assert result.statuses == {"200": 80}
    assert result.events_without_reply == 0  # every acknowledged event was answered with a valid token
    assert result.refresh_calls == 4 and result.refresh_calls_failed == 0  # exactly one per installation
    assert result.dead_refresh_tokens == 0  # every stored refresh token still works
