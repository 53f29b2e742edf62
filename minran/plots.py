"""Pictures without a plotting library: PNG through zlib and struct, SVG as plain text."""
import struct
import zlib
from xml.sax.saxutils import escape

import numpy as np


def write_png(path, rgb):
    """Write an (H, W, 3) uint8 image. A PNG is a signature and chunks (length, type, data,
    CRC); the pixels go in one IDAT chunk, each row prefixed by filter type 0 (none)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_png: expected an (H, W, 3) image, got shape {rgb.shape}")
    height, width, _ = rgb.shape

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def heat(values):
    """Map values in [0, 1] to a blue-to-yellow-to-red colour scale, (H, W) -> (H, W, 3)."""
    v = np.clip(values, 0, 1)[..., None]
    stops = np.array([[0, 0, 128], [0, 160, 255], [255, 255, 0], [220, 0, 0]], np.float64)
    position = v * (len(stops) - 1)
    low = np.minimum(position.astype(int), len(stops) - 2)
    frac = position - low
    return (stops[low[..., 0]] * (1 - frac) + stops[low[..., 0] + 1] * frac).astype(np.uint8)


def overlay(image, values, alpha=0.5):
    """An (H, W, 3) uint8 image with a heat map of `values` blended over it."""
    return (image * (1 - alpha) + heat(values) * alpha).astype(np.uint8)


def upscale(image, factor):
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def learning_curves_svg(history, path, title="training run"):
    """Loss and accuracy per epoch, train and test, as two side-by-side SVG panels."""
    epochs = [int(r["epoch"]) for r in history]
    panels = [("loss", "train_loss", "test_loss"), ("accuracy", "train_acc", "test_acc")]
    W, H, margin = 360, 240, 44
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 30}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{W}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>']
    for p, (name, train_key, test_key) in enumerate(panels):
        x0 = p * W
        series = {k: [float(r[k]) for r in history] for k in (train_key, test_key)}
        lo = min(min(s) for s in series.values())
        hi = max(max(s) for s in series.values())
        lo, hi = (0.0, max(1.0, hi)) if name == "accuracy" else (min(0.0, lo), hi * 1.05 or 1)
        span_e = max(1, epochs[-1] - epochs[0])

        def xy(e, v):
            x = x0 + margin + (e - epochs[0]) / span_e * (W - 2 * margin)
            y = 30 + (H - margin) * (1 - (v - lo) / (hi - lo or 1))
            return f"{x:.1f},{y:.1f}"
        parts.append(f'<rect x="{x0 + margin}" y="30" width="{W - 2 * margin}" '
                     f'height="{H - margin}" fill="none" stroke="#888"/>')
        parts.append(f'<text x="{x0 + W / 2}" y="{H + 22}" text-anchor="middle">epoch '
                     f'({epochs[0]}-{epochs[-1]})</text>')
        parts.append(f'<text x="{x0 + 6}" y="34">{hi:.3g}</text><text x="{x0 + 6}" '
                     f'y="{H - margin + 30}">{lo:.3g}</text>')
        parts.append(f'<text x="{x0 + margin + 4}" y="44">{name}</text>')
        for key, colour in ((train_key, "#1f77b4"), (test_key, "#d62728")):
            points = " ".join(xy(e, v) for e, v in zip(epochs, series[key]))
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
            last = xy(epochs[-1], series[key][-1])
            parts.append(f'<circle cx="{last.split(",")[0]}" cy="{last.split(",")[1]}" r="2.5" fill="{colour}"/>')
        parts.append(f'<text x="{x0 + W - margin - 4}" y="44" text-anchor="end" fill="#1f77b4">train</text>'
                     f'<text x="{x0 + W - margin - 4}" y="58" text-anchor="end" fill="#d62728">test</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def graph_svg(root, path=None, names=None):
    """The graph that made `root`, as an SVG: one box per tensor, an arrow from each input to
    the result it fed. Every result stands one column right of its furthest input and every
    leaf just left of its first reader, so the picture reads as the forward pass does. A box
    shows the op that made the tensor (and its name from `names`, {"a": a, ...}; a leaf
    without one is "leaf", or "const" and its value when it needs no gradient) and its
    shape. Draw before backward(), which frees the graph. Returns the SVG text; writes it to
    `path` if given. Dependencies: none (the SVG is text)."""
    label = {id(t): name for name, t in (names or {}).items()}
    nodes, column_of, edges, stack = [], {}, [], [root]
    while stack:   # inputs before results, iteratively (a deep network's graph is deep)
        node = stack[-1]
        parents = [p for p in node._parents if p is not None]
        waiting = [p for p in parents if id(p) not in column_of]
        if waiting:
            stack.extend(waiting)
            continue
        stack.pop()
        if id(node) not in column_of:
            column_of[id(node)] = 1 + max((column_of[id(p)] for p in parents), default=-1)
            nodes.append(node)
            edges += [(id(p), id(node)) for p in parents]
    for node in nodes:   # a leaf stands just before the first op that reads it
        if not node._parents and node is not root:
            column_of[id(node)] = min(column_of[t] for s, t in edges if s == id(node)) - 1
    row_of, rows = {}, {}
    for node in nodes:
        column = column_of[id(node)]
        row_of[id(node)] = rows[column] = rows.get(column, -1) + 1

    box_w, box_h, step_x, step_y, margin = 120, 40, 170, 60, 20
    skips = [column_of[t] - column_of[s] - 1 for s, t in edges]
    top = 0.45 * step_y * max(skips, default=0)   # room for the highest bowed arrow
    width = 2 * margin + max(rows) * step_x + box_w
    height = 2 * margin + top + max(rows.values()) * step_y + box_h

    def corner(key):
        return margin + column_of[key] * step_x, margin + top + row_of[key] * step_y

    def title(t):
        name = label.get(id(t))
        if t._op:
            return f"{name} = {t._op}" if name else t._op
        if name:
            return name
        return "leaf" if t.requires_grad else (f"const {t.data.item():.3g}" if t.data.size == 1
                                               else "const")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
             f'font-family="sans-serif" font-size="12">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    for (source, target), skip in zip(edges, skips):   # one that skips columns bows upward
        (x0, y0), (x1, y1) = corner(source), corner(target)
        x0, y0, y1, bow = x0 + box_w, y0 + box_h / 2, y1 + box_h / 2, 0.6 * step_y * skip
        parts.append(f'<path class="edge" d="M{x0},{y0} C{x0 + 40},{y0 - bow} {x1 - 40},'
                     f'{y1 - bow} {x1},{y1}" fill="none" stroke="#555" marker-end="url(#arrow)"/>')
    for node in nodes:
        x, y = corner(id(node))
        fill = "#ffe9b3" if node._op else ("#d6ecff" if node.requires_grad else "#eeeeee")
        parts.append(f'<g class="node"><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" '
                     f'rx="6" fill="{fill}" stroke="#333"/><text x="{x + box_w / 2}" y="{y + 16}" '
                     f'text-anchor="middle">{escape(title(node))}</text><text x="{x + box_w / 2}" '
                     f'y="{y + 32}" text-anchor="middle" fill="#555">{escape(str(tuple(node.shape)))}'
                     f'</text></g>')
    parts.append("</svg>")
    text = "\n".join(parts)
    if path is not None:
        with open(path, "w") as f:
            f.write(text)
    return text
