"""A small inline PNG for alert e-mails: the metric's daily values over the last weeks, with the
baseline as a line and the day of detection marked. Pure Python (zlib + struct), about a
millisecond: no browser, no plotting library, nothing that could delay an urgent e-mail.

The image has no text; the e-mail says in words what it shows (alt text and caption).
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Sequence

Color = tuple[int, int, int]

WHITE: Color = (255, 255, 255)
GRID: Color = (226, 230, 234)
BASELINE: Color = (120, 144, 156)
LINE: Color = (31, 78, 121)
MARK: Color = (192, 57, 43)


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rows = [bytearray(WHITE * width) for _ in range(height)]

    def dot(self, x: int, y: int, color: Color, radius: int = 0) -> None:
        for yy in range(y - radius, y + radius + 1):
            for xx in range(x - radius, x + radius + 1):
                if 0 <= xx < self.width and 0 <= yy < self.height:
                    self.rows[yy][3 * xx : 3 * xx + 3] = bytes(color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, dash: int = 0) -> None:
        """Bresenham, 2 px thick; `dash` > 0 draws `dash` pixels on, `dash` off."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err, step = dx + dy, 0
        while True:
            if not dash or (step // dash) % 2 == 0:
                self.dot(x0, y0, color)
                self.dot(x0, y0 + 1, color)
            if x0 == x1 and y0 == y1:
                return
            step += 1
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def sparkline(
    values: Sequence[float | None],
    *,
    baseline: float | None,
    low: float = 0.0,
    high: float = 10.0,
    width: int = 280,
    height: int = 84,
) -> bytes:
    """PNG of `values` (one per day, None = not logged; the last is the day of detection)."""
    canvas = Canvas(width, height)
    pad = 6

    def x_of(i: int) -> int:
        return pad + round(i * (width - 2 * pad) / max(1, len(values) - 1))

    def y_of(v: float) -> int:
        v = min(max(v, low), high)
        return height - pad - round((v - low) * (height - 2 * pad) / (high - low))

    for level in (low, (low + high) / 2, high):
        canvas.line(pad, y_of(level), width - pad, y_of(level), GRID)
    if baseline is not None:
        canvas.line(pad, y_of(baseline), width - pad, y_of(baseline), BASELINE, dash=4)
    points = [(x_of(i), y_of(v)) for i, v in enumerate(values) if v is not None]
    for (xa, ya), (xb, yb) in itertools.pairwise(points):
        canvas.line(xa, ya, xb, yb, LINE)
    for x, y in points:
        canvas.dot(x, y, LINE, radius=1)
    if values and values[-1] is not None:
        canvas.dot(x_of(len(values) - 1), y_of(values[-1]), MARK, radius=3)
    return canvas.png()
