"""Run stores, and ``open_store`` to pick one from the configured URL."""

from __future__ import annotations

import os

from .base import RunStore
from .memory import MemoryRunStore
from .sqlite import SQLiteRunStore

__all__ = ["MemoryRunStore", "RunStore", "SQLiteRunStore", "open_store"]

_SUPPORTED = (
    "sqlite:// (default: <data_dir>/runs.sqlite3), sqlite:///abs/path.db, sqlite://relative.db, memory://"
)


def open_store(url: str, data_dir: str) -> RunStore:
    """The store ``url`` names; ``""`` and ``"sqlite://"`` mean ``<data_dir>/runs.sqlite3``.

    ``sqlite://`` is followed by a file path as is: ``sqlite:///abs/path.db`` is absolute, and
    ``sqlite://relative.db`` is relative to the working directory.
    """
    if url in ("", "sqlite://"):
        return SQLiteRunStore(os.path.join(data_dir, "runs.sqlite3"))
    if url.startswith("sqlite://"):
        return SQLiteRunStore(url.removeprefix("sqlite://"))
    if url == "memory://":
        return MemoryRunStore()
    if url.startswith("memory://"):
        raise ValueError(f"run store URL {url!r}: memory:// takes no path")
    scheme = url.partition("://")[0] if "://" in url else url
    if scheme in ("postgresql", "postgres"):
        raise ValueError(
            f"run store URL {url!r}: postgresql:// is not supported yet; supported: {_SUPPORTED}"
        )
    raise ValueError(f"run store URL {url!r}: unknown scheme {scheme!r}; supported: {_SUPPORTED}")
