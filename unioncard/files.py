"""Private files on disk: written atomically and readable by the owner only (mode 0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file created 0600, fsync, then rename over ``path``: a reader sees
    the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """The secret stored in ``path``, made (random, 0600) the first time it is asked for."""
    path = Path(path)
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    return value


class PendingUploads:
    """Uploaded files waiting for the user to confirm a preview (a member list). Each is kept under
    a random token, private to the owner, and for ``ttl_seconds`` at most: an abandoned preview or
    a crash leaves nothing behind for longer, because every new upload sweeps out the expired ones
    (and ``sweep`` can be run by itself)."""

    def __init__(self, folder: Path, ttl_seconds: float):
        self.folder = Path(folder)
        self.ttl_seconds = ttl_seconds

    def _path(self, token: str) -> Path | None:
        if not token or not all(c.isalnum() or c in "-_" for c in token) or len(token) > 64:
            return None
        return self.folder / f"{token}.bin"

    def put(self, content: bytes, replacing: str | None = None) -> str:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.sweep()
        if replacing:
            self.discard(replacing)
        token = secrets.token_urlsafe(16)
        write_private_atomically(self.folder / f"{token}.bin", content)
        return token

    def get(self, token: str) -> bytes | None:
        """The file, or None if it is unknown or has expired (an expired one is removed)."""
        import time

        path = self._path(token)
        if path is None or not path.exists():
            return None
        if time.time() - path.stat().st_mtime > self.ttl_seconds:
            path.unlink(missing_ok=True)
            return None
        return path.read_bytes()

    def discard(self, token: str) -> None:
        path = self._path(token)
        if path is not None:
            path.unlink(missing_ok=True)

    def sweep(self) -> int:
        """Remove every expired file (and stray temporary files); returns how many."""
        import time

        if not self.folder.exists():
            return 0
        removed = 0
        limit = time.time() - self.ttl_seconds
        for path in self.folder.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < limit:
                    path.unlink(missing_ok=True)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
