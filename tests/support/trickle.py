"""A loopback server that answers one byte at a time: a slowloris on the other side."""

from __future__ import annotations

import socket
import threading
import time


class TricklingServer:
    """Answers every request with ``body`` one byte every ``interval`` s. With
    ``trickle_headers`` even the status line and headers come byte by byte."""

    def __init__(
        self, body: bytes, interval: float = 0.2, *, trickle_headers: bool = False
    ) -> None:
        self.body = body
        self.interval = interval
        self.trickle_headers = trickle_headers
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/slow.wav"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by close()
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % len(self.body)
        )
        with conn:
            try:
                conn.recv(65536)
                if not self.trickle_headers:
                    conn.sendall(head)
                    head = b""
                for byte in head + self.body:
                    if self.stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(self.interval)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
