"""A TCP proxy on loopback that a test can freeze: a network that swallows packets.

    with TcpProxy(target_port) as proxy:     # listens on proxy.port, forwards to target_port
        proxy.freeze()                        # nothing passes either way (connections stay open)
        proxy.thaw()                          # what waited passes, forwarding goes on

Frozen, it neither reads nor writes: the peers' kernels still accept what fits in the socket
buffers, so a client's send succeeds and its read waits, as behind a dead router. New connections
complete their handshake in the listen backlog and then wait too. One thread, `selectors`.
"""

from __future__ import annotations

import selectors
import socket
import threading

from helpers import free_port


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.setblocking(False)
        self._frozen = threading.Event()
        self._stop = threading.Event()
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._thread = threading.Thread(target=self._run, name="tcpproxy", daemon=True)

    def __enter__(self) -> "TcpProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def freeze(self) -> None:
        self._frozen.set()
        self._poke()

    def thaw(self) -> None:
        self._frozen.clear()
        self._poke()

    def close(self) -> None:
        self._stop.set()
        self._poke()
        self._thread.join(timeout=5)
        for sock in list(self._pairs):
            sock.close()
        self._listener.close()
        self._wakeup_r.close()
        self._wakeup_w.close()

    def _poke(self) -> None:
        try:
            self._wakeup_w.send(b"x")
        except OSError:
            pass  # closed: the loop has ended

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        while not self._stop.is_set():
            selector = self._rebuild(selector)
            for key, _events in selector.select(timeout=0.5):
                sock = key.fileobj
                if sock is self._wakeup_r:
                    try:
                        sock.recv(4096)
                    except BlockingIOError:
                        pass  # drained already
                elif sock is self._listener:
                    self._accept()
                else:
                    self._forward(sock)
        selector.close()

    def _rebuild(self, old: selectors.BaseSelector) -> selectors.BaseSelector:
        old.close()
        selector = selectors.DefaultSelector()
        self._wakeup_r.setblocking(False)
        selector.register(self._wakeup_r, selectors.EVENT_READ)
        if not self._frozen.is_set():
            selector.register(self._listener, selectors.EVENT_READ)
            for sock in self._pairs:
                selector.register(sock, selectors.EVENT_READ)
        return selector

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            sock.setblocking(False)
        self._pairs[client] = server
        self._pairs[server] = client

    def _forward(self, sock: socket.socket) -> None:
        peer = self._pairs.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        try:
            peer.setblocking(True)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        peer = self._pairs.pop(sock, None)
        sock.close()
        if peer is not None:
            self._pairs.pop(peer, None)
            peer.close()
