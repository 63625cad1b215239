"""Module-level tasks shared by the whole test suite.

Each kind of task exists twice where it matters: made with ``djtasks.task``
and with the standard decorator (``django.tasks.task`` on Django 6, the
``django_tasks`` backport on 5.2), so tests prove djtasks runs both.

Other helpers may APPEND tasks at the end of this file; keep the ones above
unchanged, tests everywhere rely on them.
"""

import asyncio
import time
from datetime import timedelta

from django.utils import timezone

import djtasks

try:
    from django.tasks import task as standard_task
except ImportError:  # Django 5.2: the backport supplies the API.
    from django_tasks import task as standard_task


# Calls of functions that must never run (see not_a_task); tests clear it.
FORBIDDEN_CALLS: list = []
# Hook calls (name, result id) recorded by with_hooks.
HOOK_CALLS: list = []


# --- djtasks.task ---------------------------------------------------------


@djtasks.task
def noop():
    return None


@djtasks.task
def add(a, b):
    return a + b


@djtasks.task
def echo(*args, **kwargs):
    """Return the arguments as received, to check they round-trip."""
    return {"args": list(args), "kwargs": kwargs}


@djtasks.task
def failing(message="boom"):
    raise ValueError(message)


def connected(signal, receiver) -> bool:
    """Whether ``receiver`` is connected to ``signal`` (for any sender)."""
    # Django keys each receiver by (id(receiver), id(sender)).
    return any(key[0] == id(receiver) for key, *_ in signal.receivers)


@djtasks.task
def receivers_during_run():
    """Whether Django's per-job logging receivers are connected while this job runs."""
    from djtasks.compat import signals

    return {
        "started": connected(signals.task_started, signals.log_task_started),
        "finished": connected(signals.task_finished, signals.log_task_finished),
    }


@djtasks.task
def sleeping(seconds=0.1):
    time.sleep(seconds)
    return seconds


@djtasks.task(takes_context=True)
def takes_context(context, *args):
    """Return what the TaskContext says about the running attempt."""
    return {
        "attempt": context.attempt,
        "id": context.task_result.id,
        "worker_ids": list(context.task_result.worker_ids),
        "context_class": type(context).__module__ + "." + type(context).__qualname__,
        "aware": all(
            timezone.is_aware(getattr(context.task_result, name))
            for name in ("enqueued_at", "started_at", "last_attempted_at")
        ),
        "args": list(args),
    }


@djtasks.task
async def async_add(a, b):
    await asyncio.sleep(0)
    return a + b


@djtasks.task
async def async_failing():
    await asyncio.sleep(0)
    raise RuntimeError("async boom")


@djtasks.task
def returns_unserialisable():
    return object()


@djtasks.task(queue_name="emails", priority=10)
def send_email(address):
    return f"sent to {address}"


@djtasks.task(queue_name="other")
def on_other_queue():
    return "other"


@djtasks.task(
    max_attempts=5,
    backoff=2,
    backoff_max=60,
    jitter=False,
    retry_on=[ValueError],
    timeout=30,
    expires=timedelta(minutes=5),
)
def with_options():
    return "options"


@djtasks.task(max_attempts=3, backoff=1, jitter=False)
def always_failing():
    """Fails on every attempt; retried up to max_attempts."""
    raise ValueError("fails every time")


@djtasks.task(max_attempts=3, backoff=1, jitter=False, retry_on=[ConnectionError])
def raise_error(kind):
    """Raise ConnectionError (retried) or ValueError (not retried)."""
    errors = {"connection": ConnectionError, "value": ValueError}
    raise errors[kind](f"{kind} error")


@djtasks.task(max_attempts=3, takes_context=True)
def retry_once(context, delay=30):
    """Ask for a retry on the first attempt, succeed on the next."""
    if context.attempt == 1:
        raise djtasks.Retry(delay=delay, reason="not yet")
    return context.attempt


@djtasks.task(max_attempts=2)
def always_retry(delay=1):
    raise djtasks.Retry(delay=delay)


@djtasks.task(unique_key="the-singleton")
def singleton():
    return "single"


@djtasks.task(unique=True)
def unique_by_args(value):
    return value


@djtasks.task(expires=60)
def expiring():
    return "ran"


def _record_hook(name):
    def hook(result):
        HOOK_CALLS.append((name, result.id, str(result.status)))

    return hook


@djtasks.task(
    max_attempts=2,
    backoff=1,
    jitter=False,
    on_success=_record_hook("success"),
    on_failure=_record_hook("failure"),
    on_retry=_record_hook("retry"),
)
def with_hooks(fail=False):
    if fail:
        raise ValueError("hooked failure")
    return "hooked"


# --- the standard decorator -----------------------------------------------


@standard_task
def std_add(a, b):
    return a + b


@standard_task()
def std_noop():
    return None


@standard_task(priority=5, queue_name="emails")
def std_send(address):
    return f"std sent to {address}"


@standard_task(takes_context=True)
def std_takes_context(context):
    return {"attempt": context.attempt, "id": context.task_result.id}


@standard_task
def std_failing():
    raise KeyError("std boom")


@standard_task
async def std_async_add(a, b):
    await asyncio.sleep(0)
    return a + b


def std_with_options():
    return "std options"


# djtasks' options through the standard decorator: the backend's task_class
# (DatabaseTask) receives them. Django 6.0's decorator takes none (6.1 and
# the backport forward them): None there, and the tests of it say so.
try:
    std_with_options = standard_task(max_attempts=2, timeout=10, unique_key="std-unique")(
        std_with_options
    )
except TypeError:
    std_with_options = None


# --- not tasks --------------------------------------------------------------


def not_a_task(*args, **kwargs):
    """A plain function in an installed app: must never run from a row."""
    FORBIDDEN_CALLS.append(("not_a_task", args, kwargs))


# --- worker acceptance tasks (appended by the worker helper) ----------------
# Each appends a tests.models.Ledger row per execution, so tests can count
# how many times a job really ran.


def _ledger(context, tag=""):
    import os

    from tests.models import Ledger

    Ledger.objects.create(
        job_id=context.task_result.id, tag=tag, attempt=context.attempt, pid=os.getpid()
    )


@djtasks.task(takes_context=True)
def ledger(context, tag="", seconds=0.0):
    """Append to the ledger, then sleep ``seconds``."""
    _ledger(context, tag)
    if seconds:
        time.sleep(seconds)
    return context.attempt


@djtasks.task(takes_context=True, max_attempts=2)
def slow_first_attempt(context, seconds=30.0):
    """The first attempt hangs (to be killed); the next one returns at once."""
    _ledger(context, "start")
    if context.attempt == 1:
        time.sleep(seconds)
    return context.attempt


def _ledger_hook(name):
    """A hook that leaves a Ledger row, so a test in another process sees it ran."""

    def hook(result):
        import os

        from tests.models import Ledger

        Ledger.objects.create(
            job_id=result.id,
            tag=name + ":" + str(result.status),
            attempt=len(result.errors),
            pid=os.getpid(),
        )

    return hook


@djtasks.task(
    takes_context=True,
    timeout=1,
    max_attempts=2,
    backoff=0.5,
    jitter=False,
    on_retry=_ledger_hook("retry"),
    on_failure=_ledger_hook("failure"),
)
def overruns(context, seconds=30.0):
    """Runs past its 1 s timeout on every attempt."""
    _ledger(context, "start")
    time.sleep(seconds)


@djtasks.task(takes_context=True, max_attempts=3, backoff=1, jitter=False)
def fails_twice(context):
    """Fails on attempts 1 and 2 (backoff 1 s then 2 s), succeeds on the 3rd."""
    _ledger(context, "attempt")
    if context.attempt < 3:
        raise ValueError(f"attempt {context.attempt} fails")
    return context.attempt


@djtasks.task(takes_context=True, max_attempts=3)
def cooperative_cancel(context, seconds=30.0):
    """Checks for a cancel request while it works."""
    from djtasks.control import raise_if_cancel_requested

    _ledger(context, "start")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        raise_if_cancel_requested(context)
        time.sleep(0.05)
    return "not cancelled"


@djtasks.task(takes_context=True, max_attempts=3)
def ignores_cancel(context, seconds=30.0):
    """Never checks for a cancel request: must be stopped by force."""
    _ledger(context, "start")
    time.sleep(seconds)
    return "not cancelled"


# --- appended by the admin helper ---------------------------------------------


@djtasks.task(takes_context=True)
def reports_progress(context, steps=10):
    """Report progress at every step (throttled by djtasks.set_progress)."""
    for step in range(steps):
        djtasks.set_progress(context, step, total=steps, message=f"step {step}")
    djtasks.set_progress(context, steps, total=steps, message="done")
    return steps


@djtasks.task(takes_context=True, max_attempts=5, backoff=0.2, jitter=False)
def ledger_retried(context, tag="", seconds=0.0):
    """Like ledger, retried when it fails (e.g. its own write hits a DB outage)."""
    _ledger(context, tag)
    if seconds:
        time.sleep(seconds)
    return context.attempt


@djtasks.task(takes_context=True, timeout=1)
def holds_the_gil(context):
    """A runaway regex: C code that keeps the GIL far past the 1 s timeout."""
    import re

    _ledger(context, "start")
    return bool(re.match(r"(a+)+$", "a" * 40 + "b"))


@djtasks.task(max_attempts=3)
def raises_cancelled():
    """Stops itself the way a cancelled task does."""
    from djtasks.control import Cancelled

    raise Cancelled("stopping")


@djtasks.task
def returns_nul():
    """A return value PostgreSQL's jsonb refuses (NUL character)."""
    return "a\x00b"


@djtasks.task
def enqueues_add(a, b):
    """Enqueue add(a, b) from inside a job; return the new job's id."""
    return add.enqueue(a, b).id


@djtasks.task
def enqueues_itself():
    """Enqueue another run of itself: never runs dry."""
    enqueues_itself.enqueue()


@djtasks.task(takes_context=True, rate_limit="5/s")
def rate_limited(context):
    """At most 5 starts in any second, across all workers."""
    _ledger(context, "start")


def customer_key(customer, seconds=0.0):
    """The concurrency key of per_customer: one per customer."""
    return f"customer:{customer}"


@djtasks.task(takes_context=True, concurrency_key=customer_key, concurrency_limit=2)
def per_customer(context, customer, seconds=0.0):
    """At most 2 running per customer; the ledger brackets the execution."""
    _ledger(context, "start")
    if seconds:
        time.sleep(seconds)
    _ledger(context, "end")


# --- appended by the workflows helper -----------------------------------------


@djtasks.task
def double(value):
    return value * 2


@djtasks.task
def collect(values, *args):
    """A chord callback: return the results it was given and its own arguments."""
    return {"values": values, "args": list(args)}


@djtasks.task
def on_workflow_error(failed_job_id, tag=""):
    """An error callback: return the id of the failed step it was given."""
    return {"failed": failed_job_id, "tag": tag}


@djtasks.task(takes_context=True)
def chord_member(context, index, seconds=0.0):
    """A chord header step: note the process that ran it, return ``index``."""
    _ledger(context, f"member {index}")
    if seconds:
        time.sleep(seconds)
    return index


@djtasks.task(takes_context=True)
def chord_callback(context, results):
    """A chord callback that notes each run, to count them."""
    _ledger(context, "callback")
    return results


# --- appended by the reliability helper ---------------------------------------


@standard_task(takes_context=True)
def chaos_step(context, seconds=0.0):
    """One job of the chaos and soak runs: note the execution, then work a little.

    A standard task, so max_attempts 1: a SIGKILL of the process running it
    costs no attempt (the lost attempt gives its place back), so every job
    must still end SUCCESSFUL.
    """
    _ledger(context, "chaos")
    if seconds:
        time.sleep(seconds)
    return context.attempt


class TaskAbort(BaseException):  # noqa: N818 - named like KeyboardInterrupt, its kin
    """A BaseException that is neither KeyboardInterrupt nor SystemExit."""


BASE_EXCEPTIONS = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": SystemExit,
    "TaskAbort": TaskAbort,
}


@djtasks.task
def raises_base_exception(kind, message="raised by the task"):
    """Raise one of BASE_EXCEPTIONS, as task code may (once: max_attempts=1)."""
    raise BASE_EXCEPTIONS[kind](message)


@djtasks.task(max_attempts=2, backoff=0.2, jitter=False)
def raises_base_exception_twice(kind, message="raised by the task"):
    """raises_base_exception with a retry left after the first attempt."""
    raise BASE_EXCEPTIONS[kind](message)


class GatewayBusy(Exception):  # noqa: N818 - named as a gateway would say it
    """What a task retries for in retries_for (tests of Retry's exc)."""


@djtasks.task(max_attempts=2)
def retries_for(how, message="gateway busy"):
    """Retry for a GatewayBusy: named by ``exc=`` or ``from``, or not named at all."""
    try:
        raise GatewayBusy(message)
    except GatewayBusy as error:
        if how == "exc":
            raise djtasks.Retry(delay=1, exc=error) from None
        if how == "from":
            raise djtasks.Retry(delay=1) from error
        raise djtasks.Retry(delay=1) from None


# --- appended for lost workers and rolling deploys (issue 15) ------------------


@standard_task(takes_context=True)
def std_slow_first_attempt(context, seconds=30.0):
    """A standard task (max_attempts 1): the first attempt hangs, to be killed."""
    _ledger(context, "start")
    if context.attempt == 1:
        time.sleep(seconds)
    return context.attempt


@standard_task(takes_context=True)
def kills_its_worker(context):
    """A poison job: takes its worker process down on every attempt."""
    import os
    import signal

    _ledger(context, "poison")
    os.kill(os.getpid(), signal.SIGKILL)


# --- appended by the queue-controls helper ------------------------------------


@djtasks.task(takes_context=True)
def bracketed(context, seconds=0.0):
    """Note the start and the end of each execution, to count jobs running at once."""
    _ledger(context, "start")
    if seconds:
        time.sleep(seconds)
    _ledger(context, "end")


@djtasks.task(takes_context=True)
def loses_its_claim(context):
    """The first run puts its row back as it was before the claim; returns the run's number.

    What a claim committed without waiting for the disk looks like after
    PostgreSQL crashed and lost it (djtasks.worker.claim, SYNCHRONOUS_CLAIMS).
    """
    from django.db.models import F

    from djtasks.models import Job
    from tests.models import Ledger

    _ledger(context)
    runs = Ledger.objects.filter(job_id=context.task_result.id).count()
    if runs == 1:
        Job.objects.filter(pk=context.task_result.id).update(
            status="READY",
            worker_id=None,
            attempts=F("attempts") - 1,
            worker_ids=[],
            started_at=None,
            last_attempted_at=None,
        )
    return runs
