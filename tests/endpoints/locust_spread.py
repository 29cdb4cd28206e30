"""Run in a subprocess (importing Locust patches the process for gevent): N FastHttpSessions,
as N FastHttpUsers have, spread by one Spreader; prints which pid answered each, as JSON.

    python locust_spread.py URL NAME=ADDR,ADDR N
"""
from __future__ import annotations

import json
import sys

from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

from sessionstorm.endpoints import Spreader, spread_geventhttpclient


def main() -> None:
    url, pin, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    name, _, addrs = pin.partition("=")
    spreader = Spreader.for_url(url, {name: addrs.split(",")})
    out = []
    for _ in range(n):
        session = FastHttpSession(url, EventHook(), None, concurrency=1)
        spread_geventhttpclient(session.client.clientpool, spreader)  # the lead's one line per user
        r = session.get("/whoami")
        out.append(r.json())
        session.client.clientpool.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
