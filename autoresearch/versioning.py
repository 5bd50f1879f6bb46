"""Git for instructions: a branch per study, one commit per kept variant, nothing else ever touched."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import git

from .errors import WorkspaceError

AUTHOR = git.Actor("autoresearch", "autoresearch@localhost")


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str


class InstructionRepo:
    """The workspace's git repository, seen only through the instruction files the loop may change."""

    def __init__(self, root: Path, instruction_paths: list[str]):
        try:
            self.repo = git.Repo(root, search_parent_directories=False)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise WorkspaceError(f"{root}: not a git repository (run `git init` and commit the workspace)") from None
        self.root = Path(self.repo.working_tree_dir)
        # Paths relative to the repository root, so a workspace may live in a sub-folder of a repo.
        self.paths = [str((Path(root).resolve() / p).relative_to(self.root.resolve())) for p in instruction_paths]

    def check_ready(self) -> None:
        """Refuse a detached HEAD, an empty repository, or instruction files that differ from HEAD."""
        if self.repo.head.is_detached:
            raise WorkspaceError(f"{self.root}: HEAD is detached; check out a branch first")
        if not self.repo.head.is_valid():
            raise WorkspaceError(f"{self.root}: the repository has no commit yet; commit the workspace first")
        dirty = self.dirty_instructions()
        if dirty:
            raise WorkspaceError(
                f"{', '.join(dirty)}: uncommitted changes to optimizable instructions; commit or stash them first"
            )

    def dirty_instructions(self) -> list[str]:
        """Instruction files that differ from HEAD in the work tree or the index, or are untracked."""
        out = self.repo.git.status("--porcelain", "--untracked-files=all", "--", *self.paths)
        return [line[3:] for line in out.splitlines() if line.strip()]

    @property
    def branch(self) -> str:
        return self.repo.active_branch.name

    def use_branch(self, name: str) -> bool:
        """Switch to branch `name`, creating it from the current branch if missing; True if created."""
        if self.branch == name:
            return False
        created = name not in [h.name for h in self.repo.heads]
        if created:
            self.repo.git.branch(name)
        # Only instruction files can differ between the two branches, and they are clean (check_ready),
        # so the user's other uncommitted files ride along untouched.
        self.repo.git.checkout(name)
        return created

    def read_head(self, path: str) -> str:
        """The committed text of an instruction file at HEAD."""
        rel = self.paths[self._index(path)]
        return (self.repo.head.commit.tree / rel).data_stream.read().decode("utf-8")

    def commit_instruction(self, path: str, text: str, subject: str, trailers: dict[str, str]) -> Commit:
        """Write one instruction file and commit that file alone, leaving any other staged change staged."""
        rel = self.paths[self._index(path)]
        target = self.root / rel
        target.write_text(text, encoding="utf-8")
        body = "\n".join(f"{key}: {value}" for key, value in trailers.items())
        # `git commit -- <path>` (--only) commits just this path, whatever else the user has staged.
        self.repo.git.commit("--only", "--no-verify", "-m", subject, "-m", body, "--", rel,
                             author=f"{AUTHOR.name} <{AUTHOR.email}>",
                             env={"GIT_COMMITTER_NAME": AUTHOR.name, "GIT_COMMITTER_EMAIL": AUTHOR.email})
        head = self.repo.head.commit
        return Commit(head.hexsha, subject)

    def restore_instructions(self) -> list[str]:
        """Put every instruction file back to HEAD, in the index and the work tree; return those restored."""
        dirty = self.dirty_instructions()
        if dirty:
            self.repo.git.restore("--staged", "--worktree", "--source=HEAD", "--", *self.paths)
        return dirty

    def head_sha(self) -> str:
        return self.repo.head.commit.hexsha

    def has_commit(self, sha: str) -> bool:
        try:
            self.repo.commit(sha)
            return True
        except (ValueError, git.BadName):
            return False

    def _index(self, path: str) -> int:
        for i, rel in enumerate(self.paths):
            if rel == path or rel.endswith("/" + path):
                return i
        raise WorkspaceError(f"{path}: not an optimizable instruction file")
