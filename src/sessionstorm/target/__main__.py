"""``python -m sessionstorm.target serve|create-key``."""
from __future__ import annotations

import asyncio
import os
import sys

import click
import uvicorn

from sessionstorm.cli import run_command
from sessionstorm.errors import ConfigError
from sessionstorm.target.bugs import BUGS, parse_bugs
from sessionstorm.target.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The sessionstorm reference target (a session gateway with a bug zoo)."""


@main.command()
@click.option("--host", envvar="SESSIONSTORM_TARGET_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="SESSIONSTORM_TARGET_PORT", type=int, default=8000, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="uvicorn worker processes")
@click.option("--bugs", envvar="SESSIONSTORM_TARGET_BUGS", default="",
              help="comma-separated bug flags: " + ", ".join(BUGS))
@click.option("--reuse-port", is_flag=True,
              help="bind with SO_REUSEPORT, so a second process can share the address and port (a stale twin)")
def serve(host: str, port: int, workers: int, bugs: str, reuse_port: bool) -> None:
    """Serve the target; settings come from SESSIONSTORM_* env vars (the stack sets them)."""
    os.environ["SESSIONSTORM_TARGET_BUGS"] = ",".join(sorted(parse_bugs(bugs)))
    Settings.from_env()  # fail here, in one line, rather than in every worker
    if workers < 1:
        raise ConfigError("workers", workers, "an integer >= 1", "pass --workers 1 or more")
    if reuse_port:  # uvicorn has no such option: bind the socket here and hand it over
        import socket
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        from sessionstorm.target.app import create_app
        config = uvicorn.Config(create_app(), log_level="warning", access_log=False, loop="uvloop", http="httptools")
        uvicorn.Server(config).run(sockets=[sock])
        return
    uvicorn.run("sessionstorm.target.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False, loop="uvloop", http="httptools")


@main.command("create-key")
@click.option("--user", required=True, help="user name the key belongs to")
def create_key_cmd(user: str) -> None:
    """Create an API key (prints it once; only its hash is stored)."""
    import asyncpg

    from sessionstorm.target.db import create_key, ensure_schema

    settings = Settings.from_env()

    async def run() -> dict[str, object]:
        pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2)
        try:
            await ensure_schema(pool, settings.bugs)
            async with pool.acquire() as conn:
                return await create_key(conn, user)
        finally:
            await pool.close()

    click.echo(asyncio.run(run())["api_key"])


if __name__ == "__main__":
    sys.exit(run_command(main, "sessionstorm.target"))
