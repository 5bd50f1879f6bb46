"""Which filesystem a folder lies on, and whether it is shared over a network: SQLite's write-ahead log keeps its
index in shared memory, so it needs every process that opens the database on one host (sqlite.org/wal.html);
on NFS, SMB, Lustre, GPFS and the like (a cluster's home directories) the store uses a rollback journal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
# Filesystems a second host may open the same file on (network, cluster, FUSE-over-network).
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "lustre", "gpfs", "ceph", "fuse.ceph", "glusterfs",
    "fuse.glusterfs", "beegfs", "ocfs2", "gfs2", "fuse.sshfs", "fuse.rclone", "davfs", "fuse.s3fs", "fuse.gcsfuse",
    "afpfs", "webdav", "macfuse", "osxfuse",  # macOS's names
})


def filesystem_of(folder: Path, mountinfo: Path | None = None) -> str | None:
    """The type of the filesystem that holds folder (its longest mount point above it; of two on one point, the
    later), from the kernel's mount table on Linux or `mount`'s list on macOS; None where neither can be read."""
    mounts = _linux_mounts(mountinfo or MOUNTINFO)
    if mounts is None and sys.platform == "darwin":
        mounts = _macos_mounts()
    target = os.path.realpath(folder)
    best, found = -1, None
    for point, kind in mounts or []:
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:
            best, found = len(point), kind
    return found


def _linux_mounts(mountinfo: Path) -> list[tuple[str, str]] | None:
    """(mount point, type) in mount order: "36 35 98:0 / /mnt rw,noatime master:1 - ext3 /dev/root rw"."""
    try:
        lines = mountinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    mounts = []
    for line in lines:
        fields, _, after = line.partition(" - ")
        parts = fields.split()
        if len(parts) >= 5 and after:
            mounts.append((_unescape(parts[4]), after.split()[0]))
    return mounts


def _macos_mounts() -> list[tuple[str, str]] | None:
    """(mount point, type) from macOS's `mount`: "//ana@nas/share on /Volumes/share (smbfs, nodev, nosuid)"."""
    try:
        listed = subprocess.run(["mount"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [(m["point"], m["kind"]) for m in map(_MACOS_LINE.match, listed.splitlines()) if m]


_MACOS_LINE = re.compile(r"^.+? on (?P<point>/.*) \((?P<kind>[^,)]+)")


def network_filesystem(folder: Path, mountinfo: Path | None = None) -> str | None:
    """The type of folder's filesystem where another host may share it, else None."""
    kind = filesystem_of(folder, mountinfo)
    return kind if kind in NETWORK_FILESYSTEMS else None


def _unescape(field: str) -> str:
    """Mount points in mountinfo write space, tab, newline and backslash as octal escapes (\\040 …)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
