"""Read-only access to ``<cache>/catalog.sqlite`` (schema/catalog.sql, schema/CATALOG_FILE.md)
that never creates the ``-wal`` / ``-shm`` side files.

SQLite opens a WAL-mode database read-only by creating ``-shm`` (and ``-wal``) next to it. So:

- **no ``-wal`` file** (no writer since the last clean close): the main file is the whole
  catalog; it is opened with ``immutable=1`` (no locks, no side files). The file's inode, size
  and mtime are compared before and after each read, and the read is redone (on a fresh
  connection) if a writer appeared meanwhile.
- **``-wal`` and ``-shm`` both present** (a writer is running, or ran): an ordinary ``mode=ro``
  connection, which uses them as they are and creates nothing; each read runs in one transaction,
  so it sees one committed state while ``logitd`` writes.

The connection is kept between reads (and reopened when the case changes); ``close`` drops it.
- **``-wal`` without ``-shm``** (a writer crashed and ``-shm`` was removed): the catalog and its
  WAL are copied into a private temporary directory and read there, so SQLite's WAL recovery
  happens on the copies.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import urllib.parse
from typing import Callable, TypeVar

from .errors import CatalogError

T = TypeVar("T")

APPLICATION_ID = 0x4C474332  # "LGC2": catalog file format 2
RESERVED_BYTES = 8


def _uri(path: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{urllib.parse.quote(os.path.abspath(path))}?{query}"


def _stamp(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


class Catalog:
    """The catalog of one cache directory. :meth:`read` runs a function on a consistent snapshot."""

    def __init__(self, cache_dir: str) -> None:
        self.path = os.path.join(cache_dir, "catalog.sqlite")
        if not os.path.isfile(self.path):
            raise CatalogError(f"{cache_dir} is not a logitd cache (no catalog.sqlite)")
        self._check_marks()
        self._lock = threading.Lock()
        # (stamp of the main file for an immutable-mode connection, else None; the connection)
        self._connection: tuple[tuple[int, int, int] | None, sqlite3.Connection] | None = None

    def _check_marks(self) -> None:
        try:
            with open(self.path, "rb") as f:
                head = f.read(100)
        except OSError as e:
            raise CatalogError(f"{self.path}: cannot read: {e.strerror}") from None
        if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
            raise CatalogError(f"{self.path}: not an SQLite database (header {head[:16]!r})")
        reserved, app_id = head[20], int.from_bytes(head[68:72], "big")
        if reserved != RESERVED_BYTES or app_id != APPLICATION_ID:
            raise CatalogError(f"{self.path}: not a logitd catalog of format 2 (reserved bytes per page {reserved}, "
                               f"expected {RESERVED_BYTES}; application_id 0x{app_id:08x}, expected 0x{APPLICATION_ID:08x})")

    def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """``query(connection)`` on one committed state of the catalog, creating no files beside it."""
        with self._lock:
            try:
                for _ in range(5):
                    if os.path.exists(self.path + "-wal"):
                        if not os.path.exists(self.path + "-shm"):
                            self._forget()
                            return self._read_copy(query)
                        if self._connection is None or self._connection[0] is not None:
                            self._forget()
                            self._connection = (None, self._connect(_uri(self.path, mode="ro")))
                        return self._run(self._connection[1], query)
                    before = _stamp(self.path)
                    if self._connection is None or self._connection[0] != before:
                        self._forget()
                        self._connection = (before, self._connect(_uri(self.path, mode="ro", immutable="1")))
                    result = self._run(self._connection[1], query)
                    if not os.path.exists(self.path + "-wal") and _stamp(self.path) == before:
                        return result
                    self._forget()
            except sqlite3.Error as e:
                self._forget()
                raise CatalogError(f"{self.path}: {e}") from None
            except OSError as e:
                raise CatalogError(f"{self.path}: {e.strerror}") from None
        raise CatalogError(f"{self.path}: changed during every read attempt")

    def _forget(self) -> None:
        """Drops the cached connection (the file changed, or a writer appeared or left)."""
        if self._connection is not None:
            self._connection[1].close()
            self._connection = None

    def close(self) -> None:
        with self._lock:
            self._forget()

    def _read_copy(self, query: Callable[[sqlite3.Connection], T]) -> T:
        with tempfile.TemporaryDirectory(prefix="logitd-catalog-") as tmp:
            copy = os.path.join(tmp, "catalog.sqlite")
            shutil.copyfile(self.path, copy)
            shutil.copyfile(self.path + "-wal", copy + "-wal")
            connection = self._connect(_uri(copy, mode="ro"))
            try:
                return self._run(connection, query)
            finally:
                connection.close()

    @staticmethod
    def _connect(uri: str) -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=10, isolation_level=None, check_same_thread=False)

    @staticmethod
    def _run(connection: sqlite3.Connection, query: Callable[[sqlite3.Connection], T]) -> T:
        """One read transaction: every statement of ``query`` sees the same committed state."""
        connection.execute("BEGIN")
        try:
            return query(connection)
        finally:
            connection.execute("COMMIT")
