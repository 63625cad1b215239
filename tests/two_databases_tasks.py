"""Tasks for tests/two_databases_settings.py (imported only under those settings).

Not tests.tasks: a task of the backend "bulk" cannot be defined where that
backend is not configured, which is everywhere else in the suite.
"""

import djtasks


def _where(context, tag):
    # What the result row says about the job: the alias it ran under.
    return {"tag": tag, "backend": context.task_result.backend}


@djtasks.task(takes_context=True)
def where(context, tag):
    """A task of the default backend; ``.using(backend="bulk")`` moves a call to jobs_b."""
    return _where(context, tag)


@djtasks.task(backend="bulk", queue_name="reports", takes_context=True)
def bulk_report(context, tag):
    """A task whose own backend is "bulk": a schedule in jobs_b can run it."""
    return _where(context, tag)
