import pytest

from fintune.artifacts import atomic_dir


def test_atomic_dir_renames_into_place_when_complete(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "weights.bin").write_text("w")
        assert not target.exists()
    assert (target / "weights.bin").read_text() == "w"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_dir_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.bin").write_text("x")
        raise RuntimeError("killed half-way")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_existing_unless_overwrite(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(FileExistsError), atomic_dir(target):
        pass
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_failed_overwrite_keeps_the_old_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(ValueError), atomic_dir(target, overwrite=True):
        raise ValueError("bad")
    assert (target / "old").read_text() == "old"


def test_last_checkpoint_skips_one_cut_short_by_a_kill(tmp_path):
    from fintune.artifacts import last_checkpoint

    assert last_checkpoint(tmp_path / "missing") is None
    for step, complete in ((4, True), (10, True), (12, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"  # numeric order, not text order; 12 is partial
