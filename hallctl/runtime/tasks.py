"""Running and stopping groups of asyncio tasks so that a stop really stops.

On Python 3.11 (Raspberry Pi OS bookworm's Python) ``asyncio.wait_for`` can swallow a
cancellation when the awaited call finishes in the same loop step (fixed in 3.12). aiomqtt uses
``wait_for`` for every publish, so a task cancelled while publishing may simply carry on, and a
``TaskGroup`` that cancels its children once then waits forever: the daemon ignores SIGTERM.
Here a cancellation is repeated until the task is really done.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, Iterable


async def cancel_and_wait(task: asyncio.Task[Any], *, retry_s: float = 0.5) -> None:
    """Cancel ``task`` and wait until it is done, cancelling again if a cancellation was lost."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_s)


async def run_together(coros: Iterable[tuple[str, Coroutine[Any, Any, Any]]]) -> None:
    """Run named coroutines side by side until one fails (its error is raised) or all end.

    When this is cancelled, or one fails, every other one is cancelled with
    :func:`cancel_and_wait`; unlike ``TaskGroup``, a swallowed cancellation cannot hang the stop.
    """
    tasks = [asyncio.create_task(coro, name=name) for name, coro in coros]
    if not tasks:  # nothing to run (a node with no devices yet): all have ended
        return
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            await cancel_and_wait(task)
