"""Issue 19, done when: the app with 4 web workers and 2 queue workers (Redis database of its own),
a known mix of Slack requests, and the metrics ports then show exactly those counts, summed over
every process; the Slack-facing port has no /metrics; no label names a workspace, user, channel
or token; the JSON log lines parse and hold no token."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import tempfile
import time
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from bolt_app.background import TaskQueue
from bolt_app.telemetry import labels
from tests.e2e.test_polls import Calls, post_poll_with_command
from tests.listeners import payloads
from tests.security.test_log_masking import UNMASKED_TOKEN
from tests.support import Browser, free_port, install, signed_post, wait_for

SLACK_ID = re.compile(r"^[TUCWEBDGA][A-Z0-9]{6,}$")


def scrape(port: int) -> list:
    page = Browser().get(f"http://127.0.0.1:{port}/metrics")
    assert page.status == 200, page.text
    return [sample for family in text_string_to_metric_families(page.text) for sample in family.samples]


def summed(samples: list, name: str, *keys: str) -> Counter:
    """name's samples summed over processes, by the given labels (zeros left out)."""
    total: Counter = Counter()
    for sample in samples:
        if sample.name == name:
            total[tuple(sample.labels.get(k, "") for k in keys)] += sample.value
    return Counter({k: v for k, v in total.items() if v})


def outcome_of(call) -> str:
    """What the app's metrics should call a Web API answer the stand-in recorded."""
    if call.ok:
        return "ok"
    if call.status != 200:
        return labels.http_outcome(call.status)
    return labels.api_error(call.error)


def settled(standin, queue: TaskQueue, quiet_seconds: float = 1.5, timeout: float = 40) -> bool:
    """No job left and no Web API call for a while (updates and retries run after the jobs)."""
    deadline = time.time() + timeout
    last, since = -1, time.time()
    while time.time() < deadline:
        count = len(standin.calls)
        if count != last:
            last, since = count, time.time()
        elif queue.waiting() == 0 and time.time() - since >= quiet_seconds:
            return True
        time.sleep(0.1)
    return False


def test_the_metrics_of_every_process_add_up_to_what_was_sent(
        standin, sqlite_url, task_queue_url, app_server_factory, worker_factory) -> None:
    web_port, worker_ports = free_port(), [free_port(), free_port()]
    server = app_server_factory(sqlite_url, WEB_CONCURRENCY="4", WEB_THREADS="4", TASK_QUEUE_URL=task_queue_url,
                                METRICS_PORT=str(web_port), LOG_FORMAT="json")
    workers = [worker_factory(sqlite_url, task_queue_url, METRICS_PORT=str(port), LOG_FORMAT="json",
                              WORKER_THREADS="2") for port in worker_ports]
    queue = TaskQueue(task_queue_url)
    acme, leaving = standin.create_workspace(name="Acme"), standin.create_workspace(name="Leaving")
    for ws in (acme, leaving):
        assert install(server.url, standin, ws.team_id).response.status == 200
    sent: Counter = Counter()

    def note(kind: str, name: str, response) -> None:
        sent[(kind, name, str(response.status))] += 1

    # Mentions (each a reply job for a queue worker).
    for n in range(3):
        note("event", "app_mention", standin.send_mention(acme, f"hello {n}"))
    assert settled(standin, queue)
    # Slash commands: two polls (posted by the web process), one command the manifest does not have.
    calls = Calls(standin)
    poll_id, poll_ts, _ = post_poll_with_command(standin, calls, acme, '"Lunch?" "Pizza" "Tacos"')
    sent[("command", "/poll", "200")] += 1
    post_poll_with_command(standin, calls, acme, '"Dinner?" "Soup" "Salad"')
    sent[("command", "/poll", "200")] += 1
    note("command", "other", standin.send_slash_command(acme, "/U0123ABCDEF", "not ours"))
    assert settled(standin, queue)

    # Button clicks, with chat.update limited to one per 3 s: the later votes' update gets 429s
    # (Retry-After: 1) and goes out once Slack lets it.
    standin.set_rate_limit("chat.update", max_calls=1, per_seconds=3, retry_after=1)
    voters = ["U0VOTERA", "U0VOTERB", "U0VOTERC"]
    note("action", "block_actions", standin.send_interactive(
        acme, payloads.vote(acme.team_id, voters[0], poll_id, 0, acme.default_channel_id, poll_ts)))
    assert wait_for(lambda: [c for c in standin.calls_for("chat.update") if c.ok], timeout=15)
    for voter in voters[1:]:
        note("action", "block_actions", standin.send_interactive(
            acme, payloads.vote(acme.team_id, voter, poll_id, 1, acme.default_channel_id, poll_ts)))
    assert wait_for(lambda: [c for c in standin.calls_for("chat.update") if c.status == 429], timeout=15)
    assert settled(standin, queue)
    standin.clear_rate_limits()

    # Bad signatures: refused before anything is parsed.
    body = json.dumps({"type": "event_callback", "team_id": acme.team_id, "event": {"type": "app_mention"}}).encode()
    for secret in ("not-the-signing-secret", "another-wrong-secret"):
        note("unverified", "", signed_post(server.events_url, body, "application/json", secret=secret))

    # A token refresh: Slack says token_expired to the reply; the worker refreshes, the job is retried.
    standin.expire_tokens(team_id=acme.team_id)
    note("event", "app_mention", standin.send_mention(acme, "after the tokens expired"))
    assert wait_for(lambda: [c for c in standin.calls_for("oauth.v2.access")
                             if c.params.get("grant_type") == "refresh_token" and c.ok], timeout=20)
    assert settled(standin, queue)
    # An uninstall.
    note("event", "app_uninstalled", standin.send_event(leaving, {"type": "app_uninstalled"}))
    assert settled(standin, queue)

    assert Browser().get(f"{server.url}/metrics").status == 404  # never on the Slack-facing port
    web = scrape(web_port)
    per_worker = [scrape(port) for port in worker_ports]
    everything = web + [s for samples in per_worker for s in samples]

    # Slack requests, by kind, name and status; the answer-time histogram saw each of them.
    assert summed(web, "boltapp_slack_requests_total", "kind", "name", "status") == sent
    by_kind: Counter = Counter()
    for (kind, _, _), count in sent.items():
        by_kind[(kind,)] += count
    assert summed(web, "boltapp_slack_request_duration_seconds_count", "kind") == by_kind
    assert summed(web, "boltapp_slack_request_duration_seconds_bucket", "kind", "le")[("event", "+Inf")] == 5
    assert summed(web, "boltapp_oauth_requests_total", "page", "status") == {("install", "200"): 2,
                                                                            ("callback", "200"): 2}
    assert summed(web, "boltapp_installs_total") == {(): 2}
    assert summed(web, "boltapp_uninstalls_total") == {(): 1}

    # Web API answers, counted where they were heard (web and workers), equal what Slack saw.
    slack_saw = Counter((c.method, outcome_of(c)) for c in standin.calls)
    assert summed(everything, "boltapp_slack_api_calls_total", "method", "outcome") == slack_saw
    limited = [c for c in standin.calls if c.status == 429]
    assert limited and all(c.method == "chat.update" for c in limited)
    assert summed(everything, "boltapp_slack_api_retry_after_seconds_count", "method") == {
        ("chat.update",): len(limited)}
    assert summed(everything, "boltapp_slack_api_retry_after_seconds_sum", "method") == {
        ("chat.update",): 1.0 * len(limited)}
    expired = [c for c in standin.calls if c.error == "token_expired"]
    assert expired and slack_saw[("chat.postMessage", "token_expired")] == len(expired)

    # Token refreshes: exactly the one Slack performed; any other attempt found it done.
    refreshes = [c for c in standin.calls if c.method == "oauth.v2.access" and c.params.get("grant_type") == "refresh_token"]
    attempts = summed(everything, "boltapp_token_refreshes_total", "token", "outcome")
    assert attempts[("bot", "refreshed")] == len(refreshes) == 1
    assert set(attempts) <= {("bot", "refreshed"), ("bot", "done_elsewhere")}
    assert summed(everything, "boltapp_token_refresh_lock_wait_seconds_count", "token") == {
        ("bot",): sum(attempts.values())}

    # Jobs: enqueued by the web processes, done by the workers; the token_expired one retried once.
    enqueued = summed(web, "boltapp_jobs_enqueued_total", "function")
    assert enqueued == {("reply_to_mention",): 4, ("handle_vote",): 3}
    jobs = summed(everything, "boltapp_jobs_total", "function", "outcome")
    assert jobs == {("reply_to_mention", "done"): 4, ("handle_vote", "done"): 3,
                    ("reply_to_mention", "retried"): len(expired)}
    assert sum(summed(everything, "boltapp_job_duration_seconds_count", "function").values()) == sum(jobs.values())
    for samples in per_worker:  # each worker reads the queue from Redis at scrape time
        assert summed(samples, "boltapp_queue_depth") == {} and summed(samples, "boltapp_queue_dead_letters") == {}
        assert {s.name for s in samples} >= {"boltapp_queue_depth", "boltapp_queue_dead_letters"}
    in_use = [s.value for s in web if s.name == "boltapp_db_pool_checked_out"]
    assert len(in_use) == 1 and in_use[0] >= 0
    assert summed(everything, "boltapp_db_errors_total", "kind") == {}

    # No label names a workspace, user, channel, message or token.
    ids = {acme.team_id, leaving.team_id, acme.installer_user_id, leaving.installer_user_id,
           acme.default_channel_id, leaving.default_channel_id, poll_id, poll_ts, *voters}
    for sample in everything:
        for name, label_value in sample.labels.items():
            assert not SLACK_ID.match(label_value) and "xox" not in label_value, (sample.name, name, label_value)
            assert not any(known in label_value for known in ids), (sample.name, name, label_value)

    # Summed over several web processes, and still so after one of them is replaced.
    files = glob.glob(os.path.join(tempfile.gettempdir(), f"boltapp-metrics-{server.process.pid}-*", "counter_*.db"))
    pids = {int(re.search(r"counter_(\d+)\.db", f).group(1)) for f in files}
    assert len(pids) >= 2, files
    booted = [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", server.logs())]
    os.kill(booted[0], signal.SIGTERM)
    assert wait_for(lambda: len(re.findall(r"Booting worker with pid", server.logs())) > len(booted), timeout=20)
    again = scrape(web_port)
    assert summed(again, "boltapp_slack_requests_total", "kind", "name", "status") == sent
    assert summed(again, "boltapp_installs_total") == {(): 2}

    # JSON logs: every line of every process parses, none holds a token, and the request context is there.
    tokens = {c.token for c in standin.calls if c.token}
    entries = []
    for process in (server, *workers):
        process.stop()
        for line in process.logs().splitlines():
            if line.strip():
                entries.append(json.loads(line))
        text = process.logs()
        assert not UNMASKED_TOKEN.search(text) and not any(token in text for token in tokens)
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    assert any(e.get("job") == "reply_to_mention" and e.get("team_id") == acme.team_id
               and e.get("request_kind") == "event:app_mention" for e in entries)
    assert any(e.get("request_kind") == "oauth:callback" and "Installed into" in e["message"] for e in entries)
    # The master removed its multiprocess directory on the way out.
    assert not glob.glob(os.path.join(tempfile.gettempdir(), f"boltapp-metrics-{server.process.pid}-*"))
