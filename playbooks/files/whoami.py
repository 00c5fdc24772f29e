"""A tiny HTTP server that answers every request with the address it came from.

verify.yml runs it on the `outside` host to see which source address pod egress traffic
has after NAT. It detaches once listening and writes its PID to --pidfile, so the play that
started it can stop exactly this process.
"""
import argparse
import os
import socket
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--pidfile", required=True)
args = parser.parse_args()

# Both families on one socket where the host has IPv6 (an IPv4 client shows as ::ffff:a.b.c.d), else IPv4 only.
try:
    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("::", args.port))
except OSError:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", args.port))
server.listen(64)

if os.fork():  # the parent returns once the port is bound, so the caller can connect at once
    sys.exit(0)
os.setsid()
devnull = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(devnull, fd)
with open(args.pidfile, "w") as handle:
    handle.write(f"{os.getpid()}\n")
while True:
    conn, address = server.accept()
    peer = address[0].removeprefix("::ffff:")
    with conn:
        conn.settimeout(2)
        request = b""
        try:
            while b"\r\n\r\n" not in request and len(request) < 8192:
                chunk = conn.recv(1024)
                if not chunk:
                    break
                request += chunk
            body = f"{peer}\n".encode()
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))
        except OSError:
            pass
