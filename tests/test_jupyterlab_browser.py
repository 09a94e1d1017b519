"""The threshold explorer in a real JupyterLab, driven by headless Chromium.

Starts JupyterLab on loopback (fresh HOME and Jupyter dirs, a token, a temp copy of the
notebooks), runs every cell of ``threshold_explorer.ipynb``, edits the first threshold
slider's readout and waits for the "alerts would fire" label to change. Skipped when
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


def test_threshold_slider_updates_the_alert_count(browser_chromium_path, jupyterlab):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    base, token, home = jupyterlab
    t0 = time.monotonic()
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
    assert "would fire" in after and after != before
    assert time.monotonic() - t0 < 180
