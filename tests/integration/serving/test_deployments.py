"""Named deployments against a real PostgreSQL and embedded store, with MiniLM and a changed copy of it:
a switch and a rollback under load fail no request and never mix versions; refusals leave the live
version serving; a second API process follows a switch within two seconds."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.integration.serving.conftest import client
from tests.unit.conftest import build_tiny_bert

pytestmark = pytest.mark.slow

QUERIES = [
    "What was the total revenue?",
    "How much did operating expenses grow?",
    "Who is the chief executive officer?",
    "What risks does the company face from competition?",
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, beir_slice) -> Path:
    """60 real 10-K passages as a corpus, MiniLM changed by noise as a 'tuned' v2, and a 32-dim model."""
    import torch
    from sentence_transformers import SentenceTransformer

    from fintune.models.resolve import resolve_model

    root = tmp_path_factory.mktemp("deploy_data")
    lines = (beir_slice / "corpus.jsonl").read_text().splitlines()[:60]
    (root / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    model = SentenceTransformer(str(resolve_model("minilm")), device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.save(str(root / "minilm-v2"))
    build_tiny_bert(root / "tiny-32")
    return root


def built_store(root: Path, name: str) -> Path:
    from fintune.retrieval.corpus import read_corpus
    from fintune.retrieval.index import index_corpus
    from fintune.retrieval.stores import open_store

    folder = root / name
    store = open_store(str(folder))
    try:
        index_corpus(store, "tenk", read_corpus(root / "corpus.jsonl"), model="minilm", progress=False)
    finally:
        store.close()
    return folder


def create(http, root: Path, store: Path) -> dict:
    body = {
        "name": "tenk-search",
        "kind": "embedding",
        "model": "minilm",
        "collections": [{"store": str(store), "collection": "tenk", "corpus": str(root / "corpus.jsonl")}],
    }
    response = http.post("/v1/deployments", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_switch_and_rollback_under_load_fail_nothing_and_never_mix_versions(serve, data_root, tmp_path) -> None:
    from fintune.embed.model import load_embedder

    store = built_store(data_root, f"store-{tmp_path.name}")
    expected = {
        "v1": load_embedder("minilm").encode(QUERIES, normalize_embeddings=True),
        "v2": load_embedder(str(data_root / "minilm-v2")).encode(QUERIES, normalize_embeddings=True),
    }
    assert np.max(np.sum(expected["v1"] * expected["v2"], axis=1)) < 0.99  # the versions are told apart
    with serve([data_root]) as url:
        http = client(url)
        created = create(http, data_root, store)
        assert created["live"]["collections"] == {"tenk": "tenk_v1"}
        results: list[tuple[str, int, str, object]] = []
        stop = threading.Event()

        def load(worker: int) -> None:
            calls = client(url)
            n = worker
            while not stop.is_set():
                q = n % len(QUERIES)
                if n % 2:
                    r = calls.post("/v1/embeddings", json={"model": "tenk-search", "input": QUERIES[q]})
                    body = r.json()["data"][0]["embedding"] if r.status_code == 200 else r.text
                    results.append(("embed", r.status_code, r.headers.get("X-Fintune-Model-Version", ""), (q, body)))
                else:
                    r = calls.post(
                        "/v1/search",
                        json={"deployment": "tenk-search", "collection": "tenk", "query": QUERIES[q], "k": 3},
                    )
                    body = r.json()["collection"] if r.status_code == 200 else r.text
                    results.append(("search", r.status_code, r.headers.get("X-Fintune-Model-Version", ""), body))
                n += 3
                time.sleep(0.01)

        threads = [threading.Thread(target=load, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            switched = http.post("/v1/deployments/tenk-search/switch",
                                 json={"version": "v2", "model": str(data_root / "minilm-v2")})  # fmt: skip
            assert switched.status_code == 200, switched.text
            assert switched.json()["rebuilt"] == {"tenk": "tenk_v2"}
            time.sleep(1.0)
            rolled = http.post("/v1/deployments/tenk-search/rollback")
            assert rolled.status_code == 200 and rolled.json()["live"] == "v1"
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join()

        failed = [r for r in results if r[1] != 200]
        assert not failed, failed[:3]
        assert {r[2] for r in results} == {"v1", "v2"}  # both versions served during the run
        collection_of = {"v1": "tenk_v1", "v2": "tenk_v2"}
        for kind, _, version, body in results:
            if kind == "search":
                assert body == collection_of[version]  # the query vector's model built the collection searched
            else:
                q, vector = body  # type: ignore[misc]
                own = float(np.dot(vector, expected[version][q]))
                other = float(np.dot(vector, expected["v2" if version == "v1" else "v1"][q]))
                assert own > 0.999 and other < own - 0.005, (version, own, other)

        deployment = http.get("/v1/deployments/tenk-search").json()
        assert (deployment["live"]["version"], deployment["previous"]["version"]) == ("v1", "v2")
        from fintune.retrieval.stores import open_store

        opened = open_store(str(store))
        try:  # the store's own alias follows the deployment: CLI searches see what the API serves
            assert opened.catalog.alias("tenk") == "tenk_v1"
        finally:
            opened.close()


def test_refusals_leave_the_live_version_serving(serve, data_root, tmp_path) -> None:
    store = built_store(data_root, f"store-{tmp_path.name}")
    with serve([data_root]) as url:
        http = client(url)
        create(http, data_root, store)
        before = http.post("/v1/search", json={"deployment": "tenk-search", "collection": "tenk", "query": QUERIES[0]})
        assert before.status_code == 200

        smaller = http.post("/v1/deployments/tenk-search/switch",
                            json={"version": "v2", "model": str(data_root / "tiny-32")})  # fmt: skip
        assert smaller.status_code == 409 and "32-dim" in smaller.json()["detail"]
        failed = [v for v in http.get("/v1/deployments/tenk-search").json()["versions"] if v["version"] == "v2"]
        assert failed and failed[0]["status"] == "failed"
        assert http.post("/v1/deployments/tenk-search/rollback").status_code == 409  # nothing to roll back to
        assert http.post("/v1/deployments/no-such/switch", json={"version": "v1"}).status_code == 404
        assert http.post("/v1/deployments/tenk-search/switch", json={"version": "v9"}).status_code == 404
        unknown = http.post("/v1/search", json={"deployment": "no-such", "collection": "tenk", "query": "x"})
        assert unknown.status_code == 404
        assert http.post("/v1/embeddings", json={"model": "no-such", "input": "x"}).status_code == 404
        again = http.post("/v1/deployments", json={"name": "tenk-search", "kind": "embedding", "model": "minilm"})
        assert again.status_code == 409
        wrong_model = http.post("/v1/deployments", json={
            "name": "other", "kind": "embedding", "model": str(data_root / "minilm-v2"),
            "collections": [{"store": str(store), "collection": "tenk"}],
        })  # fmt: skip
        assert wrong_model.status_code == 409 and "built with" in wrong_model.json()["detail"]

        after = http.post("/v1/search", json={"deployment": "tenk-search", "collection": "tenk", "query": QUERIES[0]})
        assert after.status_code == 200 and after.headers["X-Fintune-Model-Version"] == "v1"
        assert after.json() == before.json()

        hybrid = http.post("/v1/search", json={"deployment": "tenk-search", "collection": "tenk",
                                               "query": QUERIES[0], "hybrid": True, "k": 5})  # fmt: skip
        hits = hybrid.json()["results"][0]["hits"]
        assert hybrid.status_code == 200 and len(hits) == 5 and any("keyword_score" in h for h in hits)
        asked = http.post("/v1/ask", json={"deployment": "tenk-search", "collection": "tenk",
                                           "question": QUERIES[0], "k": 3, "max_tokens": 16})  # fmt: skip
        assert asked.status_code == 200, asked.text
        answer = asked.json()
        top3 = [h["id"] for h in before.json()["results"][0]["hits"][:3]]
        assert [p["id"] for p in answer["passages"]] == top3  # answered from the deployment's own retrieval
        assert asked.headers["X-Fintune-Model-Version"] == "v1" and asked.headers["X-Fintune-LLM-Version"] == "smollm2"
        direct = http.post("/v1/search", json={"store": str(store), "collection": "tenk", "query": QUERIES[0]})
        assert direct.status_code == 200 and direct.json()["results"] == before.json()["results"]
        outside = http.post("/v1/search", json={"store": "postgresql://x@10.0.0.1/db", "collection": "t", "query": "q"})
        assert outside.status_code == 400  # a server the service was not started with is never contacted


def test_a_second_api_process_serves_a_switch_within_two_seconds(serve, data_root, tmp_path) -> None:
    store = built_store(data_root, f"store-{tmp_path.name}")
    with serve([data_root]) as first, serve([data_root]) as second:
        one, two = client(first), client(second)
        create(one, data_root, store)
        body = {"model": "tenk-search", "input": QUERIES[0]}
        assert two.post("/v1/embeddings", json=body).headers["X-Fintune-Model-Version"] == "v1"
        switched = one.post("/v1/deployments/tenk-search/switch",
                            json={"version": "v2", "model": str(data_root / "minilm-v2")})  # fmt: skip
        assert switched.status_code == 200
        start = time.monotonic()
        while two.post("/v1/embeddings", json=body).headers["X-Fintune-Model-Version"] != "v2":
            assert time.monotonic() - start < 2.0, "the second process still serves v1"
            time.sleep(0.05)
        listed = json.loads(two.get("/v1/deployments").text)["deployments"]
        assert [d["live"]["version"] for d in listed] == ["v2"]


def test_off_loopback_every_route_but_healthz_needs_the_token(serve, tmp_path) -> None:
    from tests.integration.serving.conftest import TOKEN

    with serve([tmp_path], token_required=True) as url:
        anonymous, wrong, right = client(url), client(url, "not-the-token"), client(url, TOKEN)
        for path in ("/v1/models", "/v1/deployments", "/v1/fine-tuning/tasks"):
            assert anonymous.get(path).status_code == 401
            assert wrong.get(path).status_code == 401
            assert right.get(path).status_code == 200
        assert anonymous.post("/v1/embeddings", json={"model": "minilm", "input": "x"}).status_code == 401
        assert anonymous.get("/healthz").status_code in (200, 503)  # health needs no token
