"""-w: without it, a command finds the workspace the current folder lies in, as git finds its repository."""

from __future__ import annotations

from click.testing import CliRunner

from autoresearch.cli.main import main


def test_a_command_run_in_a_folder_of_the_workspace_finds_the_workspace(workspace_dir, monkeypatch):
    # From instructions/, `log` looked for instructions/runs/autoresearch.db and `eval` for
    # instructions/autoresearch.toml: "no store yet" and "not found" in a workspace that had both.
    monkeypatch.chdir(workspace_dir / "instructions")
    result = CliRunner().invoke(main, ["log"])
    assert result.exit_code == 2
    assert result.stderr == f"error: {workspace_dir / 'runs' / 'autoresearch.db'}: no store yet; run " \
                            "`autoresearch run` first\n"


def test_outside_any_workspace_the_error_names_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["eval"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'autoresearch.toml'}: not found")


def test_a_workspace_given_with_w_is_taken_as_given(workspace_dir, monkeypatch):
    monkeypatch.chdir(workspace_dir)
    result = CliRunner().invoke(main, ["eval", "-w", "instructions"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {workspace_dir / 'instructions' / 'autoresearch.toml'}: not found")
