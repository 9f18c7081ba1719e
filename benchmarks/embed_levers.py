"""Embedding recipe levers, scored on grouped validation (whole companies held out) and the style check.

One training per call; each WiSE-FT alpha asked for is then scored on the full grouped validation
(every passage of the corpus) and on the XBRL term -> explanation check. Appends one JSON line per
alpha to --out. `--plain` trains with plain sentence-transformers (MNRL, batch 32, one epoch, the
library's defaults) on the same grouped training pairs.

    .venv/bin/python benchmarks/embed_levers.py --name default --alphas 1,0.7,0.5
    .venv/bin/python benchmarks/embed_levers.py --name plain --plain --alphas 1,0.5
    .venv/bin/python benchmarks/embed_levers.py --name no-hn --alphas 1 hard_negatives=0
    .venv/bin/python benchmarks/embed_levers.py --name mrl --dims 128,64 matryoshka_dims=[384,256,128,64]

`--score-groups N` with `validation_groups=M` (M > N) trains on M fewer companies but scores only the
queries of the N companies `validation_groups=N` holds out (drawn by fintune's own split; the script checks
they are among the M), so training on fewer companies is compared on one validation set:

    .venv/bin/python benchmarks/embed_levers.py --name 34-companies --score-groups 10 validation_groups=20

`--dims` also scores the grouped validation on the embeddings' leading dimensions only (what a store
keeping fewer dimensions searches); one line per (alpha, dims), `dims` null for the full width.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line, train_plain_minilm


def _plain(dataset, steps: int | None) -> tuple:
    return train_plain_minilm(dataset, 32, steps, tempfile.mkdtemp(prefix="fintune-levers-plain-"))


def _sampled(data, seed: int, distractors: int = 1000):
    """The validation queries over their passages plus a fixed sample of the others (as the training evaluator)."""
    import dataclasses
    import random

    relevant = {d for docs in data.qrels.values() for d in docs}
    others = [d for d in data.corpus if d not in relevant]
    keep = relevant | set(random.Random(seed).sample(others, min(distractors, len(others))))
    return dataclasses.replace(data, corpus={d: v for d, v in data.corpus.items() if d in keep})


def _first_groups(data, grouped, n: int, seed: int):
    """The validation queries of the groups `validation_groups=n` holds out (fintune.embed.grouped's own draw)."""
    import dataclasses

    from fintune.data.beir import load_beir
    from fintune.embed.grouped import grouped_split, query_group

    train = load_beir(grouped.train.folder, "train", skip_invalid=True)  # the folder the split was drawn from
    first = set(grouped_split(train, grouped.field, n, seed).held_out)
    assert first <= set(grouped.held_out), "the draw of M does not contain the draw of N"
    keep = {q for q in data.qrels if query_group(data, q, grouped.field) in first}
    print(f"scored: the {len(keep)} queries of {', '.join(sorted(first))}", file=sys.stderr)
    return dataclasses.replace(
        data,
        queries={q: t for q, t in data.queries.items() if q in keep},
        qrels={q: r for q, r in data.qrels.items() if q in keep},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--alphas", default="1")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--base", action="store_true", help="also score the base model (alpha 0)")
    parser.add_argument("--dims", default="", help="also score truncated to these widths, e.g. 128,64")
    parser.add_argument("--score-groups", type=int, help="score only the first N held-out groups' queries")
    parser.add_argument("--out", default="embed_levers.jsonl")
    parser.add_argument(
        "--sampled", action="store_true", help="score on the judged passages + 1,000 distractors (screening)"
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()

    import torch

    from fintune.config.files import parse_overrides
    from fintune.config.schema import EmbedRunConfig
    from fintune.data.tasks import get_task
    from fintune.embed.evaluate import evaluate_retrieval
    from fintune.embed.style_check import style_check_data
    from fintune.embed.train import prepare_training, run_training
    from fintune.embed.wise import interpolate
    from fintune.models.resolve import resolve_model
    from fintune.perf import keep_freed_memory

    keep_freed_memory()
    machine = machine_line()
    print(machine, flush=True)
    data = get_task("financial_qa_10k").path("train")
    overrides = parse_overrides(args.overrides)
    if args.plain:
        overrides["hard_negatives"] = 0
    config = EmbedRunConfig.model_validate({"model": "minilm", "data": str(data), **overrides})
    with tempfile.TemporaryDirectory(prefix="fintune-levers-") as tmp:
        setup = prepare_training(config, Path(tmp) / "model", use_gpu=False, evaluate=False)
        if args.plain:
            model, seconds, steps = _plain(setup.data.dataset, args.max_steps)
            examples = len(setup.data.dataset) if not args.max_steps else args.max_steps * 32
        else:
            if args.max_steps:
                setup.trainer.args.max_steps = args.max_steps
            result = run_training(setup, resume=False)
            model, seconds, steps, examples = setup.model, result.train_seconds, result.steps, result.examples
    from sentence_transformers import SentenceTransformer

    base = SentenceTransformer(str(resolve_model("minilm")), device="cpu").state_dict()
    tuned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    style = style_check_data()
    validation = _sampled(setup.eval_data, config.seed) if args.sampled else setup.eval_data
    if args.score_groups:
        validation = _first_groups(validation, setup.grouped, args.score_groups, config.seed)
    alphas = [float(a) for a in args.alphas.split(",")] + ([0.0] if args.base else [])
    widths: list[int | None] = [None] + [int(d) for d in args.dims.split(",") if d]
    for alpha, width in ((a, w) for a in alphas for w in widths):
        model.load_state_dict(interpolate(base, tuned, alpha))
        model.eval()
        model.truncate_dim = width  # sentence-transformers' encode keeps the leading `width` dimensions
        with torch.no_grad():
            grouped = evaluate_retrieval(model, validation).metrics
            styled = evaluate_retrieval(model, style).metrics if style else {}
        row = {
            "name": args.name if alpha else "base",
            "alpha": alpha,
            "dims": width,
            "grouped_ndcg@10": grouped["ndcg@10"],
            "grouped_mrr@10": grouped["mrr@10"],
            "grouped_recall@10": grouped["recall@10"],
            "style_ndcg@10": styled.get("ndcg@10"),
            "train_seconds": seconds,
            "steps": steps,
            "examples": examples,
            "plain": args.plain,
            "overrides": overrides,
            "max_steps": args.max_steps,
            "corpus": len(validation.corpus),
            "validation": setup.grouped.describe() if setup.grouped else None,
            "bf16": setup.trainer.args.bf16 and not args.plain,
            "machine": machine,
        }
        print(json.dumps(row), flush=True)
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
