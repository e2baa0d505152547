#!/usr/bin/env python3
"""Draw the app's icons and logos into static/, deterministically, with the standard library only.

    python3 tools/make_icons.py            # write static/*.png
    python3 tools/make_icons.py --check    # exit 1 if a committed PNG differs from what this draws

The design: a navy tile with a white ring (a port), an orange dot (the suspicious
process) and a white arrow leaving it (an outbound connection). appIconAlt is the
same mark without the tile, for dark backgrounds. The logo puts the mark beside
the word "classifyport" ("port" in orange) drawn from a small bitmap font.
Shapes are geometry in design units and every pixel is a 4x4 supersampled
average, so the 2x images are the same drawing, only sharper.
"""
import argparse
import math
import os
import struct
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATIC = os.path.join(ROOT, "static")

NAVY = (31, 58, 95, 255)
WHITE = (255, 255, 255, 255)
ORANGE = (242, 140, 40, 255)
SUPERSAMPLE = 4

# Lower-case letters on a 5x9 grid: rows 0-6 above the baseline, 7-8 descenders.
GLYPHS = {
    "c": ["", "", ".###.", "#....", "#....", "#....", ".###."],
    "l": [".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."],
    "a": ["", "", ".###.", "....#", ".####", "#...#", ".####"],
    "s": ["", "", ".####", "#....", ".###.", "....#", "####."],
    "i": ["..#..", "", ".##..", "..#..", "..#..", "..#..", ".###."],
    "f": ["..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."],
    "y": ["", "", "#...#", "#...#", "#...#", "#..##", ".##.#", "....#", ".###."],
    "p": ["", "", "####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],
    "o": ["", "", ".###.", "#...#", "#...#", "#...#", ".###."],
    "r": ["", "", "#.##.", "##..#", "#....", "#....", "#...."],
    "t": [".#...", ".#...", "####.", ".#...", ".#...", ".#..#", "..##."],
}
GLYPH_ADVANCE = 6


# --- geometry -----------------------------------------------------------------

def in_rounded_rect(x, y, x0, y0, x1, y1, radius):
    if not (x0 <= x <= x1 and y0 <= y <= y1):
        return False
    cx = min(max(x, x0 + radius), x1 - radius)
    cy = min(max(y, y0 + radius), y1 - radius)
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2


def in_disc(x, y, cx, cy, radius):
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2


def in_ring(x, y, cx, cy, radius, width):
    distance = math.hypot(x - cx, y - cy)
    return radius - width / 2 <= distance <= radius + width / 2


def in_segment(x, y, ax, ay, bx, by, width):
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(x - (ax + t * dx), y - (ay + t * dy)) <= width / 2


def in_triangle(x, y, a, b, c):
    def side(p, q):
        return (x - q[0]) * (p[1] - q[1]) - (p[0] - q[0]) * (y - q[1])
    s1, s2, s3 = side(a, b), side(b, c), side(c, a)
    return (s1 >= 0 and s2 >= 0 and s3 >= 0) or (s1 <= 0 and s2 <= 0 and s3 <= 0)


# --- the mark (a 36x36 design, offset by ox, oy) -------------------------------

def mark(x, y, ox=0.0, oy=0.0, tile=True):
    """Colour of the mark at design point (x, y), or None where it is transparent."""
    x, y = x - ox, y - oy
    cx, cy = 15.5, 20.5
    tip = (31.0, 5.0)
    direction = (math.sqrt(0.5), -math.sqrt(0.5))
    base = (tip[0] - 8.0 * direction[0], tip[1] - 8.0 * direction[1])
    half = 4.6
    wing1 = (base[0] + half * -direction[1], base[1] + half * direction[0])
    wing2 = (base[0] - half * -direction[1], base[1] - half * direction[0])
    if in_disc(x, y, cx, cy, 3.6):
        return ORANGE
    if in_triangle(x, y, tip, wing1, wing2) or in_segment(x, y, cx, cy, base[0], base[1], 3.0):
        return WHITE
    if in_ring(x, y, cx, cy, 8.8, 3.0):
        return WHITE
    if tile and in_rounded_rect(x, y, 0.0, 0.0, 36.0, 36.0, 7.0):
        return NAVY
    return None


def icon(x, y):
    return mark(x, y)


def icon_alt(x, y):
    return mark(x, y, tile=False)


# --- the logo (a 160x40 design) ------------------------------------------------

TEXT = "classifyport"
TEXT_UNIT = 1.55
TEXT_X = 44.5
TEXT_Y = (40.0 - 9 * TEXT_UNIT) / 2 + 0.5


def _text_colour(x, y):
    column = int(math.floor((x - TEXT_X) / TEXT_UNIT))
    row = int(math.floor((y - TEXT_Y) / TEXT_UNIT))
    if column < 0 or row < 0 or row >= 9:
        return None
    index, cell = divmod(column, GLYPH_ADVANCE)
    if index >= len(TEXT) or cell >= 5:
        return None
    rows = GLYPHS[TEXT[index]]
    if row < len(rows) and rows[row][cell:cell + 1] == "#":
        return ORANGE if index >= TEXT.index("port") else WHITE
    return None


def logo(x, y):
    if not in_rounded_rect(x, y, 0.0, 0.0, 160.0, 40.0, 8.0):
        return None
    colour = _text_colour(x, y)
    if colour is not None:
        return colour
    return mark(x, y, ox=2.0, oy=2.0, tile=False) or NAVY


# --- rasterising and PNG ------------------------------------------------------

def render(scene, width, height, scale):
    """RGBA rows of scene over width x height pixels, `scale` pixels per design unit."""
    samples = [(i + 0.5) / SUPERSAMPLE for i in range(SUPERSAMPLE)]
    count = SUPERSAMPLE * SUPERSAMPLE
    rows = []
    for py in range(height):
        row = bytearray()
        for px in range(width):
            red = green = blue = alpha = 0
            for sy in samples:
                for sx in samples:
                    colour = scene((px + sx) / scale, (py + sy) / scale)
                    if colour is not None:
                        r, g, b, a = colour
                        red += r * a
                        green += g * a
                        blue += b * a
                        alpha += a
            if alpha:
                row += bytes((round(red / alpha), round(green / alpha), round(blue / alpha), round(alpha / count)))
            else:
                row += b"\0\0\0\0"
        rows.append(bytes(row))
    return rows


def png_bytes(rows, width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


# name: (scene, design width, design height, scale)
IMAGES = {
    "appIcon.png": (icon, 36, 36, 1),
    "appIcon_2x.png": (icon, 36, 36, 2),
    "appIconAlt.png": (icon_alt, 36, 36, 1),
    "appIconAlt_2x.png": (icon_alt, 36, 36, 2),
    "appLogo.png": (logo, 160, 40, 1),
    "appLogo_2x.png": (logo, 160, 40, 2),
}


def draw(name):
    scene, width, height, scale = IMAGES[name]
    width, height = width * scale, height * scale
    return png_bytes(render(scene, width, height, scale), width, height)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with static/ instead of writing")
    parser.add_argument("--outdir", default=STATIC, help="where to write (default static/)")
    args = parser.parse_args(argv)
    stale = []
    for name in sorted(IMAGES):
        data = draw(name)
        path = os.path.join(args.outdir, name)
        if args.check:
            try:
                with open(path, "rb") as handle:
                    same = handle.read() == data
            except OSError:
                same = False
            if not same:
                stale.append(name)
            continue
        os.makedirs(args.outdir, exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        print("wrote %s (%d bytes)" % (os.path.relpath(path), len(data)))
    if stale:
        print("static/ differs from tools/make_icons.py for: %s (run python3 tools/make_icons.py)"
              % ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
