"""`fintune llm train|eval|generate|chat|merge|export`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fintune.cli.output import console, fmt, write_json
from fintune.cli.runs import add_train_flags, run_config_from_args
from fintune.config.schema import LLM_MAX_SEQ_LENGTH, LLMRunConfig
from fintune.data.tasks import TASKS
from fintune.errors import UsageError

if TYPE_CHECKING:
    from fintune.llm.inference import InferenceSettings


def add_parser(sub: argparse._SubParsersAction) -> None:
    llm = sub.add_parser("llm", help="instruction LLMs on financial tasks")
    lsub = llm.add_subparsers(dest="llm_cmd", required=True)

    tr = lsub.add_parser("train", help="LoRA-family fine-tuning from a named run or flags")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    tr.add_argument("--no-resume", action="store_true", help="ignore checkpoints of an interrupted run")
    tr.add_argument("--skip-invalid", action="store_true", help="skip and count bad records instead of failing")
    add_train_flags(tr, "llm")
    tr.set_defaults(func=cmd_train)

    ev = lsub.add_parser("eval", help="score a model (optionally with an adapter) by generation on a task's data")
    _model_args(ev)
    ev.add_argument("--task", required=True, choices=sorted(TASKS))
    ev.add_argument("--data", help="records file (default: the task's dev split, else train)")
    ev.add_argument("--limit", type=int, help="score N records, a seeded random sample in file order")
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

    ex = lsub.add_parser("export", help="merge an adapter and write one GGUF file for llama.cpp / Ollama")
    ex.add_argument("--adapter", help="adapter folder to merge (omit to export --model as is)")
    ex.add_argument("--model", help="base model (default: the adapter's)")
    ex.add_argument("--format", choices=["gguf"], default="gguf")
    ex.add_argument("--quantize", choices=["f16", "q8_0"], default="f16")
    ex.add_argument("--output", required=True, help="the .gguf file to write")
    ex.add_argument("--overwrite", action="store_true")
    ex.set_defaults(func=cmd_export)

    fe = lsub.add_parser("federate", help="federated LoRA on Flower: each client trains on its own data")
    fe.add_argument("--config", required=True, help="YAML or JSON file of named federated runs")
    fe.add_argument("--run", help="the run to use from --config")
    fe.add_argument("--output", help="adapter folder (default: output in the run)")
    fe.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    fe.add_argument(
        "--flower-app",
        metavar="DIR",
        help="write the run as a Flower app folder for `flwr run DIR` on a SuperLink instead of running it here",
    )
    fe.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. rounds=3 local_steps=10 aggregation=ffa")
    fe.set_defaults(func=cmd_federate)


def _model_args(parser: argparse.ArgumentParser) -> None:
    default = LLMRunConfig.model_fields["base_model"].default
    parser.add_argument("--model", help=f"alias, folder or hub id (default: the adapter's base, else {default})")
    parser.add_argument("--adapter", help="PEFT adapter folder from `fintune llm train`")
    parser.add_argument("--system-prompt", help="default: the adapter's training system prompt ('' for none)")
    parser.add_argument(
        "--max-length",
        type=int,
        help=f"prompt + answer tokens (default: the adapter's max_seq_length, else {LLM_MAX_SEQ_LENGTH})",
    )


def _load(args: argparse.Namespace) -> tuple[Any, Any, InferenceSettings]:
    """Model, tokenizer and the adapter's prompt settings under the flags given."""
    from fintune.llm.inference import load_for_inference

    return load_for_inference(args.model, args.adapter, args.system_prompt, args.max_length)


def _load_writer(args: argparse.Namespace) -> tuple[Any, Any, InferenceSettings]:
    """`_load` for the commands that write text: a head adapter scores labels and writes none."""
    from fintune.llm.inference import head_of

    head = head_of(args.adapter)
    if head != "generate":
        raise UsageError(
            f"{args.adapter}: a '{head}' head adapter scores labels or values, it does not write text; "
            f"use `fintune llm eval --adapter {args.adapter} --task ...`"
        )
    return _load(args)


def cmd_train(args: argparse.Namespace) -> int:
    from fintune.llm.train import train_llm

    config = run_config_from_args(args, "llm")
    if not config.output:
        raise UsageError("give --output (or output in the run config)")
    if config.head != "generate":  # LoRA plus a classification/regression head: the HF Trainer's recipe
        from fintune.llm.heads import train_head

        result = train_head(config, config.output, overwrite=args.overwrite, skip_invalid=args.skip_invalid)
    else:
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
    from fintune.llm.data import evaluation_examples, sample_examples, task_examples
    from fintune.llm.evaluate import evaluate_examples
    from fintune.llm.inference import inference_settings

    task = get_task(args.task)
    settings = inference_settings(args.adapter, args.system_prompt, args.max_length)
    head = settings.run.head if args.adapter else "generate"  # the path the adapter was trained for
    if head == "generate":
        model, tokenizer, settings = _load(args)
    else:
        from fintune.llm.heads import load_head_model

        model, tokenizer, spec = load_head_model(args.adapter)
    if args.data:
        examples = task_examples(task, args.data, "dev", skip_invalid=args.skip_invalid)
    else:
        examples = evaluation_examples(task, None, settings.run.seed, settings.run.eval_limit)
        console.print(f"scoring {len(examples.examples)} examples from {examples.source}")
    chosen = sample_examples(examples.examples, args.limit, settings.run.seed)  # a seeded sample, not the head
    if head == "generate":
        result = evaluate_examples(
            model, tokenizer, chosen, examples.family, args.batch_size, settings.system_prompt, settings.max_length
        )
    else:
        from fintune.llm.heads import evaluate_head

        result = evaluate_head(
            model,
            tokenizer,
            spec,
            chosen,
            examples.family,
            settings.system_prompt,
            settings.max_length,
            args.batch_size,
        )
    extra: dict[str, Any] = {}
    if result.by_source:
        extra["by_source"] = result.by_source
    if task.family == "regression":
        from fintune.llm.regression import baselines_for

        extra["baselines"] = baselines_for(task, args.data, args.limit, settings.run.seed)
    for key, value in result.metrics.items():
        console.print(f"{key:>20}  {fmt(value)}")
    for group, scores in extra.items():
        for name, metrics in scores.items():
            console.print(f"{group} {name}: " + ", ".join(f"{k} {fmt(v)}" for k, v in metrics.items()))
    if args.output:
        source = {"model": args.model, "adapter": args.adapter, "task": task.name, "data": examples.source}
        write_json(args.output, {**source, "records": examples.records, **result.metrics, **extra})
    if args.predictions:
        _write_jsonl(args.predictions, result.predictions)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from fintune.llm.encode import encode_prompt
    from fintune.llm.generate import generate_batched
    from fintune.llm.inference import prompt_examples

    examples = prompt_examples(args.prompt, args.file, args.task)
    model, tokenizer, settings = _load_writer(args)
    budget = settings.max_length - args.max_new_tokens
    prompts = [encode_prompt(tokenizer, e, settings.system_prompt, budget)[0] for e in examples]
    gen = generate_batched(model, tokenizer, prompts, args.max_new_tokens, args.batch_size, progress=len(prompts) > 1)
    if args.prompt and not args.output:
        print(gen.answers[0])
        return 0
    rows = [{"prompt": e.prompt, "answer": a} for e, a in zip(examples, gen.answers, strict=True)]
    _write_jsonl(args.output, rows)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from fintune.llm.encode import truncate_prompt
    from fintune.llm.generate import generate_batched
    from fintune.llm.prompts import chat_messages

    model, tokenizer, settings = _load_writer(args)
    history: list[dict[str, str]] = []
    console.print("chat: an empty line or Ctrl-D ends")
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        messages = chat_messages(text, settings.system_prompt, tuple(history))
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, Mapping) else ids  # a BatchEncoding (a UserDict, not a dict)
        ids, _ = truncate_prompt(list(ids), settings.max_length - args.max_new_tokens)
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


def cmd_export(args: argparse.Namespace) -> int:
    from fintune.llm.export_gguf import export_gguf

    check = export_gguf(args.output, args.adapter, args.model, args.quantize, overwrite=args.overwrite)
    console.print(
        f"wrote [bold]{args.output}[/] ({check.quantize}, {check.size_bytes / 2**20:.1f} MiB), loaded back: "
        f"same next token on {check.argmax_agreement:.1%} of probe positions, {check.decided_agreement:.1%} of "
        f"decided ones ({check.requirement}); greedy answers identical on {check.greedy_match}/{check.probes} probes"
    )
    return 0


def cmd_federate(args: argparse.Namespace) -> int:
    """Exit 1 when a client failed in some round (the adapter and every round's record are still written)."""
    from fintune.cli.output import err_console
    from fintune.federated.run import federate_from_files, flower_app_from_files

    if args.flower_app:
        project = flower_app_from_files(args.config, args.run, args.overrides, args.output, args.flower_app)
        err_console.print(f"wrote Flower app {project}; start it with: flwr run {project.parent} --stream")
        return 0
    result = federate_from_files(args.config, args.run, args.overrides, args.output, overwrite=args.overwrite)
    err_console.print(f"saved federated adapter [bold]{result.output}[/] after {result.seconds:.0f} s")
    for failure in result.failures:
        err_console.print(f"  round {failure['round']}: client {failure['client']} failed: {failure['error']}")
    return 1 if result.failures else 0


def _write_jsonl(path: str | None, rows: list[dict[str, Any]]) -> None:
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in rows]
    if path is None:
        sys.stdout.writelines(lines)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
