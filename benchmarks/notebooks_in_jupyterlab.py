"""Run every notebook the way a student does: JupyterLab in headless Chromium, Run All, wait.

For each notebook (in order, sharing one fresh run store, so each is timed cold after the ones
before it, as in a lesson): open it in JupyterLab, run all cells from the Run menu, wait for the
kernel to finish, save, then read the saved notebook for errors and for the effect checks
(lines starting with ✓ or ✗), take a screenshot of one figure and print the wall time.
While it runs, the page is read every two seconds: the kernel's status as JupyterLab's status
bar shows it (it must be busy whenever a cell waits), and whether a live per-step progress
line (``· step 12/40``) is on screen; afterwards, the tables drawn as HTML tables.

    python benchmarks/notebooks_in_jupyterlab.py --mode class --out results/walkthrough
    python benchmarks/notebooks_in_jupyterlab.py --alone --out results/walkthrough-alone

``--alone`` empties the run store before each notebook: its time opened alone, training
everything it shows.

Needs Chromium (Debian: ``apt-get install chromium``) and Playwright's Python package
(``pip install playwright``; it drives the system Chromium, nothing is downloaded). The copies
of the notebooks run in ``<out>/notebooks``, so the repository's notebooks stay clean.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat

from clviz.browser import FLAGS, find_chromium
from clviz.notebooks import notebook_paths

# The figure to look at in each notebook (index among its plotly figures, in order).
FIGURE = {
    "03_moe_adapters": 2,
    "04_ddas": 1,
    "07_representation_drift": 4,
    "08_method_comparison": 5,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(folder: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port, token = free_port(), "walkthrough"
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
        f"--ServerApp.token={token}", f"--ServerApp.root_dir={folder}",
        "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=True",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            return server, f"{base}/lab/tree/{{name}}?token={token}&reset"
        except OSError:
            time.sleep(1)
    server.terminate()
    raise RuntimeError(f"JupyterLab did not start; its log: {log}")


def effect_lines(nb) -> list[str]:
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "")
            found += [line for line in text.splitlines() if line[:1] in ("✓", "✗")]
    return found


def errors_in(nb) -> list[str]:
    return [
        f"{o['ename']}: {o['evalue']}"[:300]
        for cell in nb.cells
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]


# One look at the page while a notebook runs: the kernel's status, whether a cell is still
# running or queued, whether the running cell shows live steps (a worker's "· step 12/40" or
# an in-kernel bar's "12/40 ["), scrolled into view as a student would, and the status bar.
SAMPLE = """async () => {
    const p = window.jupyterapp.shell.currentWidget;
    const running = p.content.widgets.filter(c => c.model.type === 'code' && (
        c.model.executionState === 'running' ||
        (c.promptNode && c.promptNode.textContent.includes('*'))));
    let text = '';
    if (running.length) {
        try { await p.content.scrollToCell(running[0]); } catch (e) {}
        text = running[0].outputArea ? running[0].outputArea.node.textContent : '';
    }
    const bar = document.querySelector('#jp-main-statusbar');
    return [p.sessionContext.session.kernel.status, running.length > 0,
            /· step \\d+\\/\\d+|\\d+\\/\\d+ \\[/.test(text), bar ? bar.textContent : ''];
}"""


def longest_run(flags) -> int:
    """The longest run of consecutive true values."""
    longest = current = 0
    for flag in flags:
        current = current + 1 if flag else 0
        longest = max(longest, current)
    return longest


def walk(page, url: str, path: Path, shots: Path, timeout_s: float) -> dict:
    """Open one notebook, run it all, save it, look at it."""
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    page.wait_for_function(
        """() => { const p = window.jupyterapp.shell.currentWidget;
                   return p && p.sessionContext && p.sessionContext.session &&
                          p.sessionContext.session.kernel &&
                          p.sessionContext.session.kernel.status === 'idle'; }""",
        timeout=180_000,
    )
    started = time.perf_counter()
    # not awaited: the command's promise resolves only when every cell has run
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_timeout(2_000)
    samples = []  # (kernel status, a cell waiting, live steps shown, the status bar's text)
    training_shot = None
    while time.perf_counter() - started < timeout_s:
        samples.append(page.evaluate(SAMPLE))
        status, waiting, steps, _ = samples[-1]
        if steps and training_shot is None:  # what the class sees while the runs train
            training_shot = shots / f"{path.stem}-training.png"
            page.screenshot(path=str(training_shot))
        if status == "idle" and not waiting:
            break
        page.wait_for_timeout(2_000)
    seconds = time.perf_counter() - started
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_timeout(3_000)
    figures = page.locator(".js-plotly-plot")
    count = figures.count()
    shot = None
    if count:
        index = min(FIGURE.get(path.stem, 0), count - 1)
        page.add_style_tag(content=".Toastify { display: none !important; }")  # news toast
        for _ in range(2):  # cells above lay out as they come into view: aim twice
            figures.nth(index).evaluate("e => e.scrollIntoView({block: 'center'})")
            page.wait_for_timeout(1_000)
        shot = shots / f"{path.stem}.png"
        page.screenshot(path=str(shot))  # the figure in JupyterLab, as the student sees it
    tables = page.locator(".jp-OutputArea-output table").count()
    nb = nbformat.read(path, as_version=4)
    waiting = [(status, bar) for status, pending, _, bar in samples if pending]
    return {
        "notebook": path.stem,
        "seconds": round(seconds, 1),
        "figures_drawn": count,
        "tables_drawn": tables,
        "idle_while_a_cell_waited": sum(status == "idle" for status, _ in waiting),
        # A queued cell starts a moment after the one before it ends, so a sample can catch the
        # kernel idle in between (a flash, more often on a loaded machine); a cell that runs
        # while the kernel reads Idle (what widget bars did) gives a run of idle samples.
        "longest_idle_while_a_cell_waited": longest_run(status == "idle" for status, _ in waiting),
        "status_bar_idle_while_a_cell_waited": sum("Idle" in bar for _, bar in waiting),
        "samples_while_a_cell_waited": len(waiting),
        "step_progress_seen": any(step for _, _, step, _ in samples),
        "training_screenshot": str(training_shot) if training_shot else None,
        "first_samples": samples[:3],
        "errors": errors_in(nb),
        "effects": effect_lines(nb),
        "screenshot": str(shot) if shot else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook stems (default: all)")
    parser.add_argument("--mode", default="class", choices=("fast", "class", "full"))
    parser.add_argument("--out", default="results/walkthrough", help="notebooks, runs, shots")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per notebook")
    parser.add_argument("--keep-runs", action="store_true", help="reuse <out>/runs (warm)")
    parser.add_argument(
        "--alone", action="store_true", help="an empty run store before each notebook"
    )
    args = parser.parse_args()
    if find_chromium() is None:
        print("no Chromium on PATH; on Debian: apt-get install chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    out = Path(args.out).resolve()
    folder, shots, runs = out / "notebooks", out / "screenshots", out / "runs"
    if runs.exists() and not args.keep_runs:
        shutil.rmtree(runs)
    for d in (folder, shots, runs):
        d.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in notebook_paths(args.names or None):
        shutil.copy(source, folder / source.name)
        paths.append(folder / source.name)
    env = {**os.environ, "CLVIZ_MODE": args.mode, "CLVIZ_RESULTS": str(runs)}
    env.pop("CLVIZ_FAST", None)
    server, url = start_lab(folder, env, out / "jupyterlab.log")
    report = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=find_chromium(), args=FLAGS[1:])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            console = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            for path in paths:
                if args.alone:  # opened alone: nothing trained before it
                    shutil.rmtree(runs)
                    runs.mkdir()
                console.clear()
                seen = walk(page, url.format(name=path.name), path, shots, args.timeout)
                seen["console_errors"] = console[:5]
                report.append(seen)
                failed = [e for e in seen["effects"] if e.startswith("✗")]
                print(
                    f"{path.stem:<32} {seen['seconds']:7.1f} s  figures {seen['figures_drawn']:3d}"
                    f"  tables {seen['tables_drawn']:2d}"
                    f"  effects {len(seen['effects']) - len(failed)}/{len(seen['effects'])}"
                    f"  idle while waiting {seen['idle_while_a_cell_waited']}"
                    f"/{seen['samples_while_a_cell_waited']}"
                    f"  live steps {'yes' if seen['step_progress_seen'] else 'no'}"
                    f"  errors {len(seen['errors'])}  shot {seen['screenshot']}",
                    flush=True,
                )
                for error in seen["errors"]:
                    print(f"    error: {error}", flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    (out / "walkthrough.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    total = sum(r["seconds"] for r in report)
    alone = ", each alone from an empty store" if args.alone else ""
    where = f"{out}/walkthrough.json"
    print(f"total {total:.0f} s ({total / 60:.1f} min), mode {args.mode}{alone}: {where}")
    return 1 if any(r["errors"] for r in report) else 0


if __name__ == "__main__":
    raise SystemExit(main())
