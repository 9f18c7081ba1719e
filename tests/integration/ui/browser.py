"""Headless Chromium for the UI tests: Debian's package as Playwright's browser (no download at run time)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

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
TABLE_ROWS = ".virtual-row:visible"  # Gradio 6 draws a Dataframe's body as div rows (role row, cells gridcell)


def artefacts_folder(tmp_path: Path) -> Path:
    """Where screenshots go: FINTUNE_TEST_ARTEFACTS (docs/ for the README's pictures, CI's artefacts), else tmp."""
    return Path(os.environ.get("FINTUNE_TEST_ARTEFACTS") or tmp_path)


@contextmanager
def browser_page(artefacts: Path, failure: str) -> Iterator[Any]:
    """A headless Chromium page; on failure its screenshot and trace are kept as `failure`.png / -trace.zip."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (CI installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.tracing.start(screenshots=True, snapshots=True)
        page = context.new_page()
        try:
            yield page
        except Exception:
            artefacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artefacts / f"{failure}.png"))
            context.tracing.stop(path=str(artefacts / f"{failure}-trace.zip"))
            raise
        finally:
            browser.close()


def table_rows(page: Any) -> list[list[str]]:
    """The visible Dataframe's body rows as their cells' text."""
    return [[c.inner_text().strip() for c in r.get_by_role("gridcell").all()] for r in page.locator(TABLE_ROWS).all()]
