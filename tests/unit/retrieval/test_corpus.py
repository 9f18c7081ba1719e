"""Corpus reading: ids, texts, titles, metadata, and every bad record reported with file and line."""

from __future__ import annotations

import pytest

from fintune.data.errors import DataError
from fintune.retrieval.corpus import read_corpus
from tests.conftest import write_jsonl


def test_records_become_documents_with_title_and_metadata(corpus):
    assert len(corpus.docs) == 40 and not corpus.errors
    doc = corpus.docs[3]
    assert doc.id == "d3" and doc.text.startswith("Annual report 3. Company3 reported")
    assert doc.metadata == {"title": "Annual report 3", "sector": "banks", "year": 2023}
    assert corpus.metadata_fields == ["sector", "title", "year"]


def test_a_beir_folder_reads_its_corpus(tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "a", "text": "x"}])
    write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q", "text": "y"}])
    assert [d.id for d in read_corpus(tmp_path).docs] == ["a"]


def test_duplicate_ids_and_empty_texts_are_refused_with_their_lines(tmp_path):
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [{"_id": "a", "text": "one"}, {"_id": "a", "text": "two"}, {"_id": "b", "text": "  "}, {"text": "no id"}],
    )
    with pytest.raises(DataError) as err:
        read_corpus(path)
    message = str(err.value)
    assert f"{path}:2: _id: duplicate id 'a'" in message
    assert f"{path}:3: text: empty text" in message
    assert f"{path}:4: _id: missing id" in message


def test_skip_invalid_keeps_the_good_records_and_counts_the_rest(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"_id": "a", "text": "one"}, {"_id": "a", "text": "two"}])
    corpus = read_corpus(path, skip_invalid=True)
    assert [d.text for d in corpus.docs] == ["one"] and len(corpus.errors) == 1


def test_the_content_hash_changes_with_text_and_metadata(corpus):
    from dataclasses import replace

    doc = corpus.docs[0]
    assert replace(doc, text=doc.text + "!").content_hash != doc.content_hash
    assert replace(doc, metadata={**doc.metadata, "sector": "x"}).content_hash != doc.content_hash
    assert replace(doc).content_hash == doc.content_hash
