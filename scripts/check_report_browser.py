#!/usr/bin/env python
"""Open a liecheck HTML report in headless Chromium, take a screenshot and check
that every image decoded (``naturalWidth > 0``).

Usage: ``python scripts/check_report_browser.py REPORT.html [--screenshot OUT.png]``.
Exit code 0 if all images loaded, 1 if some did not, 3 if no Chromium is installed
(``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """<script>
window.addEventListener('load', function () {
  var r = Array.prototype.map.call(document.images, function (i) {
    return {alt: i.alt, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth};
  });
  var d = document.createElement('pre');
  d.id = 'liecheck-image-probe';
  d.textContent = JSON.stringify(r);
  document.body.appendChild(d);
});
</script>"""

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser: str, args: list[str], timeout: int) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args],
                              check=False, capture_output=True, text=True, timeout=timeout)


def check_report(report: str | Path, screenshot: str | Path | None = None,
                 timeout: int = 120) -> dict:
    """Returns ``{"images": n, "loaded": k, "failed": [alt, ...], "screenshot": path}``.

    Raises ``FileNotFoundError`` when no Chromium is installed.
    """
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no chromium found; install it with apt-get install -y chromium")
    report = Path(report).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        text = report.read_text(encoding="utf-8")
        probe.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
        res = _run(browser, ["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                   timeout)
    m = re.search(r'<pre id="liecheck-image-probe">(.*?)</pre>', res.stdout, re.DOTALL)
    if not m:
        raise RuntimeError(f"the page did not finish loading in Chromium: {res.stderr[-500:]}")
    import html
    imgs = json.loads(html.unescape(m.group(1)))
    out = {"images": len(imgs), "loaded": sum(i["ok"] for i in imgs),
           "failed": [i["alt"] for i in imgs if not i["ok"]], "screenshot": None}
    if screenshot is not None:
        shot = Path(screenshot).resolve()
        _run(browser, ["--window-size=1400,3000", f"--screenshot={shot}", report.as_uri()],
             timeout)
        out["screenshot"] = str(shot) if shot.exists() else None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report")
    ap.add_argument("--screenshot", default=None)
    a = ap.parse_args(argv)
    try:
        res = check_report(a.report, a.screenshot)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 3
    print(json.dumps(res, indent=1))
    return 0 if res["images"] > 0 and not res["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
