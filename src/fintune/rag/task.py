"""The `rag_10k` task: answer a 10-K question from retrieved passages, citing the passage id, or refuse.

Prompts are built by `rag_prompt`, exactly as `fintune ask` builds them, from the k passages a real
MiniLM index of the task's corpus returns for the question (the index is built once in fintune's cache
folder; reruns reuse it). Retrieved passages other than the judged one are the distractors. Targets:

- answerable: the gold answer followed by the judged passage's id, e.g. `Net sales fell 3%. [d12]`;
  when retrieval missed the judged passage it replaces the last hit at a seeded position, so the model
  learns to answer whenever the passage is shown, wherever it is shown;
- withheld (a seeded share, see `refusal`): the judged passage is removed from the candidates and the
  target is NOT_FOUND, so the model learns to refuse rather than answer from a distractor.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path
from typing import Any, Protocol

from fintune.data.beir import load_beir
from fintune.data.tasks import FinancialTask
from fintune.llm.prompts import Example
from fintune.paths import fintune_home
from fintune.rag.refusal import REFUSAL_SHARE, SEED, retrieval_depth, shown_passages, withheld
from fintune.retrieval.prompt import NOT_FOUND, rag_prompt
from fintune.retrieval.search import Searcher
from fintune.retrieval.stores.base import Hit

log = logging.getLogger(__name__)

RAG_K = 4  # passages per prompt: `fintune ask`'s default
# the answering adapter's gate (`fintune.retrieval.rerank`): a reranker in this subfolder of the adapter,
# which `ask` and `rag eval --adapter` use unless told otherwise
GATE = "reranker"
INDEX_MODEL = "minilm"  # `fintune index`'s default model: the index an adapter will meet in use
COLLECTION = "corpus"


class Search(Protocol):
    """What the examples need of a searcher: the top k hits of each query."""

    def search(self, queries: list[str], k: int = ...) -> list[list[Hit]]: ...


def target(answer: str, doc_id: str) -> str:
    """A brief answer and its citation, in the form the instruction asks for."""
    return f"{answer.strip()} [{doc_id}]"


def index_folder(folder: Path) -> Path:
    """Cache folder of the task index of a BEIR folder (changes when its corpus file changes)."""
    corpus = folder.resolve() / "corpus.jsonl"
    stat = corpus.stat()
    key = hashlib.sha256(f"{corpus}:{stat.st_size}:{stat.st_mtime_ns}:{INDEX_MODEL}".encode()).hexdigest()[:16]
    return fintune_home() / "rag_10k" / key


def task_searcher(folder: Path) -> Searcher:
    """A searcher over a MiniLM index of the folder's corpus, built on first use (idempotent, resumable)."""
    from fintune.retrieval.corpus import read_corpus
    from fintune.retrieval.index import index_corpus
    from fintune.retrieval.search import open_collection
    from fintune.retrieval.stores import open_store

    store = open_store(str(index_folder(folder)))
    live = store.catalog.alias(COLLECTION)
    info = store.catalog.get(live) if live else None
    if info is None or info.status != "ready":
        log.info("building the rag_10k index of %s in %s (once)", folder, index_folder(folder))
        # skip_invalid: an empty passage holds nothing to find (the shared 10-K corpus has one; load_beir skips it too)
        index_corpus(store, COLLECTION, read_corpus(folder, skip_invalid=True), model=INDEX_MODEL)
    return open_collection(store, COLLECTION)


def rag_examples(
    folder: Path,
    split: str,
    searcher: Search,
    k: int = RAG_K,
    share: float = REFUSAL_SHARE,
    seed: int = SEED,
) -> tuple[list[Example], int]:
    """(examples, queries read): one example per judged query with a gold answer."""
    data = load_beir(folder, split)
    qids = [q for q in data.qrels if str(data.query_fields.get(q, {}).get("answer") or "").strip()]
    skipped = len(data.qrels) - len(qids)
    if skipped:
        log.warning("%s: %d of %d queries skipped: no answer text", folder, skipped, len(data.qrels))
    removed = withheld(qids, share, seed)
    depth = max((retrieval_depth(k, data.qrels[q]) for q in qids), default=k)
    results = searcher.search([data.queries[q] for q in qids], depth)
    rng = random.Random(seed)
    examples = []
    for qid, hits in zip(qids, results, strict=True):
        judged = data.qrels[qid]
        passages = shown_passages(hits, judged, k, qid in removed)
        if qid in removed:
            examples.append(Example(rag_prompt(data.queries[qid], passages), NOT_FOUND))
            continue
        doc_id = next(iter(judged))
        if not any(h.id in judged for h in passages):
            gold = Hit(doc_id, 0.0, data.doc_text(doc_id))
            passages = passages[: k - 1]
            passages.insert(rng.randrange(len(passages) + 1), gold)
        else:
            doc_id = next(h.id for h in passages if h.id in judged)
        answer = str(data.query_fields[qid]["answer"])
        examples.append(Example(rag_prompt(data.queries[qid], passages), target(answer, doc_id)))
    return examples, len(data.qrels)


class CachedSearch:
    """The task index's search results, kept beside the index: a training run reads the train and dev
    splits (5,500 queries), which the index would otherwise embed again on every run."""

    def __init__(self, folder: Path, split: str):
        self.folder = folder
        self.path = index_folder(folder) / f"retrieved_{split}.json"
        self.searcher: Searcher | None = None

    def search(self, queries: list[str], k: int = RAG_K) -> list[list[Hit]]:
        cached: dict[str, list[list[Any]]] = (
            json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
        )
        keys = [f"{k}\t{q}" for q in queries]
        missing = [q for q, key in zip(queries, keys, strict=True) if key not in cached]
        if missing:
            self.searcher = self.searcher or task_searcher(self.folder)
            for query, hits in zip(missing, self.searcher.search(missing, k), strict=True):
                cached[f"{k}\t{query}"] = [[h.id, h.score, h.text] for h in hits]
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(json.dumps(cached), encoding="utf-8")
            tmp.replace(self.path)  # whole or absent: a concurrent or interrupted run never reads half
        return [[Hit(d, float(score), text) for d, score, text in cached[key]] for key in keys]


def train_gate(folder: Path, split: str, work: Path, max_steps: int = -1) -> Path:
    """The answering adapter's reranker, trained in the adapter's work folder so the adapter's folder takes
    it whole when it is written; a finished one there is reused when a killed run resumes."""
    from fintune.retrieval.rerank import META, RerankSettings, train_reranker

    out = work / GATE
    if not (out / META).is_file():
        log.info("training the answerability gate (a reranker) on %s (%s)", folder, split)
        settings = RerankSettings(max_steps=max_steps)
        train_reranker(folder, split, out, CachedSearch(folder, split), settings, overwrite=True)
    return out


def adapter_gate(adapter: str | Path | None) -> Path | None:
    """The reranker an answering adapter carries, if any."""
    from fintune.retrieval.rerank import META

    gate = Path(adapter) / GATE if adapter else None
    return gate if gate is not None and (gate / META).is_file() else None


def rag_task_examples(task: FinancialTask, folder: Path, split: str) -> tuple[list[Example], int, str]:
    """What `task_examples` returns for rag_10k: examples, records read, and a source description."""
    index_folder(folder).mkdir(parents=True, exist_ok=True)
    examples, records = rag_examples(folder, split, CachedSearch(folder, split))
    return examples, records, f"{folder} ({split}, retrieved from {INDEX_MODEL} index {index_folder(folder)})"
