"""qmail-verify as an admin runs it: a service directory made by
qmail-verify-conf, under Debian's real svscan, supervise and multilog."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sysconfig
from pathlib import Path

import pytest
from helpers import executable, free_port, wait
from helpers import need_system as need
from supervised import svstat_pid

from qmailverify.protocol.client import ask
from qmailverify.tools import logmsgconf, servicedir
from qmailverify.tools.conf import render

REPO = Path(__file__).resolve().parents[2]


def conf(*args, env=None):
    return subprocess.run([executable("qmail-verify-conf"), *args], capture_output=True,
                          text=True, env={"PATH": os.environ["PATH"], **(env or {})})


@pytest.mark.parametrize("name,made", [
    ("qmail-verify", render("root", "qmaill", "127.0.0.1:11113", "/var/qmail",
                            "/opt/qmailverify/bin/qmail-verify")),
    ("qmail-smtpd", logmsgconf.render("qmaild", "qmaill", "/etc/tcp.smtp.cdb", "/var/qmail",
                                      "/opt/qmailverify/bin/qmail-logmsg"))])
def test_the_shipped_service_directories_are_what_the_conf_tools_make(name, made):
    """All but log/main, which belongs to the log account: git and cp keep
    no owners, so a copied log/main would be root's and multilog could not
    lock it."""
    shipped = REPO / "service" / name
    files = {str(p.relative_to(shipped)) for p in shipped.rglob("*")}
    assert files == {rel for rel, _, _, logowned in made if not logowned}
    for rel, content, mode, logowned in made:
        path = shipped / rel
        if logowned:
            continue
        if content is None:
            assert path.is_dir(), rel
        else:
            assert path.read_text() == content, rel
            assert path.stat().st_mode & 0o777 == mode & 0o777, rel


@pytest.mark.system
def test_conf_refuses_bad_arguments_and_existing_folders(tmp_path):
    need()
    assert conf().returncode == 100
    r = conf("root", "nobody", "relative/dir")
    assert (r.returncode, r.stderr) == (100, "qmail-verify-conf: fatal: dir must start with a slash\n")
    r = conf("root", "nobody", str(tmp_path / "x"), "1.2.3")
    assert r.returncode == 100 and "bad listen address" in r.stderr
    r = conf("root", "no-such-account", str(tmp_path / "x"))
    assert (r.returncode, r.stderr) == (111, "qmail-verify-conf: fatal: unknown account no-such-account\n")
    assert not (tmp_path / "x").exists()
    r = conf("root", "nobody", str(tmp_path))
    assert r.returncode == 111 and "file exists" in r.stderr
    r = conf("root", "nobody", str(tmp_path / "x"))
    assert r.returncode == 0 and servicedir.start_hint(str(tmp_path / "x"))[1] in r.stdout
    main = tmp_path / "x" / "log" / "main"
    assert main.stat().st_uid == 65534 and (tmp_path / "x" / "run").stat().st_uid == 0
    assert (tmp_path / "x" / "env" / "LISTEN").read_text() == "127.0.0.1:11113\n"
    assert not (tmp_path / "x" / "log" / "status").exists()


def run_program(service: Path) -> str:
    """The program the run script execs (its last word)."""
    return (service / "run").read_text().split()[-1]


@pytest.mark.system
def test_conf_names_the_qmail_verify_of_its_own_installation(tmp_path):
    need()
    installed = Path(executable("qmail-verify-conf")).resolve()
    own = installed.parent / "qmail-verify"
    assert own.samefile(Path(sysconfig.get_path("scripts")) / "qmail-verify")
    # run by absolute path with a PATH that does not reach the installation
    r = subprocess.run([str(installed), "root", "nobody", str(tmp_path / "a")],
                       capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert run_program(tmp_path / "a") == str(own)
    # and through a link in another folder, as an admin may put it on PATH
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "qmail-verify-conf").symlink_to(installed)
    r = subprocess.run(["qmail-verify-conf", "root", "nobody", str(tmp_path / "b")],
                       capture_output=True, text=True, env={"PATH": f"{tmp_path}/bin:/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    program = run_program(tmp_path / "b")
    assert program == str(own) and os.access(program, os.X_OK)
    # what it names is the daemon itself
    r = subprocess.run([program, "-x"], capture_output=True, text=True, env={})
    assert r.returncode == 100 and r.stderr.startswith("qmail-verify: usage:")


def test_conf_hint_says_how_to_hand_the_folder_to_svscan(tmp_path, monkeypatch, capsys):
    need()
    from qmailverify.tools import conf as conf_module
    real_isdir = os.path.isdir
    cases = ((True, "/usr/sbin/update-service"), (True, None), (False, None))
    for n, (etc_service, update) in enumerate(cases):
        monkeypatch.setattr(servicedir.os.path, "isdir",
                            lambda p: etc_service if p == "/etc/service" else real_isdir(p))
        monkeypatch.setattr(servicedir, "update_service", lambda: update)
        target = tmp_path / f"qv-{n}"
        assert conf_module.main(["root", "nobody", str(target)]) == 0
        out = capsys.readouterr().out
        if update:
            assert (f"  start it:  update-service --add {target}\n"
                    f"             (Debian's daemontools-run: svscan watches /etc/service)\n"
                    in out)
            assert f"qmail-verify-status /etc/service/{target.name}\n" in out
        elif etc_service:
            assert (f"  start it:  ln -s {target} /etc/service/{target.name}\n"
                    f"             (svscan watches /etc/service)\n" in out)
        else:
            assert (f"  start it:  ln -s {target} /service/{target.name}\n"
                    f"             (svscan watches /service in djb's layout)\n" in out)
        # a hint, not a complaint: no "not here", no "fatal", no "warning"
        assert "not here" not in out and "fatal" not in out and "warning" not in out


@pytest.mark.system
def test_the_daemon_under_svscan(svscan, demo_tree):
    root, services = svscan
    port = free_port()
    service = root / "qmail-verify"
    r = conf("root", "nobody", str(service), f"127.0.0.1:{port}",
             env={"QMAILHOME": str(demo_tree["qmail"])})
    assert r.returncode == 0, r.stderr
    (service / "env" / "VERIFY_PASSWD").write_text(str(demo_tree["passwd"]) + "\n")
    os.symlink(service, services / "qmail-verify")
    server = ("127.0.0.1", port)
    current = service / "log" / "main" / "current"

    def log():
        return current.read_text(errors="replace") if current.exists() else ""

    # it answers
    wait(lambda: ask(b"alice@demo.example", server, timeout=0.5).code == 0, "the daemon to answer")
    wait(lambda: "alice@demo.example permitted for alice." in log(), "the log line")
    assert all(re.match(r"@4000[0-9a-f]{20} ", line) for line in log().splitlines())

    # its title says what it is doing
    pid = svstat_pid(service)
    title = wait(lambda: (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                          .decode().strip() if "answered" in Path(f"/proc/{pid}/cmdline")
                          .read_text() else None), "the process title")
    assert title.startswith(f"qmail-verify 127.0.0.1:{port}: ") and "controls loaded 20" in title

    # svc -h after a control change changes the answer
    (demo_tree["qmail"] / "control" / "locals").write_text("mail.demo.example\n")
    subprocess.run(["svc", "-h", str(service)], check=True)
    wait(lambda: "controls reloaded." in log(), "the reload")
    assert ask(b"alice@demo.example", server).position == 1         # no longer ours
    assert svstat_pid(service) == pid

    # the operator's view
    r = subprocess.run([executable("qmail-verify-status"), str(service), "alice@mail.demo.example"],
                       capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert r.returncode == 0, r.stderr
    assert f"{service}: up (pid {pid})" in r.stdout
    assert f"title: qmail-verify 127.0.0.1:{port}: " in r.stdout
    assert re.search(r"^title: .* controls loaded [\d-]+ [\d:]+$", r.stdout, re.M), r.stdout
    assert "controls reloaded." in r.stdout
    assert r.stdout.endswith("alice@mail.demo.example: deliverable (alice)\n")

    # killed, it is restarted; a crash leaves its reason in the log
    os.kill(pid, signal.SIGKILL)
    pid2 = wait(lambda: (svstat_pid(service) or pid) != pid and svstat_pid(service), "a restart")
    wait(lambda: log().count("Listening on address") == 2, "the new start in the log")
    os.kill(pid2, signal.SIGSEGV)
    wait(lambda: "Fatal Python error: Segmentation fault" in log(), "the crash in the log")
    wait(lambda: log().count("Listening on address") == 3, "the restart after the crash")
    assert ask(b"alice@mail.demo.example", server, timeout=2).code == 0

    # svc -d stops it cleanly
    subprocess.run(["svc", "-d", str(service)], check=True)
    wait(lambda: "exiting on SIGTERM." in log(), "a clean exit")
    wait(lambda: svstat_pid(service) is None, "svstat to say down")
    assert ask(b"alice@mail.demo.example", server, timeout=0.5).code == 2


@pytest.mark.parametrize("page", ["man1/verify-query.1", "man8/qmail-verify.8", "man8/qmail-logmsg.8",
                                  "man8/qmail-verify-conf.8", "man8/qmail-logmsg-conf.8",
                                  "man8/verify-migrate.8",
                                  "man8/qmail-verify-status.8", "man1/qmail-verify-demo.1"])
@pytest.mark.system
def test_man_pages_are_installed_and_render_cleanly(page):
    import sysconfig
    path = Path(sysconfig.get_path("data")) / "share" / "man" / page
    if not path.exists():
        pytest.skip(f"{path} is not installed (an editable install does not install man pages)")
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww"], stdin=open(path, "rb"),
                       capture_output=True)
    assert r.returncode == 0 and r.stderr == b""
    text = re.sub(r".\x08", "", r.stdout.decode("utf-8", "replace"))      # overstruck bold
    assert "NAME" in text and "SYNOPSIS" in text and "EXIT CODES" in text


@pytest.mark.system
def test_man_finds_the_installed_pages():
    """INSTALL's way: the installation's bin on PATH (man-db then looks in
    ../share/man beside it), or its share/man on MANPATH."""
    data = Path(sysconfig.get_path("data"))
    page = data / "share" / "man" / "man8" / "qmail-verify.8"
    if not page.exists():
        pytest.skip(f"{page} is not installed (an editable install does not install man pages)")
    if shutil.which("man") is None:
        pytest.skip("man (Debian's man-db) is not installed")
    for env in ({"PATH": f"{sysconfig.get_path('scripts')}:/usr/bin:/bin"},
                {"PATH": "/usr/bin:/bin", "MANPATH": str(data / "share" / "man")}):
        r = subprocess.run(["man", "-w", "qmail-verify"], capture_output=True, text=True,
                           env=env, cwd="/")
        assert (r.returncode, r.stdout) == (0, f"{page}\n"), (env, r.stderr)
        r = subprocess.run(["man", "-w", "1", "verify-query"], capture_output=True, text=True,
                           env=env, cwd="/")
        assert r.stdout == f"{data}/share/man/man1/verify-query.1\n", (env, r.stderr)


@pytest.mark.system
def test_the_example_qmail_smtpd_service_is_a_valid_script():
    for script in ("service/qmail-smtpd/run", "service/qmail-smtpd/log/run",
                   "service/qmail-verify/run", "service/qmail-verify/log/run"):
        path = REPO / script
        assert os.access(path, os.X_OK), script
        r = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    run = (REPO / "service/qmail-smtpd/run").read_text()
    assert "-x /etc/tcp.smtp.cdb" in run and "softlimit -m 30000000" in run
    # programs by absolute path, where INSTALL puts them (svscanboot's PATH has no venv)
    assert '\n    /opt/qmailverify/bin/qmail-logmsg "$QMAILHOME/bin/qmail-smtpd"\n' in run
    assert (REPO / "service/qmail-verify/run").read_text().endswith(
        " /opt/qmailverify/bin/qmail-verify\n")
    assert "python3 -m venv /opt/qmailverify" in (REPO / "INSTALL").read_text()


def test_nothing_assumes_usr_local_bin():
    """An installation lives in a virtual environment of its own: nothing
    in the project may take a folder under /usr/local for where our programs are."""
    found = []
    for folder in ("bin", "service", "man", "doc", "qmailverify", "bench", "tests", ".ci"):
        for path in (REPO / folder).rglob("*"):
            # not the npm packages the Haraka tests install (not ours, not in git)
            if path.is_file() and not {"__pycache__", "node_modules"} & set(path.parts):
                if b"/usr/local/" + b"bin" in path.read_bytes():
                    found.append(str(path.relative_to(REPO)))
    for name in ("README", "INSTALL", "SECURITY", "setup.cfg"):
        if b"/usr/local/" + b"bin" in (REPO / name).read_bytes():
            found.append(name)
    assert found == []


def make_service(root, services, demo_tree, qmailhome=None):
    port = free_port()
    service = root / "qmail-verify"
    r = conf("root", "nobody", str(service), f"127.0.0.1:{port}",
             env={"QMAILHOME": qmailhome or str(demo_tree["qmail"])})
    assert r.returncode == 0, r.stderr
    (service / "env" / "VERIFY_PASSWD").write_text(str(demo_tree["passwd"]) + "\n")
    os.symlink(service, services / "qmail-verify")
    current = service / "log" / "main" / "current"
    return service, port, lambda: current.read_text(errors="replace") if current.exists() else ""


@pytest.mark.system
def test_signals_under_svscan(svscan, demo_tree):
    root, services = svscan
    service, port, log = make_service(root, services, demo_tree)
    wait(lambda: ask(b"alice@demo.example", ("127.0.0.1", port), timeout=0.5).code == 0,
         "the daemon to answer")
    ask(b"nobody@demo.example", ("127.0.0.1", port))
    pid = svstat_pid(service)
    subprocess.run(["svc", "-a", str(service)], check=True)
    line = wait(lambda: re.search(r"qmail-verify: stats: queries=(\d+) permitted=(\d+) "
                                  r"denied=(\d+) temporary=0 unanswered=0 shed=0 harvest_refusals=0 "
                                  r"harvest_ips=0 harvest_evicted=0 uptime=\d+ "
                                  r"controls_age=\d+\n", log()), "the stats line")
    assert int(line.group(2)) >= 1 and line.group(3) == "1"
    for flag, signum in (("-1", signal.SIGUSR1), ("-2", signal.SIGUSR2)):
        # Debian's svc (daemontools 0.76) has no -1 and -2 (daemontools-encore's
        # has): then USR1 and USR2 go to the pid svstat names
        if subprocess.run(["svc", flag, str(service)], capture_output=True).returncode:
            os.kill(pid, signum)
        wait(lambda: f"qmail-verify: received {signum.name}: ignored." in log(),
             f"the {signum.name} line")
    assert svstat_pid(service) == pid
    assert ask(b"alice@demo.example", ("127.0.0.1", port)).code == 0
    # the command name survives the title, under supervise too
    out = subprocess.run(["pgrep", "-x", "qmail-verify"], capture_output=True, text=True).stdout
    assert str(pid) in out.split()


def status(service, *args):
    return subprocess.run([executable("qmail-verify-status"), str(service), *args],
                          capture_output=True, text=True, env={"PATH": os.environ["PATH"]},
                          timeout=60)


@pytest.mark.system
def test_status_of_a_service_that_keeps_failing(svscan, demo_tree, tmp_path):
    root, services = svscan
    missing = tmp_path / "no-qmail-here"
    service, port, log = make_service(root, services, demo_tree, qmailhome=str(missing))
    fatal = f"qmail-verify: fatal: QMAILHOME: unable to use {missing}: file does not exist"
    wait(lambda: log().count(fatal) >= 2, "the daemon to fail twice")
    r = status(service)
    assert r.returncode == 111, r.stdout + r.stderr
    assert "state: restarting\n" in r.stdout
    assert re.search(r"^last fatal: \d{4}-\d\d-\d\d [\d:.]+ " + re.escape(fatal) + "$",
                     r.stdout, re.M), r.stdout
    assert "title:" not in r.stdout and "usage" not in r.stderr
    assert r.stderr == ("qmail-verify-status: fatal: qmail-verify keeps exiting and supervise"
                        " keeps restarting it: see the last fatal line\n")
    # taken down by the admin, it says so
    subprocess.run(["svc", "-d", str(service)], check=True)
    def down():
        out = subprocess.run(["svstat", str(service)], capture_output=True, text=True).stdout
        return ": down " in out and ", want up" not in out
    wait(down, "svstat to say down")
    r = status(service)
    assert r.returncode == 111 and "state: down\n" in r.stdout
    assert r.stderr == f"qmail-verify-status: fatal: qmail-verify is down (svc -u {service} starts it)\n"


def multilog_args(text: str) -> list[str]:
    words = text.split()
    return words[words.index("multilog") + 1:]


@pytest.mark.system
def test_the_log_keeps_a_busy_burst(tmp_path):
    """100,000 queries' log lines stay in current: multilog's default size
    (s99999) would have rotated them away."""
    if shutil.which("multilog") is None:
        pytest.skip("multilog (Debian's daemontools) is not installed")
    made = dict((rel, content) for rel, content, _, _ in render(
        "root", "qmaill", "127.0.0.1:11113", "/var/qmail", "/opt/qmailverify/bin/qmail-verify"))
    scripts = [made["log/run"]] + [(REPO / "service" / name / "log" / "run").read_text()
                                   for name in ("qmail-verify", "qmail-smtpd")]
    lines = b"".join(b"qmail-verify: user%d@demo.example denied.\n" % i for i in range(100_000))
    for n, script in enumerate(scripts):
        args = multilog_args(script)
        assert args[:3] == ["t", "s16777215", "n20"] and args[-1] == "./main", script
        work = tmp_path / str(n)
        work.mkdir()
        subprocess.run(["multilog", *args], cwd=work, input=lines, check=True, timeout=60)
        current = (work / "main" / "current").read_bytes()
        assert current.count(b"\n") == 100_000
        assert sorted(p.name for p in (work / "main").iterdir() if p.name.startswith("@")) == []


@pytest.mark.system
def test_status_without_a_folder_looks_where_svscan_does(tmp_path):
    """/etc/service/qmail-verify (Debian's daemontools-run), else
    /service/qmail-verify (djb's layout), as qmail-verify-conf's hint says."""
    need()
    status = executable("qmail-verify-status")
    env = {"PATH": os.environ["PATH"]}
    if not any(os.path.isdir(d) for d in ("/etc/service/qmail-verify", "/service/qmail-verify")):
        r = subprocess.run([status], capture_output=True, text=True, env=env, timeout=60)
        assert (r.returncode, r.stdout) == (111, "")
        assert r.stderr == ("qmail-verify-status: fatal: no service directory "
                            "/etc/service/qmail-verify or /service/qmail-verify "
                            "(name it: qmail-verify-status DIR)\n")
    folders = [f for f in ("/etc/service", "/service") if os.path.isdir(f)]
    if not folders:
        pytest.skip("neither /etc/service nor /service exists to look in (daemontools-run)")
    # in a mount namespace of its own, an empty svscan folder with the service in it
    r = conf("root", "nobody", str(tmp_path / "qv"))
    assert r.returncode == 0, r.stderr
    for folder in folders:
        script = (f"mount -t tmpfs tmpfs {folder} && ln -s {tmp_path}/qv {folder}/qmail-verify"
                  f" && exec {shlex.quote(status)}")
        r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                           text=True, env=env, timeout=60)
        if "unshare failed" in r.stderr or "mount: " in r.stderr:
            pytest.skip(f"no private mount namespace here: {r.stderr.strip()}")
        assert r.returncode == 111 and "state: unsupervised\n" in r.stdout, r.stdout + r.stderr
        assert r.stderr == (f"qmail-verify-status: fatal: supervise is not running on "
                            f"{folder}/qmail-verify (is it linked into svscan's folder?)\n")
