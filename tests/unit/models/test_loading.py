"""Loads from several threads at once leave later loads whole (transformers' loading state is global)."""

from __future__ import annotations

import threading

from fintune.embed.model import load_embedder
from fintune.llm.model import load_causal_lm
from tests.unit.llm.conftest import make_tiny_llm


def test_concurrent_loads_do_not_leave_later_models_on_meta(tiny_bert_dir, tmp_path) -> None:
    llm = make_tiny_llm(tmp_path / "tiny_llm")  # ties its output head to the input embeddings

    def load_many() -> None:
        for _ in range(6):
            load_embedder(str(tiny_bert_dir), device="cpu")

    threads = [threading.Thread(target=load_many) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    model, _ = load_causal_lm(str(llm), device="cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied
