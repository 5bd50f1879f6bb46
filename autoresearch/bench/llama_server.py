"""A real llama-cpp-python server (`python -m llama_cpp.server`) on loopback, serving the bundled SmolLM2:
what the real-server tests and scripts/bench_inference.py --llama-cpp-server run against."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ALIAS = "smollm2-135m"  # served under the starter's model name, so /v1/models lists what the config asks for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaCppServer:
    """Starts the server, waits until GET /v1/models answers, and stops it."""

    def __init__(self, model_path: Path, log_path: Path, *, n_ctx: int = 2048, n_threads: int = 1):
        self.port = free_port()
        self.log_path = log_path
        self.command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias", ALIAS,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads),
        ]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 90.0) -> LlamaCppServer:
        # Output to a file, not a pipe: a pipe nobody reads fills up and stalls the server.
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with code {self._process.returncode} before "
                                   f"answering:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer GET /v1/models within {timeout_s:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server output)"
