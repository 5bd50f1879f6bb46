"""The store on a network share: a rollback journal, since SQLite's write-ahead log needs one host."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys

import pytest

from autoresearch.store import Store, filesystem
from autoresearch.store.filesystem import filesystem_of, network_filesystem

# A cluster node's mount table, as /proc/self/mountinfo writes it (a space in a mount point is \040).
MOUNTS = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 27 0:45 / /home rw,relatime - nfs4 fs01:/export/home rw,vers=4.2
41 40 0:46 / /home/ana/scratch rw,relatime - lustre 10.0.0.5@o2ib:/scratch rw
42 27 8:2 / /data rw,relatime - xfs /dev/sda2 rw
43 27 0:47 / /mnt/my\\040share rw,relatime - cifs //nas/share rw
44 27 0:48 / /data rw,relatime - fuse.sshfs ana@login:/data rw
"""


@pytest.fixture
def mountinfo(tmp_path):
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTS)
    return path


@pytest.mark.parametrize("folder,kind,network", [
    ("/tmp/ws/runs", "ext4", None),
    ("/home/ana/ws/runs", "nfs4", "nfs4"),
    ("/home/ana/scratch/ws/runs", "lustre", "lustre"),  # the longest mount point above it
    ("/homework/runs", "ext4", None),  # /home is not a prefix of /homework
    ("/mnt/my share/ws", "cifs", "cifs"),
    ("/data/ws", "fuse.sshfs", "fuse.sshfs"),  # mounted over /data's xfs: the later mount is what it sees
])
def test_the_filesystem_of_a_folder_is_its_longest_mount_point_above_it(mountinfo, folder, kind, network):
    assert filesystem_of(folder, mountinfo) == kind
    assert network_filesystem(folder, mountinfo) == network


def test_without_a_mount_table_nothing_is_assumed(tmp_path):
    assert filesystem_of(tmp_path, tmp_path / "no-mountinfo") is None
    assert network_filesystem(tmp_path, tmp_path / "no-mountinfo") is None


def _journal(path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]


def test_a_store_on_a_network_share_uses_a_rollback_journal(tmp_path, monkeypatch):
    # In WAL mode a second host (a login node reading `autoresearch log` while a compute node runs) shares no
    # memory index with the first: SQLite warns such a database can be corrupted.
    local = Store(tmp_path / "local" / "autoresearch.db")
    assert local.network_fs is None and _journal(local.path) == "wal"
    local.close()
    monkeypatch.setattr(filesystem, "MOUNTINFO", tmp_path / "mountinfo")
    (tmp_path / "mountinfo").write_text(f"40 27 0:45 / {tmp_path} rw - nfs4 fs01:/export rw\n")
    shared = Store(tmp_path / "local" / "autoresearch.db")  # the same store, found on the share: switched
    assert shared.network_fs == "nfs4" and _journal(shared.path) == "delete"
    shared.conn.execute("CREATE TABLE t (x)")
    assert not (tmp_path / "local" / "autoresearch.db-wal").exists()
    shared.close()


MACOS_MOUNT = """\
/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)
devfs on /dev (devfs, local, nobrowse)
/dev/disk3s5 on /System/Volumes/Data (apfs, local, journaled, nobrowse, protect)
//ana@nas._smb._tcp.local/team share on /Volumes/team share (smbfs, nodev, nosuid, mounted by ana)
nas:/export/home on /Volumes/home (nfs, asynchronous)
"""


@pytest.mark.parametrize("folder,kind,network", [
    ("/Users/ana/ws/runs", "apfs", None),
    ("/Volumes/team share/ws/runs", "smbfs", "smbfs"),
    ("/Volumes/home/ws", "nfs", "nfs"),
])
def test_on_macos_the_filesystem_comes_from_mounts_list(tmp_path, monkeypatch, folder, kind, network):
    # macOS has no /proc: a workspace on an SMB volume kept SQLite's write-ahead log there.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mount").write_text(f"#!/bin/sh\ncat <<'END'\n{MACOS_MOUNT}END\n")
    (bin_dir / "mount").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(filesystem, "MOUNTINFO", tmp_path / "no-proc")
    assert filesystem_of(folder) == kind
    assert network_filesystem(folder) == network
