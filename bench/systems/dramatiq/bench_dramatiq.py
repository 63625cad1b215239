"""The benchmark's Dramatiq actors: Redis broker, default middleware."""

import os
import time

import dramatiq
from common import record_start
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ["REDIS_URL"])
dramatiq.set_broker(broker)


@dramatiq.actor
def noop():
    pass


@dramatiq.actor
def probe(path, index):
    started = time.time()
    record_start(path, index, started)


@dramatiq.actor
def sleep(millis):
    time.sleep(millis / 1000)
