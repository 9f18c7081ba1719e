"""Loss weighting (issue 13): hand-computed reductions, HF's standard loss, accumulation, and the trainer's path."""

import math

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.loss.loss_utils import ForCausalLMLoss
from trl import SFTConfig

from fintune.config.schema import LLMRunConfig
from fintune.llm.loss import (
    WEIGHT_COLUMN,
    WeightedLossSFTTrainer,
    example_ids_for,
    reduce_token_losses,
    weighted_causal_lm_loss,
)

# Two examples: the first scores tokens with losses 1 and 2, the second one token with loss 4.
TOKEN_LOSS = torch.tensor([[1.0, 2.0, 0.0], [4.0, 0.0, 0.0]])
MASK = torch.tensor([[True, True, False], [True, False, False]])
ROWS = torch.tensor([[0, 0, 0], [1, 1, 1]])


@pytest.mark.parametrize(
    ("normalization", "weights", "expected"),
    [
        ("token", [1.0, 1.0], (1 + 2 + 4) / 3),
        ("example", [1.0, 1.0], ((1 + 2) / 2 + 4) / 2),
        ("token", [2.0, 1.0], (2 * (1 + 2) + 4) / 3),
        ("example", [2.0, 1.0], (2 * 1.5 + 4) / 2),
    ],
)
def test_reductions_match_hand_computed_values(normalization, weights, expected):
    loss = reduce_token_losses(TOKEN_LOSS, MASK, ROWS, torch.tensor(weights), normalization)
    assert loss.item() == pytest.approx(expected)


def _batch(seed=0, batch=3, seq=6, vocab=11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, seq, vocab, generator=g)
    labels = torch.randint(0, vocab, (batch, seq), generator=g)
    labels[0, :2] = -100  # prompts of different lengths, answers of different lengths
    labels[1, :4] = -100
    labels[2, :1] = -100
    return logits, labels


def test_token_normalisation_is_transformers_standard_loss():
    logits, labels = _batch()
    expected = ForCausalLMLoss(logits, labels, vocab_size=logits.size(-1))
    assert weighted_causal_lm_loss(logits, labels, normalization="token").item() == pytest.approx(expected.item())


def test_example_normalisation_is_the_mean_of_per_example_means():
    logits, labels = _batch()
    per_example = [F.cross_entropy(logits[i, :-1], labels[i, 1:], ignore_index=-100).item() for i in range(3)]
    got = weighted_causal_lm_loss(logits, labels, normalization="example").item()
    assert got == pytest.approx(sum(per_example) / 3)
    # the short answer (row 1: 1 token) weighs as much as the long one: unlike the token mean
    assert not math.isclose(got, weighted_causal_lm_loss(logits, labels, normalization="token").item())


@pytest.mark.parametrize("normalization", ["token", "example"])
def test_accumulated_micro_batches_equal_one_batch(normalization):
    """Each micro-batch divided by the window's count (what Trainer passes) sums to the whole batch's loss."""
    logits, labels = _batch(seed=3, batch=4)
    weights = torch.tensor([1.0, 3.0, 0.5, 2.0])
    whole = weighted_causal_lm_loss(logits, labels, weights, normalization)
    count = int((labels[:, 1:] != -100).sum()) if normalization == "token" else 4
    parts = [
        weighted_causal_lm_loss(logits[s], labels[s], weights[s], normalization, denominator=count)
        for s in (slice(0, 1), slice(1, 4))
    ]
    assert sum(p.item() for p in parts) == pytest.approx(whole.item())


def test_padding_free_rows_map_tokens_to_their_examples():
    batch = {"input_ids": torch.zeros(1, 7), "position_ids": torch.tensor([[0, 1, 2, 0, 1, 0, 1]])}
    ids = example_ids_for(batch, torch.Size([1, 6]))
    # shifted index t scores position t+1: positions 1,2 -> example 0; 3,4 -> 1; 5,6 -> 2
    assert ids.tolist() == [[0, 0, 1, 1, 2, 2]]


def test_multi_task_runs_default_to_example_normalisation():
    assert LLMRunConfig(task="fpb").resolved_loss_normalization == "token"
    assert LLMRunConfig(tasks=["fpb", "ectsum"]).resolved_loss_normalization == "example"
    assert LLMRunConfig(tasks=["fpb", "ectsum"], loss_normalization="token").resolved_loss_normalization == "token"
    with pytest.raises(ValueError, match="does not train: tfns"):
        LLMRunConfig(tasks=["fpb", "ectsum"], task_loss_weights={"tfns": 2.0})


def _trainer(model_dir, out, normalization, batch_size=4, accumulation=1, **kw):
    tok = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(0)  # the same LoRA initialisation in every trainer
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    words = ["profit rose", "sales fell the company said", "flat", "gold price going up"]
    rows = {
        "input_ids": [
            tok(w)["input_ids"] + tok("positive negative")["input_ids"][: 1 + i % 2] for i, w in enumerate(words)
        ],
        WEIGHT_COLUMN: [1.0, 2.0, 0.5, 1.0],
    }
    rows["completion_mask"] = [
        [0] * (len(ids) - 1 - i % 2) + [1] * (1 + i % 2) for i, ids in enumerate(rows["input_ids"])
    ]
    args = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        report_to="none",
        use_cpu=True,
        completion_only_loss=True,
        max_length=None,
        remove_unused_columns=False,
        **kw,
    )
    return WeightedLossSFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(rows),
        processing_class=tok,
        peft_config=LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights="gaussian"),
        loss_normalization=normalization,
    )


@pytest.mark.parametrize("normalization", ["token", "example"])
def test_trainer_loss_is_the_weighted_loss_of_the_models_logits(tiny_llm_dir, tmp_path, normalization):
    """The fused-head path inside the trainer gives the same number as the pure function on full logits."""
    trainer = _trainer(tiny_llm_dir, tmp_path, normalization)
    batch = next(iter(trainer.get_train_dataloader()))
    assert sorted(batch[WEIGHT_COLUMN].tolist()) == [0.5, 1.0, 1.0, 2.0]  # carried (in the sampler's order)
    trainer.model.train()
    weights = batch[WEIGHT_COLUMN].clone()
    got = trainer.compute_loss(trainer.model, dict(batch))
    with torch.no_grad():
        forward = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
        logits = trainer.model(**forward).logits
    expected = weighted_causal_lm_loss(logits, batch["labels"], weights, normalization)
    assert got.item() == pytest.approx(expected.item(), rel=1e-4)
    assert got.requires_grad


@pytest.mark.parametrize("normalization", ["token", "example"])
def test_accumulated_steps_train_like_one_large_batch(tiny_llm_dir, tmp_path, normalization):
    """Two micro-batches of 2 then one SGD step = one batch of 4 (Adam would hide a wrong loss scale)."""
    sgd = {
        "optim": "sgd",
        "learning_rate": 1.0,
        "max_steps": 1,
        "lr_scheduler_type": "constant",
        "seed": 3,
        "bf16": False,
    }
    weights = []
    for batch_size, accumulation in ((4, 1), (2, 2)):
        trainer = _trainer(tiny_llm_dir, tmp_path / f"b{batch_size}", normalization, batch_size, accumulation, **sgd)
        trainer.train()
        weights.append({n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n})
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=1e-4, atol=1e-6)


def test_multi_task_run_trains_with_the_weighted_loss(tiny_llm_dir, tmp_path, monkeypatch, shared_data):
    """A two-task run takes the weighted trainer (example normalisation by default, task weights applied)."""
    from fintune.llm import train as train_module

    used = []
    original = WeightedLossSFTTrainer.compute_loss

    def spy(self, model, inputs, *args, **kwargs):
        used.append((self.loss_normalization, sorted(set(inputs[WEIGHT_COLUMN].tolist()))))
        return original(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(WeightedLossSFTTrainer, "compute_loss", spy)
    cfg = LLMRunConfig(
        base_model=str(tiny_llm_dir),
        tasks=["fpb", "tfns"],
        task_loss_weights={"fpb": 3.0},
        max_train_examples=16,
        max_steps=2,
        batch_size=8,
        eval_each_epoch=False,
    )
    result = train_module.train_llm(cfg, tmp_path / "adapter")
    assert result.steps == 2 and used and all(norm == "example" for norm, _ in used)
    assert {w for _, weights in used for w in weights} <= {1.0, 3.0} and any(3.0 in w for _, w in used)


@pytest.mark.parametrize("normalization", ["token", "example"])
def test_padding_free_batches_weigh_each_packed_example(tiny_llm_dir, tmp_path, normalization):
    """One packed row of four examples gives the loss of the same four examples padded."""
    packed = _trainer(tiny_llm_dir, tmp_path / "packed", normalization, padding_free=True, bf16=False)
    batch = next(iter(packed.get_train_dataloader()))
    assert batch["input_ids"].size(0) == 1 and "attention_mask" not in batch
    packed.model.train()
    got = packed.compute_loss(packed.model, dict(batch)).item()
    padded = _trainer(tiny_llm_dir, tmp_path / "padded", normalization, bf16=False)
    rows = next(iter(padded.get_train_dataloader()))
    padded.model.load_state_dict(packed.model.state_dict())
    padded.model.train()
    assert got == pytest.approx(padded.compute_loss(padded.model, dict(rows)).item(), rel=1e-4)
