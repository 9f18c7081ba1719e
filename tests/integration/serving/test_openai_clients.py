"""The openai client and LangChain's OpenAI classes against `fintune serve` on loopback, with the real
default models: embeddings equal fintune's offline vectors; chat answers equal `fintune llm generate`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import random_lora_adapter
from tests.integration.serving.conftest import client

pytestmark = pytest.mark.slow

TEXTS = [
    "Net revenue increased 12% year over year, driven by services.",
    "What were the company's total operating expenses in fiscal 2023?",
    "Goodwill impairment",
]
QUESTION = "Revenue was $120 million and costs were $90 million. What is the profit?"


def offline_generate(model: str | None, adapter: str | None, prompt: str, max_new_tokens: int) -> str:
    """What `fintune llm generate` prints for `prompt` (the same calls as cmd_generate)."""
    from fintune.llm.encode import encode_prompt
    from fintune.llm.generate import generate_batched
    from fintune.llm.inference import load_for_inference
    from fintune.llm.prompts import Example

    lm, tokenizer, settings = load_for_inference(model, adapter)
    ids = encode_prompt(tokenizer, Example(prompt, ""), settings.system_prompt, settings.max_length - max_new_tokens)
    return generate_batched(lm, tokenizer, [ids[0]], max_new_tokens, 1, progress=False).answers[0]


@pytest.fixture(scope="module")
def random_adapter(tmp_path_factory) -> Path:
    """A LoRA adapter on SmolLM2 with random non-zero weights: it answers differently from the base."""
    folder = tmp_path_factory.mktemp("serving_data") / "adapter"
    random_lora_adapter("smollm2", folder, target_modules=["q_proj", "v_proj"], lora_alpha=64)
    return folder


def test_openai_and_langchain_embeddings_equal_the_offline_vectors(serve, tmp_path) -> None:
    import openai
    from langchain_openai import OpenAIEmbeddings

    from fintune.embed.model import load_embedder

    offline = load_embedder("minilm").encode(TEXTS, normalize_embeddings=True)
    with serve([tmp_path]) as url:
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused-on-loopback")
        got = sdk.embeddings.create(model="minilm", input=TEXTS)  # the SDK asks for base64 by default
        vectors = np.array([d.embedding for d in got.data])
        assert vectors.shape == (3, 384)
        assert np.min(np.sum(vectors * offline, axis=1)) > 0.999
        single = sdk.embeddings.create(model="minilm", input=TEXTS[0], encoding_format="float").data[0].embedding
        assert float(np.dot(single, offline[0])) > 0.999

        lc = OpenAIEmbeddings(model="minilm", base_url=url + "/v1", api_key="x", check_embedding_ctx_length=False)
        docs = np.array(lc.embed_documents(TEXTS))
        assert np.min(np.sum(docs * offline, axis=1)) > 0.999
        assert float(np.dot(lc.embed_query(TEXTS[1]), offline[1])) > 0.999

        http = client(url)
        response = http.post("/v1/embeddings", json={"model": "minilm", "input": TEXTS})
        assert response.headers["X-Fintune-Model-Version"] == "minilm"
        assert http.post("/v1/embeddings", json={"model": "no-such-model", "input": "x"}).status_code == 404
        assert http.post("/v1/embeddings", json={"model": "/etc", "input": "x"}).status_code == 400  # outside roots
        too_many = http.post("/v1/embeddings", json={"model": "minilm", "input": ["a"] * 2049})
        assert too_many.status_code == 413
        huge = http.post("/v1/embeddings", json={"model": "minilm", "input": "x" * (2 << 20)})
        assert huge.status_code == 413  # the body limit, before any parsing
        tokens = http.post("/v1/embeddings", json={"model": "minilm", "input": [[1, 2, 3]]})
        assert tokens.status_code == 400 and "token ids" in tokens.text


def test_chat_answers_equal_llm_generate_plain_streamed_and_through_langchain(serve, random_adapter) -> None:
    import openai
    from langchain_openai import ChatOpenAI

    base_answer = offline_generate("smollm2", None, QUESTION, 24)
    tuned_answer = offline_generate(None, str(random_adapter), QUESTION, 24)
    assert base_answer != tuned_answer  # else the adapter test below could not tell them apart
    messages = [{"role": "user", "content": QUESTION}]
    with serve([random_adapter.parent]) as url:
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="unused-on-loopback")
        plain = sdk.chat.completions.create(model="smollm2", messages=messages, max_tokens=24, temperature=0)
        assert plain.choices[0].message.content == base_answer
        assert plain.usage is not None and 0 < plain.usage.completion_tokens <= 24

        streamed = sdk.chat.completions.create(model="smollm2", messages=messages, max_tokens=24, stream=True)
        pieces = [c.choices[0].delta.content or "" for c in streamed]
        assert len([p for p in pieces if p]) > 1  # it really streamed, piece by piece
        assert "".join(pieces) == base_answer

        tuned = sdk.chat.completions.create(model=str(random_adapter), messages=messages, max_tokens=24)
        assert tuned.choices[0].message.content == tuned_answer
        # the adapter and the base share one loaded model: the base still answers as the base
        again = sdk.chat.completions.create(model="smollm2", messages=messages, max_tokens=24)
        assert again.choices[0].message.content == base_answer

        word = base_answer.split()[2]
        stopped = sdk.chat.completions.create(model="smollm2", messages=messages, max_tokens=24, stop=[word])
        assert stopped.choices[0].message.content == base_answer[: base_answer.index(word)].strip()

        lc = ChatOpenAI(model="smollm2", base_url=url + "/v1", api_key="x", temperature=0, max_tokens=24)
        assert lc.invoke(QUESTION).content == base_answer
        assert "".join(str(c.content) for c in lc.stream(QUESTION)) == base_answer


def test_predict_through_an_llm_deployment_switch_and_rollback_fails_nothing(serve, random_adapter) -> None:
    import threading

    from fintune.llm.inference import load_for_inference
    from fintune.llm.predict import predict

    text = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007."
    expected = {}
    for version, (model, adapter) in {"v1": ("smollm2", None), "v2": (None, str(random_adapter))}.items():
        lm, tokenizer, settings = load_for_inference(model, adapter)
        expected[version] = predict(lm, tokenizer, settings, "fpb", [text])[0]
    with serve([random_adapter.parent]) as url:
        http = client(url)
        made = http.post("/v1/deployments", json={"name": "fpb-llm", "kind": "llm", "model": "smollm2"})
        assert made.status_code == 201, made.text
        results: list[tuple[int, str, dict]] = []
        stop = threading.Event()

        def load() -> None:
            calls = client(url)
            while not stop.is_set():
                r = calls.post("/v1/predict", json={"deployment": "fpb-llm", "task": "fpb", "inputs": [text]})
                body = r.json()["predictions"][0] if r.status_code == 200 else {"error": r.text}
                results.append((r.status_code, r.headers.get("X-Fintune-Model-Version", ""), body))

        worker = threading.Thread(target=load)
        worker.start()
        try:
            time.sleep(1.0)
            switched = http.post(
                "/v1/deployments/fpb-llm/switch", json={"version": "v2", "adapter": str(random_adapter)}
            )
            assert switched.status_code == 200, switched.text
            time.sleep(1.5)
            assert http.post("/v1/deployments/fpb-llm/rollback").json()["live"] == "v1"
            time.sleep(1.0)
        finally:
            stop.set()
            worker.join()
    assert all(status == 200 for status, _, _ in results), results[:3]
    assert {version for _, version, _ in results} == {"v1", "v2"}
    for _, version, body in results:
        assert body == expected[version]  # each answer is its own version's


def test_search_of_a_prefixed_collection_equals_the_offline_search(serve, beir_slice, tmp_path) -> None:
    """A collection indexed with --add-financial-prefix: the API prefixes its queries (through the batcher)
    exactly as `fintune search` does, so ids and scores match; without the prefix the scores would differ."""
    from fintune.retrieval.corpus import read_corpus
    from fintune.retrieval.index import index_corpus
    from fintune.retrieval.search import open_collection
    from fintune.retrieval.stores import open_store

    lines = (beir_slice / "corpus.jsonl").read_text().splitlines()[:40]
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    folder = tmp_path / "store"
    store = open_store(str(folder))
    try:
        corpus = read_corpus(tmp_path / "corpus.jsonl")
        index_corpus(store, "tenk", corpus, model="minilm", add_financial_prefix=True, progress=False)
        offline = open_collection(store, "tenk").search(TEXTS[:2], k=5)
    finally:
        store.close()
    with serve([tmp_path]) as url:
        body = {"store": str(folder), "collection": "tenk", "query": TEXTS[:2], "k": 5}
        response = client(url).post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    for want, got in zip(offline, response.json()["results"], strict=True):
        assert [h["id"] for h in got["hits"]] == [h.id for h in want]
        assert np.allclose([h["score"] for h in got["hits"]], [h.score for h in want], atol=1e-4)
