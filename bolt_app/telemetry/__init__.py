"""What an operator sees of the running app: Prometheus metrics and the context of log lines.

- `context`: what is known about the request or job a thread is serving (its kind, workspace,
  event id), for structured logs (`LOG_FORMAT=json`, bolt_app/logs.py).
- `labels`: bounded label values: a Slack payload's kind and name, Web API methods and errors.
- `metrics`: the metrics and the functions that record them (prometheus_client).
- `api_calls`: every Web API answer, heard by a slack_sdk retry handler that never retries.
- `db`: database errors by kind and the connections checked out of the pool.
- `exposition`: `METRICS_PORT`: the private multiprocess directory of a gunicorn server, the
  small HTTP server that serves `GET /metrics`, the queue collector of a worker.

See docs/decisions/0003-metrics.md.
"""
