"""What the API refuses before it touches the database: tokens, paths, configs, sizes.

The app is used without its lifespan (no `with TestClient(...)`), so no database is opened: every
answer here comes from checks that run first."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fintune.service.app import MAX_BODY_BYTES, PREFIX, Settings, create_app

TOKEN = "unit-test-token-0123456789"


@pytest.fixture
def client(tmp_path):
    (tmp_path / "data" / "beir").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (tmp_path / "data" / "link").symlink_to(tmp_path / "secret")
    settings = Settings("postgresql://nobody@127.0.0.1:1/none", TOKEN, tmp_path, [tmp_path / "data"], workers=0)
    return TestClient(create_app(settings), raise_server_exceptions=False)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}]
)
def test_missing_or_wrong_token_is_401(client, headers):
    for method, path in [("get", PREFIX), ("get", f"{PREFIX}/1"), ("post", f"{PREFIX}/1/cancel")]:
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
    response = client.post(PREFIX, json={"kind": "embedding", "data": "beir"}, headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("../secret", "contains '..'"),
        ("/etc", "outside the data roots"),
        ("link", "leads outside the data roots"),
        ("nothere", "does not exist under the data roots"),
    ],
)
def test_paths_outside_the_roots_are_400(client, data, message):
    response = client.post(PREFIX, json={"kind": "embedding", "data": data}, headers=AUTH)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert response.json()["detail"].startswith("config.data: ")


def test_bad_config_is_422_with_every_field_path(client):
    body = {"kind": "embedding", "data": "beir", "config": {"epochs": -1, "batch_size": 0, "scheduler": "steplr"}}
    response = client.post(PREFIX, json=body, headers=AUTH)
    assert response.status_code == 422
    locs = [tuple(d["loc"]) for d in response.json()["detail"]]
    assert ("body", "config", "epochs") in locs and ("body", "config", "batch_size") in locs


def test_unknown_kind_and_unknown_request_keys_are_422(client):
    response = client.post(PREFIX, json={"kind": "vision", "data": "beir"}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "kind"]
    assert "known: embedding, llm" in response.json()["detail"][0]["msg"]
    response = client.post(PREFIX, json={"kind": "embedding", "output": "/tmp/x"}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "output"]


def test_oversized_bodies_are_413(client):
    body = {"kind": "embedding", "data": "beir", "metadata": {"note": "x" * MAX_BODY_BYTES}}
    assert client.post(PREFIX, json=body, headers=AUTH).status_code == 413


def test_healthz_needs_no_token_and_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "database unavailable"


def test_openapi_lists_the_task_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {PREFIX, f"{PREFIX}/{{task_id}}", f"{PREFIX}/{{task_id}}/cancel", f"{PREFIX}/{{task_id}}/restart"} <= set(
        paths
    )
    assert f"{PREFIX}/{{task_id}}/events" in paths
