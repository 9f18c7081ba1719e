"""`fintune llm train|eval|generate|chat|merge`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fintune.cli.output import console, fmt, write_json
from fintune.cli.runs import add_run_config_args, run_config_from_args
from fintune.data.tasks import TASKS

METHOD_CHOICES = ("lora", "qlora", "dora", "rslora", "pissa", "loftq")


def add_parser(sub: argparse._SubParsersAction) -> None:
    llm = sub.add_parser("llm", help="instruction LLMs on financial tasks")
    lsub = llm.add_subparsers(dest="llm_cmd", required=True)

    tr = lsub.add_parser("train", help="LoRA-family fine-tuning from a named run or flags")
    add_run_config_args(tr)
    tr.add_argument("--task", help=f"registry task ({', '.join(sorted(TASKS))})")
    tr.add_argument("--data", help="training file (default: the task's train split)")
    tr.add_argument("--model", help="base model: alias, folder or hub id (default smollm2)")
    tr.add_argument("--output", help="adapter folder (written atomically)")
    tr.add_argument("--method", help=f"one of {', '.join(METHOD_CHOICES)}")
    tr.add_argument("--epochs", type=float)
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--lr", type=float, help="learning rate")
    tr.add_argument("--max-steps", type=int)
    tr.add_argument("--debug", action="store_true", help="a small slice: 64 examples, 8 steps")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    tr.add_argument("--no-resume", action="store_true", help="ignore checkpoints of an interrupted run")
    tr.add_argument("--skip-invalid", action="store_true", help="skip and count bad records instead of failing")
    tr.set_defaults(func=cmd_train)

    ev = lsub.add_parser("eval", help="score a model (optionally with an adapter) by generation on a task's data")
    _model_args(ev)
    ev.add_argument("--task", required=True, choices=sorted(TASKS))
    ev.add_argument("--data", help="records file (default: the task's dev split, else train)")
    ev.add_argument("--limit", type=int, help="score only the first N records")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--skip-invalid", action="store_true", help="skip and count bad records instead of failing")
    ev.add_argument("--output", help="write the metrics as JSON here")
    ev.add_argument("--predictions", help="write every prompt, answer and gold label as JSONL here")
    ev.set_defaults(func=cmd_eval)

    ge = lsub.add_parser("generate", help="answer one prompt, or every line of a file")
    _model_args(ge)
    ge.add_argument("prompt", nargs="?", help="the prompt (or use --file)")
    ge.add_argument("--file", help="JSONL of {prompt} (or a task's records with --task), or plain lines")
    ge.add_argument("--task", choices=sorted(TASKS), help="build prompts from a task's records")
    ge.add_argument("--max-new-tokens", type=int, default=128)
    ge.add_argument("--batch-size", type=int, default=8)
    ge.add_argument("--output", help="JSONL of {prompt, answer} (default: standard output)")
    ge.set_defaults(func=cmd_generate)

    ch = lsub.add_parser("chat", help="interactive chat (empty line or Ctrl-D ends)")
    _model_args(ch)
    ch.add_argument("--max-new-tokens", type=int, default=256)
    ch.set_defaults(func=cmd_chat)

    me = lsub.add_parser("merge", help="merge an adapter into a float copy of its base model")
    me.add_argument("--model", help="base model (default: the adapter's)")
    me.add_argument("--adapter", required=True)
    me.add_argument("--output", required=True)
    me.add_argument("--overwrite", action="store_true")
    me.set_defaults(func=cmd_merge)


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="alias, folder or hub id (default smollm2, or the adapter's base)")
    parser.add_argument("--adapter", help="PEFT adapter folder from `fintune llm train`")
    parser.add_argument("--system-prompt", help="default: the adapter's training system prompt")
    parser.add_argument("--max-length", type=int, help="prompt budget in tokens (default: the adapter's)")


def _load(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """Model, tokenizer and the prompt settings (system prompt, length) the adapter was trained with."""
    from fintune.config.schema import LLMRunConfig
    from fintune.llm.model import load_causal_lm

    run: dict[str, Any] = {}
    if args.adapter and (Path(args.adapter) / "fintune_run.json").is_file():
        run = json.loads((Path(args.adapter) / "fintune_run.json").read_text())
    defaults = LLMRunConfig()
    settings = {
        "system_prompt": args.system_prompt
        if args.system_prompt is not None
        else run.get("system_prompt", defaults.system_prompt),
        "max_length": args.max_length or run.get("max_seq_length", 2048),
        # a train-only task is scored on the slice the run held out: same seed and size
        "seed": run.get("seed", defaults.seed),
        "eval_limit": run.get("eval_limit", defaults.eval_limit),
    }
    model, tokenizer = load_causal_lm(args.model or (None if args.adapter else "smollm2"), adapter=args.adapter)
    return model, tokenizer, settings


def cmd_train(args: argparse.Namespace) -> int:
    from fintune.llm.train import train_llm

    flags = {
        "task": args.task,
        "dataset_path": args.data,
        "base_model": args.model,
        "output": args.output,
        "method": args.method,
        "num_epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "max_steps": args.max_steps,
        "debug": True if args.debug else None,
    }
    config = run_config_from_args(args, flags, pipeline="llm")
    if not config.output:
        raise ValueError("give --output (or output in the run config)")
    result = train_llm(
        config, config.output, overwrite=args.overwrite, resume=not args.no_resume, skip_invalid=args.skip_invalid
    )
    console.print(
        f"saved adapter [bold]{result.output}[/] after {result.train_seconds:.0f} s of training "
        f"({result.steps} steps, {result.tokens_per_s:.0f} tokens/s)"
    )
    for note in result.notes:
        console.print(f"  note: {note}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from fintune.data.tasks import get_task
    from fintune.llm.data import evaluation_examples, task_examples
    from fintune.llm.evaluate import evaluate_examples

    task = get_task(args.task)
    model, tokenizer, settings = _load(args)
    if args.data:
        examples = task_examples(task, args.data, "dev", skip_invalid=args.skip_invalid)
    else:
        examples = evaluation_examples(task, None, settings["seed"], settings["eval_limit"])
        console.print(f"scoring {len(examples.examples)} examples from {examples.source}")
    chosen = examples.examples[: args.limit] if args.limit else examples.examples
    result = evaluate_examples(
        model, tokenizer, chosen, examples.family, args.batch_size, settings["system_prompt"], settings["max_length"]
    )
    for key, value in result.metrics.items():
        console.print(f"{key:>20}  {fmt(value)}")
    if args.output:
        source = {"model": args.model, "adapter": args.adapter, "task": task.name, "data": examples.source}
        write_json(args.output, {**source, "records": examples.records, **result.metrics})
    if args.predictions:
        _write_jsonl(args.predictions, result.predictions)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from fintune.llm.encode import encode_prompt
    from fintune.llm.generate import generate_batched

    examples = _generate_inputs(args)
    model, tokenizer, settings = _load(args)
    budget = settings["max_length"] - args.max_new_tokens
    prompts = [encode_prompt(tokenizer, e, settings["system_prompt"], budget)[0] for e in examples]
    gen = generate_batched(model, tokenizer, prompts, args.max_new_tokens, args.batch_size, progress=len(prompts) > 1)
    if args.prompt and not args.output:
        print(gen.answers[0])
        return 0
    rows = [{"prompt": e.prompt, "answer": a} for e, a in zip(examples, gen.answers, strict=True)]
    _write_jsonl(args.output, rows)
    return 0


def _generate_inputs(args: argparse.Namespace) -> list[Any]:
    from fintune.llm.prompts import Example

    if bool(args.prompt) == bool(args.file):
        raise ValueError("give one prompt or --file")
    if args.prompt:
        return [Example(args.prompt, "")]
    if args.task:
        from fintune.llm.data import task_examples

        return task_examples(args.task, args.file, "train").examples
    path = Path(args.file)
    if path.suffix == ".jsonl":
        from fintune.data.readers import read_jsonl

        items = []
        for item in read_jsonl(path):
            value = getattr(item, "value", None)
            if not isinstance(value, dict) or not isinstance(value.get("prompt"), str):
                line = getattr(item, "line", "?")
                raise ValueError(f"{path}:{line}: prompt: expected an object with a 'prompt' string")
            items.append(Example(value["prompt"], ""))
        return items
    return [Example(line, "") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def cmd_chat(args: argparse.Namespace) -> int:
    from fintune.llm.encode import truncate_prompt
    from fintune.llm.generate import generate_batched
    from fintune.llm.prompts import chat_messages

    model, tokenizer, settings = _load(args)
    history: list[dict[str, str]] = []
    console.print("chat: an empty line or Ctrl-D ends")
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        messages = chat_messages(text, settings["system_prompt"], tuple(history))
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) else ids
        ids, _ = truncate_prompt(list(ids), settings["max_length"] - args.max_new_tokens)
        answer = generate_batched(model, tokenizer, [ids], args.max_new_tokens, 1, progress=False).answers[0]
        print(f"assistant> {answer}", flush=True)
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from fintune.llm.merge import merge_adapter

    check = merge_adapter(args.adapter, args.output, model=args.model, overwrite=args.overwrite)
    console.print(
        f"merged into [bold]{args.output}[/]: relative logit difference {check.max_abs_logit_diff:.1e} "
        f"(tolerance {check.tolerance:.0e}), same next token on {check.argmax_agreement:.0%} of probe positions"
    )
    return 0


def _write_jsonl(path: str | None, rows: list[dict[str, Any]]) -> None:
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in rows]
    if path is None:
        sys.stdout.writelines(lines)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
