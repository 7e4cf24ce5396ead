"""Draws docs/monitoring_prometheus.png: six of the dashboard's queries on Prometheus's own graph page.

Grafana is not packaged for Debian, so the README's picture shows the same PromQL (from
``sibcl_ray.grafana_dashboard``) on Prometheus's graph page, one page per query rendered by headless
Chromium (``apt-get install chromium``), tiled two across with Pillow:

    python monitoring/screenshot.py http://127.0.0.1:9090 1200 docs/monitoring_prometheus.png

(the Prometheus of README "Monitoring", the last 1200 s: a quick search run under it).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from sibcl_ray.grafana_dashboard import PANELS

#: (panel title, target index) → the tile's title.
TILES = {("Labels generated", 0): "Labels generated", ("Pretraining samples/s per trial", 0): "Pretraining samples/s "
         "per trial", ("Best validation error", 0): "Best validation error", ("Trials", 1): "Trials running",
         ("Trials", 2): "Trials ended, by outcome", ("Node memory", 0): "Node memory"}
WIDTH, HEIGHT, TITLE = 1000, 900, 50


def tile(url: str, expr: str, seconds: int, title: str, scratch: Path) -> Image.Image:
    """One query's graph page, under a title."""
    query = {"g0.expr": expr.replace("$SessionName", ".+"), "g0.tab": "0", "g0.stacked": "0",
             "g0.show_exemplars": "0", "g0.range_input": f"{seconds}s"}
    png = scratch / "page.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=15000",
                    f"{url}/graph?{urllib.parse.urlencode(query)}"], check=True, timeout=120, capture_output=True)
    canvas = Image.new("RGB", (WIDTH, HEIGHT + TITLE - 40), "white")
    ImageDraw.Draw(canvas).text((12, 12), title, fill="black", font=ImageFont.load_default(size=30))
    canvas.paste(Image.open(png).convert("RGB").crop((0, 40, WIDTH, HEIGHT)), (0, TITLE))  # without the menu bar
    return canvas


def main(url: str, seconds: int, out: Path) -> None:
    targets = {(p.title, i): t.expr for p in PANELS for i, t in enumerate(p.targets)}
    with tempfile.TemporaryDirectory() as scratch:
        tiles = [tile(url, targets[key], seconds, title, Path(scratch)) for key, title in TILES.items()]
    w, h = tiles[0].size
    grid = Image.new("RGB", (2 * w, h * ((len(tiles) + 1) // 2)), "white")
    for k, image in enumerate(tiles):
        grid.paste(image, ((k % 2) * w, (k // 2) * h))
    grid.resize((1400, grid.height * 1400 // grid.width)).save(out, optimize=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
