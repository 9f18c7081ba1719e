"""`fintune embed eval`."""

from __future__ import annotations

import argparse

from fintune.cli.output import console, fmt, write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    embed = sub.add_parser("embed", help="embedding models for financial retrieval")
    esub = embed.add_subparsers(dest="embed_cmd", required=True)
    ev = esub.add_parser("eval", help="retrieval metrics of a model on a BEIR split")
    ev.add_argument("--model", default="minilm", help="alias, folder or hub id (default minilm)")
    ev.add_argument("--data", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    ev.add_argument("--split", default="dev")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--skip-invalid", action="store_true", help="skip and count bad records instead of failing")
    ev.add_argument("--output", help="write the metrics as JSON here")
    ev.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from fintune.data.beir import load_beir
    from fintune.embed.evaluate import evaluate_retrieval
    from fintune.embed.model import load_embedder

    data = load_beir(args.data, args.split, skip_invalid=args.skip_invalid)
    result = evaluate_retrieval(load_embedder(args.model), data, batch_size=args.batch_size)
    metrics = {"model": args.model, "data": args.data, "split": args.split, **result.metrics}
    for key, value in result.metrics.items():
        console.print(f"{key:>22}  {fmt(value)}")
    if args.output:
        write_json(args.output, metrics)
    return 0
