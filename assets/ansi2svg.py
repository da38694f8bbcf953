#!/usr/bin/env python3
"""Turns a terminal capture with colours (`tmux capture-pane -e -p`) into an SVG picture of the terminal.

Usage: ansi2svg.py [--title TITLE] < capture.ansi > picture.svg

Understands what tmux emits: SGR sequences (reset, bold, dim, italic, underline, reverse; the 8/16 colours,
256-colour and true-colour foregrounds and backgrounds). Other escape sequences are dropped. Each cell is drawn at
its column, so the grid holds whatever font the viewer has; characters East Asian wide take two cells.
"""
import argparse
import html
import re
import sys
import unicodedata

# xterm's default palette, as most terminals draw it.
PALETTE16 = [
    "#000000", "#cd0000", "#00cd00", "#cdcd00", "#0000ee", "#cd00cd", "#00cdcd", "#e5e5e5",
    "#7f7f7f", "#ff0000", "#00ff00", "#ffff00", "#5c5cff", "#ff00ff", "#00ffff", "#ffffff",
]
FOREGROUND, BACKGROUND = "#d0d0d0", "#1c1c1c"
CELL_W, CELL_H, FONT_SIZE, PAD = 8.4, 17, 14, 12


def color256(n):
    if n < 16:
        return PALETTE16[n]
    if n < 232:
        n -= 16
        levels = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (levels[n // 36], levels[(n // 6) % 6], levels[n % 6])
    v = 8 + (n - 232) * 10
    return "#%02x%02x%02x" % (v, v, v)


class Style:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = self.bg = None
        self.bold = self.dim = self.italic = self.underline = self.reverse = False

    def key(self):
        return (self.fg, self.bg, self.bold, self.dim, self.italic, self.underline, self.reverse)

    def apply(self, params):
        codes = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.reset()
            elif c == 1:
                self.bold = True
            elif c == 2:
                self.dim = True
            elif c == 3:
                self.italic = True
            elif c == 4:
                self.underline = True
            elif c == 7:
                self.reverse = True
            elif c == 22:
                self.bold = self.dim = False
            elif c == 23:
                self.italic = False
            elif c == 24:
                self.underline = False
            elif c == 27:
                self.reverse = False
            elif 30 <= c <= 37:
                self.fg = PALETTE16[c - 30]
            elif 90 <= c <= 97:
                self.fg = PALETTE16[c - 90 + 8]
            elif 40 <= c <= 47:
                self.bg = PALETTE16[c - 40]
            elif 100 <= c <= 107:
                self.bg = PALETTE16[c - 100 + 8]
            elif c == 39:
                self.fg = None
            elif c == 49:
                self.bg = None
            elif c in (38, 48) and i + 1 < len(codes):
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    value = color256(codes[i + 2])
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    value = "#%02x%02x%02x" % tuple(min(255, v) for v in codes[i + 2:i + 5])
                    i += 4
                else:
                    value = None
                if c == 38:
                    self.fg = value
                else:
                    self.bg = value
            i += 1

    def colors(self):
        fg, bg = self.fg or FOREGROUND, self.bg
        if self.bold and self.fg in PALETTE16[:8]:
            fg = PALETTE16[PALETTE16.index(self.fg) + 8]
        if self.reverse:
            fg, bg = (bg or BACKGROUND), fg
        return fg, bg


SEQUENCE = re.compile(r"\x1b\[([0-9;:]*)([A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b.")


def parse(text):
    """Lines of runs: (column, cells, text, style key, (fg, bg), flags)."""
    style = Style()
    lines = []
    for raw in text.rstrip("\n").split("\n"):
        runs, col, pos = [], 0, 0
        for m in list(SEQUENCE.finditer(raw)) + [None]:
            chunk = raw[pos:m.start() if m else len(raw)]
            if chunk:
                chunk = "".join(ch for ch in chunk if ch >= " ")
                width = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in chunk)
                runs.append((col, width, chunk, style.colors(), style.bold, style.dim, style.italic, style.underline))
                col += width
            if m is None:
                break
            if m.group(2) == "m":
                style.apply(m.group(1).replace(":", ";"))
            pos = m.end()
        lines.append(runs)
    return lines


def render(lines, title):
    cols = max([r[0] + r[1] for runs in lines for r in runs] + [80])
    width = cols * CELL_W + 2 * PAD
    height = len(lines) * CELL_H + 2 * PAD
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{html.escape(title)}">',
        f"<title>{html.escape(title)}</title>",
        f'<rect width="100%" height="100%" rx="6" fill="{BACKGROUND}"/>',
        f'<g font-family="\'DejaVu Sans Mono\', \'Menlo\', \'Consolas\', monospace" font-size="{FONT_SIZE}" '
        f'xml:space="preserve">',
    ]
    for row, runs in enumerate(lines):
        y = PAD + row * CELL_H
        for col, cells, text, (fg, bg), bold, dim, italic, underline in runs:
            x = PAD + col * CELL_W
            if bg:
                out.append(f'<rect x="{x:.1f}" y="{y}" width="{cells * CELL_W:.1f}" height="{CELL_H}" fill="{bg}"/>')
            if not text.strip():
                continue
            attrs = [f'x="{x:.1f}"', f'y="{y + CELL_H - 4}"', f'fill="{fg}"', f'textLength="{cells * CELL_W:.1f}"',
                     'lengthAdjust="spacingAndGlyphs"']
            if bold:
                attrs.append('font-weight="bold"')
            if dim:
                attrs.append('fill-opacity="0.6"')
            if italic:
                attrs.append('font-style="italic"')
            if underline:
                attrs.append('text-decoration="underline"')
            out.append(f"<text {' '.join(attrs)}>{html.escape(text, quote=False)}</text>")
    out.append("</g></svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--title", default="terminal")
    args = ap.parse_args()
    sys.stdout.write(render(parse(sys.stdin.read()), args.title))


if __name__ == "__main__":
    main()
