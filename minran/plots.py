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
