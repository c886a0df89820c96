"""A small PNG line chart of thumbs-up rate per variant over time, in pure Python.

No plotting dependency: the chart is a few lines on a pixel grid, written with ``zlib``. Labels
use a 3x5 bitmap font that knows digits, ``#`` and ``%``, which is all the chart needs.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Sequence

__all__ = ["rate_series", "render_png"]

PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip
_FONT = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001001001", "8": "111101111101111",
    "9": "111101111001111", "#": "101111101111101", "%": "101001010100101",
    " ": "000000000000000",
}  # fmt: skip

Series = dict[int, list[tuple[float, float]]]


def rate_series(votes: Sequence[tuple[int, float, int]], buckets: int = 30) -> Series:
    """Per variant: (bucket end time, thumbs-up rate in that bucket) for buckets with votes."""
    if not votes:
        return {}
    start, end = votes[0][1], votes[-1][1]
    width = max((end - start) / buckets, 1e-9)
    tallies: dict[int, dict[int, list[int]]] = {}
    for variant, at, score in votes:
        b = min(buckets - 1, int((at - start) / width))
        up_down = tallies.setdefault(variant, {}).setdefault(b, [0, 0])
        up_down[0 if score > 0 else 1] += 1
    return {
        v: [(start + (b + 1) * width, ud[0] / (ud[0] + ud[1])) for b, ud in sorted(per.items())]
        for v, per in tallies.items()
    }


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.px = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, color: tuple[int, int, int], size: int = 1) -> None:
        for dx in range(size):
            for dy in range(size):
                px, py = x + dx, y + dy
                if 0 <= px < self.w and 0 <= py < self.h:
                    i = (py * self.w + px) * 3
                    self.px[i : i + 3] = bytes(color)

    def line(self, a: tuple[int, int], b: tuple[int, int], color: tuple[int, int, int]) -> None:
        (x0, y0), (x1, y1) = a, b
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for s in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * s / steps), round(y0 + (y1 - y0) * s / steps), color, 2)

    def text(self, x: int, y: int, text: str, color: tuple[int, int, int], scale: int = 2) -> None:
        for n, ch in enumerate(text):
            bits = _FONT.get(ch, _FONT[" "])
            for i, bit in enumerate(bits):
                if bit == "1":
                    self.dot(x + (n * 4 + i % 3) * scale, y + (i // 3) * scale, color, scale)

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.px[y * self.w * 3 : (y + 1) * self.w * 3]) for y in range(self.h)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def render_png(series: Series, width: int = 800, height: int = 400) -> bytes:
    """Thumbs-up rate (0-100%, y) over time (x), one coloured line per variant, legend on top."""
    c = _Canvas(width, height)
    left, right, top, bottom = 60, width - 20, 50, height - 30
    grey, dark = (220, 220, 220), (90, 90, 90)
    for pct in (0, 25, 50, 75, 100):
        y = bottom - (bottom - top) * pct // 100
        c.line((left, y), (right, y), grey)
        c.text(8, y - 5, f"{pct}%".rjust(4), dark)
    c.line((left, top), (left, bottom), dark)
    times = [t for points in series.values() for t, _r in points]
    t0, t1 = (min(times), max(times)) if times else (0.0, 1.0)
    span = (t1 - t0) or 1.0
    for n, (variant, points) in enumerate(sorted(series.items())):
        color = PALETTE[n % len(PALETTE)]
        xy = [
            (left + round((right - left) * (t - t0) / span), bottom - round((bottom - top) * r))
            for t, r in points
        ]
        for a, b in itertools.pairwise(xy):
            c.line(a, b, color)
        for x, y in xy:
            c.dot(x - 2, y - 2, color, 5)
        lx = left + n * 90
        c.dot(lx, 15, color, 14)
        c.text(lx + 20, 17, f"#{variant}", dark)
    return c.png()
