import pytest
from transformers import AutoTokenizer

from fintune.config.schema import EmbedRunConfig
from fintune.embed.chunking import split_by_tokens
from fintune.embed.train import train_embedder
from fintune.models.resolve import resolve_model
from tests.conftest import write_jsonl


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model("minilm"))


def test_short_text_is_one_piece(tokenizer):
    assert split_by_tokens("Revenue rose.", tokenizer, 16, overlap=2) == ["Revenue rose."]


def test_long_text_pieces_fit_cover_and_overlap(tokenizer):
    text = " ".join(f"segment{i} revenue grew" for i in range(40))
    pieces = split_by_tokens(text, tokenizer, max_tokens=32, overlap=4)
    assert len(pieces) > 1
    assert all(len(tokenizer(p)["input_ids"]) <= 32 for p in pieces)
    assert pieces[0].startswith("segment0") and pieces[-1].endswith("segment39 revenue grew")
    assert pieces[0].split()[-1] in pieces[1]  # neighbours share the overlap


def test_overlap_must_leave_room(tokenizer):
    with pytest.raises(ValueError, match="no room"):
        split_by_tokens("x " * 100, tokenizer, max_tokens=6, overlap=4)


def test_training_splits_long_plain_texts_when_asked(tiny_bert_dir, tmp_path):
    long_text = " ".join(f"The company reported item {i} in its annual filing." for i in range(12))
    data = write_jsonl(tmp_path / "domain.jsonl", [{"text": long_text}, {"text": "Short note."}] * 2)
    config = EmbedRunConfig(
        model=str(tiny_bert_dir),
        data=str(data),
        output=str(tmp_path / "m"),
        batch_size=4,
        max_seq_length=32,
        split_long_documents=True,
    )
    result = train_embedder(config, evaluate=False)
    assert "split 2 long text(s) into pieces of at most 32 tokens" in result.notes
    assert not any("truncated" in n for n in result.notes)
