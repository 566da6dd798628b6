"""`tansiq bench` runs end to end with a few messages and writes its report (numbers are not checked)."""

import re
import subprocess
import sys

import requests
from harness import ROOT, admin

TABLE_ROWS = ("pika, confirm per message", "pika, pipelined confirms", "pika consumer, manual acks",
              "ConfirmedPublisher", "outbox relay, SQLite", "raw pika consumer, ack only", "kernel: probe service")


def test_bench_writes_every_table_and_cleans_up(broker_admin, tmp_path):
    output = tmp_path / "benchmarks.md"
    result = subprocess.run([sys.executable, "-m", "tansiq.cli", "bench", "--messages", "50", "--no-flows",
                             "--output", str(output)],
                            cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    report = output.read_text(encoding="utf-8")
    for heading in ("## Machine", "## 1. Raw broker baseline", "## 2. The kernel's publishing path",
                    "## 3. The kernel's consuming path", "## 4. Memory and CPU", "## What this means"):
        assert heading in report
    lines = report.splitlines()
    for label in TABLE_ROWS:
        assert any(line.startswith(f"| {label}") and "| 50 |" in line for line in lines), f"no row for {label}"
    assert any(line.startswith("| probe service (nameko + kernel) |") for line in lines)  # memory table

    vhost = re.search(r"vhost (bench-\w+) created", result.stdout).group(1)
    management = admin()
    assert requests.get(f"{management.base}/vhosts/{vhost}", auth=management.auth, timeout=10).status_code == 404


def test_bench_measures_the_real_flows_beside_the_floor(broker_admin, tmp_path):
    """A tiny slice of section 5: one rate of the referral loop, a small backlog, small lists, SQLite only."""
    from tansiq.bench import CALENDAR_MARK, FINDINGS_MARK

    output = tmp_path / "benchmarks.md"
    output.write_text(f"old tables\n\n{FINDINGS_MARK}\n## What the profiles found\n\n{CALENDAR_MARK}\ncalendar\n",
                      encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "tansiq.cli", "bench", "--messages", "20", "--output", str(output),
                             "--flow-backends", "sqlite", "--flow-rates", "2", "--flow-seconds", "2",
                             "--backlog", "20", "--drain", "batched", "--list-notifications", "400",
                             "--list-referrals", "40", "--list-runs", "3"],
                            cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = output.read_text(encoding="utf-8")
    lines = report.splitlines()
    assert report.index("## 5. The real flows") < report.index("## What this means")
    assert "old tables" not in report  # regenerated, but what was written by hand and the calendar stay
    assert report.index("## What this means") < report.index("## What the profiles found") < report.index("calendar\n")
    assert any(line.startswith("| pika, pipelined confirms") and "msg/s |" in line for line in lines)  # the floor
    assert sum(line.startswith("| sqlite | 2 | 4 |") for line in lines) == 3, "no referral, hollow or partner loop row"
    assert (report.index("### The referral loop through the HTTP API") < report.index("### The same loop's hops")
            < report.index("### The partner loop"))
    # Where each loop's CPU went: every service process, the database and the broker, all of them used.
    header = next(line for line in lines if line.startswith("| database | offered loops/s | CPU ms per loop |"))
    names = [cell.strip() for cell in header.strip("|").split("|")][3:]
    assert {"gateway", "intake", "referrals", "notifications", "PostgreSQL", "RabbitMQ"} <= set(names), header
    row = next(line for line in lines[lines.index(header):] if line.startswith("| sqlite | 2 | "))
    cpu = dict(zip(names, (float(cell) for cell in row.strip("|").split("|")[3:]), strict=True))
    assert all(cpu[name] > 0 for name in ("gateway", "intake", "referrals", "notifications", "RabbitMQ")), row
    # The hollow loop: its own CPU table, every hop's process used (the hollow services ran and were called).
    hollow = report[report.index("### The same loop's hops"):report.index("### The partner loop")].splitlines()
    header = next(line for line in hollow if line.startswith("| database | offered loops/s | CPU ms per loop |"))
    row = next(line for line in hollow[hollow.index(header):] if line.startswith("| sqlite | 2 | "))
    cpu = dict(zip(names, (float(cell) for cell in row.strip("|").split("|")[3:]), strict=True))
    assert all(cpu[name] > 0 for name in ("gateway", "intake", "referrals", "notifications", "RabbitMQ")), row
    assert any(line.startswith("| sqlite | BATCH_SIZE 100, directory from its read model") and "| 20 |" in line
               for line in lines), "no backlog row"
    for label in ("inbox, first page of 50", "inbox, unread count", "referrals received, first page of 50"):
        assert any(line.startswith(f"| SQLite | {label}") for line in lines), label


def test_calendar_bench_writes_its_rows_and_keeps_the_rest(tmp_path):
    from tansiq.bench import CALENDAR_END_MARK

    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\nthe messaging tables\n", encoding="utf-8")
    for run in range(2):  # a second run replaces the calendar section, it does not add another
        if run:  # what is written by hand after the rows stays
            output.write_text(output.read_text(encoding="utf-8") + "\nRead by hand.\n", encoding="utf-8")
        # The first run has the row through the API (a network of its own), the second only the others.
        result = subprocess.run([sys.executable, "-m", "tansiq.cli", "bench", "--calendar-events", "40",
                                 "--calendar-creates", "12", *(["--no-calendar-api"] if run else []),
                                 "--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=240,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        through_api = "| create one event through the API" in output.read_text(encoding="utf-8")
        assert through_api == (not run), "the row through the API is there when asked only"
        if through_api:  # where its time went: each process's CPU per create, the events service's wait
            row = next(line for line in output.read_text(encoding="utf-8").splitlines()
                       if line.startswith("| create one event through the API"))
            assert "CPU ms per create: events " in row and "PostgreSQL " in row and "RabbitMQ " in row, row
            assert "waiting for one" in row, row
    report = output.read_text(encoding="utf-8")
    assert report.startswith("# Benchmarks\n\nthe messaging tables\n")
    assert report.count("## The calendar at 40 events (PostgreSQL)") == 1
    assert report.endswith(f"{CALENDAR_END_MARK}\n\nRead by hand.\n")
    for label in ("month view JSON, whole network: first page", "month view JSON, one city", "city feed (.ics), built",
                  "city feed (.ics), conditional GET answered 304", "network feed (.ics), built",
                  "network feed (.ics), rebuilt after one event changed",
                  "create one event"):
        assert any(line.startswith(f"| {label}") for line in report.splitlines()), f"no row for {label}"
