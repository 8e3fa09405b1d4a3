"""Starting qmail-smtpd on two pipes and collecting its exit status, for
qmail-logmsg: posix_spawn rather than the subprocess module, whose
import alone costs every connection a few milliseconds."""

import os
import time

PIPE_SIZE = 1 << 20          # qmail-smtpd's pipes, where Linux allows
SIGPIPE, SIGXFSZ = 13, 25     # Linux's numbers (the signal module costs an enum import)


def spawn(argv: list[str]) -> tuple[int, int, int]:
    """Start argv on two pipes: (pid, its stdin, its stdout)."""
    child_in, to_child = os.pipe()
    from_child, child_out = os.pipe()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, setsigdef=(SIGPIPE, SIGXFSZ),
                              file_actions=[(os.POSIX_SPAWN_DUP2, child_in, 0),
                                            (os.POSIX_SPAWN_DUP2, child_out, 1)])
    except BaseException:
        for fd in (child_in, to_child, from_child, child_out):
            os.close(fd)
        raise
    os.close(child_in)
    os.close(child_out)
    import fcntl
    for fd in (to_child, from_child):
        os.set_blocking(fd, False)
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
    return pid, to_child, from_child


def reap(pid: int, grace: float = 5.0) -> int:
    """pid's exit code (111 if a signal ended it), killing it if it is
    still there grace seconds after its output ended."""
    deadline, pause = time.monotonic() + grace, 0.0002
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            done, status = os.waitpid(pid, 0)
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 111
