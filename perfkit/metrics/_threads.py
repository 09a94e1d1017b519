"""Thread pools for perfkit's compiled kernels (they release the GIL).

:func:`pool` is the shared pool; a kernel that may itself run on it and wants a helper thread
keeps its own :class:`LazyPool` (a job of a pool must not wait for jobs of the same pool: its
few workers could all be waiting). Every pool is created on first use and forgotten in a forked
child, which has none of the parent's threads (it starts its own instead of waiting forever).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["LazyPool", "pool"]


class LazyPool:
    """A :class:`~concurrent.futures.ThreadPoolExecutor` made on first :meth:`get`, forgotten
    after a fork.

    >>> p = LazyPool(1, "perfkit-doc")
    >>> p.get().submit(sum, [1, 2]).result()
    3
    """

    def __init__(self, workers: int, prefix: str) -> None:
        self._workers = workers
        self._prefix = prefix
        self._pool: ThreadPoolExecutor | None = None
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._pool = None

    def get(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix=self._prefix)
        return self._pool


_SHARED = LazyPool(min(os.cpu_count() or 1, 4), "perfkit")


def pool() -> ThreadPoolExecutor | None:
    """The shared pool (None on a single core). Jobs submitted to it must not wait for other
    jobs of the pool (its few workers could all be waiting)."""
    if (os.cpu_count() or 1) < 2:
        return None
    return _SHARED.get()
