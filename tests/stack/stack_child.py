"""Run a stack in a child process for the teardown tests.

Prints one JSON line {"dir", "pids": [[pid, create_time], ...]} with every descendant
once the stack and a target are up, then waits to be signalled.
"""
import json
import signal
import sys

from stack_helpers import ENVSERVER, descendants

from sessionstorm.stack import Stack


if __name__ == "__main__":
    with Stack() as stack:
        stack.start_target(["{python}", ENVSERVER], name="env")
        print(json.dumps({"dir": str(stack.dir), "pids": descendants()}), flush=True)
        signal.pause()
    sys.exit(0)
