"""ROUGE and BERTScore against hand-computed values."""

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from fintune.metrics.summarization import bertscore, rouge_scores


def test_rouge_by_hand():
    # pred "revenue rose sharply" vs ref "revenue rose": unigram P=2/3 R=1 F=0.8; bigram P=1/2 R=1 F=2/3; LCS 2 -> 0.8
    scores = rouge_scores(["revenue rose sharply"], ["revenue rose"])
    assert scores["rouge1"] == pytest.approx(0.8)
    assert scores["rouge2"] == pytest.approx(2 / 3)
    assert scores["rougeL"] == pytest.approx(0.8)
    assert rouge_scores(["a b"], ["c d"])["rouge1"] == 0.0


def test_bertscore_by_hand(tiny_bert_dir):
    pred, ref = "profit rose sharply", "revenue rose"
    tok, model = AutoTokenizer.from_pretrained(tiny_bert_dir), AutoModel.from_pretrained(tiny_bert_dir)

    def emb(text):
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc).last_hidden_state[0]
        return torch.nn.functional.normalize(h, dim=-1)

    # Each token's best match may be any token of the other side, [CLS]/[SEP] included; only the
    # averages leave [CLS] and [SEP] out (their idf weight is 0 in BERTScore).
    sim = emb(pred) @ emb(ref).T
    precision, recall = sim.max(1).values[1:-1].mean(), sim.max(0).values[1:-1].mean()
    f1 = 2 * precision * recall / (precision + recall)
    got = bertscore([pred], [ref], encoder=str(tiny_bert_dir))
    assert got["bertscore_precision"] == pytest.approx(float(precision), abs=1e-4)
    assert got["bertscore_recall"] == pytest.approx(float(recall), abs=1e-4)
    assert got["bertscore_f1"] == pytest.approx(float(f1), abs=1e-4)
    assert bertscore([ref], [ref], encoder=str(tiny_bert_dir))["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)
