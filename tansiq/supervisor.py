"""`tansiq up`: every service as its own process, logs prefixed and coloured, Ctrl-C stops all cleanly.

A service that dies is started again after a backoff (1 s, 2 s, 4 s ... at most MAX_BACKOFF_SECONDS,
back to 1 s once it has stayed up STABLE_SECONDS), with one line saying so; the others keep running.
"""

import os
import selectors
import signal
import subprocess
import sys
import time

from tansiq import config as tansiq_config

COLOURS = ("36", "32", "33", "35", "34", "31", "96", "92")
STOP_GRACE_SECONDS = 15
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
STABLE_SECONDS = 60.0


class Restarts:
    """When each dead service may start again: exponential backoff, forgiven after a stable run."""

    def __init__(self, first=FIRST_BACKOFF_SECONDS, limit=MAX_BACKOFF_SECONDS, stable=STABLE_SECONDS):
        self.first, self.limit, self.stable = first, limit, stable
        self.delay = {}
        self.count = {}
        self.due = {}

    def died(self, name, ran_for, now):
        """Record a death after `ran_for` seconds of life; returns the delay before the restart."""
        delay = self.first if ran_for >= self.stable else min(self.delay.get(name, self.first / 2) * 2, self.limit)
        self.delay[name] = delay
        self.count[name] = self.count.get(name, 0) + 1
        self.due[name] = now + delay
        return delay

    def ready(self, now):
        """Names whose restart is due now."""
        due = [name for name, at in self.due.items() if at <= now]
        for name in due:
            del self.due[name]
        return due


def _prefix(name, index, width):
    label = name.ljust(width)
    if sys.stdout.isatty():
        return f"\x1b[{COLOURS[index % len(COLOURS)]}m{label} |\x1b[0m "
    return f"{label} | "


def _start(name, prefix, selector):
    proc = subprocess.Popen([sys.executable, "-m", "tansiq.cli", "run", name], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                            start_new_session=True)  # Ctrl-C reaches us only; we stop them in order
    selector.register(proc.stdout, selectors.EVENT_READ, (name, prefix, bytearray()))  # bytes short of a line
    return proc


def up(services):
    width = max(len(name) for name in services)
    prefixes = {name: _prefix(name, index, width) for index, name in enumerate(services)}
    procs, started = {}, {}
    selector = selectors.DefaultSelector()
    for name in services:
        procs[name], started[name] = _start(name, prefixes[name], selector), time.monotonic()
    restarts = Restarts()
    address = tansiq_config.load("gateway")["WEB_SERVER_ADDRESS"].replace("0.0.0.0", "127.0.0.1")
    if "gateway" in services:
        print(f"Tansiq is starting: open http://{address}/ (Ctrl-C stops every service)", flush=True)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            _relay_output(selector, timeout=0.5)
            now = time.monotonic()
            for name, proc in procs.items():
                if proc.poll() is not None and name not in restarts.due:
                    _relay_output(selector, timeout=0)  # its last words before ours
                    delay = restarts.died(name, now - started[name], now)
                    print(f"{name} exited with code {proc.returncode}; restarting it in {delay:g} s "
                          f"(restart {restarts.count[name]}); the other services keep running", flush=True)
            for name in restarts.ready(now):
                procs[name], started[name] = _start(name, prefixes[name], selector), now
    except KeyboardInterrupt:
        stopping = True
    print("stopping …", flush=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave orphans behind
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    # Keep reading their output while they stop: a child blocked on a full pipe never exits.
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while any(proc.poll() is None for proc in procs.values()) and time.monotonic() < deadline:
        _relay_output(selector, timeout=0.2)
    for name, proc in procs.items():
        if proc.poll() is None:
            print(f"{name} did not stop in time; killing it", flush=True)
            proc.kill()
            proc.wait()
    _relay_output(selector, timeout=0)
    codes = {name: proc.returncode for name, proc in procs.items()}
    print("stopped: " + ", ".join(f"{name}={code}" for name, code in codes.items()), flush=True)
    return 0 if stopping else 1


def _relay_output(selector, timeout):
    if not selector.get_map():
        time.sleep(timeout)
        return
    for key, _ in selector.select(timeout=timeout):
        # What the pipe holds now, never more: a readline() would wait for the end of a line that a
        # service stopping (or stuck) may never write, and Ctrl-C would never get past this loop.
        chunk = os.read(key.fileobj.fileno(), 65536)
        _, prefix, pending = key.data
        if not chunk:
            selector.unregister(key.fileobj)
            key.fileobj.close()
            lines = [bytes(pending) + b"\n"] if pending else []  # its last words, even without an end of line
        else:
            pending += chunk
            *lines, rest = pending.split(b"\n")
            lines = [line + b"\n" for line in lines]
            pending[:] = rest
        for line in lines:
            sys.stdout.write(prefix + line.decode("utf-8", "replace"))
        sys.stdout.flush()
