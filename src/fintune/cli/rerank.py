"""`fintune rerank train|calibrate`: a cross-encoder reranker and answerability gate for `ask` and `rag eval`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fintune.cli.output import err_console
from fintune.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from fintune.retrieval.rerank import BASE, DEPTH, NEGATIVES, REFUSAL_RECALL, RerankSettings

    defaults = RerankSettings()  # one source for the defaults: the library's recipe

    rerank = sub.add_parser("rerank", help="second-stage reranker (cross-encoder): training")
    rsub = rerank.add_subparsers(dest="rerank_cmd", required=True)
    tr = rsub.add_parser(
        "train", help="train a cross-encoder on a BEIR folder's judged pairs and retrieval's negatives"
    )
    tr.add_argument("--data", required=True, help="BEIR folder (corpus, queries, qrels/<split>.tsv)")
    tr.add_argument("--split", default="train", help="judged split to train on (train)")
    tr.add_argument("--output", required=True, help="folder for the reranker (written whole or not at all)")
    tr.add_argument("--base", default=BASE, help=f"encoder to start from ({BASE}: the packaged MiniLM)")
    tr.add_argument(
        "--negatives", type=int, default=NEGATIVES, help=f"retrieved non-judged passages per question ({NEGATIVES})"
    )
    tr.add_argument("--depth", type=int, default=DEPTH, help=f"candidates retrieved per question ({DEPTH})")
    tr.add_argument("--epochs", type=float, default=defaults.epochs)
    tr.add_argument(
        "--max-steps", type=int, default=defaults.max_steps, help="stop after N steps (default: the epochs)"
    )
    tr.add_argument("--batch-size", type=int, default=defaults.batch_size)
    tr.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help=f"encoder ({defaults.learning_rate})"
    )
    tr.add_argument("--seed", type=int, default=defaults.seed)
    policy_args(tr, REFUSAL_RECALL)
    tr.add_argument("--overwrite", action="store_true")
    tr.set_defaults(func=cmd_train)

    cal = rsub.add_parser(
        "calibrate", help="choose a trained reranker's answerable threshold again, by another policy, without training"
    )
    cal.add_argument("--reranker", required=True, help="folder from `fintune rerank train` (its meta is rewritten)")
    cal.add_argument("--data", help="the BEIR folder it trained on (default: the one it records)")
    policy_args(cal, REFUSAL_RECALL)
    cal.set_defaults(func=cmd_calibrate)


def policy_args(parser: argparse.ArgumentParser, default: float) -> None:
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument(
        "--refusal-recall",
        type=float,
        default=default,
        help=f"threshold: refuse this share of held-out unanswerable questions ({default})",
    )
    policy.add_argument(
        "--balanced", action="store_true", help="threshold: best balanced accuracy instead of a refusal recall"
    )


def refusal_policy(args: argparse.Namespace) -> float | None:
    if args.balanced:
        return None
    if not 0 < args.refusal_recall <= 1:
        raise UsageError(f"--refusal-recall must lie in (0, 1], not {args.refusal_recall}")
    return float(args.refusal_recall)


def cmd_train(args: argparse.Namespace) -> int:
    from fintune.data.beir import is_beir_folder
    from fintune.rag.task import CachedSearch
    from fintune.retrieval.rerank import RerankSettings, train_reranker

    folder = Path(args.data)
    if not is_beir_folder(folder):
        raise UsageError(f"{folder}: not a BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    if args.negatives < 1 or args.depth <= args.negatives:
        raise UsageError("--negatives must be >= 1 and --depth larger than it")
    settings = RerankSettings(
        base=args.base,
        negatives=args.negatives,
        depth=args.depth,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_steps=args.max_steps,
        seed=args.seed,
        refusal_recall=refusal_policy(args),
    )
    # the negatives come from the MiniLM index `rag_10k` builds of the same corpus (cached beside it)
    meta = train_reranker(folder, args.split, args.output, CachedSearch(folder, args.split), settings, args.overwrite)
    err_console.print(
        f"saved reranker {args.output}: threshold {meta['answerable_threshold']:.3f} "
        f"(gate ROC AUC {meta['gate_roc_auc']:.3f} on {meta['threshold_validation']})"
    )
    print(json.dumps(meta, indent=2))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from fintune.data.beir import is_beir_folder
    from fintune.rag.task import CachedSearch
    from fintune.retrieval.rerank import Reranker, calibrate_reranker

    policy = refusal_policy(args)
    reranker = Reranker(args.reranker)
    folder = Path(args.data or reranker.meta["data"])
    if not is_beir_folder(folder):
        raise UsageError(f"{folder}: not a BEIR folder (corpus.jsonl, queries.jsonl, qrels/); pass --data")
    before = reranker.threshold
    meta = calibrate_reranker(reranker, folder, CachedSearch(folder, reranker.meta["split"]), policy)
    err_console.print(
        f"{args.reranker}: threshold {before:.3f} -> {meta['answerable_threshold']:.3f} ({meta['threshold_policy']}): "
        f"refuses {meta['threshold_refusal_recall']:.0%} of held-out unanswerable questions, lets "
        f"{meta['threshold_answerable_passed']:.0%} of the answerable through"
    )
    print(json.dumps(meta, indent=2))
    return 0
