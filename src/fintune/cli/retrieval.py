"""`fintune index`, `fintune search`, `fintune ask`, `fintune collections`: thin wrappers over fintune.retrieval."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fintune.cli.output import console
from fintune.errors import UsageError

if TYPE_CHECKING:
    from fintune.retrieval.hybrid import HybridSettings

DEFAULT_STORE = "fintune-store"


def add_parser(sub: argparse._SubParsersAction) -> None:
    ix = sub.add_parser("index", help="embed a corpus into a vector store (idempotent upserts, resumable)")
    ix.add_argument("--model", default="minilm", help="embedding model: alias, folder, hub id or ONNX export")
    ix.add_argument("--corpus", required=True, help="BEIR folder or JSONL/CSV/Parquet file with _id and text")
    _store_args(ix)
    ix.add_argument("--add-financial-prefix", action="store_true", help="prefix queries and passages by role")
    ix.add_argument("--reembed", action="store_true", help="new model: build a new version, then switch to it")
    ix.add_argument("--drop-old", action="store_true", help="with --reembed: drop the previous version after")
    ix.add_argument("--batch-size", type=int, default=256, help="documents per embed + upsert round")
    ix.add_argument("--skip-invalid", action="store_true", help="skip and count bad records instead of failing")
    ix.set_defaults(func=cmd_index)

    se = sub.add_parser("search", help="nearest passages for a query (or a file of queries)")
    _store_args(se)
    se.add_argument("query", nargs="?", help="the question or search text")
    se.add_argument("--queries", help="JSONL of {_id, text} or a BEIR folder: batch mode, JSONL out")
    se.add_argument("--split", help="with a BEIR folder: only the queries judged in this split")
    se.add_argument("--model", help="default: the model the collection was built with")
    se.add_argument("-k", type=int, default=10)
    se.add_argument("--filter", action="append", default=[], metavar="key=value", help="metadata equality, repeatable")
    se.add_argument("--mmr", action="store_true", help="maximal marginal relevance: diverse results")
    hybrid_args(se)
    se.add_argument("--json", action="store_true", help="print JSON instead of a table")
    se.add_argument("--output", help="batch mode: write the JSONL here instead of standard output")
    se.set_defaults(func=cmd_search)

    ak = sub.add_parser("ask", help="answer a question from the collection with the local LLM, citing passages")
    _store_args(ak)
    ak.add_argument("question")
    ak.add_argument("--llm", help="causal LM (default smollm2, or the adapter's base)")
    ak.add_argument("--adapter", help="LoRA adapter folder for the LLM")
    ak.add_argument("-k", type=int, default=4, help="passages given to the LLM")
    ak.add_argument("--min-score", type=float, default=None, help="below this best cosine: no answer (0.3)")
    ak.add_argument(
        "--refusal-probability",
        type=float,
        default=None,
        help="refuse when the LLM's refusal is this likely (default 0.5; with --reranker none: its gate decides)",
    )
    ak.add_argument("--filter", action="append", default=[], metavar="key=value")
    citation_args(ak)
    hybrid_args(ak)
    rerank_args(ak)
    ak.add_argument("--json", action="store_true")
    ak.set_defaults(func=cmd_ask)

    co = sub.add_parser("collections", help="collections of a store: versions, models, aliases")
    co.add_argument("--store", default=DEFAULT_STORE, help=f"folder, postgresql://... or hana://... ({DEFAULT_STORE})")
    co.set_defaults(func=cmd_collections)


def _store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", default=DEFAULT_STORE, help=f"folder (embedded), postgresql://... or hana://... ({DEFAULT_STORE})"
    )
    parser.add_argument("--collection", required=True, help="collection name (an alias of its live version)")


def citation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-citation-check",
        action="store_true",
        help="keep the LLM's citations (default: a passage holding more of the answer's words replaces them)",
    )


def hybrid_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hybrid", action="store_true", help="fuse keyword (full-text) and vector search (RRF)")
    parser.add_argument("--vector-weight", type=float, help="with --hybrid: weight of the vector ranking (1.0)")
    parser.add_argument("--keyword-weight", type=float, help="with --hybrid: weight of the keyword ranking (1.0)")
    parser.add_argument("--rrf-k", type=int, help="with --hybrid: reciprocal-rank-fusion constant (60)")


def rerank_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reranker",
        help="cross-encoder folder from `fintune rerank train`: reorders, and refuses below its threshold "
        "(default: the adapter's own reranker/, which `llm train --task rag_10k` trains)",
    )
    parser.add_argument("--no-reranker", action="store_true", help="without the adapter's own reranker")
    from fintune.retrieval.rerank import DEPTH

    parser.add_argument(
        "--rerank-depth", type=int, default=DEPTH, help=f"with a reranker: candidates it reorders ({DEPTH})"
    )
    parser.add_argument(
        "--answerable-threshold",
        type=float,
        help="with a reranker: refuse below this best passage score (default: the reranker's own)",
    )


def load_reranker(args: argparse.Namespace) -> Any:
    """The Reranker that --reranker names, else the one the --adapter carries (unless --no-reranker), else
    None; its options without one are a mistake."""
    from fintune.rag.task import adapter_gate

    if args.reranker and args.no_reranker:
        raise UsageError("--reranker and --no-reranker contradict each other")
    path = args.reranker or (None if args.no_reranker else adapter_gate(getattr(args, "adapter", None)))
    if not path:
        if args.answerable_threshold is not None:
            raise UsageError("--answerable-threshold needs a reranker (--reranker, or an adapter that carries one)")
        return None
    if args.rerank_depth < 1:
        raise UsageError("--rerank-depth must be >= 1")
    from fintune.retrieval.rerank import Reranker

    return Reranker(path, args.answerable_threshold)


def hybrid_settings(args: argparse.Namespace) -> HybridSettings | None:
    """The HybridSettings that --hybrid and its options ask for, or None without --hybrid."""
    from fintune.retrieval.hybrid import HybridSettings

    given = {
        name: value
        for name, value in (
            ("vector_weight", args.vector_weight),
            ("keyword_weight", args.keyword_weight),
            ("rrf_k", args.rrf_k),
        )
        if value is not None
    }
    if not args.hybrid:
        if given:
            options = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UsageError(f"{options} only apply with --hybrid")
        return None
    return HybridSettings(**given)


def _score_fields(hit: Any) -> dict[str, float]:
    """Each side's own score of a hybrid hit (its `score` is the fused one)."""
    return {
        name: round(value, 6)
        for name, value in (("vector_score", hit.vector_score), ("keyword_score", hit.keyword_score))
        if value is not None
    }


def parse_filters(items: list[str]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--filter {item!r}: expected key=value")
        out[key.strip()] = value
    return out or None


def cmd_index(args: argparse.Namespace) -> int:
    from fintune.retrieval.corpus import read_corpus
    from fintune.retrieval.index import index_corpus
    from fintune.retrieval.stores import open_store

    corpus = read_corpus(args.corpus, skip_invalid=args.skip_invalid)
    store = open_store(args.store)
    try:
        result = index_corpus(
            store,
            args.collection,
            corpus,
            model=args.model,
            add_financial_prefix=args.add_financial_prefix,
            reembed=args.reembed,
            drop_old=args.drop_old,
            batch_size=args.batch_size,
        )
    finally:
        store.close()
    console.print(
        f"{result.collection} -> {result.physical} in {store.display}: {result.added} added, {result.updated} updated, "
        f"{result.unchanged} unchanged, {result.skipped_invalid} invalid skipped; {result.seconds:.1f} s "
        f"({result.docs_per_s:.0f} docs/s embedded and stored); {result.index_note}"
    )
    if result.switched_from:
        console.print(f"alias {result.collection} moved from {result.switched_from} to {result.physical}")
    for note in result.notes:
        console.print(f"  note: {note}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from fintune.retrieval.queries import read_queries
    from fintune.retrieval.search import open_collection
    from fintune.retrieval.stores import open_store

    if bool(args.query) == bool(args.queries):
        raise UsageError("give a query, or --queries FILE for batch mode")
    filters = parse_filters(args.filter)
    hybrid = hybrid_settings(args)
    store = open_store(args.store)
    try:
        searcher = open_collection(store, args.collection, args.model)
        if args.query:
            hits = searcher.search([args.query], args.k, filters, args.mmr, hybrid=hybrid)[0]
            _print_hits(args.query, hits, args.json)
            return 0
        ids, texts = read_queries(args.queries, args.split)
        results = searcher.search(texts, args.k, filters, args.mmr, hybrid=hybrid)
    finally:
        store.close()
    lines = [
        json.dumps(
            {"query_id": q, "results": [{"id": h.id, "score": round(h.score, 6), **_score_fields(h)} for h in hits]}
        )
        + "\n"
        for q, hits in zip(ids, results, strict=True)
    ]
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text("".join(lines), encoding="utf-8")
        console.print(f"{len(lines)} queries searched -> {args.output}")
    else:
        sys.stdout.writelines(lines)
    return 0


def _print_hits(query: str, hits: list[Any], as_json: bool) -> None:
    if as_json:
        rows = [
            {"id": h.id, "score": round(h.score, 6), **_score_fields(h), "text": h.text, "metadata": h.metadata}
            for h in hits
        ]
        print(json.dumps({"query": query, "results": rows}, ensure_ascii=False, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"top {len(hits)} for: {query}")
    for column in ("#", "id", "score", "passage"):
        table.add_column(column)
    for rank, h in enumerate(hits, 1):
        table.add_row(str(rank), h.id, f"{h.score:.3f}", h.text[:110] + ("…" if len(h.text) > 110 else ""))
    console.print(table)


def cmd_ask(args: argparse.Namespace) -> int:
    from fintune.retrieval.ask import MIN_SCORE, Answerer, llm_refusal_probability
    from fintune.retrieval.search import open_collection
    from fintune.retrieval.stores import open_store

    hybrid = hybrid_settings(args)
    reranker = load_reranker(args)  # before the store: a bad option creates nothing
    store = open_store(args.store)
    try:
        searcher = open_collection(store, args.collection)
        answerer = Answerer(
            searcher,
            llm=args.llm,
            adapter=args.adapter,
            k=args.k,
            min_score=args.min_score or MIN_SCORE,
            hybrid=hybrid,
            refusal_probability=llm_refusal_probability(args.refusal_probability, reranker),
            reranker=reranker,
            rerank_depth=args.rerank_depth,
            check_citations=not args.no_citation_check,
        )
        answer = answerer.ask(args.question, parse_filters(args.filter))
    finally:
        store.close()
    if args.json:
        print(json.dumps(answer.as_dict(), ensure_ascii=False, indent=2))
        return 0
    console.print(f"[bold]answer:[/] {answer.answer}", highlight=False)
    if answer.citations:
        how = "attributed by word overlap" if answer.attributed else "cited by the model"
        console.print(f"sources ({how}): {', '.join(answer.citations)}")
    for note in answer.notes:
        console.print(f"  note: {note}")
    console.print("passages: " + ", ".join(f"{h.id} ({_shown_score(h)})" for h in answer.passages))
    return 0


def _shown_score(hit: Any) -> str:
    return f"{hit.score:.2f}" if hit.rerank_score is None else f"{hit.score:.2f}, reranker {hit.rerank_score:.2f}"


def cmd_collections(args: argparse.Namespace) -> int:
    from rich.table import Table

    from fintune.retrieval.stores import open_store

    store = open_store(args.store)
    try:
        infos = store.catalog.all()
        live = {info.name: store.catalog.alias(info.logical) == info.name for info in infos}
    finally:
        store.close()
    table = Table(title=f"collections in {store.display}")
    for column in ("collection", "version", "live", "status", "documents", "model", "dims", "created"):
        table.add_column(column)
    for i in infos:
        table.add_row(
            i.logical,
            i.name,
            "yes" if live[i.name] else "",
            i.status,
            str(i.documents),
            i.model,
            str(i.dimension),
            i.created,
        )
    console.print(table)
    return 0
