"""The installed qmail-verify as an admin meets it: start-up, signals,
reloads, failures, freshness, the CVE fixes and the log."""

import os
import shutil
import signal
import socket
import subprocess

import pytest
from helpers import env_for, executable, free_port, private_passwd, run_once, wait_until

from qmailverify.qmail.cdbmake import write_cdb
from qmailverify.testing.newu import compile_assign

pytestmark = pytest.mark.system   # runs the installed programs, as root


def test_listens_answers_and_exits_0_on_sigterm(p1_tree, start):
    d = start(env_for(p1_tree))
    assert f"qmail-verify: Listening on address: 127.0.0.1, port {d.port}.\n" in d.log()
    assert d.ask(b"kim@example.com") == b"\x90kim"
    assert d.stop() == 0
    assert "kim@example.com permitted for kim." in d.log()


def test_listens_on_ipv6_in_brackets(p1_tree, start):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        port = free_port(socket.AF_INET6, "::1")
    except OSError as e:
        pytest.skip(f"no ::1 here: {e}")
    d = start(env_for(p1_tree), host="::1", port=port)
    assert f"Listening on address: ::1, port {port}." in d.log()
    assert d.ask(b"ghost@example.com") == b"\xe1alias"


def test_sighup_rereads_controls_and_keeps_the_old_ones_when_unreadable(p1_tree, start):
    d = start(env_for(p1_tree))
    assert d.ask(b"kim@newdomain.example") == b"\x10"
    locals_ = p1_tree["qmail"] / "control" / "locals"
    locals_.write_text("example.com\nnewdomain.example\n")
    d.signal(signal.SIGHUP)
    d.wait_for("controls reloaded.")
    assert d.ask(b"kim@newdomain.example") == b"\x90kim"
    locals_.unlink()
    locals_.mkdir()                    # unreadable, even for root
    d.signal(signal.SIGHUP)
    d.wait_for("keeping the old ones.")
    assert d.ask(b"kim@newdomain.example") == b"\x90kim"
    assert d.proc.poll() is None


def test_unreadable_controls_at_start_exit_111_with_one_line(p1_tree):
    (p1_tree["qmail"] / "control" / "virtualdomains").unlink()
    (p1_tree["qmail"] / "control" / "virtualdomains").mkdir()
    r = run_once(env_for(p1_tree))
    assert r.returncode == 111
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("qmail-verify: Unable to read controls")
    assert "control/virtualdomains" in r.stderr


def test_neither_locals_nor_me_exits_111(p1_tree):
    for name in ("locals", "me"):
        (p1_tree["qmail"] / "control" / name).unlink()
    r = run_once(env_for(p1_tree))
    assert (r.returncode, r.stderr.count("\n")) == (111, 1)
    control = p1_tree["qmail"] / "control"
    assert r.stderr == (f"qmail-verify: Unable to read controls: neither {control}/locals"
                        f" nor {control}/me exists: exiting.\n")


def test_locals_falls_back_to_me(p1_tree, start):
    (p1_tree["qmail"] / "control" / "locals").unlink()
    d = start(env_for(p1_tree))
    assert d.ask(b"kim@mail.example.com") == b"\x90kim"
    assert d.ask(b"kim@example.com") == b"\x10"


@pytest.mark.parametrize("listen", ["1.2.3", "127.0.0.1:99999", "::1:11113", "[::1"])
def test_bad_listen_is_refused(p1_tree, listen):
    r = run_once(env_for(p1_tree, LISTEN=listen))
    assert r.returncode == 111 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("qmail-verify: fatal: unable to parse LISTEN")


def test_usage_error_exits_100():
    r = run_once({}, ["-x"])
    assert r.returncode == 100 and r.stderr.startswith("qmail-verify: usage:")


def test_cve_2020_3811_bare_local_part_uses_control_me(p1_tree, start):
    # P1 has no envnoathost: 1.32 made 'nosuchuser' non-local, and it passed.
    assert not (p1_tree["qmail"] / "control" / "envnoathost").exists()
    d = start(env_for(p1_tree))
    assert d.ask(b"nosuchuser") == b"\xe1alias"


def test_cve_2020_3812_dot_qmail_stats_are_made_as_the_user(p1_tree, start):
    secret = p1_tree["root"] / "secret"
    secret.mkdir(mode=0o700)
    os.symlink(secret / "exists", p1_tree["root"] / "home" / "kim" / ".qmail-probe1")
    os.symlink(secret / "absent", p1_tree["root"] / "home" / "kim" / ".qmail-probe2")
    (secret / "exists").touch()
    d = start(env_for(p1_tree))
    one, two = d.ask(b"kim-probe1@example.com"), d.ask(b"kim-probe2@example.com")
    assert one[0] == two[0] == 0xB0       # both: unable to stat (access denied)
    # the log is written when the daemon next waits for work: wait for it
    d.wait_for(f"Unable to stat {p1_tree['root']}/home/kim/.qmail-probe1: access denied.")
    d.wait_for(f"Unable to stat {p1_tree['root']}/home/kim/.qmail-probe2: access denied.")


def test_our_trouble_never_says_not_deliverable(p1_tree, start):
    cdb = p1_tree["qmail"] / "users" / "cdb"
    d = start(env_for(p1_tree))
    assert d.ask(b"ghost@example.com") == b"\xe1alias"
    cdb.write_bytes(b"this is not a cdb")
    assert d.ask(b"ghost@example.com", timeout=1.0) is None       # legacy: 451 later
    extended = d.ask(b"ghost@example.com", extended=True)
    assert extended[0] == 0x62 and b"users/cdb" in extended[1:]
    assert len(extended) <= 33
    d.wait_for("ghost@example.com not answered: temporary failure: users/cdb")
    cdb.unlink()
    cdb.mkdir()
    assert d.ask(b"ghost@example.com", timeout=1.0) is None
    cdb.rmdir()                        # no users/cdb at all is fine
    assert d.ask(b"pat-x@example.com") == b"\xe1pat-x"
    assert d.proc.poll() is None


def test_extended_queries_get_the_same_answers_when_all_is_well(p1_tree, start):
    d = start(env_for(p1_tree))
    for addr in (b"kim@example.com", b"ghost@example.com", b"x@example.org"):
        assert d.ask(addr, extended=True) == d.ask(addr) == d.query(addr + b"\0")


def test_changes_are_seen_by_the_very_next_query(p1_tree, start):
    home = p1_tree["root"] / "home"
    d = start(env_for(p1_tree))
    assert d.ask(b"kim-new@example.com") == b"\xe1kim-new"
    (home / "kim" / ".qmail-new").touch()
    assert d.ask(b"kim-new@example.com") == b"\xa0kim-new"
    (home / "kim" / ".qmail-new").unlink()
    assert d.ask(b"kim-new@example.com") == b"\xe1kim-new"
    # a user added to the passwd file, with a home
    (home / "zoe").mkdir()
    os.chown(home / "zoe", 3001, 3001)
    assert d.ask(b"zoe@example.com") == b"\xe1alias"
    with open(p1_tree["passwd"], "a") as f:
        f.write(f"zoe:x:3001:3001::{home}/zoe:/bin/sh\n")
    assert d.ask(b"zoe@example.com") == b"\x90zoe"
    (home / "zoe").rmdir()
    assert d.ask(b"zoe@example.com") == b"\xe1alias"
    # users/cdb replaced by rename, as qmail-newu does
    assign = f"=zoe:kim:2010:2010:{home}/kim:::\n.\n".encode()
    write_cdb(str(p1_tree["qmail"] / "users" / "cdb"), compile_assign(assign))
    assert d.ask(b"zoe@example.com") == b"\x90kim"
    assert d.ask(b"pat@example.com") == b"\x90pat"   # from passwd now


def test_system_user_database_changes_are_seen_at_once(p1_tree, start):
    d = start({"QMAILHOME": str(p1_tree["qmail"])}, wrapper=private_passwd(p1_tree["passwd"]))
    assert d.ask(b"kim@example.com") == b"\x90kim"
    text = p1_tree["passwd"].read_text()
    p1_tree["passwd"].write_text(text.replace("kim:x:", "kym:x:"))   # in place: same inode
    assert d.ask(b"kim@example.com") == b"\xe1alias"


def test_replies_are_cut_to_33_bytes(p1_tree, start):
    d = start(env_for(p1_tree))
    reply = d.ask(b"kim-" + b"n" * 60 + b"@example.com")
    assert reply == b"\xe1" + b"kim-" + b"n" * 28


def test_empty_datagram_gets_no_reply_and_only_900_bytes_count(p1_tree, start):
    d = start(env_for(p1_tree))
    assert d.query(b"", timeout=0.5) is None
    assert d.query(b"\0") == b"\xe1alias"
    long = b"pat@example.com" + b"\0" + b"z" * 5000
    assert d.query(long) == b"\x90pat"
    # 900 bytes of address: the daemon reads 'x'*899 + '@', not the domain
    assert d.query(b"x" * 899 + b"@example.org") == b"\x10"
    assert d.proc.poll() is None


def test_log_lines_are_clean(p1_tree, start):
    d = start(env_for(p1_tree))
    d.ask(b"evil\nqmail-verify: root@example.com permitted for root.\r\x1b[2J<a>:b@example.com")
    d.ask(b"p\xe9t\xffr@example.com")
    d.stop()
    log = d.logpath.read_bytes()
    assert b"evil/qmail-verify_ root@example.com permitted for root.__[2J_a__b@example.com denied." in log
    assert b"p_t_r@example.com denied." in log
    for line in log.split(b"\n"):
        assert all(32 <= b <= 126 for b in line), line


def test_fastforward_cdb_decides_for_the_alias_default(p1_tree, start):
    (p1_tree["root"] / "home" / "alias" / ".qmail-default").touch()
    ff = p1_tree["root"] / "aliases.cdb"
    write_cdb(str(ff), [(b":info@example.com", b"&kim@example.com\0"), (b":@mail.example.com", b"")])
    d = start(env_for(p1_tree, VERIFY_FASTFORWARDCDB=str(ff)))
    assert d.ask(b"Info@example.com") == b"\xc0alias"
    assert d.ask(b"nobody@example.com") == b"\xc1alias"
    assert d.ask(b"anyone@mail.example.com") == b"\xc0alias"
    assert d.ask(b"kim-x@example.com") == b"\xe1kim-x"   # kim's own rules, no fastforward
    ff.unlink()
    assert d.ask(b"nobody@example.com", timeout=1.0) is None
    assert d.ask(b"nobody@example.com", extended=True)[0] == 0xC2


def test_the_alias_user_can_be_renamed(p1_tree, start):
    with open(p1_tree["passwd"], "a") as f:
        f.write(f"postbox:x:7792:7792::{p1_tree['root']}/home/alias:/bin/sh\n")
    os.chown(p1_tree["root"] / "home" / "alias", 7792, 7792)
    d = start(env_for(p1_tree, VERIFY_ALIASUSER="postbox"))
    assert d.ask(b"postmaster@example.com") == b"\xa0postbox"
    d2 = start(env_for(p1_tree, VERIFY_ALIASUSER="nosuchalias"))
    assert d2.ask(b"postmaster@example.com") == b"\x81nosuchalias"


def test_group_permissions_count_and_root_ids_come_back(p1_tree, start):
    # kim (uid 2010, gid 2010) may search a folder only through its group
    shared = p1_tree["root"] / "shared"
    shared.mkdir(mode=0o750)
    shared.chmod(0o750)
    os.chown(shared, 0, 2010)
    (shared / "target").touch()
    os.symlink(shared / "target", p1_tree["root"] / "home" / "kim" / ".qmail-grp")
    other = p1_tree["root"] / "other"
    other.mkdir(mode=0o750)
    other.chmod(0o750)
    os.chown(other, 0, 4444)
    os.symlink(other / "target", p1_tree["root"] / "home" / "kim" / ".qmail-nogrp")
    d = start(env_for(p1_tree))
    assert d.ask(b"kim-grp@example.com") == b"\xa0kim-grp"       # exists, seen via gid
    assert d.ask(b"kim-nogrp@example.com") == b"\xb0kim-nogrp"   # access denied
    # the same in a burst answered as one batch, other users' stats in between
    burst = [b"kim-grp@example.com", b"kim-nogrp@example.com", b"postmaster@example.com"] * 20
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in burst]
    try:
        for s, q in zip(socks, burst):
            s.settimeout(5)
            s.sendto(q, ("127.0.0.1", d.port))
        replies = [s.recv(64) for s in socks]
    finally:
        for s in socks:
            s.close()
    assert replies == [b"\xa0kim-grp", b"\xb0kim-nogrp", d.ask(b"postmaster@example.com")] * 20

    def ids():
        status = open(f"/proc/{d.proc.pid}/status").read()
        return {line.split(":")[0]: line.split()[1:] for line in status.splitlines()
                if line.startswith(("Uid:", "Gid:", "Groups:"))}
    # root's gid comes back once the daemon has waited a moment for work
    assert wait_until(lambda: ids() == {"Uid": ["0"] * 4, "Gid": ["0"] * 4, "Groups": []}), ids()


def test_runs_as_a_single_uid_without_root(start, request):
    """The single-uid virtual-domain setup: not root, stats made as itself."""
    import sysconfig

    from helpers import unprivileged, world_tempdir

    from qmailverify.testing import tree
    if os.geteuid() != 0:
        pytest.skip("needs root to start the daemon as another uid")
    uid = 65534
    spec = {"control": {"me": "v.example\n", "locals": "v.example\n"},
            "users_assign": ["."],
            "passwd": [f"vuser:x:{uid}:{uid}::{{root}}/home/vuser:/bin/sh",
                       f"alias:x:{uid}:{uid}::{{root}}/home/alias:/bin/sh"],
            "homes": {"vuser": {"owner_uid": uid, "files": [".qmail-box"]},
                      "alias": {"owner_uid": uid, "files": [".qmail-postmaster"]}}}
    paths = tree.build(spec, world_tempdir())
    request.addfinalizer(lambda: shutil.rmtree(paths["root"]))
    script = os.path.join(sysconfig.get_path("scripts"), "qmail-verify")
    # Every file of this tree belongs to uid 65534, so the answers are the
    # ones the daemon gives without the right unprivileged() may lend it.
    wrapper = unprivileged(script, uid)
    d = start({"QMAILHOME": str(paths["qmail"]), "VERIFY_PASSWD": str(paths["passwd"])},
              wrapper=wrapper, program=script)
    status = open(f"/proc/{d.proc.pid}/status").read()
    assert f"Uid:\t{uid}\t{uid}" in status
    assert d.ask(b"vuser-box@v.example") == b"\xa0vuser-box"
    assert d.ask(b"vuser-nope@v.example") == b"\xe1vuser-nope"
    assert d.ask(b"postmaster@v.example") == b"\xa0alias"


def read_pid(path) -> int | None:
    """The pid in a pid file, None while it is missing or still being written."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return int(text) if text.strip().isdigit() else None


def stop_detached(pid, port) -> None:
    """SIGTERM the detached daemon: by pid, or else by the title naming its port."""
    if pid is None:
        for proc in os.listdir("/proc"):
            try:
                title = open(f"/proc/{proc}/cmdline", "rb").read()
            except OSError:
                continue
            if title.startswith(b"qmail-verify 127.0.0.1:%d:" % port):
                pid = int(proc)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def test_background_mode_with_pidfile_and_logfile(p1_tree, tmp_path):
    port = free_port()
    pidfile, logfile = tmp_path / "qv.pid", tmp_path / "qv.log"
    env = {"PATH": os.environ["PATH"], "LISTEN": f"127.0.0.1:{port}",
           "QMAILHOME": str(p1_tree["qmail"]), "VERIFY_PASSWD": str(p1_tree["passwd"])}
    r = subprocess.run([executable("qmail-verify"), "-d", "-p", str(pidfile), "-o", str(logfile)],
                       env=env, capture_output=True, timeout=20)
    assert r.returncode == 0 and r.stderr == b""          # the parent returns at once
    from qmailverify.protocol.client import ask
    pid = None
    try:
        pid = wait_until(lambda: read_pid(pidfile))
        assert ask(b"kim@example.com", ("127.0.0.1", port)).user == b"kim"
        assert os.getppid() != pid and open(f"/proc/{pid}/stat").read().split()[3] != str(os.getpid())
        (p1_tree["qmail"] / "control" / "locals").write_text("example.com\nnew.example\n")
        os.kill(pid, signal.SIGHUP)                       # reloads: does not kill
        wait_until(lambda: b"controls reloaded." in logfile.read_bytes())
        assert ask(b"kim@new.example", ("127.0.0.1", port)).user == b"kim"
        other = dict(env, LISTEN=f"127.0.0.1:{free_port()}")
        r = subprocess.run([executable("qmail-verify"), "-d", "-p", str(pidfile)], env=other,
                           capture_output=True, text=True, timeout=20)
        assert (r.returncode, r.stderr) == (111, f"qmail-verify: fatal: {pidfile} names a "
                                                 f"running daemon (pid {pid})\n")
    finally:
        stop_detached(pid, port)
    wait_until(lambda: not pidfile.exists())
    # a pid file left by a daemon that died does not stop the next one
    pidfile.write_text("999999\n")
    r = subprocess.run([executable("qmail-verify"), "-d", "-p", str(pidfile), "-o", str(logfile)],
                       env=env, capture_output=True, timeout=20)
    pid = None
    try:
        assert r.returncode == 0
        pid = wait_until(lambda: read_pid(pidfile) != 999999 and read_pid(pidfile))
        assert ask(b"kim@example.com", ("127.0.0.1", port)).user == b"kim"
    finally:
        stop_detached(pid, port)
    wait_until(lambda: not pidfile.exists())
    log = logfile.read_bytes()
    assert log.startswith(b"qmail-verify: Listening on address: 127.0.0.1") \
        and log.endswith(b"exiting on SIGTERM.\n")


def test_a_failing_user_database_is_our_trouble_not_a_missing_user(p1_tree, start, tmp_path):
    # passwd comes from files only, and /etc/passwd cannot be read:
    # getpwnam() would say "no such user"; the daemon must not.
    nss = tmp_path / "nsswitch.conf"
    nss.write_text("passwd: files\ngroup: files\n")
    setup = f"mount --bind {nss} /etc/nsswitch.conf && mount --bind /proc/1/mem /etc/passwd"
    probe = subprocess.run(["unshare", "-m", "sh", "-c",
                            setup + " && ! cat /etc/passwd >/dev/null 2>&1"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot make /etc/passwd unreadable in a private mount namespace here")
    script = setup + " && exec \"$0\""
    d = start({"QMAILHOME": str(p1_tree["qmail"])}, wrapper=["unshare", "-m", "sh", "-c", script])
    assert d.ask(b"kim@example.com", timeout=1.0) is None                 # legacy: 451 later
    reply = d.ask(b"kim@example.com", extended=True)
    assert reply == b"\x72user database unavailable"              # the kind: no errno text
    assert d.ask(b"x@example.org") == b"\x10"                            # not ours: still fine
    d.wait_for("kim@example.com not answered: temporary failure: unable to read the user database")


def test_users_folder_replaced_by_rename_is_seen_by_the_next_query(p1_tree, start):
    d = start(env_for(p1_tree))
    fds = [os.readlink(f"/proc/{d.proc.pid}/fd/{n}") for n in os.listdir(f"/proc/{d.proc.pid}/fd")]
    assert "anon_inode:inotify" in fds           # so this is what the daemon relies on
    home = p1_tree["root"] / "home"
    assert d.ask(b"zoe@example.com") == b"\xe1alias"
    qmail = p1_tree["qmail"]
    (qmail / "users.new").mkdir()
    assign = f"=zoe:kim:2010:2010:{home}/kim:::\n.\n".encode()
    write_cdb(str(qmail / "users.new" / "cdb"), compile_assign(assign))
    os.rename(qmail / "users", qmail / "users.old")
    os.rename(qmail / "users.new", qmail / "users")
    assert d.ask(b"zoe@example.com") == b"\x90kim"
    (qmail / "users" / "cdb").unlink()           # the new folder is the one watched now
    assert d.ask(b"zoe@example.com") == b"\xe1alias"


def test_without_inotify_changes_are_still_seen_at_once(p1_tree, start):
    # with 8 descriptors inotify would take the last spare one: stat per query
    d = start(env_for(p1_tree), wrapper=["softlimit", "-o", "8"])
    fds = [os.readlink(f"/proc/{d.proc.pid}/fd/{n}") for n in os.listdir(f"/proc/{d.proc.pid}/fd")]
    assert "anon_inode:inotify" not in fds
    home, qmail = p1_tree["root"] / "home", p1_tree["qmail"]
    assert d.ask(b"zoe@example.com") == b"\xe1alias"
    assign = f"=zoe:kim:2010:2010:{home}/kim:::\n.\n".encode()
    write_cdb(str(qmail / "users" / "cdb"), compile_assign(assign))
    assert d.ask(b"zoe@example.com") == b"\x90kim"
    with open(p1_tree["passwd"], "a") as f:
        f.write(f"yan:x:2010:2010::{home}/kim:/bin/sh\n")
    assert d.ask(b"yan@example.com") == b"\x90yan"
