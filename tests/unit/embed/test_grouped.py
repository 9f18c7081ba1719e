"""Grouped validation (whole companies held out), WiSE-FT interpolation and the style check, on tiny data."""

from __future__ import annotations

import json
import shlex

import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback

from fintune.cli.main import build_parser
from fintune.cli.runs import run_config_from_args
from fintune.config.schema import EmbedRunConfig
from fintune.data.beir import load_beir
from fintune.embed.grouped import grouped_split
from fintune.embed.style_check import style_check_data
from fintune.embed.train import train_embedder
from fintune.embed.wise import apply_wise, interpolate
from fintune.errors import UsageError
from tests.conftest import write_jsonl

TICKERS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]


@pytest.fixture
def ticker_beir(tmp_path):
    """36 passages of 6 companies (field `ticker`), 30 train and 6 dev questions, one per passage."""
    folder = tmp_path / "beir"
    corpus, queries = [], []
    for i in range(36):
        ticker = TICKERS[i % 6]
        corpus.append(
            {"_id": f"d{i}", "title": "", "text": f"{ticker} segment {i} revenue grew {i}%.", "ticker": ticker}
        )
        queries.append({"_id": f"q{i}", "text": f"How much did {ticker} segment {i} revenue grow?", "ticker": ticker})
    write_jsonl(folder / "corpus.jsonl", corpus)
    write_jsonl(folder / "queries.jsonl", queries)
    (folder / "qrels").mkdir()
    for split, ids in (("train", range(30)), ("dev", range(30, 36))):
        rows = ["query-id\tcorpus-id\tscore", *(f"q{i}\td{i}\t1" for i in ids)]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return folder


class Seen(TrainerCallback):
    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.dataset = train_dataloader.dataset


def test_held_out_groups_leave_training_and_every_passage_stays(ticker_beir):
    data = load_beir(ticker_beir, "train")
    split = grouped_split(data, "ticker", 2, seed=1)
    held = set(split.held_out)
    assert len(held) == 2 and split.groups == 6
    assert {data.query_fields[q]["ticker"] for q in split.validation.qrels} == held
    assert not held & {data.query_fields[q]["ticker"] for q in split.train.qrels}
    assert set(split.train.qrels) | set(split.validation.qrels) == set(data.qrels)
    assert split.validation.corpus == data.corpus == split.train.corpus  # all passages searched
    assert not any(t.split()[0] in held for t in split.mining_corpus)  # nor mined as negatives
    ids = list(data.corpus)
    assert [data.doc_text(ids[i]) for i in split.mining_rows] == split.mining_corpus


def test_the_split_is_deterministic_by_seed(ticker_beir):
    data = load_beir(ticker_beir, "train")
    first = grouped_split(data, "ticker", 3, seed=7)
    assert grouped_split(data, "ticker", 3, seed=7).held_out == first.held_out
    assert any(grouped_split(data, "ticker", 3, seed=s).held_out != first.held_out for s in range(8, 14))


def test_a_missing_field_or_too_many_groups_is_a_clear_error(ticker_beir):
    data = load_beir(ticker_beir, "train")
    with pytest.raises(UsageError, match="no 'sector'"):
        grouped_split(data, "sector", 2)
    with pytest.raises(UsageError, match=r"between 1 and 5.*6 'ticker' groups"):
        grouped_split(data, "ticker", 6)


def test_the_group_falls_back_to_the_passage_field(ticker_beir):
    rows = [json.loads(line) for line in (ticker_beir / "queries.jsonl").read_text().splitlines()]
    write_jsonl(ticker_beir / "queries.jsonl", [{k: v for k, v in r.items() if k != "ticker"} for r in rows])
    split = grouped_split(load_beir(ticker_beir, "train"), "ticker", 2)
    assert len(split.validation.qrels) == 10  # 5 train questions per company


def test_grouped_validation_is_the_default_when_the_data_have_tickers(tiny_bert_dir, ticker_beir, tmp_path):
    seen = Seen()
    out = tmp_path / "m"
    config = EmbedRunConfig(
        model=str(tiny_bert_dir),
        data=str(ticker_beir),
        output=str(out),
        batch_size=8,
        style_check=False,
        hard_negatives=1,  # not the default: here to show the held-out companies are not mined either
    )
    result = train_embedder(config, callbacks=[seen])
    assert result.validation and "'ticker' groups held out" in result.validation
    expected = grouped_split(load_beir(ticker_beir, "train"), "ticker", seed=config.seed)
    held = set(expected.held_out)
    assert len(held) == 1  # the default: 10 groups, at most a fifth of the 6
    assert result.validation == expected.describe()
    assert result.before["queries"] == result.after["queries"] == 5 * len(held)
    trained = set(seen.dataset["anchor"])
    assert trained and not any(q.split()[3] in held for q in trained)  # "How much did AAA ..."
    assert all(n.split()[0] not in held for n in seen.dataset["negative_1"])
    metrics = json.loads((out / "fintune_metrics.json").read_text())
    assert metrics["validation"] == result.validation
    assert "held out" in (out / "README.md").read_text()


def test_without_a_ticker_field_the_dev_split_scores(tiny_bert_dir, tiny_beir, tmp_path):
    config = EmbedRunConfig(
        model=str(tiny_bert_dir), data=str(tiny_beir), output=str(tmp_path / "m"), style_check=False
    )
    result = train_embedder(config)
    assert result.validation == "dev split" and result.before["queries"] == 8


def test_grouping_can_be_turned_off_or_named(tiny_bert_dir, ticker_beir, tmp_path):
    off = EmbedRunConfig(
        model=str(tiny_bert_dir), data=str(ticker_beir), output=str(tmp_path / "a"), validation_group_by="none"
    )
    assert train_embedder(off.model_copy(update={"style_check": False})).validation == "dev split"
    missing = EmbedRunConfig(
        model=str(tiny_bert_dir), data=str(ticker_beir), output=str(tmp_path / "b"), validation_group_by="sector"
    )
    with pytest.raises(UsageError, match="no 'sector'"):
        train_embedder(missing)


def _state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {"w": torch.randn(3, 4), "b": torch.randn(4), "ids": torch.arange(5)}


def test_wise_interpolation_ends_and_midpoint():
    base, tuned = _state(0), _state(1)
    tuned["ids"] = torch.arange(5) + 1
    assert all(torch.equal(interpolate(base, tuned, 0.0)[k], base[k]) for k in ("w", "b"))
    assert all(torch.equal(interpolate(base, tuned, 1.0)[k], tuned[k]) for k in ("w", "b"))
    mid = interpolate(base, tuned, 0.5)
    assert all(torch.allclose(mid[k], (base[k] + tuned[k]) / 2) for k in ("w", "b"))
    assert torch.equal(mid["ids"], tuned["ids"])  # integer buffers are not averaged
    with pytest.raises(ValueError, match="differ"):
        interpolate(base, {"w": tuned["w"]}, 0.5)


def test_wise_auto_keeps_the_best_scoring_alpha():
    model = torch.nn.Linear(2, 2)
    base = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    tuned = {k: v.clone() for k, v in model.state_dict().items()}
    alpha, scores = apply_wise(
        model, base, "auto", score=lambda m: -abs(float(m.weight[0, 0].detach() / tuned["weight"][0, 0]) - 0.6)
    )
    assert alpha == 0.6 and set(scores) == {0.4, 0.6, 0.8, 1.0}
    assert torch.allclose(model.weight, 0.6 * tuned["weight"])


def test_wise_alpha_zero_saves_the_base_weights_and_the_merged_model_loads(tiny_bert_dir, tiny_beir, tmp_path):
    saved = {}
    for alpha in (0.0, 0.5, 1.0):
        out = tmp_path / f"m{alpha}"
        config = EmbedRunConfig(
            model=str(tiny_bert_dir),
            data=str(tiny_beir),
            output=str(out),
            wise_alpha=alpha,
            style_check=False,
            num_fixed_layers=0,
            batch_size=4,
            warmup_ratio=0.0,
            learning_rate=1e-3,
        )
        assert train_embedder(config).wise_alpha == alpha
        saved[alpha] = SentenceTransformer(str(out), device="cpu").state_dict()  # the merged model loads
        assert json.loads((out / "fintune_metrics.json").read_text())["wise_alpha"] == alpha
        assert f"{alpha:g} x tuned" in (out / "README.md").read_text()
    base = SentenceTransformer(str(tiny_bert_dir), device="cpu").state_dict()
    floats = [k for k, v in base.items() if v.is_floating_point()]
    assert all(torch.equal(saved[0.0][k], base[k]) for k in floats)
    assert any(not torch.equal(saved[1.0][k], base[k]) for k in floats)  # training moved the weights
    # training is deterministic by seed, so alpha 0.5 is the mean of the base and the alpha-1 model
    assert all(torch.allclose(saved[0.5][k], (base[k] + saved[1.0][k]) / 2, atol=1e-6) for k in floats)


def test_wise_auto_records_the_alphas_tried(tiny_bert_dir, ticker_beir, tmp_path):
    out = tmp_path / "m"
    config = EmbedRunConfig(
        model=str(tiny_bert_dir), data=str(ticker_beir), output=str(out), wise_alpha="auto", style_check=False
    )
    result = train_embedder(config)
    assert result.wise_alpha in (0.4, 0.6, 0.8, 1.0) and set(result.wise_scores) == {0.4, 0.6, 0.8, 1.0}
    assert result.wise_scores[result.wise_alpha] == max(result.wise_scores.values())
    assert json.loads((out / "fintune_metrics.json").read_text())["wise_alpha"] == result.wise_alpha


@pytest.mark.parametrize(("flag", "value"), [("auto", "auto"), ("0.7", 0.7)])
def test_wise_alpha_flag_takes_a_number_or_auto(flag, value):
    args = build_parser().parse_args(shlex.split(f"embed train --data d --output o --wise-alpha {flag}"))
    assert run_config_from_args(args, "embed").wise_alpha == value


def test_wise_alpha_out_of_range_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        EmbedRunConfig(wise_alpha=1.5)


def test_style_check_set_pairs_each_term_with_its_own_explanation(tmp_path):
    prompt = "Explain this XBRL term briefly in one sentence: {}. Answer:"
    rows = [{"context": prompt.format(f"Term {i}"), "target": f"Explanation number {i}."} for i in range(30)]
    rows.append({"context": prompt.format("Twin"), "target": "Explanation number 3."})  # shared: not a query
    path = write_jsonl(tmp_path / "xbrl.jsonl", rows)
    data = style_check_data(path, queries=10, passages=20)
    assert len(data.queries) == 10 and len(data.corpus) == 20
    for qid, relevant in data.qrels.items():
        (doc,) = relevant
        assert data.corpus[doc]["text"] == f"Explanation number {data.queries[qid].split()[1].rstrip('.')}."
    assert "Twin." not in data.queries.values() and "Term 3." not in data.queries.values()
    assert style_check_data(path, queries=10, passages=20).queries == data.queries
    assert style_check_data(tmp_path / "missing.jsonl") is None


def test_embed_eval_style_check_scores_the_xbrl_set(tiny_bert_dir, tmp_path, monkeypatch, capsys):
    from fintune.cli.main import main

    prompt = "Explain this XBRL term briefly in one sentence: {}. Answer:"
    rows = [{"context": prompt.format(f"Term {i}"), "target": f"Explanation number {i}."} for i in range(20)]
    write_jsonl(tmp_path / "data" / "instructions" / "xbrl_term" / "train.jsonl", rows)
    monkeypatch.setenv("FINTUNE_DATA", str(tmp_path / "data"))
    out = tmp_path / "m.json"
    assert main(["embed", "eval", "--model", str(tiny_bert_dir), "--style-check", "--output", str(out)]) == 0
    got = json.loads(out.read_text())["style_check"]
    assert got["queries"] == 20 and 0 <= got["ndcg@10"] <= 1
    assert main(["embed", "eval", "--model", str(tiny_bert_dir)]) == 2
    assert "--style-check" in capsys.readouterr().err


def test_tune_scores_trials_on_the_held_out_groups(tiny_bert_dir, ticker_beir, tmp_path):
    from fintune.config.schema import SearchDimension
    from fintune.embed.evaluate import ir_evaluator
    from fintune.embed.tune import tune

    config = EmbedRunConfig(
        model=str(tiny_bert_dir),
        data=str(ticker_beir),
        output=str(tmp_path / "best"),
        batch_size=8,
        search_space={"learning_rate": SearchDimension(choices=[1e-4])},
    )
    result = tune(config, trials=1, storage=f"sqlite:///{tmp_path / 's.db'}")
    metrics = json.loads((tmp_path / "best" / "fintune_metrics.json").read_text())
    assert "'ticker' groups held out" in metrics["validation"]
    held_out = grouped_split(load_beir(ticker_beir, "train"), "ticker", seed=config.seed).validation
    scores = ir_evaluator(held_out, seed=config.seed)(SentenceTransformer(str(tmp_path / "best"), device="cpu"))
    assert result.best_value == pytest.approx(scores["dev_cosine_ndcg@10"], abs=1e-6)


def test_a_training_querys_passage_filed_under_a_held_out_company_is_still_mined(ticker_beir):
    # the shared 10-K corpus has a few passages shared by companies, filed under one of them
    rows = [json.loads(line) for line in (ticker_beir / "corpus.jsonl").read_text().splitlines()]
    rows[0]["ticker"] = "BBB"  # q0 (AAA) is answered by d0, now filed under BBB
    write_jsonl(ticker_beir / "corpus.jsonl", rows)
    data = load_beir(ticker_beir, "train")
    split = next(
        s
        for seed in range(100)
        if "BBB" in (s := grouped_split(data, "ticker", 2, seed)).held_out and "AAA" not in s.held_out
    )
    assert "q0" in split.train.qrels and data.doc_text("d0") in split.mining_corpus
    assert data.doc_text("d1") not in split.mining_corpus  # BBB's own passage


@pytest.mark.parametrize(("precision", "bf16"), [("fp32", False), ("bf16", True)])
def test_precision_sets_the_trainers_autocast(tiny_bert_dir, tiny_beir, tmp_path, precision, bf16):
    from fintune.embed.train import prepare_training

    config = EmbedRunConfig(model=str(tiny_bert_dir), data=str(tiny_beir), precision=precision)
    setup = prepare_training(config, tmp_path / "m", use_gpu=False, evaluate=False)
    assert setup.trainer.args.bf16 is bf16


@pytest.mark.parametrize(("measured_faster", "bf16"), [(False, False), (True, True)])
def test_auto_precision_on_a_bf16_cpu_follows_the_measured_speed(
    tiny_bert_dir, tiny_beir, tmp_path, monkeypatch, measured_faster, bf16
):
    from fintune.embed import train
    from fintune.models import device

    monkeypatch.setattr(device, "cpu_flags_have_bf16", lambda: True)  # a CPU with AVX512-BF16
    monkeypatch.setattr(device, "cpu_bf16_matmul_is_faster", lambda: measured_faster)
    monkeypatch.setattr(device, "cpu_has_fast_bf16", device.cpu_has_fast_bf16.__wrapped__)  # uncached
    config = EmbedRunConfig(model=str(tiny_bert_dir), data=str(tiny_beir))
    setup = train.prepare_training(config, tmp_path / "m", use_gpu=False, evaluate=False)
    assert setup.trainer.args.bf16 is bf16


def _rows_by_group(groups: int, size: int) -> tuple[Dataset, dict[str, str]]:
    anchors = [f"question {g}-{i}" + " long" * (i % 3) for g in range(groups) for i in range(size)]
    data = Dataset.from_dict({"anchor": anchors, "positive": [f"passage {a}" for a in anchors]})
    return data, {a: a.split()[1].split("-")[0] for a in anchors}


def test_grouped_batches_draw_from_as_few_groups_as_the_batch_size_allows():
    from fintune.embed.sampler import GroupedBatchSampler

    data, groups = _rows_by_group(4, 6)
    exact = GroupedBatchSampler(data, batch_size=6, drop_last=False, seed=3, anchor_groups=groups)
    plans = []
    for epoch in range(3):
        exact.set_epoch(epoch)
        batches = list(exact)[: len(exact)]
        assert sorted(i for b in batches for i in b) == list(range(24))  # every row once
        assert all(len({groups[data["anchor"][i]] for i in b}) == 1 for b in batches)  # one company each
        assert all([len(data["anchor"][i]) for i in b] == sorted(len(data["anchor"][i]) for i in b) for b in batches)
        plans.append(batches)
    assert plans[0] != plans[1]  # reshuffled each epoch
    again = GroupedBatchSampler(data, batch_size=6, drop_last=False, seed=3, anchor_groups=groups)
    assert list(again) == plans[0]  # and the same for the same seed and epoch
    spanning = GroupedBatchSampler(data, batch_size=4, drop_last=False, seed=3, anchor_groups=groups)
    assert max(len({groups[data["anchor"][i]] for i in b}) for b in spanning) == 2  # 6 rows a group: 1 or 2


def test_batch_group_by_trains_on_single_company_batches(tiny_bert_dir, ticker_beir, tmp_path):
    seen = SeenBatches()
    config = EmbedRunConfig(
        model=str(tiny_bert_dir), data=str(ticker_beir), output=str(tmp_path / "m"), batch_size=5,
        style_check=False, batch_group_by="ticker",
    )  # fmt: skip
    result = train_embedder(config, callbacks=[seen])
    assert "batches grouped by 'ticker'" in result.notes
    # 5 training companies (one held out for validation) of 5 questions each: one company per batch of 5
    assert len(seen.batches) == 5
    assert all(len({q.split()[3] for q in b}) == 1 for b in seen.batches)  # "How much did AAA ..."
    with pytest.raises(UsageError, match="batch_group_by 'sector'"):
        train_embedder(config.model_copy(update={"batch_group_by": "sector", "output": str(tmp_path / "n")}))


class SeenBatches(TrainerCallback):
    """The anchors of every batch the Trainer's dataloader yields in the first epoch."""

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        data = train_dataloader.dataset
        self.batches = [[data["anchor"][i] for i in b] for b in train_dataloader.batch_sampler]
