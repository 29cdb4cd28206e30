"""Users for bench/locust_users.py: the full SharedKeyUser and a bare FastHttpUser sending
the same requests (built once, up front), both without waiting."""
from itertools import cycle

from locust import FastHttpUser, constant, task

from sessionstorm import SharedKeyUser
from sessionstorm.locust.plugin import context
from sessionstorm.workload import gateway


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
