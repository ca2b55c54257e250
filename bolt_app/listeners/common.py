"""What several listeners share."""

from __future__ import annotations

from typing import Any, Callable


def acknowledge(ack: Callable[..., Any]) -> None:
    """The `ack=` step of a listener whose work all happens in its `lazy=` functions."""
    ack()
