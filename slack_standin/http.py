"""Tiny HTTP plumbing: response records and request-body decoding in Slack's accepted formats."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class Response:
    """An HTTP answer the request handler writes out verbatim."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Slack's Web API answers JSON with this content type."""
    return Response(
        status,
        json.dumps(data).encode("utf-8"),
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


def html_response(html: str, status: int = 200) -> Response:
    """An HTML page for a human (consent, errors, index)."""
    return Response(status, html.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})


def text_response(text: str, status: int = 200) -> Response:
    """A plain-text answer (e.g. ``ok`` from a response_url)."""
    return Response(status, text.encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8"})


def redirect_response(location: str) -> Response:
    """302 to where the browser goes next (the app's OAuth redirect URL)."""
    return Response(302, b"", {"Location": location, "Content-Type": "text/plain; charset=utf-8"})


class BodyError(ValueError):
    """The request body could not be decoded; ``error`` is the Slack error code to answer."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """slack_sdk sends multipart/form-data when files are involved; decode it with the stdlib."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise BodyError("invalid_form_data")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            fields[str(name)] = payload
        else:
            fields[str(name)] = payload.decode(part.get_content_charset() or "utf-8")
    return fields


def parse_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """Merge query-string and body parameters (form, JSON or multipart), body winning.

    Raises BodyError with ``invalid_json`` / ``invalid_form_data`` like Slack does.
    """
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if not body:
        return params
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json":
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BodyError("invalid_json") from e
        if not isinstance(data, dict):
            raise BodyError("invalid_json")
        params.update(data)
    elif mime == "multipart/form-data":
        params.update(_parse_multipart(content_type, body))
    else:
        try:
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError as e:
            raise BodyError("invalid_form_data") from e
    return params
