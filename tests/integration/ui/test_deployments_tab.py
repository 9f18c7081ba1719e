"""The Deployments tab against a real `fintune serve` (loopback, real PostgreSQL): an embedding deployment of
the real MiniLM, switched to a second version (MiniLM saved again under another folder) and rolled back
through the tab's functions, its served page and its buttons in Chromium, checking what
`GET /v1/deployments/{name}` says after each."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from fintune.errors import UsageError
from fintune.ui import deployments
from tests.integration.serving.conftest import client
from tests.integration.ui.browser import TABLE_ROWS, artefacts_folder, browser_page, table_rows
from tests.unit.ui.conftest import free_port

pytestmark = pytest.mark.slow

NAME = "tenk-embed"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """The data root the server may read: a copy of MiniLM as sentence-transformers saves it (version v2)."""
    from sentence_transformers import SentenceTransformer

    from fintune.models.resolve import resolve_model

    root = tmp_path_factory.mktemp("deploy_tab")
    SentenceTransformer(str(resolve_model("minilm")), device="cpu").save(str(root / "minilm-v2"))
    return root


def test_switch_and_rollback_from_the_tab_move_the_live_version(serve, data_root, tmp_path) -> None:
    from fintune.ui.app import build_app

    v2_model = str(data_root / "minilm-v2")
    with serve([data_root]) as url:
        http = client(url)
        created = http.post("/v1/deployments", json={"name": NAME, "kind": "embedding", "model": "minilm"})
        assert created.status_code == 201, created.text

        table = deployments.list_deployments(url)
        assert table.to_dict("records") == [
            {"name": NAME, "kind": "embedding", "live version": "v1", "previous version": "",
             "live model": "minilm", "status": "ready"}
        ]  # fmt: skip
        assert deployments.version_choices(url, "", NAME) == (["v1"], "v1")

        said = deployments.switch(url, "", NAME, "v2", model=v2_model)
        assert said.startswith(f"{NAME}: v2 is live (previous v1)")
        live = http.get(f"/v1/deployments/{NAME}").json()
        assert (live["live"]["version"], live["live"]["model"], live["previous"]["version"]) == ("v2", v2_model, "v1")
        assert deployments.version_choices(url, "", NAME) == (["v1", "v2"], "v2")

        # the page's own event (what the Rollback button sends), through the served app
        demo = build_app(url)
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, show_error=True, quiet=True)
        try:
            page = Client(f"http://127.0.0.1:{port}/", verbose=False)
            said = page.predict("", NAME, api_name="/rollback_deployment")
            assert said.startswith(f"{NAME}: v1 is live (previous v2)")
            rolled = http.get(f"/v1/deployments/{NAME}").json()
            assert (rolled["live"]["version"], rolled["live"]["model"]) == ("v1", "minilm")
            assert rolled["previous"]["version"] == "v2"
            # the API's refusal reaches the page as its own message
            with pytest.raises(AppError, match="has no ready version 'v9'"):
                page.predict("", NAME, "v9", "", "", api_name="/switch_deployment")
            _screenshot(f"http://127.0.0.1:{port}/", artefacts_folder(tmp_path))
        finally:
            demo.close()

        # switching to the live version changes nothing; an unknown deployment is the API's 404
        assert "already live; nothing changed" in deployments.switch(url, "", NAME, "v1")
        with pytest.raises(UsageError, match=r"HTTP 404: no deployment 'no-such'"):
            deployments.rollback(url, "", "no-such")
        final = http.get(f"/v1/deployments/{NAME}").json()
        assert (final["live"]["version"], final["previous"]["version"]) == ("v1", "v2")


def _screenshot(url: str, artefacts: Path) -> None:
    """The tab in Chromium: a switch to v2 and a rollback to v1 by its buttons (the README's picture)."""
    from playwright.sync_api import expect

    with browser_page(artefacts, "ui-deployments-failure") as page:
        page.goto(url)
        page.get_by_role("tab", name="Deployments").click()
        page.get_by_role("button", name="Refresh", exact=True).click()
        expect(page.locator(TABLE_ROWS).first).to_be_visible(timeout=30_000)
        assert table_rows(page)[0][:4] == [NAME, "embedding", "v1", "v2"]
        version = page.get_by_label("version (pick one")
        expect(version).to_have_value("v1", timeout=15_000)  # the live one, picked with the deployment
        version.click()
        page.get_by_role("option", name="v2", exact=True).click()
        page.get_by_role("button", name="Switch", exact=True).click()
        result = page.get_by_label("result")
        expect(result).to_have_value(re.compile(f"^{NAME}: v2 is live \\(previous v1\\)"), timeout=60_000)
        live_cell = page.locator(TABLE_ROWS).first.get_by_role("gridcell").nth(2)
        expect(live_cell).to_have_text("v2", timeout=15_000)  # the table follows the switch
        assert table_rows(page)[0][2:4] == ["v2", "v1"]
        page.get_by_role("button", name="Rollback", exact=True).click()
        expect(result).to_have_value(re.compile(f"^{NAME}: v1 is live \\(previous v2\\)"), timeout=60_000)
        expect(version).to_have_value("v1", timeout=15_000)  # the picker follows the live version
        expect(live_cell).to_have_text("v1")
        assert table_rows(page)[0][2:4] == ["v1", "v2"]
        page.screenshot(path=str(artefacts / "ui-deployments.png"))
