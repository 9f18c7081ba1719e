"""Data paths stay inside the data roots: `..`, absolute paths elsewhere and symlinks out are refused."""

from __future__ import annotations

import pytest

from fintune.service.paths import PathRefused, confine


@pytest.fixture
def roots(tmp_path):
    inside, other, outside = tmp_path / "data", tmp_path / "more", tmp_path / "secret"
    for folder in (inside, other, outside):
        folder.mkdir()
    (inside / "beir").mkdir()
    (other / "pairs.jsonl").write_text("{}\n")
    (outside / "key.txt").write_text("x")
    return inside, other, outside


def test_relative_paths_resolve_against_each_root(roots):
    inside, other, _ = roots
    assert confine("beir", [inside, other], "data") == (inside / "beir").resolve()
    assert confine("pairs.jsonl", [inside, other], "data") == (other / "pairs.jsonl").resolve()
    assert confine(str(inside / "beir"), [inside], "data") == (inside / "beir").resolve()


@pytest.mark.parametrize("value", ["../secret/key.txt", "beir/../../secret", "beir/.."])
def test_dot_dot_is_refused_as_written(roots, value):
    with pytest.raises(PathRefused, match=r"data: .* contains '\.\.'"):
        confine(value, [roots[0]], "data")


def test_absolute_path_outside_is_refused(roots):
    inside, _, outside = roots
    with pytest.raises(PathRefused, match="outside the data roots"):
        confine(str(outside / "key.txt"), [inside], "data")
    with pytest.raises(PathRefused, match="outside the data roots"):
        confine("/etc/passwd", [inside], "config.run_file")


def test_symlink_out_is_refused_and_symlink_within_is_followed(roots):
    inside, _, outside = roots
    (inside / "escape").symlink_to(outside)
    (inside / "alias").symlink_to(inside / "beir")
    with pytest.raises(PathRefused, match=r"'escape/key\.txt' leads outside"):
        confine("escape/key.txt", [inside], "data")
    assert confine("alias", [inside], "data") == (inside / "beir").resolve()


def test_missing_path_names_the_field_and_the_roots(roots):
    inside = roots[0]
    with pytest.raises(
        PathRefused, match=rf"config.eval_path: 'nope.jsonl' does not exist under the data roots \({inside}"
    ):
        confine("nope.jsonl", [inside], "config.eval_path")
