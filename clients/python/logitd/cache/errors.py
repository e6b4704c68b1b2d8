"""Errors raised by :mod:`logitd.cache`: one base class, so callers catch a single type."""

from __future__ import annotations


class CacheError(Exception):
    """Anything wrong with a cache directory: a damaged shard, an unreadable catalog, an
    unknown dataset. The message always names the file and, where known, the place."""


class CatalogError(CacheError):
    """``catalog.sqlite`` is missing, not a logitd catalog, or cannot be read."""


class DatasetNotFound(CacheError, KeyError):
    """No dataset of that name in the catalog."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "dataset not found"


class ShardError(CacheError):
    """A shard file failed validation. ``path`` is the file, ``block`` the block index (when one
    is involved), ``offset`` the file offset of the structure being read (when known) and
    ``reason`` what was found and what was expected. The text follows the Swift reader's
    (``shard PATH, block N: reason``), with the byte offset added."""

    def __init__(self, path: str, reason: str, block: int | None = None, offset: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.block = block
        self.offset = offset
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"shard {self.path}"
        if self.block is not None:
            where += f", block {self.block}"
        if self.offset is not None:
            where += f" (byte offset {self.offset})"
        return f"{where}: {self.reason}"
