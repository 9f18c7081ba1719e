"""The answer-positions-only LM head gives the same loss and gradients as the full-logits loss."""

import torch
import trl.trainer.utils as trl_utils
from transformers import AutoModelForCausalLM
from trl.trainer.utils import add_fused_lm_head

from fintune.llm.fast import score_answer_positions_only


def test_answer_only_scoring_matches_the_full_loss(tiny_llm_dir, monkeypatch):
    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)  # undo the patch after the test
    torch.manual_seed(0)
    reference = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    fused = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    add_fused_lm_head(fused)
    ids = torch.randint(3, reference.config.vocab_size, (2, 12))
    labels = torch.full_like(ids, -100)
    labels[:, -3:] = ids[:, -3:]  # an answer of three tokens at the end of each row

    full = reference(input_ids=ids, labels=labels).loss
    full.backward()
    assert score_answer_positions_only()
    assert trl_utils._use_triton(torch.device("cpu"))
    compact = fused(input_ids=ids, labels=labels, fused_lm_head=True)
    compact.loss.backward()
    assert torch.allclose(full, compact.loss, atol=1e-5)
    assert int(compact.label_mask.sum()) == 2 * 3  # only the answer tokens are projected and scored
    grad_ref = reference.model.layers[0].mlp.up_proj.weight.grad
    grad_fused = fused.model.layers[0].mlp.up_proj.weight.grad
    assert torch.allclose(grad_ref, grad_fused, atol=1e-5)


def _packed_and_padded(examples):
    """TRL's own collator, both ways: padded rows, and one flattened row with per-example position ids."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    rows = [{"input_ids": ids, "labels": [-100] * (len(ids) - 2) + ids[-2:]} for ids in examples]  # 2-token answers
    padded = DataCollatorForLanguageModeling(pad_token_id=0)(rows)
    packed = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(rows)
    return padded, packed


def test_padding_free_batches_give_the_padded_loss(tiny_llm_dir):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    examples = [torch.randint(3, model.config.vocab_size, (n,)).tolist() for n in (9, 5, 12)]
    padded, packed = _packed_and_padded(examples)
    assert packed["input_ids"].shape == (1, 26) and packed["position_ids"][0, 9].item() == 0  # reset per example
    loss_padded = model(**{k: padded[k] for k in ("input_ids", "attention_mask", "labels")}).loss
    loss_packed = model(
        input_ids=packed["input_ids"], position_ids=packed["position_ids"], labels=packed["labels"], use_cache=False
    ).loss
    assert torch.allclose(loss_padded, loss_packed, atol=1e-5)


def test_no_attention_crosses_examples_in_a_packed_batch(tiny_llm_dir):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    first, second = (torch.randint(3, model.config.vocab_size, (n,)).tolist() for n in (7, 6))
    changed = [(t + 1) % model.config.vocab_size or 3 for t in first]  # another first example, same length
    logits = []
    for head in (first, changed):
        _, packed = _packed_and_padded([head, second])
        out = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits
        logits.append(out[0, len(head) :])  # the second example's positions
    assert torch.allclose(logits[0], logits[1], atol=1e-5)  # the first example cannot be seen from the second
