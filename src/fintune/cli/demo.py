"""`fintune demo`: the defaults on the shared dev splits, in one table."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.table import Table

from fintune.cli.output import console, fmt


def add_parser(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="base vs fine-tuned defaults on the shared dev splits")
    demo.add_argument("--fpb-limit", type=int, help="score a seeded sample of N fpb dev sentences")
    demo.add_argument("--skip-training", action="store_true", help="only score the defaults as they are")
    demo.add_argument("--output", default="runs/demo-minilm", help="where the tuned embedding model goes")
    demo.add_argument("--llm-output", default="runs/demo-smollm2-fpb", help="where the fpb LoRA adapter goes")
    demo.add_argument("--store", default="runs/demo-store", help="embedded vector store for the search + answer step")
    demo.add_argument(
        "--rag-adapter",
        default="runs/demo-rag-adapter",
        help="answering adapter (`fintune llm train --task rag_10k`): trained here unless it exists or "
        "--skip-training is given; the answer step uses it when it exists",
    )
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from fintune.demo import (
        baseline_classification,
        baseline_retrieval,
        rag_demo,
        retrieval_row,
        train_rag_adapter,
        tuned_classification,
        tuned_retrieval,
    )

    start = time.perf_counter()
    tuned = None
    if args.skip_training:
        rows = [baseline_retrieval()]
    else:  # training scores the base model on dev anyway: reuse that for the first row
        tuned = tuned_retrieval(args.output)
        rows = [retrieval_row("minilm", "dev", tuned[0].before)]
    rows.append(baseline_classification(limit=args.fpb_limit))
    lora_seconds = None
    if not args.skip_training:
        lora_row, lora_seconds = tuned_classification(args.llm_output, limit=args.fpb_limit)
        rows.append(lora_row)
    table = Table(title="fintune defaults on the shared dev splits")
    for column in ("model", "task", "metric", "value"):
        table.add_column(column)
    for row in rows:
        for i, (name, value) in enumerate(row.metrics.items()):
            table.add_row(row.model if i == 0 else "", row.task if i == 0 else "", name, fmt(value))
    console.print(table)
    if tuned is not None:
        from fintune.embed.card import metrics_table

        result, comparison = tuned
        console.print("\n[bold]minilm fine-tuned on the 10-K QA train split (default recipe)[/]")
        console.print(
            f"trained in {result.train_seconds:.0f} s ({result.pairs_per_s:.1f} examples/s); "
            f"base vs tuned on {comparison.split} ({comparison.base.get('queries')} queries):"
        )
        console.print(metrics_table(comparison.base, comparison.tuned))
        for example in comparison.improved[:2]:
            console.print(f"  better: {example['query']}  rank {example['base_rank']} -> {example['tuned_rank']}")
        console.print(f"tuned model: {result.output}")
    if lora_seconds is not None:
        console.print(f"fpb LoRA adapter ({args.llm_output}) trained in {lora_seconds:.0f} s")
    adapter = Path(args.rag_adapter)
    if not args.skip_training and not adapter.exists():
        seconds = train_rag_adapter(str(adapter))
        console.print(f"answering adapter ({adapter}, the rag_10k task's recipe) trained in {seconds:.0f} s")
    answering = str(adapter) if adapter.exists() else None
    _print_rag(rag_demo("minilm" if tuned is None else str(tuned[0].output), args.store, adapter=answering))
    console.print(f"demo took {time.perf_counter() - start:.0f} s")
    return 0


def _print_rag(demo) -> None:
    ix = demo.index
    console.print(
        f"\n[bold]search and answer[/]: {ix.added + ix.updated + ix.unchanged} passages indexed into "
        f"{ix.physical} with {demo.export} (int8 ONNX) in {ix.seconds:.0f} s ({ix.index_note})"
    )
    console.print(f"question: {demo.question}")
    for rank, hit in enumerate(demo.hits, 1):
        mark = "  <- judged relevant" if hit.id in demo.judged else ""
        console.print(f"  {rank}. {hit.id} ({hit.score:.3f}) {hit.text[:90]}{mark}", highlight=False)
    console.print(f"answer (extractive baseline): {demo.extractive.answer}", highlight=False)
    answer = demo.answer
    who = f"smollm2 + {demo.adapter}" if demo.adapter else "smollm2, no answering adapter"
    console.print(f"answer ({who}): {answer.answer}", highlight=False)
    if not answer.found and answer.notes:
        console.print(f"  why: {answer.notes[-1]}", highlight=False)
    if answer.citations:
        how = "attributed by word overlap" if answer.attributed else "cited by the model"
        console.print(f"sources ({how}): {', '.join(answer.citations)}")
