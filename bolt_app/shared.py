"""What makes a process-wide object safe to hand to listeners through Bolt's context."""

from __future__ import annotations

from typing import Any


class SharedService:
    """A process-wide service (engine, pools, locks). Bolt deep-copies a request's context (its
    WebClient and that client's retry handlers included) for each `lazy=` function; a service is
    shared by every request, so a copy of it is the service itself."""

    def __copy__(self) -> "SharedService":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "SharedService":
        return self
