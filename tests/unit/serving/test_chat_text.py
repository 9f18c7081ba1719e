"""Streamed pieces add up to exactly the text a whole (non-streamed) answer gets."""

from __future__ import annotations

import pytest

from fintune.serving.chat import StreamedText, cut_at_stop


@pytest.mark.parametrize(
    ("pieces", "stop", "whole"),
    [
        (["  The", " profit", " is", " $30", " million.", "\n"], (), "The profit is $30 million."),
        (["The", " pro", "fit", " is", " 30"], ("fit",), "The pro"),
        (["A", " B", "\n\n", "C"], ("\n\n",), "A B"),
        (["A", " B", "\n", "C"], ("\n\n",), "A B\nC"),  # a held-back partial stop string is given out after all
        (["x", "y", "END", "z"], ("EN", "END"), "xy"),
    ],
)
def test_streamed_pieces_join_to_the_whole_answer(pieces, stop, whole) -> None:
    stream = StreamedText(stop)
    out = "".join(stream.feed(p) for p in pieces)
    expected, _ = cut_at_stop("".join(pieces).strip(), stop)
    assert out == whole == expected.rstrip()


def test_cut_at_stop_takes_the_earliest_stop_string() -> None:
    assert cut_at_stop("one two three", ("three", "two")) == ("one ", True)
    assert cut_at_stop("one two", ("four",)) == ("one two", False)
