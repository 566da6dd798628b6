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
    result = subprocess.run([sys.executable, "-m", "tansiq.cli", "bench", "--messages", "50", "--output", str(output)],
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


def test_calendar_bench_writes_its_rows_and_keeps_the_rest(tmp_path):
    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\nthe messaging tables\n", encoding="utf-8")
    for _ in range(2):  # a second run replaces the calendar section, it does not add another
        result = subprocess.run([sys.executable, "-m", "tansiq.cli", "bench", "--calendar-events", "40",
                                 "--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=240,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    report = output.read_text(encoding="utf-8")
    assert report.startswith("# Benchmarks\n\nthe messaging tables\n")
    assert report.count("## The calendar at 40 events (PostgreSQL)") == 1
    for label in ("month view JSON, whole network: first page", "month view JSON, one city", "city feed (.ics), built",
                  "city feed (.ics), conditional GET answered 304", "network feed (.ics), built",
                  "network feed (.ics), rebuilt after one event changed",
                  "create one event"):
        assert any(line.startswith(f"| {label}") for line in report.splitlines()), f"no row for {label}"
