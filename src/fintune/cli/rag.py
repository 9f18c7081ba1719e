"""`fintune rag eval`: score retrieval-augmented answers (extractive baseline, base LLM, tuned adapter)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fintune.cli.output import err_console, fmt, write_json
from fintune.cli.retrieval import DEFAULT_STORE, citation_args, load_reranker, rerank_args
from fintune.errors import UsageError

TABLE_KEYS = (
    "recall@k",
    "exact_match",
    "token_f1",
    "rouge_l",
    "bertscore_f1",
    "citation_accuracy",
    "refusal_precision",
    "refusal_recall",
    "answered",
    "latency_ms_p50",
    "latency_ms_p95",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from fintune.rag.refusal import REFUSAL_SHARE, SEED

    rag = sub.add_parser("rag", help="retrieval-augmented answering: evaluation")
    rsub = rag.add_subparsers(dest="rag_cmd", required=True)
    ev = rsub.add_parser("eval", help="retrieve, answer and score: extractive baseline, base LLM, adapter")
    ev.add_argument("--store", default=DEFAULT_STORE, help=f"folder, postgresql://... or hana://... ({DEFAULT_STORE})")
    ev.add_argument("--collection", required=True, help="collection name (an alias of its live version)")
    ev.add_argument("--queries", required=True, help="BEIR folder (queries with `answer`) or JSONL of questions")
    ev.add_argument("--split", help="with a BEIR folder: the judged split (default dev)")
    ev.add_argument("--model", help="embedding model (default: the collection's; another one is refused)")
    ev.add_argument("--llm", help="causal LM (default: the adapter's base, else smollm2)")
    ev.add_argument("--adapter", help="LoRA adapter folder (e.g. from `fintune llm train --task rag_10k`)")
    ev.add_argument("-k", type=int, default=4, help="passages given to each answerer")
    ev.add_argument("--refusal-share", type=float, default=REFUSAL_SHARE, help="share of questions withheld")
    ev.add_argument("--seed", type=int, default=SEED, help="seed of the withheld questions")
    ev.add_argument("--min-score", type=float, help="LLM answerers: below this best cosine, no answer (0.3)")
    ev.add_argument(
        "--refusal-probability",
        type=float,
        help="LLM answerers refuse when refusing is this likely (default 0.5; with --reranker none: its gate decides)",
    )
    ev.add_argument("--max-new-tokens", type=int, default=96)
    citation_args(ev)
    ev.add_argument("--hybrid", action="store_true", help="fuse keyword and vector search (default weights)")
    rerank_args(ev)
    ev.add_argument("--no-llm", action="store_true", help="the extractive baseline only (fast)")
    ev.add_argument("--no-bertscore", action="store_true", help="skip BERTScore (local MiniLM)")
    ev.add_argument("--limit", type=int, help="a seeded sample of N questions (--seed), not the first N")
    ev.add_argument("--output", help="metrics JSON (default: standard output)")
    ev.add_argument("--predictions", help="JSONL: one row per question per answerer")
    ev.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from fintune.llm.data import sample_examples
    from fintune.rag.evaluate import (
        RagSettings,
        check_collection,
        evaluate_rag,
        extractive_answerer,
        llm_answerers,
        read_questions,
        report,
    )
    from fintune.retrieval.ask import MIN_SCORE, llm_refusal_probability
    from fintune.retrieval.hybrid import HybridSettings
    from fintune.retrieval.search import open_collection
    from fintune.retrieval.stores import open_store

    if args.no_llm and args.adapter:
        raise UsageError("--no-llm and --adapter contradict each other")
    if args.k < 1 or (args.limit is not None and args.limit < 1):
        raise UsageError("-k and --limit must be >= 1")
    reranker = load_reranker(args)
    settings = RagSettings(
        k=args.k,
        refusal_share=args.refusal_share,
        seed=args.seed,
        min_score=MIN_SCORE if args.min_score is None else args.min_score,
        refusal_probability=llm_refusal_probability(args.refusal_probability, reranker),
        max_new_tokens=args.max_new_tokens,
        bertscore_encoder=None if args.no_bertscore else "minilm",
        hybrid=HybridSettings() if args.hybrid else None,
        reranker=reranker,
        rerank_depth=args.rerank_depth,
        check_citations=not args.no_citation_check,
    )
    questions, source = read_questions(args.queries, args.split)
    # the shared queries are grouped by company: a head would score a few filers only
    questions = sample_examples(questions, args.limit, args.seed)
    store = open_store(args.store)
    try:
        searcher = open_collection(store, args.collection, args.model)
        check_collection(searcher, questions, source)
        answerers = extractive_answerer()
        if not args.no_llm:
            answerers |= llm_answerers(searcher, args.llm, args.adapter, settings)
        err_console.print(f"{len(questions)} questions from {source}; answerers: {', '.join(answerers)}")
        run = evaluate_rag(searcher, questions, answerers, settings)
    finally:
        store.close()
    metrics = report(run, settings, source)
    if args.adapter:
        metrics["adapter"] = args.adapter
    _print_table(metrics)
    if args.predictions:
        _write_jsonl(args.predictions, run.predictions)
    if args.output:
        write_json(args.output, metrics)
    else:
        print(json.dumps(metrics, indent=2))
    return 0


def _print_table(metrics: dict[str, Any]) -> None:
    """Answerers side by side, on standard error (standard output carries only the JSON)."""
    from rich.table import Table

    columns = {**metrics["baselines"], metrics["answerer"]: metrics}
    err_console.print(f"{metrics['questions']} questions from {metrics['queries']}, k {metrics['k']}")
    table = Table()
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    for key in TABLE_KEYS:
        if any(key in m for m in columns.values()):
            table.add_row(key, *(fmt(m.get(key)) for m in columns.values()))
    err_console.print(table)
    if "verdict" in metrics:
        err_console.print(metrics["verdict"])


def _write_jsonl(path: str, rows: list[dict[str, Any]]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(target)
