"""Logging with secrets masked in every line, whichever library wrote it, and one record that
cannot pass for several.

Masking is done by the formatter of the handlers the app installs, so it covers slack_sdk's and
Bolt's debug output, gunicorn's logs and exception tracebacks alike. The same formatter keeps a
record recognisable as one: control characters other than newline and tab are escaped, and every
line after a record's first is indented, so a value carrying a newline and a fake timestamp (log
forging) can only ever look like the continuation of the record it is in. The app's own code logs
request values with %r on top of this.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Iterable

from bolt_app.telemetry import context

# xoxb-/xoxp-/xoxe-/xoxa-/xapp- tokens, including rotating forms such as xoxe.xoxb-1-…
TOKEN_PATTERN = re.compile(r"\b(?:xox[abpers]|xapp)(?:\.xox[abp])?-[A-Za-z0-9-]+")
# Incoming webhook URLs are credentials too (anyone holding one can post).
WEBHOOK_PATTERN = re.compile(r"(https?://hooks\.slack(?:-gov)?\.com/)[A-Za-z0-9/_-]+")
# The OAuth `code` of a callback (a one-time credential, exchanged for tokens within minutes): as a
# query or form parameter, and as a key of the dicts slack_sdk's debug log prints.
OAUTH_CODE_PATTERN = re.compile(r"""((?<![\w-])code=|['"]code['"]\s*:\s*['"])[^&\s'"]+""")
MASK = "[redacted]"
# Everything that could end or rewrite a log line except the newline itself (and tab): CR, other C0
# and C1 controls, DEL, and the Unicode line and paragraph separators.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
CONTINUATION = "\n  "
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
# Libraries whose INFO lines tell an operator nothing (Alembic's plugin set-up and migration
# context on every start; the app logs the schema upgrade itself). Shown at DEBUG.
QUIET_BELOW_WARNING = ("alembic",)


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    text = TOKEN_PATTERN.sub(lambda m: m.group(0)[:5] + MASK, text)
    text = WEBHOOK_PATTERN.sub(lambda m: m.group(1) + MASK, text)
    text = OAUTH_CODE_PATTERN.sub(lambda m: m.group(1) + MASK, text)
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, MASK)
    return text


class MaskingFormatter(logging.Formatter):
    """Formats as usual, then masks token-shaped strings and the configured secrets."""

    def __init__(self, fmt: str = FORMAT, secrets: Iterable[str] = ()):
        super().__init__(fmt)
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        return one_record(mask_secrets(super().format(record), self.secrets))


def one_record(text: str) -> str:
    """Control characters escaped, and lines after the first indented (see the module docstring)."""
    text = CONTROL.sub(lambda m: ascii(m.group(0))[1:-1], text)
    return text.rstrip("\n").replace("\n", CONTINUATION)


class JsonFormatter(MaskingFormatter):
    """`LOG_FORMAT=json`: one JSON object per line: time (UTC, ISO 8601), level, logger, message,
    process, and where known the request's kind, team, enterprise and event ids (or the job's
    function; bolt_app/telemetry/context.py), exception (its traceback). Every string is masked
    like the text format's lines, before it is encoded."""

    def __init__(self, fmt: str = FORMAT, secrets: Iterable[str] = ()):
        super().__init__(fmt, secrets)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        entry.update(context.current())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        masked = {key: mask_secrets(value, self.secrets) if isinstance(value, str) else value
                  for key, value in entry.items()}
        return json.dumps(masked, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", secrets: Iterable[str] = (), stream=None,  # type: ignore[no-untyped-def]
                      log_format: str = "text") -> None:
    """Root logging to stderr with masking; other handlers already present get the formatter too."""
    formatter = (JsonFormatter if log_format == "json" else MaskingFormatter)(secrets=secrets)
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(h, "is_app_handler", False) for h in root.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.is_app_handler = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    mask_all_handlers(formatter)
    for name in QUIET_BELOW_WARNING:
        logging.getLogger(name).setLevel(logging.NOTSET if str(level).upper() == "DEBUG" else logging.WARNING)
    # Warnings go through logging too, so they are masked like everything else.
    logging.captureWarnings(True)


def mask_all_handlers(formatter: MaskingFormatter | None = None) -> None:
    """Give every handler of every known logger the masking formatter (gunicorn adds its own)."""
    loggers = [logging.getLogger()] + [
        logging.getLogger(name) for name in list(logging.root.manager.loggerDict)  # noqa: SIM118
    ]
    root_formatter = next(
        (h.formatter for h in logging.getLogger().handlers if isinstance(h.formatter, MaskingFormatter)), None
    )
    formatter = formatter or root_formatter or MaskingFormatter()
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(formatter, JsonFormatter):
                if handler.formatter is not formatter:
                    handler.setFormatter(formatter)  # one format for every line, gunicorn's included
            elif not isinstance(handler.formatter, MaskingFormatter):
                fmt = handler.formatter._fmt if handler.formatter is not None else FORMAT  # type: ignore[union-attr]
                handler.setFormatter(MaskingFormatter(fmt or FORMAT, formatter.secrets))
            elif formatter is not handler.formatter:
                handler.setFormatter(formatter)
