"""Serving figures: `/v1/embeddings` against the offline int8 encoder, single-query latency, chat tokens/s,
and a blue/green switch under load.

A `fintune serve --workers 0` process on loopback (embedded PostgreSQL, its own $FINTUNE_HOME), and this
process as the client. Texts are passages of the shared 10-K corpus.
(a) docs/s at batch 32: the offline `OnnxEmbedder` (int8 export of MiniLM) encoding batches of 32 in this
    process, then the same batches as POST /v1/embeddings from 1 client and from 4 concurrent clients
    (dynamic batching joins their requests), interleaved over `--rounds`.
(b) one text per request, sequential: p50/p95 latency over HTTP and offline.
(c) /v1/chat/completions: SmolLM2 and SmolLM2 + a LoRA adapter, greedy, `--max-tokens` new tokens: tokens/s.
(d) a deployment bound to a collection of `--switch-docs` passages switches from the int8 export to the
    PyTorch model (re-embedding the collection) while 2 clients call embeddings and search: its seconds,
    the requests served meanwhile, and the failures.

    .venv/bin/python benchmarks/serving.py [--docs 1024] [--rounds 3] [--switch-docs 500] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line

BATCH = 32


def passages(n: int) -> list[dict[str, Any]]:
    from fintune.data.beir import load_beir
    from fintune.data.tasks import get_task

    corpus = load_beir(get_task("financial_qa_10k").path("dev"), "dev").corpus
    return [corpus[d] for d in list(corpus)[:n]]


def start_server(root: Path, home: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FINTUNE_HOME": str(home)}
    command = [
        sys.executable,
        "-m",
        "fintune",
        "serve",
        "--port",
        str(port),
        "--workers",
        "0",
        "--data-root",
        str(root),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"fintune serve did not start: {process.stderr.read() if process.stderr else ''}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def embeddings_throughput(url: str, model: str, texts: list[str], encoder: Any, rounds: int) -> dict[str, Any]:
    batches = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]
    http = httpx.Client(base_url=url, timeout=300)
    post = lambda b: http.post("/v1/embeddings", json={"model": model, "input": b}).raise_for_status()  # noqa: E731
    post(batches[0])  # the server loads the model
    figures: dict[str, list[float]] = {"offline": [], "http_1_client": [], "http_4_clients": []}
    for _ in range(rounds):
        start = time.perf_counter()
        for b in batches:
            encoder.encode(b, batch_size=BATCH)
        figures["offline"].append(len(texts) / (time.perf_counter() - start))
        start = time.perf_counter()
        for b in batches:
            post(b)
        figures["http_1_client"].append(len(texts) / (time.perf_counter() - start))
        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(post, batches))
        figures["http_4_clients"].append(len(texts) / (time.perf_counter() - start))
    out = {k: round(statistics.median(v), 1) for k, v in figures.items()}
    out["http_1_client_vs_offline"] = round(out["http_1_client"] / out["offline"], 3)
    out["http_4_clients_vs_offline"] = round(out["http_4_clients"] / out["offline"], 3)
    return out


def single_latency(url: str, model: str, texts: list[str], encoder: Any) -> dict[str, float]:
    http = httpx.Client(base_url=url, timeout=60)
    over_http, offline = [], []
    for text in texts:
        start = time.perf_counter()
        http.post("/v1/embeddings", json={"model": model, "input": text}).raise_for_status()
        over_http.append(1000 * (time.perf_counter() - start))
        start = time.perf_counter()
        encoder.encode([text])
        offline.append(1000 * (time.perf_counter() - start))
    return {
        "http_p50_ms": round(pct(over_http, 50), 2), "http_p95_ms": round(pct(over_http, 95), 2),
        "offline_p50_ms": round(pct(offline, 50), 2), "offline_p95_ms": round(pct(offline, 95), 2),
    }  # fmt: skip


def make_adapter(folder: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from fintune.models.resolve import resolve_model

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(resolve_model("smollm2")), dtype=torch.float32)
    config = LoraConfig(r=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(folder)
    return folder


def chat_speed(url: str, model: str, max_tokens: int, prompts: list[str]) -> dict[str, float]:
    http = httpx.Client(base_url=url, timeout=600)
    body = lambda p: {"model": model, "messages": [{"role": "user", "content": p}], "max_tokens": max_tokens}  # noqa: E731
    http.post("/v1/chat/completions", json=body("warm up")).raise_for_status()
    tokens, seconds = 0, 0.0
    for prompt in prompts:
        start = time.perf_counter()
        response = http.post("/v1/chat/completions", json=body(prompt)).raise_for_status().json()
        seconds += time.perf_counter() - start
        tokens += response["usage"]["completion_tokens"]
    return {"completion_tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}


def switch_under_load(url: str, root: Path, int8: Path, docs: list[dict[str, Any]]) -> dict[str, Any]:
    from fintune.retrieval.corpus import read_corpus
    from fintune.retrieval.index import index_corpus
    from fintune.retrieval.stores import open_store

    corpus_file = root / "switch-corpus.jsonl"
    corpus_file.write_text("".join(json.dumps(d) + "\n" for d in docs))
    store_dir = root / "switch-store"
    store = open_store(str(store_dir))
    index_corpus(store, "tenk", read_corpus(corpus_file), model=str(int8), progress=False)
    store.close()
    http = httpx.Client(base_url=url, timeout=600)
    http.post("/v1/deployments", json={"name": "bench", "kind": "embedding", "model": str(int8), "collections": [
        {"store": str(store_dir), "collection": "tenk", "corpus": str(corpus_file)}]}).raise_for_status()  # fmt: skip
    served: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def load(i: int) -> None:
        client = httpx.Client(base_url=url, timeout=600)
        while not stop.is_set():
            if i % 2:
                r = client.post("/v1/embeddings", json={"model": "bench", "input": "What was the revenue?"})
            else:
                r = client.post("/v1/search", json={"deployment": "bench", "collection": "tenk", "query": "revenue"})
            served.append((time.perf_counter(), r.status_code, r.headers.get("X-Fintune-Model-Version", "")))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    time.sleep(1)
    start = time.perf_counter()
    result = http.post("/v1/deployments/bench/switch", json={"version": "v2", "model": "minilm"}).raise_for_status()
    end = time.perf_counter()
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    during = [s for s in served if start <= s[0] <= end]
    return {
        "docs_reembedded": len(docs),
        "switch_seconds": round(end - start, 2),
        "server_switch_seconds": result.json()["seconds"],
        "requests_during_switch": len(during),
        "failed_requests": sum(1 for s in served if s[1] != 200),
        "requests_in_all": len(served),
        "versions_served": sorted({s[2] for s in served}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-texts", type=int, default=100)
    parser.add_argument("--switch-docs", type=int, default=500)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    print(machine_line(), file=sys.stderr)
    from fintune.embed.export import export_onnx
    from fintune.embed.onnx_model import OnnxEmbedder

    with tempfile.TemporaryDirectory(prefix="fintune-serving-bench-") as tmp:
        root, home = Path(tmp) / "data", Path(tmp) / "home"
        root.mkdir()
        docs = passages(max(args.docs, args.switch_docs))
        texts = [d.get("text", "") for d in docs[: args.docs]]
        int8 = root / "minilm-int8"
        export_onnx("minilm", int8, quantize="int8")
        adapter = make_adapter(root / "adapter")
        encoder = OnnxEmbedder(int8)
        process, url = start_server(root, home)
        try:
            results: dict[str, Any] = {"machine": machine_line()}
            results["embeddings_batch32_docs_per_s"] = embeddings_throughput(
                url, str(int8), texts, encoder, args.rounds
            )
            results["single_query"] = single_latency(url, str(int8), texts[: args.latency_texts], encoder)
            prompts = ["What is EBITDA?", "Explain a 10-K in one sentence.", "Is a rising yield curve good?"]
            results["chat_smollm2"] = chat_speed(url, "smollm2", args.max_tokens, prompts)
            results["chat_smollm2_adapter"] = chat_speed(url, str(adapter), args.max_tokens, prompts)
            results["switch"] = switch_under_load(url, root, int8, docs[: args.switch_docs])
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
