"""FinLoRA's general-task row on SmolLM2: base, single-task and multi-task adapters beside Llama-3.1-8B.

Scores each `--model LABEL=ADAPTER` (`LABEL=base`: SmolLM2 without an adapter) with `fintune llm eval`
on the dev split of fpb, tfns, fiqa_sa (FiQA's scores mapped to three classes with FinLoRA's thresholds,
the `sentiment` task's FiQA prompt), headline and ner. `--limit TASK=N` scores a seeded sample of a
large dev split (headline has 6,126 yes/no questions). Each report is kept in `--out`, so a rerun scores
only what is missing; the table is printed in markdown with FinLoRA's published base / LoRA accuracy
(NWGI is not in the shared data).

    .venv/bin/python benchmarks/llm_row.py --model base=base --model multi=runs/all \\
        --model single_fpb=runs/fpb:fpb --limit headline=600 --out runs/row
A `:TASK[,TASK]` suffix limits an adapter to the tasks it was trained for (single-task adapters).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import llm_eval, machine_line

TASKS = ("fpb", "tfns", "fiqa_sa", "headline", "ner")
# FinLoRA (arXiv 2505.19819), Llama-3.1-8B-Instruct base and 8-bit LoRA accuracy, %
FINLORA = {"fpb": (68.7, 85.6), "tfns": (70.0, 88.0), "fiqa_sa": (46.6, 81.3), "headline": (45.3, 84.7),
           "ner": (48.9, 98.1)}  # fmt: skip


def score(label: str, adapter: str | None, task: str, limit: int | None, out: Path) -> dict[str, Any]:
    report = out / f"{label}.{task}.json"
    if not report.is_file():
        print(f"scoring {label} on {task}", file=sys.stderr, flush=True)
        llm_eval(adapter, task, report, limit)
    return json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=ADAPTER[:TASKS]")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--limit", action="append", default=[], metavar="TASK=N")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = args.tasks.split(",")
    limits = {t: int(n) for t, n in (item.split("=") for item in args.limit)}
    rows: dict[str, dict[str, float]] = {}
    for item in args.model:
        label, _, target = item.partition("=")
        adapter, _, only = target.partition(":")
        chosen = only.split(",") if only else tasks
        rows[label] = {
            t: score(label, None if adapter == "base" else adapter, t, limits.get(t), args.out)["accuracy"]
            for t in tasks
            if t in chosen
        }
    print(machine_line())
    print("| model | " + " | ".join(tasks) + " |")
    print("|---|" + "---|" * len(tasks))
    for label, accuracy in rows.items():
        print(f"| {label} | " + " | ".join(f"{accuracy[t]:.3f}" if t in accuracy else "-" for t in tasks) + " |")
    for i, name in enumerate(("Llama-3.1-8B base (FinLoRA)", "Llama-3.1-8B LoRA (FinLoRA)")):
        print(f"| {name} | " + " | ".join(f"{FINLORA[t][i] / 100:.3f}" if t in FINLORA else "-" for t in tasks) + " |")


if __name__ == "__main__":
    main()
