"""Search tab: ranked passages of a collection (scores, metadata, filter, MMR) and answers that cite them."""

from __future__ import annotations

import html
import json
import threading
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from fintune.errors import UsageError

DEFAULT_STORE = "fintune-store"  # the CLI's default (`fintune index --store`), relative to where the UI starts
COLUMNS = ["rank", "id", "score", "text", "metadata"]

_searchers: dict[tuple[str, str], Any] = {}
_answerers: dict[tuple[str, str, str, int], Any] = {}
_lock = threading.Lock()  # the embedded store and the models are shared by every request of this process


def existing_store(store: str) -> str:
    """`store` if it is a server URL or a folder that exists: opening a missing folder would create an empty one."""
    store = store.strip()
    if "://" not in store and not Path(store).is_dir():
        raise UsageError(
            f"no store at {Path(store).resolve()}: build one with "
            f"`fintune index --store {store} --collection NAME --corpus ...`, or give a postgresql:// or hana:// URL"
        )
    return store


def collections(store: str) -> list[str]:
    """The logical collection names of a store (what `--collection` takes)."""
    from fintune.retrieval.stores import open_store

    opened = open_store(existing_store(store))
    try:
        return sorted({info.logical for info in opened.catalog.all()})
    finally:
        opened.close()


def parse_filter(text: str) -> dict[str, str] | None:
    """`key=value` pairs, one per line or comma-separated: metadata equality, as `--filter`."""
    from fintune.cli.retrieval import parse_filters

    return parse_filters([item.strip() for item in text.replace(",", "\n").splitlines() if item.strip()])


def searcher(store: str, collection: str) -> Any:
    """The collection with the model that built it, opened once (the embedder loads on first use)."""
    key = (store, collection)
    if key not in _searchers:
        from fintune.retrieval.search import open_collection
        from fintune.retrieval.stores import open_store

        _searchers[key] = open_collection(open_store(existing_store(store)), collection)
    return _searchers[key]


def search(store: str, collection: str, query: str, k: int, filter_text: str, mmr: bool) -> pd.DataFrame:
    """Ranked hits with their cosine scores and metadata, as `fintune search --json` returns them."""
    if not query.strip():
        raise UsageError("type a query")
    with _lock:
        hits = searcher(store, collection).search([query], int(k), parse_filter(filter_text), bool(mmr))[0]
    rows = [
        {
            "rank": rank,
            "id": h.id,
            "score": round(h.score, 6),
            "text": h.text,
            "metadata": json.dumps(h.metadata, ensure_ascii=False),
        }
        for rank, h in enumerate(hits, 1)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def search_pair(
    store: str, base: str, tuned: str, query: str, k: int, filter_text: str, mmr: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same query on two collections of one corpus (e.g. indexed with the base and the tuned embedder)."""
    if not tuned.strip():
        raise UsageError("name the second collection (e.g. the corpus indexed with the tuned embedder)")
    return search(store, base, query, k, filter_text, mmr), search(store, tuned.strip(), query, k, filter_text, mmr)


def ask(store: str, collection: str, question: str, k: int, adapter: str, filter_text: str) -> tuple[str, str]:
    """The local LLM's answer and the passages it was given, the cited ones highlighted."""
    from fintune.retrieval.ask import Answerer

    if not question.strip():
        raise UsageError("type a question")
    key = (store, collection, adapter.strip(), int(k))
    with _lock:
        if key not in _answerers:
            _answerers[key] = Answerer.with_adapter_gate(searcher(store, collection), adapter.strip() or None, k=int(k))
        answer = _answerers[key].ask(question, parse_filter(filter_text))
    how = " (attributed by word overlap)" if answer.attributed else ""
    summary = f"**Answer:** {answer.answer}\n\n**Sources{how}:** {', '.join(answer.citations) or 'none'}"
    if answer.notes:
        summary += "\n\n" + "\n".join(f"- note: {n}" for n in answer.notes)
    return summary, passages_html(answer.passages, set(answer.citations))


def passages_html(hits: list[Any], cited: set[str]) -> str:
    """Each passage with its id and score; cited passages highlighted (the CSS class `cited`)."""
    blocks = []
    for h in hits:
        mark = ' class="cited" style="background:#fff3b0"' if h.id in cited else ""
        tag = " · cited" if h.id in cited else ""
        blocks.append(
            f"<div{mark}><b>[{html.escape(h.id)}]</b> score {h.score:.3f}{tag}<br>{html.escape(h.text)}</div><hr>"
        )
    return "\n".join(blocks)


def build_tab() -> None:
    """The Search tab's components and events (inside a `gr.Blocks`)."""
    with gr.Row():
        store = gr.Textbox(DEFAULT_STORE, label="store (folder, postgresql://... or hana://...)")
        collection = gr.Dropdown([], label="collection", allow_custom_value=True)
        refresh = gr.Button("List collections")
    query = gr.Textbox(label="query or question")
    with gr.Row():
        k = gr.Slider(1, 50, value=10, step=1, label="k")
        filter_text = gr.Textbox(label="filter: key=value, ... (metadata equality)")
        mmr = gr.Checkbox(label="MMR (diverse results)")
    with gr.Row():
        go = gr.Button("Search", variant="primary")
        adapter = gr.Textbox(label="LoRA adapter for Ask (empty: the base LLM)")
        ask_button = gr.Button("Ask")
    hits = gr.Dataframe(headers=COLUMNS, label="ranked passages", wrap=True)
    with gr.Accordion("Side by side: the same query on a second collection (e.g. the tuned embedder's)", open=False):
        with gr.Row():
            second = gr.Textbox(label="second collection")
            compare = gr.Button("Search both")
        with gr.Row():
            left = gr.Dataframe(headers=COLUMNS, label="first collection", wrap=True)
            right = gr.Dataframe(headers=COLUMNS, label="second collection", wrap=True)
    answer = gr.Markdown()
    passages = gr.HTML()

    def refresh_choices(url: str) -> Any:
        names = collections(url)
        return gr.update(choices=names, value=names[0] if names else None)

    refresh.click(refresh_choices, store, collection, api_name="collections")
    go.click(search, [store, collection, query, k, filter_text, mmr], hits, api_name="search")
    pair_inputs = [store, collection, second, query, k, filter_text, mmr]
    compare.click(search_pair, pair_inputs, [left, right], api_name="search_pair")
    ask_k = gr.Number(4, visible=False)  # ask's default: four passages fit SmolLM2's context
    ask_button.click(ask, [store, collection, query, ask_k, adapter, filter_text], [answer, passages], api_name="ask")
