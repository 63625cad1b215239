"""Answers to Celery habits: the djtasks way of each, never Celery's API itself.

A task of djtasks has no ``.delay()`` or ``.apply_async()`` and ``.using()``
takes no ``countdown``: each name still fails, but with a message that says
what to write instead (docs/from-celery.md has the whole map).
"""

# A Celery task's methods, and what does the same here.
METHODS = {
    "delay": "task.enqueue(*args, **kwargs)",
    "apply_async": (
        "task.using(run_after=timedelta(seconds=60), queue_name=..., priority=...)"
        ".enqueue(*args, **kwargs)"
    ),
    "retry": "raise djtasks.Retry(delay=..., exc=error) inside the task",
    "s": "task.step(*args, **kwargs) in a djtasks.chain / group / chord",
    "si": "task.step(*args, **kwargs) in a djtasks.chain / group / chord",
    "signature": "task.step(*args, **kwargs) in a djtasks.chain / group / chord",
    "AsyncResult": "task.get_result(job_id)",
}

# Options of Celery's apply_async() and @app.task, and djtasks' own.
OPTIONS = {
    "countdown": "run_after=timedelta(seconds=...)",
    "eta": "run_after=<an aware datetime>",
    "queue": "queue_name=...",
    "max_retries": "max_attempts=... (retries + 1)",
    "autoretry_for": "retry_on=[...]",
    "retry_backoff": "backoff=...",
    "retry_backoff_max": "backoff_max=...",
    "retry_jitter": "jitter=...",
    "time_limit": "timeout=... (hard)",
    "bind": "takes_context=True",
}


def missing_method_message(class_name: str, name: str) -> str:
    """The AttributeError message for ``task.<name>``, with the djtasks way if known."""
    message = f"{class_name!r} object has no attribute {name!r}"
    instead = METHODS.get(name)
    if instead is None:
        return message
    return f"{message}: djtasks does not take Celery's API; write {instead} instead."


def unknown_options_message(names) -> str:
    """The TypeError message for unknown task options, naming the djtasks option of each."""
    names = sorted(names)
    message = f"Unknown task option(s): {', '.join(names)}."
    for name in names:
        if name in OPTIONS:
            message += f" Celery's {name}= is {OPTIONS[name]} in djtasks."
    return message
