"""The Deployments tab's calls: what it sends to the serving API and how the API's refusals read."""

from __future__ import annotations

import httpx
import pytest

from fintune.errors import UsageError
from fintune.ui import deployments


def test_switch_sends_only_the_fields_given_and_reports_the_move(monkeypatch) -> None:
    sent = []

    def fake_post(url: str, headers: dict, json: dict | None, timeout: float) -> httpx.Response:
        sent.append((url, headers, json))
        result = {"deployment": "d", "live": "v2", "previous": "v1", "switched": True, "seconds": 2.34,
                  "rebuilt": {"tenk": "tenk_v2"}}  # fmt: skip
        return httpx.Response(200, json=result)

    monkeypatch.setattr(httpx, "post", fake_post)
    said = deployments.switch("http://svc/", "tok", "d", " v2 ", model=" /m/v2 ")
    assert sent == [("http://svc/v1/deployments/d/switch", {"Authorization": "Bearer tok"},
                     {"version": "v2", "model": "/m/v2"})]  # fmt: skip
    assert said == "d: v2 is live (previous v1), in 2.3 s; rebuilt tenk -> tenk_v2"


def test_refusals_read_as_the_apis_message_and_validation_errors_name_the_field(monkeypatch) -> None:
    invalid = {"detail": [{"loc": ["body", "version"], "msg": "String should match pattern", "type": "x"}]}
    monkeypatch.setattr(httpx, "post", lambda *a, **k: httpx.Response(422, json=invalid))
    with pytest.raises(UsageError, match=r"/v1/deployments/d/switch: HTTP 422: version: String should match"):
        deployments.switch("http://svc", "", "d", "v 2")
    with pytest.raises(UsageError, match="pick a deployment"):
        deployments.rollback("http://svc", "", "")


def test_the_table_shows_live_and_previous_versions_and_the_adapter(monkeypatch) -> None:
    listed = {"deployments": [
        {"name": "qa", "kind": "llm", "live": {"version": "v3", "model": "smollm2", "adapter": "/a/v3",
                                               "status": "ready"}, "previous": {"version": "v2"}},
        {"name": "emb", "kind": "embedding", "live": {"version": "v1", "model": "minilm", "status": "ready"},
         "previous": None},
    ]}  # fmt: skip
    monkeypatch.setattr(httpx, "get", lambda *a, **k: httpx.Response(200, json=listed))
    rows = deployments.list_deployments("http://svc").values.tolist()
    assert rows == [
        ["qa", "llm", "v3", "v2", "smollm2 + /a/v3", "ready"],
        ["emb", "embedding", "v1", "", "minilm", "ready"],
    ]
