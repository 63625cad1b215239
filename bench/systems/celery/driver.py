"""The Celery driver for bench/common.py (runs in its own venv)."""

import os
import sys

from celery import group

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__))]
from bench_celery import app, noop, probe, sleep  # noqa: E402
from common import Adapter, main  # noqa: E402

# Where kombu's Redis transport keeps messages: the queue (a list) and, once
# a worker has fetched them, the "unacked" hash until they are acknowledged
# (with Celery's default early ack: just before the task runs).
QUEUE = "celery"
UNACKED = "unacked"


class CeleryAdapter(Adapter):
    def __init__(self):
        self.redis = app.connection().default_channel.client

    def reset(self):
        self.redis.flushdb()

    def enqueue_noop(self):
        noop.delay()

    def bulk_noop(self, count):
        group(noop.s() for _ in range(count)).apply_async()

    def bulk_sleep(self, millis):
        group(sleep.s(ms) for ms in millis).apply_async()

    def enqueue_probe(self, path, index):
        probe.delay(path, index)

    def remaining(self):
        return self.redis.llen(QUEUE) + self.redis.hlen(UNACKED)


if __name__ == "__main__":
    main(CeleryAdapter())
