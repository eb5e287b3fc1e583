"""Atomic files and the frame manifest that makes long jobs resumable.

Every file is written to a temp name in its folder and renamed into place, so a crash leaves either
the old file or the new one. A frame counts as done only when its line (with the SHA-256 of each file)
is appended to ``manifest.jsonl``; on resume, files of frames missing from the manifest are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

MANIFEST_NAME = "manifest.jsonl"


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = False) -> str:
    """Write ``data`` to ``path`` atomically; returns its SHA-256 hex digest.

    ``durable`` also flushes the bytes to disk before the rename (for commit records that must survive a
    power loss, not only a killed process; it costs a disk flush, so bulk data does not use it).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Manifest:
    """Append-only record of finished frames: ``{"frame": i, "files": {relpath: sha256}}`` per line."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / MANIFEST_NAME

    def read(self) -> dict[int, dict[str, str]]:
        """Finished frames; a torn last line (crash mid-append) is ignored."""
        done: dict[int, dict[str, str]] = {}
        if not self.path.exists():
            return done
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                done[int(entry["frame"])] = dict(entry["files"])
            except (ValueError, KeyError, TypeError):
                continue
        return done

    def append(self, frame: int, files: dict[str, str]) -> None:
        line = json.dumps({"frame": frame, "files": files}, sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def verify(self) -> list[str]:
        """Files whose checksum no longer matches (or that are missing)."""
        bad = []
        for files in self.read().values():
            for rel, digest in files.items():
                path = self.root / rel
                if not path.is_file() or sha256_file(path) != digest:
                    bad.append(rel)
        return bad


def remove_unfinished(root: Path, finished: dict[int, dict[str, str]], frame_files) -> int:
    """Delete every file that ``frame_files(root)`` attributes to a frame not in ``finished``; returns the count."""
    known = {rel for files in finished.values() for rel in files}
    removed = 0
    for path, frame in frame_files(root):
        rel = str(path.relative_to(root))
        if frame not in finished and rel not in known:
            path.unlink()
            removed += 1
    for tmp in root.rglob(".*.tmp"):
        tmp.unlink()
        removed += 1
    return removed
