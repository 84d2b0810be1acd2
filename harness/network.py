"""Loopback addresses and free ports for the harness's servers and targets."""

import socket

HOST = "127.0.0.1"
LOOPBACK_ALLOWLIST = "127.0.0.1/32,::1/128,localhost"  # the outbound guard's rule for targets


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def closed_port_url() -> str:
    """A URL on 127.0.0.1 at a port where nothing listens (connections are refused)."""
    return f"http://{HOST}:{free_port()}"
