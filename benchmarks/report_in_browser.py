"""Open the main job's report in headless Chromium: figures drawn, JavaScript errors, a screenshot.

    python benchmarks/report_in_browser.py [results/report.html] [--screenshot results/report.png]

Needs Chromium (Debian: ``apt-get install chromium``). Prints how many plotly figures the page
holds, how many Chromium drew, every JavaScript error, and how long the check took; exits 1 if a
figure did not draw or an error was raised.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from clviz.browser import check_html


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", nargs="?", default="results/report.html")
    parser.add_argument("--screenshot", default=None, help="PNG path (default: beside the report)")
    args = parser.parse_args()
    report = Path(args.report)
    if not report.is_file():
        print(f"no report at {report}: run `make run` (or `clviz main`) first", file=sys.stderr)
        return 2
    shot = Path(args.screenshot) if args.screenshot else report.with_suffix(".png")
    started = time.perf_counter()
    seen = check_html(report, shot)
    print(f"report:     {report} ({report.stat().st_size / 1e6:.1f} MB)")
    print(f"figures:    {seen.figures} in the page, {seen.drawn} drawn by Chromium")
    print(f"JS errors:  {len(seen.errors)}")
    for e in seen.errors:
        print(f"  {e}")
    print(f"screenshot: {shot}")
    print(f"seconds:    {time.perf_counter() - started:.1f}")
    return 0 if seen.ok else 1


if __name__ == "__main__":
    sys.exit(main())
