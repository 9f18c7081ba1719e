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
