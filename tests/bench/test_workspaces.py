"""The benchmarks' scratch folders: made under the temporary directory, removed on exit unless kept."""

from __future__ import annotations

import tempfile

import pytest

from autoresearch.bench.workspaces import given_or_starter, scratch


@pytest.fixture
def tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_scratch_is_made_under_the_temporary_directory_and_removed_on_exit(tmp):
    with scratch("bench-test-") as folder:
        assert folder.is_dir() and folder.parent == tmp and folder.name.startswith("bench-test-")
        (folder / "ws").mkdir()
        (folder / "ws" / "file.txt").write_text("x")
    assert list(tmp.iterdir()) == []


def test_scratch_is_removed_when_the_body_raises(tmp):
    with pytest.raises(RuntimeError, match="stopped"):
        with scratch("bench-test-") as folder:
            (folder / "file.txt").write_text("x")
            raise RuntimeError("stopped")
    assert list(tmp.iterdir()) == []


def test_scratch_is_kept_when_asked_and_says_where(tmp):
    said: list[str] = []
    with scratch("bench-test-", keep=True, log=said.append) as folder:
        (folder / "file.txt").write_text("x")
    assert list(tmp.iterdir()) == [folder] and (folder / "file.txt").read_text() == "x"
    assert said == [f"workspace copies kept in {folder}"]
    with scratch("bench-test-", log=said.append):
        pass
    assert len(said) == 1  # removed: nothing to say


def test_a_given_workspace_is_used_as_it_is_and_a_made_starter_is_removed(tmp):
    given = tmp / "mine"
    with given_or_starter(given, "bench-test-") as root:
        assert root == given and not given.exists()  # used, never made or removed here
    with given_or_starter(None, "bench-test-") as root:
        assert (root / "autoresearch.toml").is_file() and root.parent.parent == tmp
    assert list(tmp.iterdir()) == []
