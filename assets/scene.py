#!/usr/bin/env python3
"""The staged scene behind assets/kwatch.svg: a few named programs with ordinary and stuck connections.

Run by assets/screenshot.sh, in the network namespaces it creates:
  scene.py far     in namespace B (192.0.2.2): a database and a message broker whose link will be cut
  scene.py near    in namespace A (192.0.2.1): the programs kwatch watches
Each role is a child process named with prctl(PR_SET_NAME), so kwatch shows it by that name. Everything runs until
killed (screenshot.sh kills the process groups it started). Only loopback and 192.0.2.0/24 are used.
"""
import ctypes
import os
import signal
import socket
import sys
import time

PR_SET_NAME = 15
libc = ctypes.CDLL(None, use_errno=True)


def role(name, body):
    """Runs body() in a child process called `name`."""
    pid = os.fork()
    if pid == 0:
        libc.prctl(PR_SET_NAME, name.encode(), 0, 0, 0)
        try:
            body()
        finally:
            os._exit(0)
    return pid


def listen(addr, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(128)
    return s


def keepalive(s, idle, intvl, cnt):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cnt)


def serve_forever(server, keep):
    """Accepts and holds every connection; reads nothing (a peer's FIN leaves the socket in CLOSE_WAIT)."""
    while True:
        conn, _ = server.accept()
        keep.append(conn)


def far():
    def db():
        serve_forever(listen("192.0.2.2", 5432), [])

    def broker():
        serve_forever(listen("192.0.2.2", 5672), [])

    role("postgres", db)
    role("rabbitmq", broker)
    signal.pause()


def near():
    def web():
        # A web server on loopback with a few keepalive-less clients, and one that talks.
        server = listen("127.0.0.1", 8080)
        serve_forever(server, [])

    def legacy():
        # Accepts, never reads, never closes: every client that hangs up leaves a CLOSE_WAIT here.
        serve_forever(listen("127.0.0.1", 9000), [])

    def api():
        conns = []
        for _ in range(3):
            c = socket.create_connection(("192.0.2.2", 5432))
            keepalive(c, 2, 2, 20)  # probes every 2 s once the link is cut: unanswered probes climb
            conns.append(c)
        for _ in range(4):
            conns.append(socket.create_connection(("127.0.0.1", 8080)))  # no keepalive, idle
        time.sleep(1)
        signal.pause()

    def worker():
        c = socket.create_connection(("192.0.2.2", 5672))
        time.sleep(3)
        # Sent after the link is cut: the retransmit timer backs off, unanswered.
        while True:
            try:
                c.send(b"job" * 100)
            except OSError:
                pass
            time.sleep(1)

    def cron():
        # Hangs up on the legacy server with data it will never read: CLOSE_WAIT with recv_q > 0.
        conns = []
        for _ in range(3):
            c = socket.create_connection(("127.0.0.1", 9000))
            c.send(b"report\n")
            c.close()
        for _ in range(2):
            conns.append(socket.create_connection(("127.0.0.1", 9000)))
        signal.pause()

    role("nginx", web)
    role("legacy-app", legacy)
    time.sleep(0.3)
    role("api-server", api)
    role("worker", worker)
    role("cron-report", cron)
    signal.pause()


if __name__ == "__main__":
    {"far": far, "near": near}[sys.argv[1]]()
