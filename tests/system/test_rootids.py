"""A root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (a hardened
root: a bounded capability set) is held to its gid like anyone else, so
the daemon's own file accesses must be made with root's ids, uid and gid,
however many stats as users came just before: control files reloaded on
SIGHUP, /etc/passwd opened by getpwnam_r on a cache miss, the paths
watched anew after users/cdb is replaced.  Watched with strace, each open
and each inotify watch checked against the ids the thread last set."""

import os
import re
import shutil
import signal
import socket
import threading

import pytest
from helpers import children, wait_until

TRACED = ("openat,inotify_add_watch,setresgid,setresuid,setgid,setuid,setregid,setreuid,"
          "setfsgid,setfsuid")
ACCESS = re.compile(r'^(\d+) +(openat|inotify_add_watch)\([^,]+, "([^"]+)"')
SETGID = re.compile(r'^(\d+) +setresgid\((-?\d+), (-?\d+), (-?\d+)\) +(?:= 0|<unfinished)')
SETGID_OTHER = re.compile(r'^(\d+) +set(?:e|re|fs)?gid\(')


def accesses_with_gids(trace: str) -> list[tuple[str, str, int]]:
    """(call, path, effective gid of the calling thread) for each open
    and each inotify watch."""
    egid, out = {}, []
    for line in trace.splitlines():
        m = SETGID.match(line)
        if m:
            if int(m.group(3)) != -1:
                egid[m.group(1)] = int(m.group(3))
            continue
        assert not SETGID_OTHER.match(line), f"a gid set another way: {line}"
        m = ACCESS.match(line)
        if m:
            out.append((m.group(2), m.group(3), egid.get(m.group(1), 0)))
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

    cdb = p1_tree["qmail"] / "users" / "cdb"
    sender = threading.Thread(target=load)
    sender.start()
    try:
        for i in range(1, 6):
            seen = answered[0]
            wait_until(lambda: answered[0] >= seen + 40)     # the load is being answered
            os.kill(daemon, signal.SIGHUP)
            wait_until(lambda: trace.read_text().count("/control/me") >= 1 + i)
            # as qmail-newu does: the next batch's freshness check watches anew
            watches = trace.read_text().count("inotify_add_watch(")
            shutil.copyfile(cdb, f"{cdb}.tmp")
            os.replace(f"{cdb}.tmp", cdb)
            wait_until(lambda: trace.read_text().count("inotify_add_watch(") > watches)
    finally:
        stop.set()
        sender.join()
    os.kill(daemon, signal.SIGTERM)       # the daemon itself: strace would leave it behind
    wait_until(lambda: not os.path.exists(f"/proc/{daemon}"))
    d.stop()
    text = trace.read_text()
    accesses = accesses_with_gids(text)
    controls = [(p, g) for c, p, g in accesses if c == "openat" and "/control/" in p]
    passwd_opens = [(p, g) for c, p, g in accesses if c == "openat" and p == "/etc/passwd"]
    watches = [(p, g) for c, p, g in accesses if c == "inotify_add_watch"]
    assert len(controls) >= 5 * 2 and len(passwd_opens) >= 40 and len(watches) >= 5 * 2
    checked = controls + passwd_opens + watches
    wrong = [(p, g) for p, g in checked if g != 0]
    assert not wrong, f"{len(wrong)} of {len(checked)} accesses as a user's gid: {wrong[:3]}"
    assert re.search(r"setresgid\(-1, 2001, -1\) +=", text)   # stats as pat's gid were made
