"""Two adapters' answers to the same questions, compared per question: the mean token-F1 difference and a
paired bootstrap 95% interval (a few answers move a mean over tens of questions; the interval says whether a
gap is more than that).

    fintune llm eval --adapter A --task financial_qa_10k --limit 96 --predictions a.jsonl --output a.json
    fintune llm eval --adapter B --task financial_qa_10k --limit 96 --predictions b.jsonl --output b.json
    .venv/bin/python benchmarks/paired_qa.py a.jsonl b.jsonl

`--prompts-may-differ` pairs by question and reference answer instead (two prompt templates, e.g. two
instructions for the same questions).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from fintune.metrics.qa import token_f1


def _load(path: str) -> dict[int, dict]:
    return {row["id"]: row for row in map(json.loads, Path(path).read_text().splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("a", help="predictions JSONL of the first adapter (`llm eval --predictions`)")
    parser.add_argument("b", help="predictions JSONL of the second, on the same prompts")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument(
        "--prompts-may-differ", action="store_true", help="pair by question id and reference answer only"
    )
    args = parser.parse_args()
    a, b = _load(args.a), _load(args.b)
    key = "gold" if args.prompts_may_differ else "prompt"
    if sorted(a) != sorted(b) or any(a[i][key] != b[i][key] for i in a):
        raise SystemExit(f"the two files do not answer the same questions (their {key}s differ)")
    diffs = [token_f1(a[i]["answer"], a[i]["gold"]) - token_f1(b[i]["answer"], b[i]["gold"]) for i in sorted(a)]
    rng = random.Random(0)
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(args.resamples))
    low, high = means[int(0.025 * args.resamples)], means[int(0.975 * args.resamples) - 1]
    mean = sum(diffs) / len(diffs)
    print(json.dumps({"questions": len(diffs), "token_f1_a_minus_b": mean, "ci95": [low, high]}))


if __name__ == "__main__":
    main()
