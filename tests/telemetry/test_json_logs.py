"""LOG_FORMAT=json: one JSON object per line, masked like the text format, with the request's
context where one is being served."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bolt_app.logs import JsonFormatter, MaskingFormatter, configure_logging, mask_all_handlers
from bolt_app.telemetry import context
from tests.security.test_log_masking import UNMASKED_TOKEN

SECRET = "signing-secret-value-123456"
TOKEN = "xoxe.xoxb-1-abcdefABCDEF0123"


@pytest.fixture
def json_stream():
    """The root logger writing JSON to a buffer; the logging set-up is put back afterwards."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), {h: h.formatter for h in root.handlers})
    for handler in list(root.handlers):
        root.removeHandler(handler)
    stream = io.StringIO()
    configure_logging("INFO", [SECRET], stream=stream, log_format="json")
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    level, handlers, formatters = saved
    root.setLevel(level)
    for handler in handlers:
        handler.setFormatter(formatters[handler])
        root.addHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_one_masked_json_object(json_stream) -> None:
    log = logging.getLogger("bolt_app.test")
    log.info("token %s and secret %s, quote \" and newline\nhere", TOKEN, SECRET)
    try:
        raise ValueError(f"failed with {TOKEN}")
    except ValueError:
        log.exception("it broke")
    first, second = lines(json_stream)
    assert set(first) == {"time", "level", "logger", "message", "process"}
    assert first["level"] == "INFO" and first["logger"] == "bolt_app.test"
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert "[redacted]" in first["message"] and "\nhere" in first["message"]
    assert second["level"] == "ERROR" and "ValueError" in second["exception"]
    text = json_stream.getvalue()
    assert TOKEN not in text and SECRET not in text and not UNMASKED_TOKEN.search(text)


def test_request_context_is_added_and_follows_lazy_threads(json_stream) -> None:
    log = logging.getLogger("bolt_app.test")
    body = {"type": "event_callback", "team_id": "T0AB", "event_id": "Ev0CD", "event": {"type": "app_mention"}}
    with context.bound(request_kind="event:app_mention", **context.payload_fields(body)):
        log.info("inside")
        # As bolt_app/lazy_work.py hands a lazy function to its executor.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(contextvars.copy_context().run, log.info, "in a lazy thread").result()
        plain = threading.Thread(target=log.info, args=("a thread without the context",))
        plain.start()
        plain.join()
    log.info("after")
    records = {entry["message"]: entry for entry in lines(json_stream)}
    for message in ("inside", "in a lazy thread"):
        entry = records[message]
        assert (entry["request_kind"], entry["team_id"], entry["event_id"]) == ("event:app_mention", "T0AB", "Ev0CD")
        assert "enterprise_id" not in entry  # unknown: left out
    assert "team_id" not in records["after"] and "team_id" not in records["a thread without the context"]


def test_payload_fields_of_commands_and_interactions() -> None:
    assert context.payload_fields({"command": "/poll", "team_id": "T1", "enterprise_id": "E1"}) == {
        "team_id": "T1", "enterprise_id": "E1", "event_id": None}
    assert context.payload_fields({"type": "block_actions", "team": {"id": "T2"}, "user": {"id": "U1"}})["team_id"] == "T2"
    assert context.payload_fields({"type": "view_submission", "user": {"team_id": "T3"}})["team_id"] == "T3"
    assert context.payload_fields(["not", "a", "dict"]) == {}


def test_other_handlers_get_the_json_formatter_too(json_stream) -> None:
    """gunicorn's error log has handlers of its own (MaskedGunicornLogger calls this at its set-up)."""
    other = logging.getLogger("gunicorn.error.test")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(message)s"))
    other.addHandler(handler)
    other.propagate = False
    try:
        mask_all_handlers()
        other.warning("gunicorn says %s", TOKEN)
        entry = json.loads(buffer.getvalue())
        assert entry["logger"] == "gunicorn.error.test" and TOKEN not in entry["message"]
    finally:
        other.removeHandler(handler)


def test_text_stays_the_default() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskingFormatter(secrets=[SECRET]))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "secret %s", (SECRET,), None)
    assert not isinstance(handler.formatter, JsonFormatter)
    assert handler.formatter.format(record).endswith("secret [redacted]")
