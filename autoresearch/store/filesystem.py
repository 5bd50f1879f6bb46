"""Which filesystem a folder lies on, and whether it is shared over a network: SQLite's write-ahead log keeps its
index in shared memory, so it needs every process that opens the database on one host (sqlite.org/wal.html);
on NFS, SMB, Lustre, GPFS and the like (a cluster's home directories) the store uses a rollback journal."""

from __future__ import annotations

import os
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
# Filesystems a second host may open the same file on (network, cluster, FUSE-over-network).
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "lustre", "gpfs", "ceph", "fuse.ceph", "glusterfs",
    "fuse.glusterfs", "beegfs", "ocfs2", "gfs2", "fuse.sshfs", "fuse.rclone", "davfs", "fuse.s3fs", "fuse.gcsfuse",
})


def filesystem_of(folder: Path, mountinfo: Path | None = None) -> str | None:
    """The type of the filesystem that holds folder (its longest mount point above it), from the kernel's mount
    table; None where there is none to read (not Linux)."""
    try:
        lines = (mountinfo or MOUNTINFO).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    target = os.path.realpath(folder)
    best, found = -1, None
    for line in lines:
        fields, _, after = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not after:
            continue
        point = _unescape(parts[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:  # a later mount on the same point hides an earlier one
            best, found = len(point), after.split()[0]
        elif inside and len(point) == best:
            found = after.split()[0]
    return found


def network_filesystem(folder: Path, mountinfo: Path | None = None) -> str | None:
    """The type of folder's filesystem where another host may share it, else None."""
    kind = filesystem_of(folder, mountinfo)
    return kind if kind in NETWORK_FILESYSTEMS else None


def _unescape(field: str) -> str:
    """Mount points in mountinfo write space, tab, newline and backslash as octal escapes (\\040 …)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
