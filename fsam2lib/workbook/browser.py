"""The workbook in a real browser: JupyterLab on localhost, each notebook opened in headless
Chromium (driven by Playwright), run with ``INTERACTIVE = True``, every widget moved, and
the figure it drives checked to change; the browser console must stay free of errors.

    python -m fsam2lib.workbook.browser [--only 02_pruning_effects] [--out build/browser]

Why a browser: the widgets are unit-tested in Python (:mod:`fsam2lib.workbook.widgets`), but
only a browser shows whether they render, send their values to the kernel and redraw.
Notebooks are copied to ``<out>/work`` with their parameters injected (papermill's own
injection, nothing executed); screenshots go to ``<out>/*.png``, a report to
``<out>/report.json``. Chromium is Debian's (``apt-get install chromium``) or any given with
``--chromium``; ``scripts/browser_check.sh`` installs both it and Playwright.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fsam2lib.paths import BUILD_DIR
from fsam2lib.workbook.runner import notebooks

#: Parameters of every notebook in the browser: widgets on, otherwise the offline defaults.
BROWSER_PARAMETERS = {"INTERACTIVE": True}
#: Smaller runs of the slowest notebooks: the browser checks that the widgets render and
#: redraw, while nbval runs every notebook at its defaults (about 4 of the suite's minutes).
SMALL_PARAMETERS = {
    "02_pruning_effects": {"FAIL_VIDEOS": 2},
    "03_efficiency": {"IMAGE_SIZE": 256, "OBJECTS": [1, 2], "MEMORY_LENGTHS": [8, 33]},
}
#: Console messages that are not errors of the workbook (JupyterLab's own optional probes).
BENIGN_CONSOLE = ("favicon", "Failed to load resource: the server responded with a status of 404")
RUN_TIMEOUT_S = 300
WIDGET_TIMEOUT_S = 120


@dataclass
class NotebookReport:
    """What the browser saw of one notebook."""

    name: str
    expects_widgets: bool = True  # the notebook has an INTERACTIVE view
    seconds: float = 0.0
    cell_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    widgets: list[dict] = field(default_factory=list)  # kind, changed figure
    screenshots: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.cell_errors
            and not self.console_errors
            and (bool(self.widgets) or not self.expects_widgets)
            and all(w["figure_changed"] for w in self.widgets)
        )


def find_chromium(given: str | None = None) -> str:
    """The Chromium executable: ``given``, else Debian's ``chromium`` on PATH."""
    for candidate in (given, shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    raise FileNotFoundError(
        "no Chromium found: install Debian's package (apt-get install -y chromium) or pass "
        "--chromium PATH; scripts/browser_check.sh does the installing"
    )


def prepare_notebooks(only: list[str] | None, work: Path) -> list[Path]:
    """Copies of the notebooks with ``BROWSER_PARAMETERS`` and ``SMALL_PARAMETERS``
    injected (not executed)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    work.mkdir(parents=True, exist_ok=True)
    copies = []
    for path in notebooks(only):
        parameters = {**BROWSER_PARAMETERS, **SMALL_PARAMETERS.get(path.stem, {})}
        nb = parameterize_notebook(load_notebook_node(str(path)), parameters)
        target = work / path.name
        nbformat.write(nb, target)
        copies.append(target)
    return copies


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def jupyterlab(root: Path, build: Path):
    """A JupyterLab server on localhost with a random token: yields its base URL and token."""
    port, token = _free_port(), secrets.token_hex(16)
    # own settings: every cell attached to the page (checks read them all), no user layout
    settings = build / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {
        **os.environ,
        "FSAM2_BUILD": str(build),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "JUPYTERLAB_SETTINGS_DIR": str(build / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(build / "lab-workspaces"),
    }
    log = (build / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(
                        f"JupyterLab did not start (see {build / 'jupyterlab.log'})"
                    ) from None
                time.sleep(1)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _run_all(page, timeout_s: float) -> None:
    """Run every cell (JupyterLab's Run menu) and wait until the kernel is idle again."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.wait_for_timeout(2000)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        busy = page.locator(".jp-Notebook .jp-InputPrompt", has_text="[*]").count()
        if busy == 0:
            return
        page.wait_for_timeout(1000)
    raise TimeoutError(f"cells still running after {timeout_s:.0f} s")


def _cell_errors(page) -> list[str]:
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    texts = [errors.nth(i).inner_text() for i in range(errors.count())]
    tracebacks = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    texts += [tracebacks.nth(i).inner_text()[:2000] for i in range(tracebacks.count())]
    return [t for t in texts if "Error" in t or "Traceback" in t]


def _figure(explorer) -> str:
    """What the explorer shows: its image data (or text when it shows an error)."""
    images = explorer.locator(".widget-output img")
    if images.count():
        return images.last.get_attribute("src") or ""
    return explorer.locator(".widget-output").inner_text()


def _wait_change(explorer, before: str, timeout_s: float) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        now = _figure(explorer)
        if now and now != before:
            return True
        explorer.page.wait_for_timeout(500)
    return False


def _move_widgets(page, report: NotebookReport, out: Path) -> None:
    """Move every slider, dropdown and text box of the notebook's explorer; check redraws."""
    explorer = page.locator(".widget-vbox").filter(has=page.locator(".widget-output")).last
    explorer.wait_for(timeout=WIDGET_TIMEOUT_S * 1000)
    explorer.scroll_into_view_if_needed()
    controls = [
        ("slider", explorer.locator(".widget-slider .noUi-handle")),
        ("dropdown", explorer.locator(".widget-dropdown select")),
        ("text", explorer.locator(".widget-text input")),
    ]
    for kind, found in controls:
        for i in range(found.count()):
            control = found.nth(i)
            before = _figure(explorer)
            if kind == "slider":
                control.focus()
                control.press("End")
            elif kind == "dropdown":
                options = control.locator("option")
                current = control.input_value()
                values = [options.nth(j).get_attribute("value") for j in range(options.count())]
                control.select_option([v for v in values if v != current][-1])
            else:
                control.fill("blue square")
                control.press("Enter")
            changed = _wait_change(explorer, before, WIDGET_TIMEOUT_S)
            shot = out / f"{report.name}_{kind}{i}.png"
            explorer.screenshot(path=str(shot))
            report.screenshots.append(shot.name)
            report.widgets.append({"kind": kind, "index": i, "figure_changed": changed})


def check_notebook(browser, url: str, token: str, path: Path, out: Path) -> NotebookReport:
    """Open, run and exercise one notebook; returns what was seen."""
    report = NotebookReport(path.stem, expects_widgets="if INTERACTIVE" in path.read_text())
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on(
        "console",
        lambda msg: (
            report.console_errors.append(msg.text)
            if msg.type == "error" and not any(b in msg.text for b in BENIGN_CONSOLE)
            else None
        ),
    )
    page.on("pageerror", lambda error: report.console_errors.append(str(error)))
    start = time.time()
    # a workspace of its own, reset: only this notebook is open
    page.goto(f"{url}/lab/workspaces/{path.stem}/tree/{path.name}?reset&token={token}")
    page.locator(".jp-Notebook:visible").first.wait_for(timeout=120_000)
    page.locator(".jp-Notebook-ExecutionIndicator, .jp-Toolbar-kernelStatus").first.wait_for(
        timeout=120_000
    )
    page.wait_for_timeout(3000)  # the kernel starts
    _run_all(page, RUN_TIMEOUT_S)
    report.cell_errors = _cell_errors(page)
    if report.expects_widgets:
        _move_widgets(page, report, out)
    shot = out / f"{report.name}.png"
    page.screenshot(path=str(shot), full_page=False)
    report.screenshots.insert(0, shot.name)
    report.seconds = time.time() - start
    page.close()
    return report


def run_browser_check(
    only: list[str] | None, out: Path, chromium: str | None = None
) -> list[NotebookReport]:
    """Every (or ``only`` the named) notebook through the browser; report written to ``out``."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium(chromium)
    out.mkdir(parents=True, exist_ok=True)
    work = prepare_notebooks(only, out / "work")
    reports = []
    with jupyterlab(out / "work", out) as (url, token), sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            for path in work:
                print(f"[browser] {path.stem}", flush=True)
                reports.append(check_notebook(browser, url, token, path, out))
        finally:
            browser.close()
    (out / "report.json").write_text(
        json.dumps([{**asdict(r), "ok": r.ok} for r in reports], indent=2)
    )
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", help="notebook names (without .ipynb)")
    parser.add_argument("--out", type=Path, default=BUILD_DIR / "browser")
    parser.add_argument("--chromium", default=None, help="Chromium executable")
    args = parser.parse_args(argv)
    reports = run_browser_check(args.only, args.out.resolve(), args.chromium)
    for r in reports:
        widgets = ", ".join(
            f"{w['kind']}{w['index']}:{'redrew' if w['figure_changed'] else 'NO CHANGE'}"
            for w in r.widgets
        )
        print(
            f"[browser] {r.name}: {'ok' if r.ok else 'FAILED'} in {r.seconds:.0f} s; widgets "
            f"{widgets or 'none found'}; cell errors {len(r.cell_errors)}; console errors "
            f"{len(r.console_errors)}"
        )
        for message in r.cell_errors + r.console_errors:
            print(f"    {message[:300]}")
    print(f"[browser] screenshots and report.json in {args.out}")
    return 0 if reports and all(r.ok for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
