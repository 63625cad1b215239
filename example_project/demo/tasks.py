"""The demo site's tasks."""

import time

from djtasks import task


@task
def add(a, b):
    """Quick: add two numbers."""
    return a + b


@task(takes_context=True)
def slow_count(context, seconds: int = 5):
    """Slow: count for a few seconds."""
    for _ in range(seconds):
        time.sleep(1)
    return {"counted": seconds, "attempt": context.attempt}


@task(max_attempts=3, backoff=1, jitter=False, takes_context=True)
def flaky(context):
    """Fails on the first two attempts, then succeeds."""
    if context.attempt < 3:
        raise RuntimeError(f"attempt {context.attempt} fails on purpose")
    return "third time lucky"
