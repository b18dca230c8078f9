"""Throwaway PostgreSQL and MariaDB servers for the sync tests, from Debian's packages.

Each is made in a fresh temporary folder (data, socket, log), listens on 127.0.0.1 on a free
port, with a user ``sync`` whose password is ``PASSWORD`` and a database ``site``, and is
stopped and deleted afterwards: no system service, nothing left running. PostgreSQL refuses to
run as root: as root, its folder belongs to the ``postgres`` user and initdb and postgres run
as that user (``runuser``). ``postgres_binaries``/``mariadb_binaries`` are None where the
packages are missing (scripts/setup installs them as root); the tests are skipped then.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "s3cret-Pw"


@dataclass(frozen=True)
class Server:
    url: str  # SQLAlchemy URL of the database ``site`` as user ``sync``
    host: str
    port: int
    admin: str  # a URL with the same rights, for setting up tables


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def mariadb_binaries() -> tuple[str, str] | None:
    install = shutil.which("mariadb-install-db")
    server = shutil.which("mariadbd") or (
        "/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None
    )
    return (install, server) if install and server else None


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server did not start: {log.read_text(errors='replace')[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def postgres() -> Iterator[Server]:
    bindir = postgres_binaries()
    assert bindir is not None
    folder = Path(tempfile.mkdtemp(prefix="recommender-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    process = None
    try:
        pwfile = folder / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if as_user:
            shutil.chown(pwfile, "postgres", "postgres")
        subprocess.run(
            [
                *as_user,
                str(bindir / "initdb"),
                "-D",
                str(folder / "data"),
                "-U",
                "sync",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        port = _free_port()
        log = folder / "log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [
                    *as_user,
                    str(bindir / "postgres"),
                    "-D",
                    str(folder / "data"),
                    "-p",
                    str(port),
                    "-k",
                    str(folder),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_for(port, process, log, 60)
        import psycopg

        for _ in range(50):  # listening comes a moment before accepting logins
            try:
                with psycopg.connect(
                    host="127.0.0.1",
                    port=port,
                    user="sync",
                    password=PASSWORD,
                    dbname="postgres",
                    autocommit=True,
                ) as connection:
                    connection.execute("CREATE DATABASE site")
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        url = f"postgresql://sync:{PASSWORD}@127.0.0.1:{port}/site"
        yield Server(url, "127.0.0.1", port, url)
    finally:
        if process is not None:
            # Fast shutdown: SIGINT to the postmaster itself (runuser passes on only SIGTERM).
            pid_file = folder / "data" / "postmaster.pid"
            if process.poll() is None and pid_file.is_file():
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)
            _stop(process)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def mariadb() -> Iterator[Server]:
    binaries = mariadb_binaries()
    assert binaries is not None
    install, server = binaries
    folder = Path(tempfile.mkdtemp(prefix="recommender-mariadb-"))
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    process = None
    try:
        subprocess.run(
            [
                install,
                "--no-defaults",
                f"--datadir={folder / 'data'}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *as_root,
            ],
            check=True,
            capture_output=True,
        )
        port = _free_port()
        sock = folder / "sock"
        log = folder / "log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [
                    server,
                    "--no-defaults",
                    f"--datadir={folder / 'data'}",
                    f"--socket={sock}",
                    f"--port={port}",
                    "--bind-address=127.0.0.1",
                    f"--pid-file={folder / 'pid'}",
                    "--skip-log-bin",
                    "--innodb-buffer-pool-size=32M",
                    "--innodb-flush-log-at-trx-commit=0",
                    *as_root,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_for(port, process, log, 60)
        import pymysql

        for attempt in range(50):
            try:
                connection = pymysql.connect(unix_socket=str(sock), user="root", autocommit=True)
                break
            except pymysql.err.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE site CHARACTER SET utf8mb4")
            for host in ("127.0.0.1", "localhost"):
                cursor.execute(f"CREATE USER 'sync'@'{host}' IDENTIFIED BY '{PASSWORD}'")
                cursor.execute(f"GRANT ALL ON site.* TO 'sync'@'{host}'")
        connection.close()
        url = f"mysql://sync:{PASSWORD}@127.0.0.1:{port}/site?charset=utf8mb4"
        yield Server(url, "127.0.0.1", port, url)
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(folder, ignore_errors=True)
