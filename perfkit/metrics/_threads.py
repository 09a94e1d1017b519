"""One small thread pool shared by perfkit's compiled kernels (they release the GIL)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["pool"]

_POOL: ThreadPoolExecutor | None = None


def _forget_pool() -> None:  # a forked child has none of the parent's worker threads
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def pool() -> ThreadPoolExecutor | None:
    """The shared pool (None on a single core). Jobs submitted to it must not wait for other
    jobs of the pool (its few workers could all be waiting)."""
    global _POOL
    cores = os.cpu_count() or 1
    if cores < 2:
        return None
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(cores, 4), thread_name_prefix="perfkit")
    return _POOL
