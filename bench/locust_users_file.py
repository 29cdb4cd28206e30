"""Users for bench/locust_users.py: the full SharedKeyUser and a bare FastHttpUser sending
the same requests (built once, up front), both without waiting.

With BENCH_SAMPLES=FILE the process samples itself while the load runs (every 0.25 s:
monotonic time, its own CPU time, Locust's request count, RSS) and writes the samples as
JSON when the test stops, before the end-of-run verdict: the bench judges a steady window
of load, not the start-up or the check."""
import json
import os
import time
from itertools import cycle

import gevent
import psutil
from locust import FastHttpUser, constant, events, task

from sessionstorm import SharedKeyUser
from sessionstorm.locust.plugin import context
from sessionstorm.workload import gateway

SAMPLE_EVERY_S = 0.25


class VerifiedUser(SharedKeyUser):
    wait_time = constant(0)


class BareUser(FastHttpUser):
    wait_time = constant(0)

    def on_start(self):
        ctx = context(self.environment)
        reqs = [gateway.build_chat(ctx.profile, ctx.prompts, key=ctx.keys[0], model="llama-70b") for _ in range(200)]
        self.requests = cycle(reqs)

    @task
    def ask(self):
        r = next(self.requests)
        self.client.request(r.method, r.path, data=r.body, headers=r.headers, name="chat")


_samples: list[tuple[float, float, int, int]] = []


def _sampler(environment):
    me = psutil.Process()
    while True:
        _samples.append((time.monotonic(), time.process_time(), environment.stats.total.num_requests,
                         me.memory_info().rss))
        gevent.sleep(SAMPLE_EVERY_S)


@events.test_start.add_listener
def _start_sampling(environment, **_):
    if os.environ.get("BENCH_SAMPLES"):
        environment.bench_sampler = gevent.spawn(_sampler, environment)


@events.test_stop.add_listener
def _write_samples(environment, **_):
    out = os.environ.get("BENCH_SAMPLES")
    sampler = getattr(environment, "bench_sampler", None)
    if out and sampler is not None:
        sampler.kill()
        with open(out, "w") as f:
            json.dump(_samples, f)
