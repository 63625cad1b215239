"""The Dramatiq driver for bench/common.py (runs in its own venv)."""

import os
import sys

import dramatiq

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__))]
from bench_dramatiq import broker, noop, probe, sleep  # noqa: E402
from common import Adapter, main  # noqa: E402

# Dramatiq's Redis broker keeps each message in the queue's ".msgs" hash
# from the enqueue until the ack (after the actor ran); a message that ran
# out of retries moves to the dead-letter queue's hash.
MESSAGES = f"{broker.namespace}:default.msgs"
DEAD = f"{broker.namespace}:default.XQ.msgs"


class DramatiqAdapter(Adapter):
    def __init__(self):
        self.redis = broker.client

    def reset(self):
        self.redis.flushdb()

    def enqueue_noop(self):
        noop.send()

    def bulk_noop(self, count):
        dramatiq.group(noop.message() for _ in range(count)).run()

    def bulk_sleep(self, millis):
        dramatiq.group(sleep.message(ms) for ms in millis).run()

    def enqueue_probe(self, path, index):
        probe.send(path, index)

    def failed(self):
        return self.redis.hlen(DEAD)

    def remaining(self):
        return self.redis.hlen(MESSAGES)


if __name__ == "__main__":
    main(DramatiqAdapter())
