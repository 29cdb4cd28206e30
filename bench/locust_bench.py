"""Load for bench/provider.py: bare FastHttpUser classes, no waiting, no verification."""
from locust import FastHttpUser, task

BODY = {"model": "llama-70b", "messages": [{"role": "user", "content": "Benchmark prompt SSC-0000-0000-0000-0000 about sessions."}]}


class ChatJSONUser(FastHttpUser):
    @task
    def chat(self):
        self.client.post("/v1/chat/completions", json=BODY)


class ChatStreamUser(FastHttpUser):
    @task
    def chat(self):
        self.client.post("/v1/chat/completions", json={**BODY, "stream": True})
