"""Ask's passage view, and the Deployments tab that only a server adds."""

from __future__ import annotations

import httpx
import pytest

from fintune.errors import UsageError
from fintune.retrieval.stores.base import Hit
from fintune.ui import deployments
from fintune.ui.app import build_app
from fintune.ui.search import collections, parse_filter, passages_html


def test_cited_passages_are_highlighted_and_text_is_escaped() -> None:
    hits = [Hit("d1", 0.91, "Revenue <rose> 5%"), Hit("d2", 0.42, "Costs fell")]
    shown = passages_html(hits, {"d2"})
    first, second = shown.split("<hr>")[:2]
    assert "cited" not in first and "&lt;rose&gt;" in first and "score 0.910" in first
    assert 'class="cited"' in second and "· cited" in second


def test_filters_are_key_value_pairs_by_line_or_comma() -> None:
    assert parse_filter("ticker=AAPL, year=2023\nsector=tech") == {"ticker": "AAPL", "year": "2023", "sector": "tech"}
    assert parse_filter("  ") is None
    with pytest.raises(UsageError, match="expected key=value"):
        parse_filter("AAPL")


def _tab_labels(demo) -> list[str]:
    return [c["props"].get("label") for c in demo.config["components"] if c["type"] in ("tab", "tabitem")]


def test_the_deployments_tab_appears_only_with_a_server() -> None:
    assert "Deployments" not in _tab_labels(build_app())
    assert _tab_labels(build_app("http://127.0.0.1:8000"))[-1] == "Deployments"


def test_server_tasks_are_listed_with_their_deployment(monkeypatch) -> None:
    calls = []

    def fake_get(url: str, headers: dict, timeout: float) -> httpx.Response:
        calls.append((url, headers))
        task = {"id": 4, "kind": "embed", "status": "succeeded", "request": {"deploy": {"name": "search"}}}
        return httpx.Response(200, json={"tasks": [task], "total": 1})

    monkeypatch.setattr(httpx, "get", fake_get)
    table = deployments.list_tasks("http://svc:8000/", "tok")
    assert calls == [("http://svc:8000/v1/fine-tuning/tasks", {"Authorization": "Bearer tok"})]
    assert table.to_dict("records") == [
        {"id": 4, "kind": "embed", "status": "succeeded", "deploy": "search", "created": ""}
    ]
    monkeypatch.setattr(httpx, "get", lambda *a, **k: httpx.Response(401, text="missing or wrong bearer token"))
    with pytest.raises(UsageError, match="HTTP 401: missing or wrong bearer token"):
        deployments.list_tasks("http://svc:8000", "")


def test_a_missing_store_folder_is_reported_not_created(tmp_path) -> None:
    missing = tmp_path / "fintune-store"
    with pytest.raises(UsageError, match=r"no store at .*fintune index --store"):
        collections(str(missing))
    assert not missing.exists()
