"""A local stand-in for Twilio's REST API: records each request and answers with queued responses."""
from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class Recorded:
    method: str
    path: str
    form: dict[str, str]


class TwilioStub:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._answers: list[tuple[int, dict]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                with stub._lock:
                    stub.requests.append(Recorded("POST", self.path, form))
                    status, body = stub._answers.pop(0) if stub._answers else (201, {})
                if status < 300:
                    prefix = "CA" if self.path.endswith("/Calls.json") else "SM"
                    body = {"sid": f"{prefix}{uuid.uuid4().hex}", "status": "queued", "to": form.get("To"), **body}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, status: int, body: dict | None = None) -> None:
        """Queue the answer to the next request (default: 201 with a fresh SID)."""
        self._answers.append((status, body or {}))

    def error(self, status: int, code: int, message: str = "error") -> None:
        self.answer(status, {"code": code, "message": message, "status": status, "more_info": ""})

    @property
    def messages(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/Messages.json")]

    @property
    def calls(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/Calls.json")]

    def __enter__(self) -> TwilioStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
