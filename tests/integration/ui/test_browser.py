"""`fintune ui` in a real headless Chromium (Debian's package, no browser download): the page and its tabs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.unit.ui.conftest import free_port

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_BUDGET_S = 60  # the promise: HTTP 200 on / within a minute of `fintune ui`


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """`fintune ui --port P` as a user starts it; the URL once `/` answers 200."""
    port = free_port()
    env = os.environ | {"FINTUNE_HOME": str(tmp_path_factory.mktemp("home"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "fintune", "ui", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_BUDGET_S
    try:
        while True:
            assert process.poll() is None, f"fintune ui exited with {process.returncode}"
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"no HTTP 200 on {url} within {START_BUDGET_S} s"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_the_page_shows_the_four_tabs(ui_server, tmp_path) -> None:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (CI installs it)")
    from playwright.sync_api import expect, sync_playwright

    artefacts = Path(os.environ.get("FINTUNE_TEST_ARTEFACTS") or tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context()
        context.tracing.start(screenshots=True, snapshots=True)
        page = context.new_page()
        try:
            page.goto(ui_server)
            for name in ("Playground", "Search", "Train", "Evaluate"):
                expect(page.get_by_role("tab", name=name)).to_be_visible(timeout=30_000)
            expect(page.get_by_role("tab", name="Deployments")).to_have_count(0)  # only with --server
            page.get_by_role("tab", name="Train").click()
            expect(page.get_by_role("button", name="Stop")).to_be_visible()
            artefacts.mkdir(parents=True, exist_ok=True)
            for name in ("Playground", "Search", "Train", "Evaluate"):  # the README's pictures of each tab
                page.get_by_role("tab", name=name).click()
                page.screenshot(path=str(artefacts / f"ui-{name.lower()}.png"))
        except Exception:
            artefacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artefacts / "ui-failure.png"))
            context.tracing.stop(path=str(artefacts / "ui-trace.zip"))
            raise
        finally:
            browser.close()


def test_train_shows_progress_reattaches_after_a_reload_and_stop_leaves_nothing(ui_server, tmp_path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.unit.conftest import build_tiny_bert
    from tests.unit.ui.conftest import tiny_beir_folder

    tiny_bert_dir = build_tiny_bert(tmp_path / "tiny_bert")  # mechanics only: a real model would just be slower

    beir, output = tiny_beir_folder(tmp_path / "beir"), tmp_path / "out"
    artefacts = Path(os.environ.get("FINTUNE_TEST_ARTEFACTS") or tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        try:
            page.goto(ui_server)
            page.get_by_role("tab", name="Train").click()
            page.get_by_label("data (BEIR folder").fill(str(beir))
            page.get_by_label("output folder").fill(str(output))
            page.get_by_label("overrides").fill(f"--model {tiny_bert_dir} --no-eval --epochs 50 --batch-size 8")
            page.get_by_role("button", name="Start").click()
            job = page.get_by_label("job")
            expect(job).not_to_have_value("", timeout=15_000)
            job_id = job.input_value()
            expect(page.get_by_text("running · step")).to_be_visible(timeout=90_000)
            expect(page.get_by_text("/100")).to_be_visible(timeout=30_000)  # 50 epochs x 2 batches
            page.reload()  # the job runs on; the new page re-attaches to it
            page.get_by_role("tab", name="Train").click()
            expect(page.get_by_label("job")).to_have_value(job_id, timeout=15_000)
            page.screenshot(path=str(artefacts / "ui-train-running.png"))
            page.get_by_role("button", name="Stop").click()
            expect(page.get_by_text('"process_gone": true')).to_be_visible(timeout=30_000)
            expect(page.get_by_text('"output_exists": false')).to_be_visible()
            expect(page.get_by_text("stopped · step")).to_be_visible(timeout=10_000)
        except Exception:
            artefacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artefacts / "ui-train-failure.png"))
            raise
        finally:
            browser.close()
    assert not output.exists() and not list(tmp_path.glob(".out.tmp-*"))
