"""The ClientApp's train handler on a tiny model: what it sends, what it keeps, FedProx's term."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, Context, Message, RecordDict

from fintune.federated import local
from fintune.federated.client import STATE_KEY, client_data, train_message
from fintune.federated.records import ARRAYS, CONFIG, METRICS, VALIDATION, from_record, to_record
from tests.unit.federated.conftest import make_cfg


def _round(cfg, arrays, server_round=1, state=None, **settings):
    content = RecordDict({ARRAYS: to_record(arrays), CONFIG: ConfigRecord({"server-round": server_round, **settings})})
    msg = Message(content=content, message_type="train", dst_node_id=7)
    ctx = Context(run_id=1, node_id=7, node_config={"partition-id": 0}, state=state or RecordDict(), run_config={})
    return train_message(cfg, msg, ctx), ctx


def test_ffa_client_sends_only_b_and_keeps_the_shared_a(fed_model_dir, client_files, capsys):
    cfg = make_cfg(fed_model_dir, client_files, "ffa")
    init = local.get_arrays(local.adapter_model(cfg.client_llm("a")).model)
    reply, ctx = _round(cfg, init)
    assert capsys.readouterr().out == ""  # stdout carries only data (no Trainer log dicts)
    sent = from_record(reply.content.array_records[ARRAYS])
    assert set(sent) == {n for n in init if ".lora_B." in n} and sent
    assert reply.content.metric_records[METRICS]["num-examples"] == 2 * 4  # local_steps x batch_size
    kept = from_record(ctx.state.array_records[STATE_KEY])
    for name in (n for n in init if ".lora_A." in n):
        np.testing.assert_array_equal(kept[name], init[name])  # A frozen: exactly the shared init
    assert any(np.abs(sent[n]).sum() > 0 for n in sent)  # B left zero: it trained


def test_fedsa_client_sends_only_a_and_saves_its_personal_adapter(fed_model_dir, client_files, tmp_path):
    cfg = make_cfg(fed_model_dir, client_files, "fedsa")
    init = local.get_arrays(local.adapter_model(cfg.client_llm("a")).model)
    reply, _ = _round(cfg, init, final=True, **{"personal-dir": str(tmp_path)})
    assert set(reply.content.array_records[ARRAYS]) == {n for n in init if ".lora_A." in n}
    assert "accuracy" in reply.content.metric_records[VALIDATION]  # the personalised adapter's own score
    assert (tmp_path / "a" / "adapter_config.json").is_file()


def test_malformed_client_file_fails_with_file_and_line(fed_model_dir, client_files):
    cfg = make_cfg(fed_model_dir, client_files, names=("a", "bad"))
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: label"):
        client_data(cfg, "bad")


def test_proximal_term_adds_half_mu_times_squared_distance(fed_model_dir, client_files):
    cfg = make_cfg(fed_model_dir, client_files)
    llm = cfg.client_llm("a")
    am = local.adapter_model(llm)
    local.freeze_a(am.model, True)
    data = client_data(cfg, "a").train
    losses = {}
    for mu in (0.0, 4.0):
        trainer = local.ProximalSFTTrainer(
            model=am.model,
            args=local._round_args(llm, str(fed_model_dir / f"w{mu}"), am, 1, 1),
            train_dataset=data,
            processing_class=am.tokenizer,
            proximal_mu=mu,
        )
        param = next(p for p in am.model.parameters() if p.requires_grad)
        with torch.no_grad():
            param.add_(0.1)  # every entry 0.1 away from the anchor
            collated = trainer.data_collator([data[0]])
            losses[mu] = float(trainer.compute_loss(am.model, collated))
            param.sub_(0.1)
    # 4/2 * (0.1² per entry) over the moved tensor
    assert losses[4.0] - losses[0.0] == pytest.approx(2.0 * 0.01 * param.numel(), rel=1e-3)


def test_local_epochs_sets_each_clients_steps_from_its_own_data(fed_model_dir, client_files):
    cfg = make_cfg(fed_model_dir, client_files, "ffa", local_epochs=0.5)  # 24 records, batch 4: 3 steps
    init = local.get_arrays(local.adapter_model(cfg.client_llm("a")).model)
    reply, _ = _round(cfg, init)
    assert reply.content.metric_records[METRICS]["num-examples"] == 3 * 4  # not local_steps (2) x 4
