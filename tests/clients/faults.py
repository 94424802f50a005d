"""A TCP proxy in front of a real server that loses answers or holds requests on demand.

Real faults on a real connection, for the client's retry and batching tests: the server does
its work as usual, only the way back (or the way there) is broken.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class FaultyProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:*upstream*.

    ``lose_answers(n)``: the next *n* answers reach the proxy (the server has done the work)
    and are thrown away, the client's connection closed. ``hold()``/``release()``: new
    connections wait before anything is forwarded. ``cut()``: open connections break.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._to_lose = 0
        self.lost = 0
        self.cuts = 0
        self._open = threading.Event()
        self._open.set()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_answers(self, count: int) -> None:
        with self._lock:
            self._to_lose = count

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def cut(self) -> None:
        """Break every open connection, both ends, as a failing network would; new
        connections go through as before."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
            self.cuts += 1
        for sock in sockets:
            _close(sock)

    def close(self) -> None:
        self._open.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._open.wait()
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
        except OSError:  # the server is gone (the proxy outlived a test)
            _close(client)
            return
        with self._lock:
            self._sockets += [client, upstream]
        threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
        self._pump(upstream, client, True)

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers and self._take_loss():
                    break  # the answer is lost: close both ends, as a failing network would
                sink.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(sink)

    def _take_loss(self) -> bool:
        with self._lock:
            if self._to_lose == 0:
                return False
            self._to_lose -= 1
            self.lost += 1
            return True


def _close(sock: socket.socket) -> None:
    """Close *sock*, waking a thread blocked reading it (a bare close would not)."""
    with contextlib.suppress(OSError):  # not connected, or closed already
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
