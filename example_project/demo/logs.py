"""The demo's log filter: the worker prints one line per attempt, its outcome."""

import logging

# djtasks' claim thread logs this (djtasks.worker.executor.JOB_FORMAT plus
# " started") as an attempt begins; the outcome line that ends the attempt
# repeats its fields. Kept as text: LOGGING is configured before the apps load.
JOB_STARTED = "job %s task=%s queue=%s attempt=%d/%d started"


class OutcomesOnly(logging.Filter):
    """Drop djtasks' "job ... started" lines, so each attempt prints once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "djtasks" and record.msg == JOB_STARTED)
