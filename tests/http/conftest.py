import socket

import pytest
from helpers import (
    Daemon,
    executable,
    free_tcp_port,
    started_on_free_port,
    unprivileged,
)


@pytest.fixture
def front():
    """front(daemon_port, wrapper=(), **env) -> the installed
    qmail-verify-http, started (through wrapper) as uid 65534 on a free
    TCP port, asking the qmail-verify at 127.0.0.1:daemon_port; stopped
    after the test."""
    started = []

    def _front(daemon_port: int, wrapper=(), **env) -> Daemon:
        program = executable("qmail-verify-http")

        def one():
            port = free_tcp_port()
            d = Daemon({"LISTEN": f"127.0.0.1:{port}", "VERIFY_SERVER": f"127.0.0.1:{daemon_port}",
                        **env}, wrapper=[*wrapper, *unprivileged(program)], port=port,
                       program=program)
            started.append(d)
            return d
        return started_on_free_port(one, lambda d: d.wait_for("Listening on"),
                                    pinned="LISTEN" in env)

    yield _front
    for d in started:
        d.cleanup()


@pytest.fixture
def deep_daemon(vtree, start):
    """qmail-verify in deep mode over vpoptree's tree: (Daemon, Tree)."""
    t, env = vtree
    return start({**env, "VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "files"}), t


@pytest.fixture
def silent_port():
    """A UDP port where something listens and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]
