"""VERIFY_WORKERS=N: one master process and N workers on one UDP port.

One Python process answers only so many queries a second; N processes on
one SO_REUSEPORT port answer more, and stay one daemon to supervise, svc
and the log:

- The master (started by daemon/main.py) does every start-up check a
  single daemon does, binds the N sockets of the group in order and
  attaches the steering program (steering.py: queries carrying a client
  IP go to one worker per IP, so harvest counts stay exact), forks the
  workers (worker.py) and waits for each one's word before it says
  "Listening".  A refusal by any of
  them is the daemon's refusal: one line, exit 111.
- Signals come to the master (supervise and svc know its pid only).
  Handlers only queue; run() dispatches handle_<name>: HUP, TERM and INT
  are sent on to every worker (TERM and INT: the master waits for them,
  then exits 0); ALRM is sent on and the master writes one statistics
  line, the sum of the workers' counts (counts.py); USR1 and USR2
  are logged; CHLD means a worker may have ended.
- A worker that ends on its own (killed, crashed, exit 111) ends the
  daemon: one line, the other workers are ended (TERM, then KILL after
  GRACE seconds), exit 111, and supervise starts it all again.  A worker
  ends when the master dies (worker.py).
"""

import os
import select
import signal
import time

from qmailverify.daemon.log import Log
from qmailverify.daemon.startup import check_descriptors, checked_deep, listening
from qmailverify.daemon.stats import stats_line
from qmailverify.daemon.workers.counts import COUNTS_WAIT, StatBoard
from qmailverify.daemon.workers.steering import bind_group
from qmailverify.daemon.workers.worker import run_worker
from qmailverify.errors import Fatal, errtext
from qmailverify.system.live import LiveSystem

GRACE = 5.0                 # seconds a worker has to end after SIGTERM
WORD_WAIT = 60.0            # seconds a worker has to say it is ready


class Master:
    def __init__(self, settings, controls, socks, stream, log: Log, title, signals,
                 private: list[int]):
        self.settings, self.controls, self.socks = settings, controls, socks
        self.private = private              # the master's own descriptors (-d's word)
        self.stream, self.log, self.title, self.signals = stream, log, title, signals
        self.board = StatBoard(settings.workers)
        self.pids: list[int] = []           # by slot; 0 once reaped
        self.started = time.monotonic()
        self.wakeup = None

    def start(self) -> None:
        """Fork the workers and wait for each one's word (Fatal if one cannot start)."""
        words = []
        for slot, sock in enumerate(self.socks):
            rfd, wfd = os.pipe()
            self.log.flush()
            master = os.getpid()
            try:
                pid = os.fork()
            except OSError as e:
                os.close(rfd)
                os.close(wfd)
                self.end_workers()
                raise Fatal(f"qmail-verify: fatal: unable to start a worker: "
                            f"{errtext(e.errno)}") from None
            if pid == 0:
                close = [s for s in self.socks if s is not sock] + [r for r, _ in words] + \
                    [rfd, *self.private]
                run_worker(slot, self.settings, self.controls, sock, self.stream, self.signals,
                           self.board, wfd, master, close)
            os.close(wfd)
            self.pids.append(pid)
            words.append((rfd, pid))
        for sock in self.socks:             # the workers hold them now
            sock.close()
        try:
            self.wakeup, wfd = os.pipe()
        except OSError as e:
            self.end_workers()
            raise Fatal(f"qmail-verify: fatal: unable to create a pipe: {errtext(e.errno)}") \
                from None
        os.set_blocking(self.wakeup, False)
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)   # wakes select()
        for rfd, pid in words:
            said = _read_word(rfd)
            if said != "ok":
                self.end_workers()
                raise Fatal(said or f"qmail-verify: fatal: worker {pid} died while starting")
        self.show()

    def show(self) -> None:
        self.title.show(f"{self.settings.workers} workers, controls loaded {self.title.loaded}")

    def run(self) -> int:
        while True:
            code = self.signals.handle(self)
            if code is not None:
                return code
            code = self.reap()
            if code is not None:
                return code
            self.log.flush()
            try:
                select.select([self.wakeup], [], [])
                os.read(self.wakeup, 512)
            except (BlockingIOError, InterruptedError):
                pass

    def handle_hup(self, name: str) -> None:
        self.forward(signal.SIGHUP)
        self.title.controls_loaded()
        self.show()

    def handle_term(self, name: str) -> int:
        self.end_workers()
        self.log.line(f"exiting on {name}.".encode())
        self.log.flush()
        return 0

    handle_int = handle_term

    def handle_alrm(self, name: str) -> None:
        live = [slot for slot, pid in enumerate(self.pids) if pid]
        before = {slot: self.board.seq(slot) for slot in live}
        self.forward(signal.SIGALRM)
        deadline = time.monotonic() + COUNTS_WAIT
        late = live
        while late and time.monotonic() < deadline:
            time.sleep(0.01)
            late = [slot for slot in live if self.board.seq(slot) == before[slot]]
        for slot in late:
            self.log.line(f"warning: worker {self.pids[slot]} did not give its counts "
                          f"within {COUNTS_WAIT:.0f} second: its last ones are summed".encode())
        counts, loaded, hub = self.board.total(live)
        now = time.monotonic()
        self.log.line(stats_line(counts, now - self.started, now - (loaded or self.started),
                                 self.settings.deep, hub))

    def handle_usr1(self, name: str) -> None:
        self.log.line(f"received {name}: ignored.".encode())

    handle_usr2 = handle_usr1

    def forward(self, signum: int) -> None:
        for pid in self.pids:
            if pid:
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass

    def reap(self, report: bool = True) -> int | None:
        """Collect ended workers; 111 (the others ended) if one ended on its own."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            if pid not in self.pids:
                continue
            self.pids[self.pids.index(pid)] = 0
            if report:
                how = f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) \
                    else f"exited with status {os.waitstatus_to_exitcode(status)}"
                self.log.line(f"fatal: worker {pid} {how}: ending the others.".encode())
                self.end_workers()
                self.log.flush()
                return 111

    def end_workers(self) -> None:
        """TERM to every worker, KILL to those still there after GRACE; all reaped."""
        self.forward(signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        while any(self.pids) and time.monotonic() < deadline:
            self.reap(report=False)
            time.sleep(0.01)
        self.forward(signal.SIGKILL)
        for slot, pid in enumerate(self.pids):
            if pid:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
                self.pids[slot] = 0


def _read_word(rfd: int) -> str:
    data = b""
    deadline = time.monotonic() + WORD_WAIT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([rfd], [], [], deadline - time.monotonic())
            chunk = os.read(rfd, 4096) if ready else b""
            if not chunk:
                break
            data += chunk
    finally:
        os.close(rfd)
    return data.decode("ascii", "replace").strip()


def run_master(settings, options_, controls, title, signals) -> int:
    """qmail-verify with settings.workers workers: start, then the master's loop."""
    socks = bind_group(*settings.listen, settings.workers)
    system = LiveSystem(settings.qmailhome, settings.passwd, settings.fastforward, watch=False)
    checked_deep(settings, system)          # checked here; each worker makes its own
    stream = open(2, "wb", buffering=1 << 16, closefd=False)
    ready = None
    try:
        if options_.detach:
            from qmailverify.daemon.background import detach
            stream, ready = detach(socks, stream, options_.pidfile, options_.logfile)
        log = Log(stream)
        title.controls_loaded()
        check_descriptors()
        master = Master(settings, controls, socks, stream, log, title, signals,
                        [ready.fd] if ready else [])
        master.start()
    except Fatal as e:
        if ready:
            ready.fail(str(e))
        raise
    listening(log, settings.listen, ready)
    return master.run()
