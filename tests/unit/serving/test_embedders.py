"""Dynamic batching: concurrent requests share one encode call and each gets back its own vectors."""

from __future__ import annotations

import asyncio

import numpy as np
from sentence_transformers import SentenceTransformer

from fintune.serving.embedders import Embedder

TEXTS = ["revenue grew", "net loss widened", "cash and equivalents", "goodwill", "share buyback", "dividend"]


class Counting:
    """A sentence-transformers model that counts its encode calls."""

    def __init__(self, model: SentenceTransformer):
        self.model, self.calls = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def encode(self, texts, **kwargs):
        self.calls.append(list(texts))
        return self.model.encode(texts, **kwargs)


def test_concurrent_requests_are_encoded_in_one_call_and_split_back(tiny_bert_dir) -> None:
    model = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    counting = Counting(model)
    embedder = Embedder("tiny", counting)
    requests = [TEXTS[0:1], TEXTS[1:4], TEXTS[4:6]]

    async def together():
        return await asyncio.gather(*(embedder.encode(r) for r in requests))

    results = asyncio.run(together())
    assert counting.calls == [TEXTS]  # one call for the three requests, in arrival order
    for request, vectors in zip(requests, results, strict=True):
        alone = model.encode(request, normalize_embeddings=True)
        assert vectors.shape == (len(request), model.get_embedding_dimension())
        np.testing.assert_allclose(vectors, alone, atol=1e-5)


def test_an_encoder_error_reaches_every_request_of_the_batch(tiny_bert_dir) -> None:
    class Broken(Counting):
        def encode(self, texts, **kwargs):
            raise RuntimeError("encoder failed")

    embedder = Embedder("tiny", Broken(SentenceTransformer(str(tiny_bert_dir), device="cpu")))

    async def together():
        return await asyncio.gather(*(embedder.encode([t]) for t in TEXTS[:3]), return_exceptions=True)

    results = asyncio.run(together())
    assert [str(r) for r in results] == ["encoder failed"] * 3


def test_token_counts_never_run_inside_an_encode_call(tiny_bert_dir) -> None:
    """A fast tokenizer's padding state is shared: a count during an encode broke the batch (HTTP 500)."""
    import threading
    import time

    class Slow(Counting):
        """Encodes slowly and records any tokenizer call that lands while an encode is running."""

        def __init__(self, model):
            super().__init__(model)
            self.encoding, self.overlaps = False, 0
            outer, inner = self, model.tokenizer

            class Watching:
                def __call__(self, *args, **kwargs):
                    outer.overlaps += outer.encoding
                    return inner(*args, **kwargs)

            self.tokenizer = Watching()

        def encode(self, texts, **kwargs):
            self.encoding = True
            time.sleep(0.2)
            try:
                return self.model.encode(texts, **kwargs)
            finally:
                self.encoding = False

    model = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    slow = Slow(model)
    embedder = Embedder("tiny", slow)
    counts: list[int] = []

    def count_while_encoding() -> None:
        while not slow.encoding:
            time.sleep(0.001)
        counts.append(embedder.count_tokens(TEXTS[:2]))

    counter = threading.Thread(target=count_while_encoding)
    counter.start()
    vectors = embedder.encode_now(TEXTS[:3], "plain")
    counter.join()
    assert slow.overlaps == 0
    assert vectors.shape[0] == 3
    expected = sum(len(ids) for ids in model.tokenizer(TEXTS[:2], add_special_tokens=True)["input_ids"])
    assert counts == [expected]
