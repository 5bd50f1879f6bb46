"""Which store, study and trial a review command means: the workspace's store, --study or the current
settings' study, and a trial number or the commit-ish (sha prefix, branch, HEAD~1) of a trial's commit."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..store import Store
from ..store.queries import study_names
from ..store.store import STORE_NAME
from ..workspace.workspace import RUNS_DIR

# --- finding the store, the study and the trial --------------------------------------------------


def open_store(root: Path) -> Store:
    """The workspace's store; refuses (rather than creating an empty one) when no run has written it yet."""
    path = Path(root) / RUNS_DIR / STORE_NAME
    if not path.is_file():
        raise UsageError(f"{path}: no store yet; run `autoresearch run` first")
    return Store(path)


def resolve_study(store: Store, root: Path, name: str | None = None) -> str:
    """--study NAME, else the study of the workspace's current settings, else the store's only study."""
    known = study_names(store)
    if name is not None:
        if name not in known:
            raise UsageError(f"--study {name}: no such study in {store.path} (known: {', '.join(known) or 'none'})")
        return name
    if not known:
        raise UsageError(f"{store.path}: no study yet; run `autoresearch run` first")
    if len(known) == 1:  # the common case; also skips loading the workspace just to compute a name
        return known[0]
    current = current_study_name(root)
    if current in known:
        return current
    raise UsageError(f"{store.path}: several studies and none matches the current settings; "
                     f"pick one with --study ({', '.join(known)})")


def current_study_name(root: Path) -> str | None:
    """The name `autoresearch run` would use now; None when the workspace no longer loads."""
    from ..search.identity import study_name
    from ..workspace.workspace import load_workspace

    try:
        return study_name(load_workspace(root))
    except UsageError:
        return None


def resolve_trial(store: Store, root: Path, study: str, ref: str) -> int:
    """A trial number, or a commit-ish (sha prefix, branch, HEAD~1) of a trial's commit → its trial number."""
    ref = ref.strip()
    if ref.isdigit() and store.trial(study, int(ref)) is not None:
        return int(ref)
    shas = [(r["number"], r["commit_sha"]) for r in store.trials(study) if r["commit_sha"]]
    full = _rev_parse(root, ref)
    matches = [n for n, sha in shas if sha == full] if full else []
    if not matches:
        matches = [n for n, sha in shas if _names(ref, sha, None)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"{ref}: ambiguous, matches the commits of trials {', '.join(map(str, matches))}")
    for keep in store.study_keeps(study):  # a shared study's keep by another worker: its evaluation is not here
        sha = keep["commit_sha"] or ""
        if ref == str(keep["trial"]) or _names(ref, sha, full):
            raise UsageError(
                f"{ref}: trial {keep['trial']} was kept by worker {keep['worker']} of shared study {study}; its "
                f"evaluation is in that worker's store (run `autoresearch show {keep['trial']}` there); here "
                f"`autoresearch log` lists its figures and `git show {sha[:10] or '<its commit>'}` its diff and "
                "evidence")
    raise UsageError(f"{ref}: neither a trial number nor the commit of a trial of study {study}")


def _names(ref: str, sha: str, full: str | None) -> bool:
    """Whether a ref names a commit: the commit git resolved it to, or (4 characters or more) its sha's prefix."""
    return bool(sha) and (sha == full or (len(ref) >= 4 and sha.startswith(ref.lower())))


def _rev_parse(root: Path, ref: str) -> str | None:
    import git

    try:
        return git.Repo(root, search_parent_directories=True).commit(ref).hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.BadName, ValueError):
        return None
