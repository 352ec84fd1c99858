"""Real network faults between s3fs and the moto server: a TCP proxy that breaks chosen requests.

The proxy forwards 127.0.0.1:<its port> to the moto server byte for byte. A test arms it with
a *marker*, bytes that appear in the request line of the requests to break (for example
``b"partNumber=2&"`` for the second part of every multipart upload):

- :meth:`FaultyProxy.cut` lets ``after`` more bytes of a matching request through, then resets
  both TCP connections: the server has received half a request body, the client sees its
  connection die mid-upload (as on a network failure), on every retry.
- :meth:`FaultyProxy.hold` keeps a matching request from reaching the server until the test
  releases it, so the test can look at the bucket while an upload is in flight.

Everything else passes untouched, so cleanup requests (aborting the multipart upload) succeed.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass
class _Rule:
    marker: bytes
    after: int | None = None  # cut: bytes forwarded once the marker was seen
    release: threading.Event | None = None  # hold: wait for this before forwarding
    hits: int = 0


@dataclass
class FaultyProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target_port``; see the module docstring."""

    target_port: int
    rules: list[_Rule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="faulty-proxy").start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self, marker: bytes, after: int) -> _Rule:
        """Reset the connection ``after`` bytes into every request whose first bytes hold ``marker``."""
        rule = _Rule(marker, after=after)
        with self._lock:
            self.rules.append(rule)
        return rule

    def hold(self, marker: bytes) -> tuple[_Rule, threading.Event]:
        """Hold requests holding ``marker`` until the returned event is set."""
        rule = _Rule(marker, release=threading.Event())
        with self._lock:
            self.rules.append(rule)
        return rule, rule.release

    def clear(self) -> None:
        with self._lock:
            for rule in self.rules:
                if rule.release is not None:
                    rule.release.set()
            self.rules.clear()

    def close(self) -> None:
        self._closed = True
        self.clear()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _reset(client)
                continue
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump_down, args=(upstream, client), daemon=True).start()

    def _match(self, data: bytes) -> _Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.marker in data:
                    rule.hits += 1
                    return rule
        return None

    def _pump_up(self, client: socket.socket, upstream: socket.socket) -> None:
        budget: int | None = None
        try:
            while True:
                data = client.recv(1 << 16)
                if not data:
                    break
                if budget is None:
                    rule = self._match(data[:4096])
                    if rule is not None and rule.release is not None:
                        rule.release.wait(timeout=60)
                    elif rule is not None:
                        budget = rule.after
                if budget is not None:
                    if len(data) >= budget:
                        upstream.sendall(data[:budget])
                        _reset(client)
                        _reset(upstream)
                        return
                    budget -= len(data)
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)


def _pump_down(upstream: socket.socket, client: socket.socket) -> None:
    try:
        while True:
            data = upstream.recv(1 << 16)
            if not data:
                break
            client.sendall(data)
    except OSError:
        pass
    finally:
        _close(client)
        _close(upstream)


def _reset(sock: socket.socket) -> None:
    # SO_LINGER 0: close() sends a TCP RST instead of a polite FIN, as a dropped connection does.
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
