"""Helpers shared by unit and integration tests: trainer callbacks that kill or watch a run, CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from transformers import TrainerCallback

# Set by an in-process `main()` of another test; a child process must choose them itself.
MANAGED_ENV = ("FINTUNE_LOG_LEVEL", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY")


class Killed(Exception):
    pass


class KillAtStep(TrainerCallback):
    """Checkpoint at `step` (whatever save_steps says), then die as a killed process would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        raise Killed


class Steps(TrainerCallback):
    """The optimizer steps this run actually takes."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def run_cli(*args: object, log_level: str | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """`fintune ARGS` in a fresh process; fails the test on a non-zero exit, with the end of stderr."""
    env = {k: v for k, v in os.environ.items() if k not in MANAGED_ENV}
    level = ["--log-level", log_level] if log_level else []
    cmd = [sys.executable, "-m", "fintune", *level, *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def parse_jsonl(stdout: str) -> list[dict]:
    """Every line, the last one ended too: a stray line of text fails here."""
    assert stdout.endswith("\n"), stdout[-200:]
    return [json.loads(line) for line in stdout.split("\n")[:-1]]


def random_lora_adapter(
    base: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    target_modules: str | list[str] = "all-linear",
    lora_alpha: int = 8,
    record_base: bool = False,
) -> str:
    """A LoRA adapter with random non-zero A and B (`init_lora_weights=False`): it changes the base's
    answers without a training run. `base` is a model folder or alias; `record_base` writes fintune's run
    record naming it (else PEFT's own base_model_name_or_path says where the base is)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from fintune.models.resolve import resolve_model

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(resolve_model(str(base))), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=lora_alpha, target_modules=target_modules, init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(str(out))
    if record_base:
        with open(os.path.join(out, "fintune_run.json"), "w") as fh:
            json.dump({"base_model": str(base), "quant_bits": 16}, fh)
    return str(out)


def fpb_head_answers(adapter: str | os.PathLike[str], texts: list[str]) -> tuple[list[str], list[dict[str, float]]]:
    """A classification-head adapter's labels and label probabilities for fpb sentences, computed from its
    head's logits over the fpb prompts built from records: what any path serving it must give."""
    from fintune.data.tasks import get_task
    from fintune.llm.heads import head_logits, load_head_model
    from fintune.llm.inference import inference_settings
    from fintune.llm.prompts import build_examples

    model, tokenizer, spec = load_head_model(adapter)
    settings = inference_settings(adapter)
    prompts = [build_examples(get_task("fpb"), {"text": t, "label": "neutral"})[0] for t in texts]
    rows = head_logits(model, tokenizer, prompts, settings.system_prompt, settings.max_length)
    labels = [spec.labels[int(row.argmax())] for row in rows]
    return labels, [dict(zip(spec.labels, row.softmax(-1).tolist(), strict=True)) for row in rows]
