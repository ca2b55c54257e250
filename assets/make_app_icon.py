"""Draws assets/app-icon.png, the app icon: a poll (answers with result bars) on the manifest's aubergine.

Pure standard library, so it runs anywhere: ``python assets/make_app_icon.py``. The PNG is
512 x 512 (Slack's minimum for an app icon, so the same file can be uploaded under
"Basic Information → Display Information") and square; Slack and the install page round
the corners themselves.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

SIZE = 512
BACKGROUND = (0x4A, 0x15, 0x4B)  # display_information.background_color in manifest.yml
WHITE = (0xFF, 0xFF, 0xFF)
GREEN = (0x2E, 0xB6, 0x7D)
LILAC = (0xD9, 0xBF, 0xDA)
# One row per answer: (bar length as a share of the icon, bar colour, is this the chosen answer).
BARS = [(0.42, WHITE, True), (0.26, LILAC, False), (0.34, LILAC, False)]
DOT_LEFT, BAR_LEFT, BAR_HEIGHT, BAR_GAP = 0.2, 0.38, 0.12, 0.08
OUT = Path(__file__).resolve().parent / "app-icon.png"


def _capsule_distance(px: float, py: float, x0: float, x1: float, y: float, r: float) -> float:
    """Signed distance (pixels) from a point to a horizontal capsule."""
    cx = min(max(px, x0), x1)
    return math.hypot(px - cx, py - y) - r


def _pixels() -> bytes:
    s = SIZE
    r = BAR_HEIGHT * s / 2
    total = len(BARS) * BAR_HEIGHT + (len(BARS) - 1) * BAR_GAP
    top = (1 - total) / 2
    shapes = []  # (x0, x1, y, radius, ring thickness or 0 for filled, colour)
    for i, (length, colour, chosen) in enumerate(BARS):
        y = (top + i * (BAR_HEIGHT + BAR_GAP) + BAR_HEIGHT / 2) * s
        shapes.append((BAR_LEFT * s + r, (BAR_LEFT + length) * s - r, y, r, 0, colour))
        dot = DOT_LEFT * s + r
        # A radio button: filled green for the chosen answer, an outline for the others.
        shapes.append((dot, dot, y, r, 0 if chosen else 0.22 * r, GREEN if chosen else LILAC))
    rows = bytearray()
    for j in range(s):
        rows.append(0)  # PNG filter: none
        py = j + 0.5
        for i in range(s):
            px = i + 0.5
            rgb = BACKGROUND
            for x0, x1, y, radius, ring, colour in shapes:
                if abs(py - y) > radius + 1:
                    continue
                distance = _capsule_distance(px, py, x0, x1, y, radius)
                if ring:
                    distance = abs(distance + ring) - ring
                cover = min(max(0.5 - distance, 0.0), 1.0)
                if cover:
                    rgb = tuple(round(c * cover + b * (1 - cover)) for c, b in zip(colour, rgb))
            rows.extend(rgb)
    return bytes(rows)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def main() -> None:
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(_pixels(), 9))
        + _chunk(b"IEND", b"")
    )
    OUT.write_bytes(png)
    print(f"wrote {OUT} ({len(png)} bytes)")


if __name__ == "__main__":
    main()
