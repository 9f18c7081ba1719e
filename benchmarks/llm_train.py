"""LoRA training speed: plain TRL SFTTrainer + PEFT defaults vs fintune's default recipe, side by side.

Same model (SmolLM2-135M-Instruct), same FPB training sentences with the same prompts, same LoRA rank
(16) and batch (16), same number of steps. "plain" is what a user gets from TRL's and PEFT's defaults:
fp32, padded random batches, adapters on every linear layer, TRL's default gradient checkpointing.
"fintune" is `fintune llm train`'s default path; "fintune+padding_free" adds padding-free batches, kept
here to show why they are off on CPU. Each run is a fresh process, variants interleaved; the step time
excludes the first step (warm-up).

    .venv/bin/python benchmarks/llm_train.py [--steps 10] [--rounds 2] [--variants plain,fintune]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line, matmul_gflops, peak_rss_mb

VARIANTS = ("plain", "fintune", "fintune+padding_free")
BATCH, RANK = 16, 16


COUNTED_STEP = 1  # the second step's FLOPs are counted (and its time left out: counting slows it)


def step_timer():
    """Times every step, and counts the FLOPs torch actually runs in one of them (FlopCounterMode), so
    the utilisation reflects the work each recipe does, not a 6-FLOPs-per-parameter estimate."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.durations: list[float] = []
            self.flops_per_token = 0.0
            self._start, self._tokens, self._counter = 0.0, 0, None

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == COUNTED_STEP:
                self._tokens = int(state.num_input_tokens_seen or 0)
                self._counter = FlopCounterMode(display=False)
                self._counter.__enter__()
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self._counter is None:
                self.durations.append(time.perf_counter() - self._start)
                return
            self._counter.__exit__(None, None, None)
            tokens = int(state.num_input_tokens_seen or 0) - self._tokens
            self.flops_per_token = self._counter.get_total_flops() / max(tokens, 1)
            self._counter = None

    return StepTimer()


def examples(n: int, folder: Path):
    """The first n FPB training sentences as fintune examples, and the same rows as a file."""
    from fintune.data.tasks import get_task
    from fintune.llm.data import task_examples

    rows = get_task("fpb").path("train").read_text(encoding="utf-8").splitlines()[:n]
    path = folder / "fpb-bench.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return task_examples("fpb", path, "train").examples, path


def run_plain(steps: int, folder: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from fintune.config.schema import LLMRunConfig
    from fintune.models.resolve import resolve_model

    exs, _ = examples(steps * BATCH, folder)
    system = LLMRunConfig().system_prompt
    data = Dataset.from_list(
        [
            {
                "prompt": [{"role": "system", "content": system}, {"role": "user", "content": e.prompt}],
                "completion": [{"role": "assistant", "content": e.target}],
            }
            for e in exs
        ]
    )
    model_dir = str(resolve_model("smollm2"))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    timer = step_timer()
    args = SFTConfig(
        output_dir=str(folder / "plain"),
        per_device_train_batch_size=BATCH,
        max_steps=steps,
        learning_rate=1e-4,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1000,
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=LoraConfig(r=RANK, target_modules="all-linear", task_type="CAUSAL_LM"),
        callbacks=[timer],
    )
    start = time.perf_counter()
    trainer.train()
    return _summary("plain", trainer, timer, time.perf_counter() - start)


def run_fintune(steps: int, folder: Path, padding_free: bool) -> dict:
    from fintune.perf import keep_freed_memory

    keep_freed_memory()  # as `fintune llm train` does at start-up
    from fintune.config.schema import LLMRunConfig
    from fintune.llm.train import train_llm

    _, path = examples(steps * BATCH, folder)
    cfg = LLMRunConfig(
        task="fpb", dataset_path=str(path), max_steps=steps, eval_each_epoch=False, padding_free=padding_free
    )
    timer = step_timer()
    captured = {}

    from transformers import TrainerCallback

    class Keep(TrainerCallback):
        def on_train_end(self, args, state, control, **kwargs):
            captured["tokens"] = int(state.num_input_tokens_seen or 0)

    start = time.perf_counter()
    result = train_llm(cfg, folder / "adapter", callbacks=[timer, Keep()], resume=False)
    name = "fintune+padding_free" if padding_free else "fintune"
    return _summary(
        name, None, timer, result.train_seconds, tokens=captured["tokens"], wall=time.perf_counter() - start
    )


def _summary(name, trainer, timer, train_s, tokens=None, wall=None) -> dict:
    tokens = tokens if tokens is not None else int(trainer.state.num_input_tokens_seen or 0)
    steps = timer.durations
    per_step_tokens = tokens / max(len(steps) + 1, 1)  # the counted step is not in `steps`
    steady = steps[1:] or steps
    return {
        "flops_per_token": timer.flops_per_token,
        "variant": name,
        "steps": len(steps),
        "tokens": tokens,
        "train_s": train_s,
        "steady_step_s": statistics.mean(steady),
        "tokens_per_s": per_step_tokens / statistics.mean(steady),
        "peak_rss_mb": peak_rss_mb(),
        "wall_s": wall or train_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="plain,fintune")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        with tempfile.TemporaryDirectory() as tmp:
            if args.variant == "plain":
                row = run_plain(args.steps, Path(tmp))
            else:
                row = run_fintune(args.steps, Path(tmp), padding_free=args.variant.endswith("padding_free"))
        print(json.dumps(row))
        return
    print(machine_line())
    peak = matmul_gflops("float32") * 1e9
    variants = args.variants.split(",")
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants:
            out = subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--steps", str(args.steps)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if out.returncode != 0:
                sys.exit(f"{variant} failed:\n{out.stderr[-3000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results[variant].append(row)
            print(f"round {round_ + 1} {variant:>21}: {row['tokens_per_s']:.0f} tokens/s, "
                  f"{row['steady_step_s']:.2f} s/step, {row['train_s']:.0f} s for {row['steps']} steps, "
                  f"peak {row['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
    base = statistics.median(r["tokens_per_s"] for r in results[variants[0]])
    base_s = statistics.median(r["train_s"] for r in results[variants[0]])
    from transformers import AutoModelForCausalLM

    from fintune.models.resolve import resolve_model

    params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(str(resolve_model("smollm2"))).parameters())
    print(
        f"\n{args.steps} steps x batch {BATCH} of FPB, LoRA r {RANK}, {params / 1e6:.0f}M-parameter model; "
        "FLOP utilisation = FLOPs torch ran per token (counted) x tokens/s / measured fp32 matmul peak"
    )
    print(
        f"{'variant':>21} {'tokens/s':>9} {'vs plain':>8} {'train s':>8} {'wall ratio':>10} "
        f"{'GFLOP/token':>11} {'util':>6} {'peak MB':>8}"
    )
    for variant in variants:
        rate = statistics.median(r["tokens_per_s"] for r in results[variant])
        secs = statistics.median(r["train_s"] for r in results[variant])
        mem = max(r["peak_rss_mb"] for r in results[variant])
        per_token = statistics.median(r["flops_per_token"] for r in results[variant])
        util = per_token * rate / peak
        print(
            f"{variant:>21} {rate:9.0f} {rate / base:7.2f}x {secs:8.0f} {base_s / secs:9.2f}x "
            f"{per_token / 1e9:11.2f} {util:6.1%} {mem:8.0f}"
        )


if __name__ == "__main__":
    main()
