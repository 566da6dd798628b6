"""`tansiq up`: every service as its own process, logs prefixed and coloured, Ctrl-C stops all cleanly."""

import os
import selectors
import signal
import subprocess
import sys
import time

from tansiq import config as tansiq_config

COLOURS = ("36", "32", "33", "35", "34", "31", "96", "92")
STOP_GRACE_SECONDS = 15


def _prefix(name, index, width):
    label = name.ljust(width)
    if sys.stdout.isatty():
        return f"\x1b[{COLOURS[index % len(COLOURS)]}m{label} |\x1b[0m "
    return f"{label} | "


def up(services):
    width = max(len(name) for name in services)
    procs = {}
    selector = selectors.DefaultSelector()
    for index, name in enumerate(services):
        proc = subprocess.Popen([sys.executable, "-m", "tansiq.cli", "run", name], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                start_new_session=True)  # Ctrl-C reaches us only; we stop them in order
        procs[name] = proc
        selector.register(proc.stdout, selectors.EVENT_READ, (name, _prefix(name, index, width)))
    address = tansiq_config.load("gateway")["WEB_SERVER_ADDRESS"].replace("0.0.0.0", "127.0.0.1")
    if "gateway" in services:
        print(f"Tansiq is starting: open http://{address}/ (Ctrl-C stops every service)", flush=True)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        while selector.get_map() and not stopping:
            _relay_output(selector, timeout=0.5)
            dead = [name for name, proc in procs.items() if proc.poll() is not None]
            if dead:
                print(f"service(s) exited: {', '.join(dead)} — stopping the others", flush=True)
                break
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
    for key, _ in selector.select(timeout=timeout):
        line = key.fileobj.readline()
        if not line:
            selector.unregister(key.fileobj)
            continue
        sys.stdout.write(key.data[1] + line.decode("utf-8", "replace"))
        sys.stdout.flush()
