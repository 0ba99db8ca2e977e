"""The worker process's runtime, bound once by the worker entry point.

rq imports job functions by name and passes them only JSON arguments (ids), so a job finds
its connections here. Nothing is bound at import time: `bind()` is called by `hotline worker`
(or a test) after it has built the Runtime from Settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runtime import Runtime

_bound: list[Runtime] = []


def bind(runtime: Runtime) -> None:
    _bound[:] = [runtime]


def unbind() -> None:
    _bound.clear()


def current() -> Runtime:
    if not _bound:
        raise RuntimeError("no runtime bound in this process: start jobs with `hotline worker`")
    return _bound[0]
