#!/usr/bin/env python3
"""A DNS server that answers every query at once with REFUSED, for a test node of
deploy/swarm/nodes.sh. The node's namespace has no route out, so without an answer a name
the swarm does not know (a service whose node is down) would wait for resolver timeouts,
and a program that resolves in its event loop (Redis Sentinel) would stall.
    refuse-dns.py ADDRESS     (serves UDP and TCP on ADDRESS:53 until killed)"""
import socket
import struct
import sys
import threading

REFUSED = 5


def answer(query: bytes) -> bytes:
    if len(query) < 12:
        return b""
    ident, flags = struct.unpack("!HH", query[:4])
    opcode = (flags >> 11) & 0xF
    # QR=1, the query's opcode and RD, RA=1, RCODE=REFUSED; the question echoed back.
    reply_flags = 0x8000 | (opcode << 11) | (flags & 0x0100) | 0x0080 | REFUSED
    qdcount = struct.unpack("!H", query[4:6])[0]
    return struct.pack("!HHHHHH", ident, reply_flags, qdcount, 0, 0, 0) + query[12:]


def serve_udp(address: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 53))
    while True:
        query, peer = sock.recvfrom(4096)
        reply = answer(query)
        if reply:
            sock.sendto(reply, peer)


def serve_tcp(address: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, 53))
    sock.listen(16)
    while True:
        conn, _ = sock.accept()
        with conn:
            conn.settimeout(2)
            try:
                size = struct.unpack("!H", conn.recv(2))[0]
                reply = answer(conn.recv(size))
                conn.sendall(struct.pack("!H", len(reply)) + reply)
            except (OSError, struct.error):
                pass


if __name__ == "__main__":
    threading.Thread(target=serve_tcp, args=(sys.argv[1],), daemon=True).start()
    serve_udp(sys.argv[1])
