"""`tansiq up`: a SIGKILLed service is started again with backoff and says so in one line; the
others keep running; Ctrl-C still stops every service."""

import re
import signal
import subprocess
import sys
import threading

import pytest
from harness import ROOT, eventually

from tansiq.supervisor import Restarts

STARTED = re.compile(r"^(\w+)\s*\| .* starting (\w+) \(pid (\d+)\)")


def test_backoff_doubles_up_to_its_limit_and_is_forgiven_after_a_stable_run():
    restarts = Restarts(first=1, limit=8, stable=60)
    assert [restarts.died("events", 2, now=0) for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    assert restarts.died("events", 61, now=0) == 1
    assert restarts.died("intake", 0, now=0) == 1  # each service has its own backoff
    assert restarts.ready(now=0.5) == [] and sorted(restarts.ready(now=1)) == ["events", "intake"]
    assert restarts.count["events"] == 7


def test_output_short_of_a_line_never_holds_the_supervisor(capsys):
    """A service that wrote part of a line (and is stopping, or stuck) must not block `tansiq up`, whose
    loop also carries Ctrl-C; the line is shown whole once it ends, and a last part at the end."""
    import os
    import selectors

    from tansiq.supervisor import _relay_output

    read_end, write_end = os.pipe()
    selector = selectors.DefaultSelector()
    selector.register(os.fdopen(read_end, "rb"), selectors.EVENT_READ, ("events", "events | ", bytearray()))
    os.write(write_end, "a line\nhalf of an Arabic one: جمعية".encode()[:-1])  # cut inside a letter, too
    done = threading.Event()
    threading.Thread(target=lambda: (_relay_output(selector, timeout=0.2), done.set()), daemon=True).start()
    assert done.wait(5), "the supervisor waited for the end of a line"
    assert capsys.readouterr().out == "events | a line\n"
    os.write(write_end, "جمعية".encode()[-1:] + b" ends\nand a last word")
    _relay_output(selector, timeout=0.2)
    assert capsys.readouterr().out == "events | half of an Arabic one: جمعية ends\n"
    os.close(write_end)
    _relay_output(selector, timeout=0.2)
    assert capsys.readouterr().out == "events | and a last word\n"
    assert not selector.get_map()


@pytest.fixture
def supervised(network_factory):
    network = network_factory()
    network.migrate()
    # Ctrl-C restored in the child: a test run started in the background by a script (`… &`) has SIGINT
    # ignored, and a program inherits that, so `tansiq up` would never see the test's Ctrl-C.
    proc = subprocess.Popen([sys.executable, "-m", "tansiq.cli", "up", "--services", "directory,events"],
                            env=network.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    yield network, proc, lines
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def pids(lines, service):
    return [int(m.group(3)) for m in map(STARTED.match, list(lines)) if m and m.group(2) == service]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_service_is_restarted_and_the_others_stay_up(supervised):
    network, proc, lines = supervised
    eventually(lambda: network.answers("directory") and network.answers("events"), timeout=90)
    directory, events = pids(lines, "directory")[0], pids(lines, "events")[0]

    subprocess.run(["kill", "-KILL", str(events)], check=True)
    said = eventually(lambda: [line for line in lines if "restarting it in" in line], timeout=30)
    assert said == ["events exited with code -9; restarting it in 1 s (restart 1); the other services keep running\n"]
    eventually(lambda: len(pids(lines, "events")) == 2 and network.answers("events"), timeout=90)
    assert pids(lines, "directory") == [directory] and alive(directory) and network.answers("directory")
    assert proc.poll() is None

    proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert proc.wait(timeout=60) == 0
    assert not any(alive(pid) for pid in [directory, *pids(lines, "events")])
    assert any(line.startswith("stopped: ") for line in lines)
