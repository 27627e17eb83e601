"""Open an HTML file in headless Chromium: did every plotly figure draw, and without errors?

Used by ``benchmarks/report_in_browser.py`` and the report test (skipped where no Chromium is
installed; on Debian: ``apt-get install chromium``). A copy of the page gets a tiny error
collector as its first script (``window.onerror`` and ``console.error``), Chromium runs it and
dumps the DOM after the scripts have run, and we count the figures plotly actually drew.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from clviz.errors import MissingFileError

COLLECTOR = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
const __consoleError = console.error;
console.error = (...a) => { window.__errors.push(a.join(' ')); __consoleError(...a); };
window.addEventListener('load', () => setTimeout(() => {
  const d = document.createElement('pre'); d.id = '__errors';
  d.textContent = JSON.stringify(window.__errors); document.body.appendChild(d);
}, 500));
</script>"""
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@dataclass
class BrowserCheck:
    """What Chromium saw: figures in the page, figures drawn, JavaScript errors."""

    figures: int
    drawn: int
    errors: list[str]
    screenshot: Path | None

    @property
    def ok(self) -> bool:
        return self.figures > 0 and self.drawn == self.figures and not self.errors


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


def check_html(
    path: str | Path, screenshot: str | Path | None = None, timeout: float = 180
) -> BrowserCheck:
    """Render ``path`` in headless Chromium; optionally save a full-width screenshot."""
    exe = find_chromium()
    if exe is None:
        raise MissingFileError("no Chromium found on PATH; on Debian: apt-get install chromium")
    text = Path(path).read_text(encoding="utf-8")
    page = text.replace("<head>", "<head>" + COLLECTOR, 1)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(page, encoding="utf-8")
        common = [exe, *FLAGS, f"--user-data-dir={tmp}/profile", "--virtual-time-budget=20000"]
        dom = subprocess.run(
            [*common, "--dump-dom", copy.as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
        if screenshot is not None:
            subprocess.run(
                [
                    *common,
                    f"--screenshot={Path(screenshot).resolve()}",
                    "--window-size=1280,4000",
                    copy.as_uri(),
                ],
                capture_output=True,
                timeout=timeout,
                check=True,
            )
    figures = len(re.findall(r'class="plotly-graph-div"', text))
    drawn = len(re.findall(r'class="plot-container plotly"', dom))
    found = re.search(r'<pre id="__errors">(.*?)</pre>', dom, re.S)
    errors = [] if found is None else re.findall(r'"((?:[^"\\]|\\.)*)"', found.group(1))
    if found is None:
        errors = ["the page never finished loading (no error report found)"]
    return BrowserCheck(figures, drawn, errors, Path(screenshot) if screenshot else None)
