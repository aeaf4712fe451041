"""pytest plugin: runs CPython's own ``test.test_asyncio`` modules on the loop named by
``POLYIO_CONFORMANCE_LOOP``: ``default`` (asyncio's), ``uvloop``, ``polyio`` (polyio's
policy: uvloop's loop with polyio's networking) or ``polyio-asyncio`` (asyncio's loop with
polyio's networking). The tests build their loops with ``asyncio.SelectorEventLoop(...)``
and ``asyncio.new_event_loop()``; both are pointed at the loop under test."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

_outcomes: dict[str, str] = {}


def _uvloop_class(base: type) -> type:
    class SelectorIgnored(base):  # type: ignore[misc,valid-type]
        """The loop under test where a test asks for a selector loop (a selector argument is
        ignored: uvloop has none)."""

        def __new__(cls, selector: Any = None) -> Any:
            return super().__new__(cls)

        def __init__(self, selector: Any = None) -> None:
            super().__init__()

    return SelectorIgnored


def _policy(loop_class: type) -> type:
    """asyncio's default policy (child watchers and all, which the tests use) making
    `loop_class` loops: the same policy shape for every loop under test."""

    class Policy(asyncio.DefaultEventLoopPolicy):
        _loop_factory = loop_class

    return Policy


def _patch(loop_class: type, policy: type) -> None:
    asyncio.SelectorEventLoop = loop_class  # type: ignore[misc,assignment]
    asyncio.DefaultEventLoopPolicy = policy  # type: ignore[misc,assignment]
    asyncio.set_event_loop_policy(policy())


def pytest_configure(config: Any) -> None:
    mode = os.environ.get("POLYIO_CONFORMANCE_LOOP", "default")
    if mode == "default":
        return
    if mode == "uvloop":
        import uvloop

        _patch(_uvloop_class(uvloop.Loop), _policy(uvloop.Loop))
    elif mode == "polyio":
        import polyio
        from polyio import _loop

        _patch(_uvloop_class(_loop.UvLoop), polyio.EventLoopPolicy)
    elif mode == "polyio-asyncio":
        from polyio import _loop

        _patch(_loop.AsyncioLoop, _policy(_loop.AsyncioLoop))
    else:
        raise ValueError(f"POLYIO_CONFORMANCE_LOOP={mode!r}: default, uvloop, polyio or polyio-asyncio")
    print(f"conformance: loop {mode}: {asyncio.new_event_loop()!r}")


def _key(location: tuple[str, Any, str]) -> str:
    """``module::Class::test`` for a test's (or its report's) location."""
    module = os.path.basename(location[0]).removesuffix(".py")
    return f"{module}::{location[2].replace('.', '::')}"


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Leaves out the tests named in ``POLYIO_CONFORMANCE_SKIP`` (known to hang on this
    loop), and on uvloop's loop (uvloop, polyio) the signal-handling tests: uvloop runs
    Python signal handlers only from its own loop, so a test that waits for a signal there
    also blocks pytest-timeout's SIGALRM and hangs for good."""
    skip = set(os.environ.get("POLYIO_CONFORMANCE_SKIP", "").split())
    on_uvloop = os.environ.get("POLYIO_CONFORMANCE_LOOP") in ("uvloop", "polyio")

    def left_out(item: Any) -> bool:
        return _key(item.location) in skip or (on_uvloop and "signal" in item.name)

    dropped = [i for i in items if left_out(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if not left_out(i)]


def pytest_runtest_logreport(report: Any) -> None:
    """Records each test's outcome (failed if setup, call or teardown failed) under
    ``module::Class::test`` for ``POLYIO_CONFORMANCE_OUT``."""
    key = _key(report.location)
    prev = _outcomes.get(key)
    if prev is None or (prev == "passed" and report.outcome != "passed"):
        _outcomes[key] = report.outcome


def pytest_sessionfinish(session: Any) -> None:
    out = os.environ.get("POLYIO_CONFORMANCE_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(_outcomes, f, indent=0, sort_keys=True)
