"""Start a Java test service (ElasticMQ, S3Proxy, OpenSearch) from Maven Central.

Each service has a pom in ``tests/services/maven/<name>/`` that pins its version. Maven
resolves the jars into the local repository (``~/.m2``, the cache between runs) and writes
the classpath to ``.cache/<name>-<hash>.classpath`` here, so a second run starts the
service without asking Maven again. A service with Java sources of its own (OpenSearch's
launcher, under ``src/main/java``) is compiled by the same Maven run, and the hash covers
those sources too. The process runs on a free loopback port (or reports the port it bound
in a file) and is stopped at the end of the test session.

Missing Java or Maven, or a service that does not come up, skips the tests that need it on
a developer's machine and fails the run under ``CI=true``: CI must never pass by skipping
the real servers.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CACHE = HERE / ".cache"


class ServiceUnavailable(RuntimeError):
    """The service could not be resolved or started here."""


def unavailable(reason: str) -> None:
    """Skip, or under ``CI=true`` fail: the real servers are part of the suite."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"test service unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"test service unavailable: {reason}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def classpath(name: str) -> str:
    """The service's classpath, resolved (and its sources compiled) by Maven once per
    version of its pom and sources."""
    project = HERE / "maven" / name
    pom = project / "pom.xml"
    sources = sorted((project / "src").rglob("*.java")) if (project / "src").exists() else []
    hasher = hashlib.sha256(pom.read_bytes())
    for source in sources:
        hasher.update(source.read_bytes())
    cached = CACHE / f"{name}-{hasher.hexdigest()[:16]}.classpath"
    CACHE.mkdir(exist_ok=True)
    # Parallel test workers (pytest -n) each start their own service: one resolves and
    # compiles while the others wait, then they read what it wrote.
    with (CACHE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cached.exists() and all(Path(p).exists() for p in cached.read_text().split(os.pathsep)):
            return cached.read_text()
        return _resolve(project, pom, bool(sources), cached)


def _resolve(project: Path, pom: Path, compile_sources: bool, cached: Path) -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceUnavailable("Maven (mvn) is not installed")
    partial = cached.with_suffix(".tmp")
    goals = ["compile"] if compile_sources else []
    done = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            *goals,
            "dependency:build-classpath",
            f"-Dmdep.outputFile={partial}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 or not partial.exists():
        raise ServiceUnavailable(f"Maven could not resolve {project.name}: {done.stdout[-2000:]}")
    if compile_sources:
        classes = project / "target" / "classes"
        partial.write_text(os.pathsep.join([str(classes), partial.read_text()]))
    partial.replace(cached)
    return cached.read_text()


class JvmService:
    """One Java process on loopback, started by :meth:`start` and ended by :meth:`stop`."""

    def __init__(
        self,
        name: str,
        main_class: str,
        port: int,
        *,
        args: Sequence[str] = (),
        jvm_options: Sequence[str] = (),
        workdir: Path,
        java_home: str | None = None,
        port_file: Path | None = None,
    ) -> None:
        """*port_file*: the service writes the port it bound there (then *port* is 0 and
        is read from the file), which avoids racing another process for a free port."""
        self.name, self.main_class, self.port = name, main_class, port
        self.args, self.jvm_options, self.workdir = list(args), list(jvm_options), workdir
        self.java_home = java_home
        self.port_file = port_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, *, timeout: float = 120.0) -> None:
        java = (
            str(Path(self.java_home) / "bin" / "java") if self.java_home else shutil.which("java")
        )
        if java is None or not Path(java).exists():
            raise ServiceUnavailable("Java is not installed")
        cp = classpath(self.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [java, *self.jvm_options, "-cp", cp, self.main_class, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceUnavailable(f"{self.name} exited: {self.log_tail()}")
            if self.port_file is not None:
                if not self.port_file.exists():
                    time.sleep(0.2)
                    continue
                self.port = int(self.port_file.read_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise ServiceUnavailable(f"{self.name} did not listen within {timeout:.0f} s")

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
