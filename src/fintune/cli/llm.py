"""`fintune llm eval`."""

from __future__ import annotations

import argparse
import json

from fintune.cli.output import console, fmt, write_json
from fintune.data.tasks import TASKS


def add_parser(sub: argparse._SubParsersAction) -> None:
    llm = sub.add_parser("llm", help="instruction LLMs on financial tasks")
    lsub = llm.add_subparsers(dest="llm_cmd", required=True)
    ev = lsub.add_parser("eval", help="score a model by generation on a task's data")
    ev.add_argument("--model", default="smollm2", help="alias, folder or hub id (default smollm2)")
    ev.add_argument("--task", required=True, choices=sorted(TASKS))
    ev.add_argument("--data", help="records file (default: the task's dev split, else train)")
    ev.add_argument("--limit", type=int, help="score only the first N records")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--system-prompt")
    ev.add_argument("--skip-invalid", action="store_true", help="skip and count bad records instead of failing")
    ev.add_argument("--output", help="write the metrics as JSON here")
    ev.add_argument("--predictions", help="write every prompt, answer and gold label as JSONL here")
    ev.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from fintune.data.loading import load_records
    from fintune.data.tasks import get_task
    from fintune.llm.evaluate import evaluate_generation
    from fintune.llm.model import load_causal_lm

    task = get_task(args.task)
    path = args.data or task.path("dev" if "dev" in task.splits else "train")
    rows = load_records(path, task=task, skip_invalid=args.skip_invalid).rows[: args.limit]
    model, tokenizer = load_causal_lm(args.model)
    result = evaluate_generation(model, tokenizer, task, rows, args.batch_size, args.system_prompt)
    for key, value in result.metrics.items():
        console.print(f"{key:>18}  {fmt(value)}")
    if args.output:
        write_json(args.output, {"model": args.model, "task": task.name, "data": str(path), **result.metrics})
    if args.predictions:
        with open(args.predictions, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in result.predictions)
    return 0
