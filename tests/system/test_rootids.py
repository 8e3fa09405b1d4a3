"""A root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (a hardened
root: a bounded capability set) is held to its gid like anyone else, so
the daemon's own file accesses must be made with root's ids, uid and gid,
however many stats as users came just before: control files reloaded on
SIGHUP, /etc/passwd opened by getpwnam_r on a cache miss.  Watched with
strace, each open checked against the ids the thread last set."""

import os
import re
import shutil
import signal
import socket
import threading

import pytest
from helpers import children, wait_until

TRACED = "openat,setresgid,setresuid,setgid,setuid,setregid,setreuid,setfsgid,setfsuid"
OPEN = re.compile(r'^(\d+) +openat\([^,]+, "([^"]+)"')
SETGID = re.compile(r'^(\d+) +setresgid\((-?\d+), (-?\d+), (-?\d+)\) +(?:= 0|<unfinished)')
SETGID_OTHER = re.compile(r'^(\d+) +set(?:e|re|fs)?gid\(')


def opens_with_gids(trace: str) -> list[tuple[str, int]]:
    """(path, effective gid of the opening thread) for each open."""
    egid, out = {}, []
    for line in trace.splitlines():
        m = SETGID.match(line)
        if m:
            if int(m.group(3)) != -1:
                egid[m.group(1)] = int(m.group(3))
            continue
        assert not SETGID_OTHER.match(line), f"a gid set another way: {line}"
        m = OPEN.match(line)
        if m:
            out.append((m.group(2), egid.get(m.group(1), 0)))
    return out


@pytest.mark.system
def test_root_without_dac_capabilities_opens_its_own_files_as_gid_0(p1_tree, start, tmp_path):
    if shutil.which("strace") is None or shutil.which("setpriv") is None:
        pytest.skip("needs strace and setpriv (apt-get install strace util-linux)")
    trace = tmp_path / "trace"
    passwd = str(p1_tree["passwd"])
    wrapper = ["unshare", "-m", "sh", "-c", f'mount --bind {passwd} /etc/passwd && exec "$@"',
               "sh", "strace", "-f", "-qq", "-o", str(trace), "-e", f"trace={TRACED}",
               "setpriv", "--inh-caps=-dac_override,-dac_read_search",
               "--bounding-set=-dac_override,-dac_read_search", "--"]
    d = start({"QMAILHOME": str(p1_tree["qmail"])}, wrapper=wrapper)
    daemon = wait_until(lambda: children(d.proc.pid) or None)[0]
    assert d.ask(b"pat-x@example.com") is not None
    status = open(f"/proc/{daemon}/status").read()
    assert int(re.search(r"CapEff:\s*(\w+)", status).group(1), 16) & 0b110 == 0
    stop = threading.Event()
    answered = [0]

    def load():                # stats as pat (gid 2001), then passwd misses, without a pause
        n = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            while not stop.is_set():
                for q in (b"pat-x@example.com", b"nx%d@example.com" % n):
                    try:
                        s.sendto(q, ("127.0.0.1", d.port))
                    except BlockingIOError:
                        pass
                n += 1
                try:
                    while s.recv(100):
                        answered[0] += 1
                except BlockingIOError:
                    pass

    sender = threading.Thread(target=load)
    sender.start()
    try:
        for i in range(1, 6):
            seen = answered[0]
            wait_until(lambda: answered[0] >= seen + 40)     # the load is being answered
            os.kill(daemon, signal.SIGHUP)
            wait_until(lambda: trace.read_text().count("/control/me") >= 1 + i)
    finally:
        stop.set()
        sender.join()
    os.kill(daemon, signal.SIGTERM)       # the daemon itself: strace would leave it behind
    wait_until(lambda: not os.path.exists(f"/proc/{daemon}"))
    d.stop()
    text = trace.read_text()
    opens = opens_with_gids(text)
    controls = [(p, g) for p, g in opens if "/control/" in p]
    passwd_opens = [(p, g) for p, g in opens if p == "/etc/passwd"]
    assert len(controls) >= 5 * 2 and len(passwd_opens) >= 40
    wrong = [(p, g) for p, g in controls + passwd_opens if g != 0]
    assert not wrong, f"{len(wrong)} of {len(controls) + len(passwd_opens)} opens as a user's gid"
    assert re.search(r"setresgid\(-1, 2001, -1\) +=", text)   # stats as pat's gid were made
