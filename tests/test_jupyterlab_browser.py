"""The threshold explorer in a real JupyterLab, driven by headless Chromium.

Starts JupyterLab on loopback (fresh HOME and Jupyter dirs, a token, a temp copy of the
notebooks), runs every cell of ``threshold_explorer.ipynb``, checks that the explorer widget is
readable (every label and slider readout shows its whole text, uncovered; no two x tick labels
of its chart overlap or leave the chart), edits the first threshold slider's readout and waits
for the "alerts would fire" label to change. A screenshot of the widget is kept as a test
artifact (``<pytest basetemp>/screenshots/jupyterlab-explorer.png``). Skipped when
chromium is missing, unless ``CI`` is set (then it fails; see ``tests/fixtures/browser.py``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    pytest.importorskip("jupyterlab")
    nbformat = pytest.importorskip("nbformat")
    root = tmp_path / "root"
    shutil.copytree(NOTEBOOKS, root)
    nb = nbformat.read(root / "threshold_explorer.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source += "\nn_days = 20\ndegrade_at = 12\nbatch_size = 300\n"  # keep it quick
    nbformat.write(nb, root / "threshold_explorer.ipynb")
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "IPYTHONDIR": str(home / "ipython")}
    news = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')  # no "get Jupyter news?" toast over the widgets
    port, token = _free_port(), secrets.token_hex(16)
    log = (tmp_path / "jupyterlab.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.open_browser=False",
         "--allow-root", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=None"],
        env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield base, token, home
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


#: Reads, in the page, every label / readout of the explorer widget (text, whether its text is
#: cut, whether something covers it) and the boxes of its chart's x tick labels.
_LAYOUT_JS = """() => {
  const count = document.querySelector('.perfkit-alert-count');
  const root = count.closest('.widget-vbox') || count.parentElement;
  const labels = [];
  for (const el of root.querySelectorAll('.widget-label, .widget-readout')) {
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden' || !el.textContent.trim()) { continue; }
    el.scrollIntoView({block: 'center', inline: 'center'});
    const r = el.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    let clipped = null;  // an ancestor that hides part of the label (overflow other than visible)
    for (let a = el.parentElement; a && !clipped; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') {
        const b = a.getBoundingClientRect();
        if (r.left < b.left - 1 || r.right > b.right + 1) { clipped = a.className || a.tagName; }
      }
    }
    labels.push({text: el.textContent.trim(), cls: el.className, scroll: el.scrollWidth, client: el.clientWidth,
                 width: r.width, height: r.height, covered: !(hit && (hit === el || el.contains(hit))), clipped});
  }
  const svg = root.querySelector('.perfkit-chart-static svg');
  const box = svg ? svg.getBoundingClientRect() : null;
  const ticks = [];
  if (svg) {
    for (const axis of svg.querySelectorAll('g.role-axis[aria-label^="X-axis"]')) {
      for (const t of axis.querySelectorAll('g.role-axis-label text')) {
        if (t.getAttribute('opacity') === '0' || getComputedStyle(t).opacity === '0') { continue; }  // dropped by Vega
        const r = t.getBoundingClientRect();
        if (t.textContent.trim()) { ticks.push({text: t.textContent.trim(), left: r.left, right: r.right}); }
      }
    }
  }
  return {labels, ticks, svg: box && {left: box.left, right: box.right}};
}"""


def _assert_readable(layout: dict) -> None:
    """Every widget label whole and uncovered; x tick labels inside the chart, none overlapping."""
    labels = layout["labels"]
    texts = {lab["text"] for lab in labels}
    for expected in ("moderate from", "critical from", "cooldown (hours)", "alpha", "statistical gating",
                     "chart metric", "config file"):
        assert expected in texts, f"label {expected!r} not shown; labels: {sorted(texts)}"
    assert any(t.endswith(" threshold") for t in texts), sorted(texts)
    for lab in labels:
        assert lab["width"] > 0 and lab["height"] > 0, f"label {lab['text']!r} has no size"
        assert lab["scroll"] <= lab["client"] + 1, \
            f"label {lab['text']!r} is cut: needs {lab['scroll']} px, has {lab['client']} px"
        assert not lab["covered"], f"label {lab['text']!r} is covered by another element"
        assert lab["clipped"] is None, f"label {lab['text']!r} is clipped by {lab['clipped']!r}"
    ticks = sorted(layout["ticks"], key=lambda t: t["left"])
    assert len(ticks) >= 2, f"the explorer chart has no x tick labels: {ticks}"
    box = layout["svg"]
    for t in ticks:
        assert box["left"] - 0.5 <= t["left"] and t["right"] <= box["right"] + 0.5, \
            f"x label {t['text']!r} leaves the chart ({t['left']:.1f}-{t['right']:.1f} vs {box})"
    for a, b in zip(ticks, ticks[1:], strict=False):
        assert a["right"] <= b["left"] + 0.5, \
            f"x labels {a['text']!r} and {b['text']!r} overlap ({a['right']:.1f} > {b['left']:.1f})"


def test_threshold_slider_updates_the_alert_count(browser_chromium_path, jupyterlab, tmp_path_factory):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    base, token, home = jupyterlab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(browser_chromium_path), args=CHROMIUM_ARGS,
                                     env={"HOME": str(home), "PATH": os.environ.get("PATH", "")})
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/threshold_explorer.ipynb?token={token}")
            page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
            # JupyterLab may ask which kernel to start: take the proposed python3
            accept = page.locator(".jp-Dialog .jp-mod-accept")
            try:
                accept.wait_for(timeout=15_000)
                accept.click()
            except PlaywrightTimeout:
                pass
            page.get_by_text("Python 3 (ipykernel) | Idle").first.wait_for(timeout=60_000)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            label = page.locator(".perfkit-alert-count")
            label.first.wait_for(timeout=90_000)
            page.wait_for_function(
                "() => { const e = document.querySelector('.perfkit-alert-count');"
                " return e && /would fire/.test(e.textContent); }", timeout=90_000)
            # the cells after the display move sliders from code; wait for the last cell
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                ".some(e => /alert_cooldown_hours: 48/.test(e.textContent))", timeout=90_000)
            before = label.first.inner_text()
            layout = page.evaluate(_LAYOUT_JS)
            shot = tmp_path_factory.getbasetemp() / "screenshots" / "jupyterlab-explorer.png"
            shot.parent.mkdir(exist_ok=True)
            # the widget's top (sliders, count, chart) in the viewport: what a reader sees first
            page.evaluate("() => document.querySelector('.perfkit-alert-count').closest('.widget-vbox')"
                          ".scrollIntoView({block: 'start'})")
            page.screenshot(path=str(shot))
            print(f"screenshot: {shot}")

            readout = page.locator(".widget-slider .widget-readout").first
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("0.400")
            page.keyboard.press("Enter")
            page.wait_for_function(
                "(before) => { const e = document.querySelector('.perfkit-alert-count');"
                " return e && e.textContent.trim() !== before.trim(); }", arg=before, timeout=60_000)
            after = label.first.inner_text()
        except Exception:
            shot = home.parent / "jupyterlab-failure.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            raise
        finally:
            browser.close()
    _assert_readable(layout)
    assert "would fire" in after and after != before
