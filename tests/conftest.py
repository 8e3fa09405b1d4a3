import os
import shutil

import pytest

from helpers import Daemon, build_fixture, load_p1, world_tempdir


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: the fixture's homes belong to other uids")


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
        d = Daemon(env, **kw)
        daemons.append(d)
        return d.started()

    yield _start
    for d in daemons:
        d.cleanup()
