"""VERIFY_WORKERS=N: a master and N workers on one SO_REUSEPORT port, as
users see them: the installed qmail-verify on real UDP sockets, queries
from many source sockets, signals to the master's pid (by hand and by
daemontools' supervise), and the processes it leaves (none)."""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import (
    children,
    env_for,
    executable,
    free_port,
    load_p1,
    run_once,
    wait_until,
)

from qmailverify.daemon.workers.steering import bind_group, route
from qmailverify.protocol.wire import make_query, parse_reply, query_ip, split_count


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def answered(pid: int) -> int | None:
    m = re.search(rb"worker \d+/\d+: (\d+) queries answered", Path(f"/proc/{pid}/cmdline")
                  .read_bytes())
    return int(m.group(1)) if m else None


@pytest.fixture
def workers(start):
    """workers(env) -> a started Daemon with VERIFY_WORKERS=2 and its worker pids;
    after the test, no process of it may be left."""
    started = []

    def _workers(env, n=2):
        d = start({**env, "VERIFY_WORKERS": str(n)})
        pids = wait_until(lambda: len(children(d.proc.pid)) == n and children(d.proc.pid))
        started.append(pids)
        return d, pids

    yield _workers
    for pids in started:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.system
def test_every_p1_reply_is_exact_from_many_sockets_and_both_workers_answer(p1_tree, workers):
    d, pids = workers(env_for(p1_tree))
    wrong = []
    cases = load_p1()["cases"]
    for case in cases:
        q, want = bytes.fromhex(case["q"]), bytes.fromhex(case["r"])
        got = d.query(q)                          # each from a socket of its own
        if got != want:
            wrong.append(f"{q!r}: want {want!r}, got {got!r}")
    assert not wrong, "\n".join(wrong[:20])
    # the titles say each worker answered some of them, and all of them were answered
    per = wait_until(lambda: sum(answered(p) or 0 for p in pids) == len(cases)
                     and [answered(p) for p in pids])
    assert all(n > 0 for n in per), per
    assert Path(f"/proc/{d.proc.pid}/cmdline").read_bytes().startswith(
        f"qmail-verify 127.0.0.1:{d.port}: 2 workers, controls loaded 20".encode())
    for pid in [d.proc.pid, *pids]:
        assert Path(f"/proc/{pid}/comm").read_text() == "qmail-verify\n"


def test_the_kernel_steers_each_ip_to_one_socket_whatever_the_sender():
    n = 3
    group = bind_group("127.0.0.1", 0, n)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(12)]
    try:
        port = group[0].getsockname()[1]

        def landing(datagram, sender):
            sender.sendto(datagram, ("127.0.0.1", port))
            ready, _, _ = select.select(group, [], [], 5)
            assert len(ready) == 1
            assert ready[0].recv(2048) == datagram
            return group.index(ready[0])

        ips = [b"1", b"::", b"::1", b"10.0.0.1", b"192.0.2.7", b"2001:db8::7", b"f" * 45]
        ips += [b"198.51.100.%d" % i for i in range(20)]
        seen = {}
        for ip in ips:
            for address in (b"kim@x.example", b"a" * 850, b"b" * 890, b"c" * 1200):
                q = make_query(address, ip=ip)
                counted = query_ip(q)             # what the daemon counts (None if cut away)
                for sender in senders[:4]:
                    where = landing(q, sender)
                    if counted is not None:
                        assert where == route(q, n)
                        assert seen.setdefault(counted, where) == where, (counted, len(q))
        assert set(seen.values()) == set(range(n))     # the IPs spread too
        # queries without an IP spread by the kernel's own hash of the sender
        spread = set()
        for _ in range(40):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                spread.add(landing(b"kim@x.example\0QV2", s))
        assert spread == set(range(n))
    finally:
        for s in group + senders:
            s.close()


@pytest.mark.system
def test_harvest_counts_stay_exact_across_workers(p1_tree, workers):
    d, pids = workers(env_for(p1_tree, VERIFY_HARVEST_WINDOW="600"))
    ips = [b"192.0.2.%d" % i for i in range(1, 5)] + [b"::1"]
    assert len({route(make_query(b"x@y", ip=ip), 2) for ip in ips}) == 2   # both workers count
    for round_ in range(1, 7):
        for ip in ips:
            reply = d.query(make_query(b"ghost@example.com", ip=ip))     # a new socket each
            r = parse_reply(reply)
            assert (r.code, split_count(r.user)[1]) == (1, round_), (ip, reply)
    r = parse_reply(d.query(make_query(b"kim@example.com", ip=ips[0])))
    assert (r.code, split_count(r.user)[1]) == (0, 6)
    d.signal(signal.SIGALRM)
    line = d.wait_for("stats: ")
    assert " harvest_refusals=30 harvest_ips=5 " in line, line


@pytest.mark.system
def test_hup_reaches_every_worker(demo_tree, workers):
    d, pids = workers({"QMAILHOME": str(demo_tree["qmail"]),
                       "VERIFY_PASSWD": str(demo_tree["passwd"])})
    assert all(parse_reply(d.ask(b"alice@demo.example")).code == 0 for _ in range(20))
    (demo_tree["qmail"] / "control" / "locals").write_text("mail.demo.example\n")
    d.signal(signal.SIGHUP)
    wait_until(lambda: d.log().count("controls reloaded.") == 2)
    replies = [parse_reply(d.ask(b"alice@demo.example")) for _ in range(40)]
    assert all(r.position == 1 for r in replies), replies        # no longer ours, everywhere
    assert sorted(children(d.proc.pid)) == sorted(pids)


@pytest.mark.system
def test_alrm_writes_one_line_summing_the_workers(p1_tree, workers):
    d, pids = workers(env_for(p1_tree))
    for _ in range(15):
        assert d.ask(b"kim@example.com") == b"\x90kim"
        assert d.ask(b"ghost@example.com") is not None
    wait_until(lambda: all(answered(p) for p in pids))               # both took some
    d.signal(signal.SIGALRM)
    log = d.wait_for("stats: ")
    time.sleep(0.5)
    assert d.log().count("stats: ") == 1
    assert re.search(r"stats: queries=30 permitted=15 denied=15 temporary=0 unanswered=0 shed=0 "
                     r"harvest_refusals=0 harvest_ips=0 harvest_evicted=0 uptime=\d+ "
                     r"controls_age=\d+\n", log), log


@pytest.mark.system
def test_usr1_is_logged_once_by_the_master(p1_tree, workers):
    d, pids = workers(env_for(p1_tree))
    d.signal(signal.SIGUSR1)
    d.wait_for("qmail-verify: received SIGUSR1: ignored.\n")
    assert d.ask(b"kim@example.com") == b"\x90kim"
    time.sleep(0.3)
    assert d.log().count("SIGUSR1") == 1 and sorted(children(d.proc.pid)) == sorted(pids)


@pytest.mark.system
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_term_ends_the_master_and_every_worker(p1_tree, workers, signum):
    d, pids = workers(env_for(p1_tree))
    d.signal(signum)
    assert d.proc.wait(15) == 0
    assert not any(alive(p) for p in pids)
    assert port_free(d.port)
    assert d.log().endswith(f"qmail-verify: exiting on {signum.name}.\n")


@pytest.mark.system
def test_a_dead_worker_ends_the_daemon_with_111(p1_tree, workers):
    d, pids = workers(env_for(p1_tree))
    os.kill(pids[1], signal.SIGKILL)
    assert d.proc.wait(15) == 111
    assert f"qmail-verify: fatal: worker {pids[1]} killed by signal 9: ending the others.\n" \
        in d.log()
    assert not any(alive(p) for p in pids)
    assert port_free(d.port)


@pytest.mark.system
def test_workers_end_when_the_master_is_killed(p1_tree, workers):
    d, pids = workers(env_for(p1_tree))
    d.proc.kill()
    d.proc.wait(10)
    wait_until(lambda: not any(alive(p) for p in pids))
    wait_until(lambda: port_free(d.port))


@pytest.mark.system
@pytest.mark.parametrize("value", ["0", "65", "two", "-2", " 2", "2.0"])
def test_a_bad_number_of_workers_is_refused_in_one_line(p1_tree, value):
    r = run_once(env_for(p1_tree, VERIFY_WORKERS=value))
    assert (r.returncode, r.stdout, r.stderr) == \
        (111, "", "qmail-verify: fatal: VERIFY_WORKERS must be 1 to 64\n")


@pytest.mark.system
@pytest.mark.parametrize("value", ["", "1"])
def test_one_worker_is_the_single_process_of_old(p1_tree, start, value):
    d = start(env_for(p1_tree, VERIFY_WORKERS=value))
    assert d.ask(b"kim@example.com") == b"\x90kim"
    assert children(d.proc.pid) == []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:     # no SO_REUSEPORT on its socket
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with pytest.raises(OSError):
            s.bind(("127.0.0.1", d.port))


@pytest.mark.system
def test_a_port_an_old_group_holds_is_refused(p1_tree):
    group = bind_group("127.0.0.1", 0, 2)
    try:
        port = group[0].getsockname()[1]
        r = run_once(env_for(p1_tree, VERIFY_WORKERS="2", LISTEN=f"127.0.0.1:{port}"))
        assert (r.returncode, r.stderr) == (
            111, f"qmail-verify: fatal: unable to bind to 127.0.0.1 port {port}: "
                 "address already in use\n")
    finally:
        for s in group:
            s.close()


@pytest.mark.system
def test_log_lines_of_busy_workers_never_interleave(p1_tree):
    """Through a pipe, as multilog reads it: many long lines from both workers."""
    port = free_port()
    env = {"PATH": os.environ["PATH"], "LISTEN": f"127.0.0.1:{port}", "VERIFY_WORKERS": "2",
           "VERIFY_TRACE": "1", **env_for(p1_tree)}
    proc = subprocess.Popen([executable("qmail-verify")], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    chunks = []

    def read():                     # slowly, so that the pipe fills and writers wait
        while chunk := proc.stdout.read1(65536):
            chunks.append(chunk)
            time.sleep(0.05)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        wait_until(lambda: b"Listening on address" in b"".join(chunks))
        senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
        sent = 0
        for i in range(40):         # 64 queries in flight: bursts of lines bigger than PIPE_BUF
            for k, s in enumerate(senders):
                for j in range(4):
                    s.sendto(b"x%03d-%s@example.com" % (i, b"y" * (100 + 8 * k + j)),
                             ("127.0.0.1", port))
                    sent += 1
            for s in senders:
                s.settimeout(5)
                for j in range(4):
                    s.recv(64)
        for s in senders:
            s.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        reader.join(15)
    lines = b"".join(chunks).split(b"\n")
    assert lines.pop() == b""
    good = re.compile(rb"qmail-verify: (x\d{3}-y+@example\.com denied\.|trace: pos=14 code=denied "
                      rb"user=alias ip=- addr=x\d{3}-y+@example\.com reason=no_\.qmail_file_matches"
                      rb"|Listening on .*|version .*|exiting on SIGTERM\.)")
    bad = [line for line in lines if not good.fullmatch(line)]
    assert sum(b"denied." in line for line in lines) == sum(b"trace:" in line for line in lines) \
        == sent
    assert not bad, bad[:3]


@pytest.mark.system
def test_detached_the_pid_file_names_the_master(p1_tree, tmp_path):
    port = free_port()
    pidfile, logfile = tmp_path / "qv.pid", tmp_path / "qv.log"
    env = {"PATH": os.environ["PATH"], "LISTEN": f"127.0.0.1:{port}", "VERIFY_WORKERS": "2",
           **env_for(p1_tree)}
    r = subprocess.run([executable("qmail-verify"), "-d", "-p", str(pidfile), "-o", str(logfile)],
                       env=env, capture_output=True, timeout=30)
    assert (r.returncode, r.stderr) == (0, b"")
    pid = int(pidfile.read_text())
    pids = wait_until(lambda: len(children(pid)) == 2 and children(pid))
    try:
        from qmailverify.protocol.client import ask
        assert all(ask(b"kim@example.com", ("127.0.0.1", port)).user == b"kim" for _ in range(10))
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid) and not any(alive(p) for p in pids) and not pidfile.exists())
    assert logfile.read_bytes().endswith(b"qmail-verify: exiting on SIGTERM.\n")


@pytest.mark.system
def test_under_supervise(demo_tree, tmp_path):
    for program in ("supervise", "svc", "svstat"):
        if shutil.which(program) is None:
            pytest.skip(f"{program} (Debian's daemontools) is not installed")
    port = free_port()
    service = tmp_path / "service"
    service.mkdir()
    logpath = tmp_path / "log"
    env = {"QMAILHOME": str(demo_tree["qmail"]), "VERIFY_PASSWD": str(demo_tree["passwd"]),
           "LISTEN": f"127.0.0.1:{port}", "VERIFY_WORKERS": "2", "PATH": os.environ["PATH"]}
    run = service / "run"
    run.write_text("#!/bin/sh\nexec env " + " ".join(f"'{k}={v}'" for k, v in env.items())
                   + f" qmail-verify 2>>'{logpath}'\n")
    run.chmod(0o755)
    sup = subprocess.Popen(["supervise", str(service)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)

    def log():
        return logpath.read_text(errors="replace") if logpath.exists() else ""

    def master(starts=1):
        out = subprocess.run(["svstat", str(service)], capture_output=True, text=True).stdout
        m = re.search(r": up \(pid (\d+)\)", out)
        return int(m.group(1)) if m and log().count("Listening") == starts else None

    from qmailverify.protocol.client import ask
    server = ("127.0.0.1", port)
    pid = pids = None
    try:
        pid = wait_until(master, timeout=20)
        pids = wait_until(lambda: len(children(pid)) == 2 and children(pid))
        (demo_tree["qmail"] / "control" / "locals").write_text("mail.demo.example\n")
        subprocess.run(["svc", "-h", str(service)], check=True)
        wait_until(lambda: log().count("controls reloaded.") == 2)
        assert all(ask(b"alice@demo.example", server).position == 1 for _ in range(20))
        subprocess.run(["svc", "-a", str(service)], check=True)
        wait_until(lambda: re.search(r"stats: queries=20 permitted=20 ", log()))
        subprocess.run(["svc", "-t", str(service)], check=True)
        wait_until(lambda: "exiting on SIGTERM." in log())
        wait_until(lambda: not any(alive(p) for p in [pid, *pids]))
        new = wait_until(lambda: master(2) != pid and master(2), timeout=20)   # supervise restarts it
        assert ask(b"alice@mail.demo.example", server).code == 0
        pids += wait_until(lambda: len(children(new)) == 2 and children(new))
        pid = new
    finally:
        subprocess.run(["svc", "-dx", str(service)], capture_output=True)
        try:
            sup.wait(20)
        except subprocess.TimeoutExpired:
            sup.kill()
        for p in [pid, *(pids or [])]:
            if p and alive(p):
                wait_until(lambda: not alive(p))
    assert port_free(port)
