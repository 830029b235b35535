"""The local Twilio stub in a process of its own, for the end-to-end benchmark.

Inside the load generator's process, the stub answered the workers' sends only when the generator's threads let
go of the interpreter: under a surge (167 contacts a second) a send waited on the generator, and "SMS handed to
Twilio" measured the benchmark's own process as much as ours. Twilio's answers do not wait on our citizens'
requests, so here they do not either.

    with StubProcess(call_back_with=AUTH_TOKEN) as stub:   # call_back_with: post signed status callbacks
        stub.url         # where the twilio client sends (TWILIO_API_BASE_URL)
        stub.counts()    # {"sms": n, "calls": n, "callbacks": {status code: n}}: so far
        stub.sent()      # [{"at": epoch seconds, "from": number or MG sid, "to": number, "kind": "sms"/"call"}]
        stub.pid         # for the CPU report
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class StubProcess:
    def __init__(self, *, call_back_with: str = "") -> None:
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.call_back_with = call_back_with

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def counts(self) -> dict[str, int]:
        """Ask the stub what it was sent: one line out, one line back."""
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write("counts\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def sent(self) -> list[dict]:
        """Every SMS and call the stub was asked to create, in order, with when it came and from which sender."""
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write("sent\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def __enter__(self) -> StubProcess:
        flags = ["--call-back-with"] if self.call_back_with else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.twilio_stub_process", *flags],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        if self.call_back_with:  # the token on stdin, never on a command line other processes can read
            self.process.stdin.write(self.call_back_with + "\n")
            self.process.stdin.flush()
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.process.kill()
            raise SystemExit("the Twilio stub did not start")
        return self

    def __exit__(self, *exc) -> None:
        assert self.process is not None
        if self.process.stdin:
            self.process.stdin.close()  # the stub stops when its input ends
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def serve() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.twilio_stub import TwilioStub

    with TwilioStub() as stub:
        if "--call-back-with" in sys.argv:
            stub.call_back_with(sys.stdin.readline().strip())
        print(stub.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "counts":
                callbacks = {str(status): n for status, n in stub.callback_answers.items()}
                print(json.dumps({"sms": len(stub.messages), "calls": len(stub.calls), "callbacks": callbacks}),
                      flush=True)  # fmt: skip
            elif line.strip() == "sent":
                created = [
                    {"at": r.at, "from": r.form.get("From") or r.form.get("MessagingServiceSid"),
                     "to": r.form.get("To"), "kind": "call" if r.path.endswith("/Calls.json") else "sms"}
                    for r in [*stub.messages, *stub.calls]
                ]  # fmt: skip
                print(json.dumps(sorted(created, key=lambda one: one["at"])), flush=True)


if __name__ == "__main__":
    serve()
