"""Git for instructions: a branch per study, one commit per kept variant, nothing else ever touched."""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import git

from ..errors import WorkspaceError

T = TypeVar("T")
AUTHOR = git.Actor("autoresearch", "autoresearch@localhost")
TRIAL_TRAILER = "Autoresearch-Trial"
STUDY_TRAILER = "Autoresearch-Study"
# A run commits and pushes unattended, hours in: no hook of the repository's runs then (--no-verify skips only
# pre-commit and commit-msg; prepare-commit-msg would still run, a failing or prompting one losing the keep), and
# nothing is signed (commit.gpgsign would fail without an agent, or wait on a passphrase prompt all night; the
# commits are autoresearch's, not the user's).
UNATTENDED = ("git", "-c", "core.hooksPath=/dev/null")
# Another git process (an editor's or a shell prompt's `git status`, run as it sees the instruction file change)
# may hold .git/index.lock for a moment just as a keep commits; git then fails at once rather than wait.
INDEX_WAIT_S = 10.0


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
            raise WorkspaceError(not_a_repository(Path(root))) from None
        self.root = Path(self.repo.working_tree_dir)
        self.run_branch: str | None = None  # the branch use_branch put HEAD on: a run's keeps go there alone
        self.paths = [str((Path(root).resolve() / p).relative_to(self.root.resolve())) for p in instruction_paths]

    def check_head(self, branch: str) -> None:
        """Refuse a detached HEAD, an empty repository, or a branch in the way of the study's `branch`."""
        if self.repo.head.is_detached:
            raise WorkspaceError(f"{self.root}: HEAD is detached; check out a branch first")
        if not self.repo.head.is_valid():
            raise WorkspaceError(f"{self.root}: the repository has no commit yet; commit the workspace first")
        # git keeps a branch as a file under .git/refs/heads, so a branch `a` rules out `a/b` and the other way round.
        heads = {h.name for h in self.repo.heads}
        parts = branch.split("/")
        blocking = [p for p in ("/".join(parts[:i]) for i in range(1, len(parts))) if p in heads]
        blocking += sorted(h for h in heads if h.startswith(branch + "/"))
        if blocking and branch not in heads:
            raise WorkspaceError(f"{self.root}: the study's branch {branch} cannot be created beside your branch "
                                 f"{blocking[0]} (git cannot hold both); rename that one (`git branch -m "
                                 f"{blocking[0]} <new name>`) and run again")

    def dirty_instructions(self) -> list[str]:
        """Instruction files that differ from HEAD in the work tree or the index, or are untracked."""
        out = self.repo.git.status("--porcelain", "--untracked-files=all", "--", *self.paths)
        return [line[3:] for line in out.splitlines() if line.strip()]

    @property
    def branch(self) -> str:
        return self.repo.active_branch.name

    def use_branch(self, name: str) -> bool:
        """Switch to branch `name`, creating it from the current branch if missing; True if created."""
        self.run_branch = name
        if self.branch == name:
            return False
        created = not self.has_branch(name)
        if created:
            self.repo.git.branch(name)
        # Only instruction files can differ between the two branches, and they are clean (checked before the run starts),
        # so the user's other uncommitted files ride along untouched.
        try:
            self._when_index_free(lambda: self.repo.git.checkout(name))
        except git.GitCommandError as exc:
            raise WorkspaceError(f"{self.root}: cannot switch to branch {name}: {_git_message(exc)}") from None
        return created

    def off_branch(self) -> str | None:
        """Where HEAD went, if it left the branch use_branch put it on (someone ran `git checkout` in the
        workspace during the run); None while it is there."""
        if self.run_branch is None:
            return None
        if self.repo.head.is_detached:
            return "HEAD was detached"
        if self.branch != self.run_branch:
            return f"the workspace was switched to branch {self.branch}"
        return None

    def has_branch(self, name: str) -> bool:
        return name in [h.name for h in self.repo.heads]

    def changed_since_fork(self, branch: str) -> list[str]:
        """The instruction files HEAD changed since an existing `branch` forked from it (and that branch does not
        hold as they are): work on this branch that `branch` does not have."""
        if not self.has_branch(branch):
            return []
        bases = self.repo.merge_base(self.repo.head.commit, branch)
        if not bases:
            return []
        head, base, other = self.repo.head.commit.tree, bases[0].tree, self.repo.commit(branch).tree
        return [rel for rel in self.paths
                if _blob_sha(head, rel) not in (_blob_sha(base, rel), _blob_sha(other, rel))]

    def read_head(self, path: str) -> str:
        """The committed text of an instruction file at HEAD."""
        rel = self.paths[self._index(path)]
        return (self.repo.head.commit.tree / rel).data_stream.read().decode("utf-8")

    def commit_instruction(self, path: str, text: str, subject: str, trailers: dict[str, str],
                           also: dict[str, str] | None = None) -> Commit:
        """Write one instruction file (and the files in `also`, path → text) and commit those alone, leaving
        any other staged change staged. An unchanged file rides along: a commit that changes only `also`
        (a knob-only keep) is a commit all the same.

        Each file is written to a temporary file and renamed over the old one, so a kill leaves either the
        old or the new text, never half of it. A file someone edited during the run is not overwritten.
        """
        files = {self.paths[self._index(path)]: text}
        files.update({self.paths[self._index(p)]: t for p, t in (also or {}).items()})
        dirty = set(self.dirty_instructions())
        for rel in files:
            if rel in dirty:
                raise WorkspaceError(f"{rel}: changed during the run; not overwriting it: commit or stash it, then "
                                     "run again")
        new = [rel for rel in files if not self._in_head(rel)]  # a first knobs file: git must know it
        for rel, content in files.items():
            write_atomic(self.root / rel, content)
        body = "\n".join(f"{key}: {value}" for key, value in trailers.items())
        try:
            if new:
                self._when_index_free(lambda: self.repo.git.add("--", *new))
            self._git_commit(list(files), subject, body)
        except BaseException:
            # Not committed (an error, or Ctrl-C): put back the committed texts, which we alone changed.
            for rel, content in files.items():
                if rel in new and not self._in_head(rel):
                    self._when_index_free(lambda rel=rel: self.repo.git.rm("--cached", "--quiet", "--ignore-unmatch",
                                                                           "--", rel))
                    (self.root / rel).unlink(missing_ok=True)
                elif not self._committed(rel, content):
                    # The failed commit left the index as it was (HEAD's, as the run checked): the file alone goes
                    # back, which needs no index lock, so a lock that stays cannot leave it half-undone.
                    write_atomic(self.root / rel, self.read_head(rel))
            raise
        head = self.repo.head.commit
        return Commit(head.hexsha, subject)

    def _git_commit(self, rels: list[str], subject: str, body: str) -> None:
        # `git commit -- <paths>` (--only) commits just these paths, whatever else the user has staged.
        rel = ", ".join(rels)
        try:
            self._when_index_free(lambda: self.repo.git.execute(
                [*UNATTENDED, "commit", "--only", "--no-verify", "--no-gpg-sign", "-m", subject, "-m", body,
                 f"--author={AUTHOR.name} <{AUTHOR.email}>", "--", *rels],
                env={"GIT_COMMITTER_NAME": AUTHOR.name, "GIT_COMMITTER_EMAIL": AUTHOR.email}))
        except git.GitCommandError as exc:
            raise WorkspaceError(f"{rel}: git commit failed: {_git_message(exc)}") from None

    def _when_index_free(self, command: Callable[[], T]) -> T:
        """Run a git command that writes the index; where it fails while another git process holds the index
        lock, wait for that process to let go (up to INDEX_WAIT_S) and run it again. Told by the lock file, not
        by git's words, which come in the user's language."""
        lock = Path(self.repo.git_dir) / "index.lock"
        deadline = time.monotonic() + INDEX_WAIT_S
        while True:
            try:
                return command()
            except git.GitCommandError:
                if not lock.exists():
                    raise
                while lock.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if lock.exists():
                    raise WorkspaceError(f"{lock}: another git process has held git's index for {INDEX_WAIT_S:g} s; "
                                         "if none is running (one that crashed leaves this file), delete it and run "
                                         "the same command") from None

    def _in_head(self, rel: str) -> bool:
        try:
            self.repo.head.commit.tree / rel
        except KeyError:
            return False
        return True

    def _committed(self, rel: str, text: str) -> bool:
        try:
            return self.read_head(rel) == text
        except (KeyError, git.GitCommandError):
            return False

    def restore_paths(self, rels: list[str]) -> None:
        """Put these instruction files back to HEAD, in the index and the work tree."""
        if rels:
            self._when_index_free(lambda: self.repo.git.restore("--staged", "--worktree", "--source=HEAD", "--", *rels))

    def worktree_text(self, rel: str) -> str | None:
        """The text of an instruction file in the work tree; None if it is missing or not UTF-8."""
        try:
            return (self.root / rel).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def index_text(self, rel: str) -> str | None:
        """The text of an instruction file as staged in the index; None if it is not in the index."""
        try:
            return self.repo.git.show(f":{rel}", strip_newline_in_stdout=False)
        except git.GitCommandError:
            return None

    def study_commits(self, branch: str, study: str) -> dict[int, str]:
        """Trial number → sha of every commit on `branch` that a study made (by its trailers)."""
        if not self.has_branch(branch):
            return {}
        out = self.repo.git.log(branch, "--fixed-strings", f"--grep={STUDY_TRAILER}: {study}",
                                "--format=%H%x00%B%x1e")
        found: dict[int, str] = {}
        for entry in out.split("\x1e"):
            if "\x00" not in entry:
                continue
            sha, body = entry.strip().split("\x00", 1)
            trailers = parse_trailers(body)
            number = trailers.get(TRIAL_TRAILER, "")
            if trailers.get(STUDY_TRAILER, "").strip() == study and number.strip().isdigit():
                found.setdefault(int(number), sha)  # newest first: a rewritten history keeps its newest
        return found

    def clear_stale_git_locks(self, wait_s: float = 3.0) -> list[str]:
        """Remove the lock files a killed `git commit` or `git checkout` left in .git (index.lock, HEAD.lock,
        branch locks). Call only when a crashed run is proven (its run lock was stale). A lock that goes
        away within wait_s was held by a git process still finishing, and is left alone."""
        git_dir = Path(self.repo.git_dir)
        candidates = [git_dir / "index.lock", git_dir / "HEAD.lock", *git_dir.glob("next-index-*.lock"),
                      *(git_dir / "refs" / "heads").rglob("*.lock")]
        present = [p for p in candidates if p.exists()]
        deadline = time.monotonic() + wait_s
        while present and time.monotonic() < deadline:
            time.sleep(0.1)
            present = [p for p in present if p.exists()]
        removed = []
        for p in present:
            try:
                p.unlink()
                removed.append(str(p.relative_to(git_dir.parent)) if git_dir.parent in p.parents else str(p))
            except FileNotFoundError:
                pass
        return removed

    def remove_temp_files(self) -> list[str]:
        """Delete temporary files write_atomic left next to the instruction files when a run was killed."""
        removed = []
        for rel in self.paths:
            target = self.root / rel
            for tmp in target.parent.glob(f".{target.name}.*.tmp"):
                tmp.unlink(missing_ok=True)
                removed.append(str(tmp.relative_to(self.root)))
        return removed

    def head_sha(self) -> str:
        return self.repo.head.commit.hexsha

    def remote_url(self, remote: str) -> str | None:
        """The URL of a remote, or None when the repository has no remote of that name."""
        if remote not in [r.name for r in self.repo.remotes]:
            return None
        return self.repo.remote(remote).url

    def fetch_branch(self, remote: str, branch: str) -> str | None:
        """Fetch a branch from the remote (one round trip); its tip, or None when the remote has no such branch."""
        tracking = f"refs/remotes/{remote}/{branch}"
        try:
            self.repo.git.fetch("--quiet", remote, f"+refs/heads/{branch}:{tracking}")
        except git.GitCommandError as exc:
            if not self._remote_has(remote, branch):  # asked by exit code: git words its errors in the user's language
                return None
            raise WorkspaceError(f"{self.root}: cannot fetch {branch} from remote {remote}: {_git_message(exc)}") from None
        return self.repo.git.rev_parse(tracking)

    def _remote_has(self, remote: str, branch: str) -> bool:
        """Whether the remote has the branch: True also when it cannot be asked (the fetch's error then stands)."""
        try:
            self.repo.git.ls_remote("--exit-code", "--heads", remote, f"refs/heads/{branch}")
        except git.GitCommandError as exc:
            return exc.status != 2  # 2: the remote answered, without that branch
        return True

    def move_branch_to(self, sha: str) -> None:
        """Point the current branch at sha, updating the instruction files and keeping every other change
        in the work tree (`git reset --keep`: it refuses rather than overwrite a local edit)."""
        if self.head_sha() == sha:
            return
        try:
            self._when_index_free(lambda: self.repo.git.reset("--keep", sha))
        except git.GitCommandError as exc:
            raise WorkspaceError(f"{self.root}: cannot move {self.branch} to {sha[:10]}: {_git_message(exc)}") from None

    def push(self, remote: str, branch: str) -> None:
        """Push the branch to the remote, never forcing: a push that is not a fast-forward is refused."""
        try:
            self.repo.git.execute([*UNATTENDED, "push", "--quiet", "--no-verify", remote,
                                   f"refs/heads/{branch}:refs/heads/{branch}"])
        except git.GitCommandError as exc:
            raise WorkspaceError(f"{self.root}: cannot push {branch} to remote {remote}: {_git_message(exc)}") from None

    def trailers(self, sha: str) -> dict[str, str]:
        """The Autoresearch-* trailers of a commit."""
        return parse_trailers(self.repo.commit(sha).message)

    def _index(self, path: str) -> int:
        for i, rel in enumerate(self.paths):
            if rel == path or rel.endswith("/" + path):
                return i
        raise WorkspaceError(f"{path}: not an optimizable instruction file")


def _blob_sha(tree: git.Tree, rel: str) -> str | None:
    try:
        return (tree / rel).hexsha
    except KeyError:
        return None


def enclosing_repository(folder: Path) -> Path | None:
    """The top folder of the git repository that folder lies inside (folder itself excluded), if any."""
    try:
        return Path(git.Repo(Path(folder).resolve().parent, search_parent_directories=True).working_tree_dir)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def not_a_repository(root: Path) -> str:
    """Why a workspace that is not the top of a git repository cannot run, and what to do."""
    outer = enclosing_repository(root)
    if outer is None:
        return f"{root}: not a git repository (run `git init` and commit the workspace)"
    # A run checks out its study branch: in a project's repository that would switch the whole project, and two
    # workspaces of one repository would switch it under each other.
    return (f"{root}: a folder of the git repository {outer}, not a repository of its own; a run checks out its "
            f"own branch, so a workspace must be one: `git init` here and commit the workspace (and add it to "
            f"{outer}'s .gitignore), or `autoresearch init` one outside {outer}")


def parse_trailers(message: str) -> dict[str, str]:
    """The Autoresearch-* trailers of a commit message."""
    return {k: v.strip() for k, v in re.findall(r"^(Autoresearch-[A-Za-z-]+): (.*)$", message, re.MULTILINE)}


def dirty_message(dirty: list[str]) -> str:
    return f"{', '.join(dirty)}: uncommitted changes to optimizable instructions; commit or stash them first"


def write_atomic(target: Path, text: str) -> None:
    """Replace target's content with text through a temporary file and a rename (atomic on POSIX)."""
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _git_message(exc: git.GitCommandError) -> str:
    text = exc.stderr if isinstance(exc.stderr, str) and exc.stderr.strip() else str(exc)
    lines = [line.strip() for line in text.replace("stderr:", "").splitlines() if line.strip().strip("'")]
    return " ".join(lines[-2:]).strip("' ") or "git failed"
