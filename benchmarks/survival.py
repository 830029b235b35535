"""Does the default install stay up? Starts `make run` (SQLite, the embedded broker, supervisord) in a directory
of its own, then: a drill, a SIGKILL of each worker and of beat while the public form is used, and an idle spell.
Prints crashes, restarts, seconds to recover, what the form answered during the kills, log lines and CPU while
idle; then stops everything the way Ctrl-C does and checks that nothing is left running.

    .venv/bin/python benchmarks/survival.py --port 8123 --rate 20 --drill-seconds 120 --idle-seconds 900
    .venv/bin/python benchmarks/survival.py --drill-seconds 0 --idle-seconds 0 --rounds 5 --kill-load 10  # kills only

It never touches DATABASE_URL or CELERY_BROKER_URL: they are removed from the environment it starts.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PROGRAMS = ("web", "critical", "worker", "beat")


class Stack:
    """`make run` in its own process group, its output in a file, and supervisorctl to ask about it."""

    def __init__(self, port: int, var_dir: Path) -> None:
        self.port, self.var_dir = port, var_dir
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")}
        self.env.update(PORT=str(port), VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="helpline.project.settings")
        self.log_path = var_dir / "make-run.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "run"], cwd=ROOT, env=self.env, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def ctl(self, *args: str) -> str:
        command = [str(BIN / "supervisorctl"), "--configuration", str(ROOT / "deploy" / "supervisord.conf"), *args]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=20).stdout.strip()

    def pid(self, program: str) -> int:
        try:
            return int(self.ctl("pid", program))
        except ValueError:
            return 0

    def child_pid_other_than(self, old_pid: int, program: str) -> bool:
        """Has supervisord a child running `program` again (read from /proc, no supervisorctl)?"""
        supervisord = int((self.var_dir / "supervisord.pid").read_text())
        children = Path(f"/proc/{supervisord}/task/{supervisord}/children").read_text().split()
        for child in children:
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(child) != old_pid and (f"{program}@" in command or (program == "beat" and " beat " in command)):
                return True
        return False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def interrupt(self) -> float:
        """Ctrl-C: SIGINT to the whole foreground process group, as a terminal does. Seconds until make exits."""
        began = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return float("inf")
        return time.monotonic() - began


def http(url: str, *, data: bytes | None = None, headers: dict | None = None, timeout: float = 5) -> tuple[int, float]:
    began = time.monotonic()
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (our own http URL)
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except Exception:
        status = 0
    return status, time.monotonic() - began


def health(base: str) -> dict:
    try:
        with urllib.request.urlopen(f"{base}/healthz/", timeout=2) as response:  # noqa: S310
            return json.loads(response.read())
    except Exception:
        return {"status": "no answer"}


class HealthWatch(threading.Thread):
    """Asks /healthz/ every second and keeps what it said, to count seconds degraded or without an answer."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.samples, self.running = base, [], True

    def run(self) -> None:
        while self.running:
            self.samples.append((time.monotonic(), health(self.base)))
            time.sleep(1)

    def seconds(self, status: str, since: float, until: float) -> int:
        return sum(1 for at, body in self.samples if since <= at <= until and body.get("status") == status)


class FormUser(threading.Thread):
    """Opens the public form and sends a (drill-marked) inquiry, over and over, counting what was answered."""

    def __init__(self, base: str, drill_header: Callable[[], dict]) -> None:
        super().__init__(daemon=True)
        self.base, self.header, self.running = base, drill_header, True
        self.results: list[tuple[str, int, float]] = []

    def run(self) -> None:
        body = json.dumps({"message": "Proba: treba mi savjet"}).encode()
        while self.running:
            # A marker is accepted once: a fresh one each time, or the throttle answers 429 to a "real" citizen.
            headers = {"Content-Type": "application/json", **self.header()}
            self.results.append(("form", *http(f"{self.base}/inquiry/")))
            self.results.append(("inquiry", *http(f"{self.base}/api/v1/inquiries/", data=body, headers=headers)))
            time.sleep(0.2)


def worker_back_at(program: str, killed_at_wall: float, hostname: str) -> float | None:
    """When the restarted process proved it works: a worker's own heartbeat, or beat's, written after the kill."""
    from helpline.cases.models import Heartbeat
    from helpline.cases.tasks import BEAT_HEARTBEAT, worker_heartbeat_name

    name = BEAT_HEARTBEAT if program == "beat" else worker_heartbeat_name(f"{program}@{hostname}")
    beat = Heartbeat.objects.filter(name=name).first()
    if beat and beat.beat_at.timestamp() > killed_at_wall:
        return beat.beat_at.timestamp()
    return None


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its children still running (Celery's pool), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
                    .stdout.split()]  # fmt: skip
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--var-dir", type=Path, default=None, help="default: a new temporary directory")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--drill-seconds", type=float, default=120.0)
    parser.add_argument("--idle-seconds", type=float, default=900.0)
    parser.add_argument("--kills", default="critical,worker,beat", help="programs to SIGKILL, in order")
    parser.add_argument("--rounds", type=int, default=1, help="how many times to kill each of --kills")
    parser.add_argument("--kill-load", type=float, default=0.0, help="drill contacts/s while killing (0: none)")
    args = parser.parse_args()
    var_dir = args.var_dir or Path(tempfile.mkdtemp(prefix="helpline-survival-"))
    var_dir.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{args.port}"
    stack = Stack(args.port, var_dir)
    os.environ.clear()
    os.environ.update(stack.env)
    sys.path.insert(0, str(ROOT))

    print(f"make run in {var_dir} on port {args.port} (SQLite, embedded broker, supervisord)")
    started = time.monotonic()
    stack.start()
    while health(base).get("status") != "ok":
        if time.monotonic() - started > 300 or stack.process.poll() is not None:
            print("the stack never became healthy; log:", stack.log_path)
            return 1
        time.sleep(1)
    print(f"healthy {time.monotonic() - started:.0f} s after `make run` (migrate, demo data, start)")

    import django

    django.setup()
    from helpline.drill.marker import DRILL_HEADER, new_drill_marker

    hostname = socket.gethostname()
    watch = HealthWatch(base)
    watch.start()

    # 1. A drill through the running service.
    drill_began = time.monotonic()
    drill = subprocess.CompletedProcess([], 0, "", "")  # --drill-seconds 0: no drill
    if args.drill_seconds > 0:
        drill = subprocess.run(
            [str(BIN / "python"), "manage.py", "drill", "--rate", str(args.rate), "--seconds", str(args.drill_seconds),
             "--chart", str(var_dir / "drill.png")],
            cwd=ROOT, env=stack.env, capture_output=True, text=True,
        )  # fmt: skip
        print(f"\n== drill: {args.rate:g}/s for {args.drill_seconds:g} s (exit code {drill.returncode})")
        print("\n".join("   " + line for line in (drill.stdout + drill.stderr).strip().splitlines()[-20:]))
    drill_ended = time.monotonic()

    # 2. SIGKILL each process in turn, --rounds times, while someone uses the public form (and, with --kill-load, a
    # drill keeps the machine busy: a restart must not wait for a quiet moment).
    user = FormUser(base, lambda: {DRILL_HEADER: new_drill_marker()})
    user.start()
    load = None
    kills = [p for p in args.kills.split(",") if p] * args.rounds
    if args.kill_load:
        load = subprocess.Popen(
            [str(BIN / "python"), "manage.py", "drill", "--rate", str(args.kill_load), "--seconds",
             str(len(kills) * 12 + 10), "--wait", "5", "--chart", str(var_dir / "kill-load.png")],
            cwd=ROOT, env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    time.sleep(3)
    load_text = f" and a drill at {args.kill_load:g}/s" if args.kill_load else ""
    print(f"\n== kill -9, one at a time, while the public form is used{load_text}")
    recoveries = []
    for program in kills:
        old_pid = stack.pid(program)
        killed_wall, killed = time.time(), time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        respawned = back = None
        # Polled cheaply (no supervisorctl, which is a Python start of its own, inside the loop): the measurement must
        # not take the CPU the restarting process needs.
        while time.monotonic() - killed < 60 and back is None:
            if respawned is None and stack.child_pid_other_than(old_pid, program):
                respawned = time.monotonic() - killed
            proof = worker_back_at(program, killed_wall, hostname) if respawned is not None else None
            if proof is not None:
                back = proof - killed_wall
            time.sleep(0.1)
        recoveries.append((program, respawned, back))
        respawn_text = f"{respawned:.1f} s" if respawned is not None else "never"
        back_text = f"{back:.1f} s" if back is not None else "not within 60 s"
        print(f"   {program:<8} pid {old_pid} killed: new process after {respawn_text}, working after {back_text}"
              f" (load {os.getloadavg()[0]:.1f})")  # fmt: skip
        time.sleep(10)
    user.running = False
    user.join()
    if load is not None:
        load.wait()
    for program in dict.fromkeys(kills):
        backs = sorted(back if back is not None else float("inf") for name, _, back in recoveries if name == program)
        print(f"   {program:<8} back after {len(backs)} kills: median {backs[len(backs) // 2]:.1f} s, "
              f"worst {backs[-1]:.1f} s; within 5 s: {sum(1 for b in backs if b <= 5)} of {len(backs)}")  # fmt: skip
    for kind in ("form", "inquiry"):
        tries = [(status, latency) for k, status, latency in user.results if k == kind]
        good = [latency for status, latency in tries if status in (200, 201)]
        statuses = dict(Counter(status for status, _ in tries))  # 0: no answer at all
        slowest = f"slowest {max(good) * 1000:.0f} ms" if good else "none answered"
        print(f"   public {kind}: {len(good)} of {len(tries)} answered 2xx during the kills {statuses}, {slowest}")

    # 3. Idle: nothing happens; count crashes, log lines and CPU.
    pids = {program: stack.pid(program) for program in PROGRAMS}
    cpu_before = {program: cpu_seconds(pid) for program, pid in pids.items()}
    log_lines_before = len(stack.log_text().splitlines())
    idle_began = time.monotonic()
    print(f"\n== idle for {args.idle_seconds:g} s")
    time.sleep(args.idle_seconds)
    idle_ended = time.monotonic()
    # The benchmark's own /healthz/ polling is left out: it is not the service talking.
    idle_log = [line for line in stack.log_text().splitlines()[log_lines_before:] if "GET /healthz/" not in line]
    if args.idle_seconds > 0:  # CPU shares of no idle time at all would be noise divided by nearly nothing
        for program, pid in pids.items():
            share = (cpu_seconds(pid) - cpu_before[program]) / (idle_ended - idle_began) * 100
            print(f"   {program:<8} CPU while idle: {share:.1f} % of one core")
        hours = args.idle_seconds / 3600
        print(f"   log lines while idle: {len(idle_log)} ({len(idle_log) / hours:.0f} an hour)")
        for line in idle_log[:5]:
            print("     " + line[:160])

    # Totals from supervisord's own record of what exited.
    watch.running = False
    log = stack.log_text()
    unexpected = re.findall(r"exited: (\w+) \((.*?)\)", log)
    crashes = [(name, why) for name, why in unexpected if "not expected" in why and "SIGKILL" not in why]
    print("\n== totals")
    print(f"   crashes (an exit nobody caused): {len(crashes)} {crashes if crashes else ''}")
    print(f"   restarts: {len(re.findall(r'spawned: ', log)) - len(PROGRAMS)} "
          f"(the {len(recoveries)} kills above included)")  # fmt: skip
    print(f"   tracebacks in the log: {log.count('Traceback (most recent call last)')}")
    for label, since, until in (("drill", drill_began, drill_ended), ("idle", idle_began, idle_ended)):
        print(f"   /healthz/ during the {label}: {watch.seconds('ok', since, until)} s ok, "
              f"{watch.seconds('degraded', since, until)} s degraded, "
              f"{watch.seconds('no answer', since, until)} s no answer")  # fmt: skip
    stopped_in = stack.interrupt()
    left = [program for program, pid in pids.items() if pid and Path(f"/proc/{pid}").exists()]
    print(f"   Ctrl-C: make exited after {stopped_in:.1f} s; processes left running: {left or 'none'}")
    print(f"   log: {stack.log_path}")
    return 0 if not crashes and not left and drill.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
