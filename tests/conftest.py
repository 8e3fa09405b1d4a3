import os
import shutil
import tempfile

import pytest
from helpers import (
    Daemon,
    build_fixture,
    load_p1,
    need_root,
    started_on_free_port,
    world_tempdir,
)
from supervised import svscan  # noqa: F401  (a fixture for every test folder)

from qmailverify.testing.vpoptree import deep_tree


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """tmp_path folders go into one new folder of this run's own, removed
    when the run passes (kept, and named, when it fails)."""
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="qv-pytest-")
        config._qv_basetemp = config.option.basetemp


def pytest_sessionfinish(session, exitstatus):
    basetemp = getattr(session.config, "_qv_basetemp", None)
    if basetemp is None:
        return
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        shutil.rmtree(basetemp, ignore_errors=True)
    else:
        session.config._qv_kept = basetemp


def pytest_terminal_summary(terminalreporter, config):
    kept = getattr(config, "_qv_kept", None)
    if kept:
        terminalreporter.write_line(f"temporary folders of the failed tests kept in {kept}")


@pytest.fixture
def p1_tree():
    need_root()
    root = world_tempdir()
    yield build_fixture(load_p1(), root)
    shutil.rmtree(root)


@pytest.fixture
def start():
    """start(env, ...) -> a started Daemon, stopped after the test."""
    daemons = []

    def _start(env, **kw):
        def one():
            d = Daemon(env, **kw)
            daemons.append(d)
            return d
        return started_on_free_port(one, Daemon.started,
                                    pinned="LISTEN" in env or bool(kw.get("port")))

    yield _start
    for d in daemons:
        d.cleanup()


@pytest.fixture
def demo_tree():
    """The demo qmail tree (no root needed), with control/rcpthosts."""
    from qmailverify.testing import tree
    from qmailverify.tools import demo
    uid, gid = (os.getuid(), os.getgid()) if os.geteuid() else (7001, 7001)
    root = world_tempdir()
    paths = tree.build(demo.demo_spec(uid, gid), root)
    (paths["qmail"] / "control" / "rcpthosts").write_text("demo.example\nshop.example\n")
    yield paths
    shutil.rmtree(root)


@pytest.fixture
def verifyd(demo_tree, start):
    """qmail-verify answering for the demo tree."""
    return start({"QMAILHOME": str(demo_tree["qmail"]), "VERIFY_PASSWD": str(demo_tree["passwd"])})


@pytest.fixture
def shim(demo_tree, verifyd, tmp_path):
    """shim(VERIFY=..., **env) -> a running tcpserver + qmail-logmsg + fake qmail-smtpd."""
    from helpers import SmtpShim
    shims = []

    def _shim(wrapper=(), **env):
        env = {"QMAILHOME": str(demo_tree["qmail"]), **env}
        for key, value in env.items():
            env[key] = value.replace("PORT", str(verifyd.port))
        s = SmtpShim(env, tmp_path, wrapper)
        shims.append(s)
        return s

    yield _shim
    for s in shims:
        s.stop()


@pytest.fixture
def vtree():
    """vpoptree.deep_tree() in a folder every uid can enter: (Tree, env)."""
    need_root()
    root = world_tempdir()
    try:
        yield deep_tree(root)
    finally:
        shutil.rmtree(root)
