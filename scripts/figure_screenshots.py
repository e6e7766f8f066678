#!/usr/bin/env python
"""Screenshot report figures as rendered in headless Chromium (for docs/img).

Usage: ``python scripts/figure_screenshots.py REPORT.html OUT_DIR [NUMBER=NAME ...]``,
e.g. ``"5a-d=figure5a-d"``: the first figure numbered ``5a-d`` (``5a-d#2``: the
second) is rendered alone in
the report's own CSS, at its pixel width, and written as ``OUT_DIR/figure5a-d.png``
(trimmed). ``page=NAME`` shots the
top of the whole page at 1600 px width. Needs Chromium (as check_report_browser.py).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from check_report_browser import _run, find_chromium


def _trim(path: Path, max_height: int | None = None) -> None:
    import numpy as np
    from PIL import Image

    im = Image.open(path).convert("RGB")
    a = np.asarray(im).astype(int)
    bg = a[0, 0]
    rows = np.where((np.abs(a - bg).sum(2) > 12).any(1))[0]
    cols = np.where((np.abs(a - bg).sum(2) > 12).any(0))[0]
    box = (max(cols[0] - 8, 0), max(rows[0] - 8, 0), min(cols[-1] + 9, im.width),
           min(rows[-1] + 9, im.height))
    if max_height:
        box = (box[0], box[1], box[2], min(box[3], box[1] + max_height))
    im.crop(box).save(path, optimize=True)


def main(argv: list[str]) -> int:
    report, out, wanted = Path(argv[0]), Path(argv[1]), argv[2:]
    browser = find_chromium()
    if browser is None:
        print("no chromium found", file=sys.stderr)
        return 3
    page = report.read_text(encoding="utf-8")
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    out.mkdir(parents=True, exist_ok=True)
    for item in wanted:
        number, name = item.split("=", 1)
        number, _, nth = number.partition("#")          # "5a-d#2": the second Figure 5a-d
        shot = (out / name).with_suffix(".png").resolve()
        if number == "page":
            _run(browser, ["--window-size=1600,1500", f"--screenshot={shot}",
                           report.resolve().as_uri()], 120)
            _trim(shot, max_height=1000)
            print(shot)
            continue
        figs = re.findall(r'<figure style="width: (\d+)px">.*?</figure>', page, re.S)
        blocks = re.findall(r'(<figure style="width: \d+px">.*?</figure>)', page, re.S)
        hit = [(w, b) for w, b in zip(figs, blocks) if f"<b>Figure {number} &middot;" in b]
        if not hit:
            print(f"no Figure {number} in {report}", file=sys.stderr)
            return 1
        width, block = int(hit[int(nth or 1) - 1][0]), hit[int(nth or 1) - 1][1]
        with tempfile.TemporaryDirectory() as tmp:
            one = Path(tmp) / "one.html"
            one.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{css}"
                           f"</style></head><body><main>{block}</main></body></html>",
                           encoding="utf-8")
            _run(browser, [f"--window-size={width + 100},2400", f"--screenshot={shot}",
                           one.as_uri()], 120)
        _trim(shot)
        print(shot)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
