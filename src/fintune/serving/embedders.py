"""Embedding models held in memory, and the dynamic batcher that groups concurrent requests.

Requests that arrive within a few milliseconds of each other are encoded in one call: the encoder sorts
texts by length and forms token-budget batches itself (`OnnxEmbedder`, sentence-transformers), so one
call over many small requests pads and dispatches far less than one call per request. Hand-written
because neither FastAPI nor the encoders batch across requests."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from fintune.models.resolve import model_key

InputType = Literal["query", "document", "plain"]

MAX_WAIT_S = 0.004  # how long the first request of a batch waits for company
MAX_BATCH_TEXTS = 256  # texts per encode call: a bigger call only delays the requests at its end


@dataclass
class _Pending:
    texts: list[str]
    kind: InputType
    future: asyncio.Future[np.ndarray]


@dataclass
class Embedder:
    """One loaded model and the queue of requests waiting for it."""

    key: str  # the resolved model (folder or hub id): what collections record
    model: Any  # SentenceTransformer or OnnxEmbedder (same encode API)
    queue: list[_Pending] = field(default_factory=list)
    wakeup: asyncio.Event | None = None
    runner: asyncio.Task[None] | None = None
    # A fast tokenizer is not thread-safe: each call sets the shared padding/truncation state, so a token
    # count on one thread can switch padding off under an encode on another (ragged batch, HTTP 500).
    # Every use of the model goes through this lock; encoding already uses every core, so nothing is lost.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_seq_length(self) -> int:
        return int(getattr(self.model, "max_seq_length", 512) or 512)

    def encode_now(self, texts: list[str], kind: InputType) -> np.ndarray:
        """Unit-length vectors (float32), blocking: the same calls the offline commands make."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encode = {"query": self.model.encode_query, "document": self.model.encode_document}.get(kind, self.model.encode)
        with self.lock:
            vectors = encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the model reads for `texts` (special tokens included, truncated as it truncates); 0 without a
        tokenizer (an ONNX export counts none)."""
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            return 0
        with self.lock:
            encoded = tokenizer(texts, add_special_tokens=True, truncation=True)
        return sum(len(ids) for ids in encoded["input_ids"])

    async def encode(self, texts: list[str], kind: InputType = "plain") -> np.ndarray:
        """Vectors for `texts`, encoded together with whatever other requests arrive meanwhile."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self.queue.append(_Pending(texts, kind, future))
        if self.wakeup is None:
            self.wakeup = asyncio.Event()
        self.wakeup.set()
        if self.runner is None or self.runner.done():
            self.runner = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        assert self.wakeup is not None
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            await asyncio.sleep(MAX_WAIT_S)
            while self.queue:
                batch = self._take()
                try:
                    vectors = await asyncio.to_thread(self._encode_batch, batch)
                except Exception as exc:  # every request of the batch gets the error, none hangs
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    continue
                for pending, out in zip(batch, vectors, strict=True):
                    if not pending.future.done():  # a client that went away cancelled its future
                        pending.future.set_result(out)

    def _take(self) -> list[_Pending]:
        """Requests from the head of the queue up to MAX_BATCH_TEXTS texts (at least one request)."""
        taken: list[_Pending] = []
        count = 0
        while self.queue and (not taken or count + len(self.queue[0].texts) <= MAX_BATCH_TEXTS):
            pending = self.queue.pop(0)
            taken.append(pending)
            count += len(pending.texts)
        return taken

    def _encode_batch(self, batch: list[_Pending]) -> list[np.ndarray]:
        """One encode call per input type; each request's rows cut back out in order."""
        results: list[np.ndarray | None] = [None] * len(batch)
        for kind in dict.fromkeys(p.kind for p in batch):
            members = [i for i, p in enumerate(batch) if p.kind == kind]
            vectors = self.encode_now([t for i in members for t in batch[i].texts], kind)
            start = 0
            for i in members:
                n = len(batch[i].texts)
                results[i] = vectors[start : start + n]
                start += n
        return [r for r in results if r is not None]


class EmbedderPool:
    """Models by resolved name, each loaded once per process (thread-safe: loads happen in threads)."""

    def __init__(self) -> None:
        self._models: dict[str, Embedder] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Embedder:
        """The loaded model for an alias, folder, hub id or ONNX export (loads it on first use)."""
        from fintune.embed.model import load_embedder

        key = model_key(name)
        with self._lock:
            found = self._models.get(key)
            if found is None:
                found = Embedder(key, load_embedder(key))
                found.encode_now(["warm-up"], "plain")  # first call pays one-off set-up costs, not a client
                self._models[key] = found
            return found

    def loaded(self) -> list[str]:
        return list(self._models)

    def drop(self, name: str) -> None:
        with self._lock:
            self._models.pop(model_key(name), None)
