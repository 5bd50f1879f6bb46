#!/usr/bin/env python3
"""The NVML meter on a real GPU: its joules beside the counter's own delta and independent power traces.

    python scripts/check_nvml.py [--seconds 5] [--json FILE]

For a machine with an NVIDIA GPU and its driver: the meter autoresearch uses for a model served on this
machine (energy.NvmlMeter, shared among overlapping calls by shared_meter.SharedMeter). Each phase prints
what the meter recorded, the total-energy counter's delta over the phase, and two traces read by another
thread every 10 ms and integrated: the power NVML reports (averaged over about 1 s on Ampere and newer GPUs,
so it lags a change of load) and, where the driver offers it, the instantaneous power.

  idle         nothing running, --seconds long: one call
  load         bf16 matrix products on every GPU (PyTorch), --seconds long: one call
  short        40 calls of 30 ms each, one after another: each shorter than the counter's tick, so each gets a
               stand-in (the power the counter showed × its time); the phase's counter also holds the gaps
  overlapping  four threads making calls of 20–80 ms at once (as a server running requests in parallel): most
               intervals between two events are shorter than a tick; the shares, split by the tokens each
               call reports and settled against the counter, must add up to its delta

With --cli, the same meter end to end through the real `autoresearch` command: a scripted
OpenAI-compatible server on 127.0.0.1 (replies from autoresearch.testing.ScriptedPipeline; per output token
one bf16 matrix product on the GPU, so the GPU's work follows the tokens as a model's would; the replies are
not a model's) serves every role of a starter workspace, four tasks at a time; `autoresearch doctor`,
`eval` and a three-trial `run` go through it, and the joules the store recorded for its calls are set beside
the counter's delta over the time a request was being served.

Without PyTorch or CUDA only the idle phase runs. The GPUs and the driver are printed with the figures. Exits 1
when a check fails: idle, load or overlapping further from the counter than 5% (or two of its ticks, for a
phase under 4 s), or the store's joules outside those two counter figures.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout, installed or not

from autoresearch.energy import COUNTER_PERIOD_S, NvmlMeter, select_meter  # noqa: E402
from autoresearch.shared_meter import SharedMeter  # noqa: E402

POWER_INSTANT = 186  # nvml.h NVML_FI_DEV_POWER_INSTANT (mW), newer drivers only


class Trace:
    """Samples every GPU's power (averaged and instantaneous) and energy counter in a thread."""

    def __init__(self, meter: NvmlMeter, period_s: float = 0.01):
        self.meter, self.nvml, self.period_s = meter, meter.nvml, period_s
        self.samples: list[tuple[float, float, float | None]] = []  # (t, averaged W, instant W or None)
        self.instant = self._instant() is not None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _instant(self) -> float | None:
        try:
            total = 0.0
            for handle in self.meter.handles:
                value = self.nvml.nvmlDeviceGetFieldValues(handle, [POWER_INSTANT])[0]
                if value.nvmlReturn != 0:
                    return None
                total += value.value.uiVal / 1000.0
            return total
        except Exception:  # an older driver or library without field values: no instant trace
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            averaged = sum(self.nvml.nvmlDeviceGetPowerUsage(h) for h in self.meter.handles) / 1000.0
            self.samples.append((time.perf_counter(), averaged, self._instant() if self.instant else None))
            time.sleep(self.period_s)

    def __enter__(self) -> "Trace":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def joules(self, t0: float, t1: float, column: int) -> float | None:
        """The trapezoid integral of one column between t0 and t1 (None: no instant power here)."""
        points = [(sample[0], sample[column]) for sample in self.samples if t0 <= sample[0] <= t1]
        if len(points) < 2 or points[0][1] is None:
            return None
        return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(points, points[1:]))


def gpu_load(seconds: float, torch, tensors) -> int:
    """bf16 matrix products on every GPU for about `seconds`; how many were made (the call's "tokens")."""
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for a in tensors:
            a @ a
        for index in range(len(tensors)):
            torch.cuda.synchronize(index)
        done += 1
    return done

class ScriptedGpuServer:
    """An OpenAI-compatible server on 127.0.0.1: scripted replies, one bf16 matrix product per output token."""

    def __init__(self, meter: NvmlMeter, torch, tensor):
        from autoresearch.lm.backends.base import ChatMessage, CompletionRequest
        from autoresearch.testing import ScriptedPipeline

        self.spans: list[tuple[tuple, tuple]] = []  # the counter's (time, mJ, W) at each request's start and end
        pipeline = ScriptedPipeline(propose=lambda parent: ("one more mark", parent + "!"), spread=True)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._answer({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                begun = meter.read()
                fmt = body.get("response_format") or {}
                schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
                request = CompletionRequest(
                    model=body["model"], json_schema=schema,
                    messages=tuple(ChatMessage(m["role"], m["content"]) for m in body["messages"]))
                text = pipeline.respond(request)
                tokens = max(1, len(text.split()))
                for _ in range(tokens):  # the decode a model would do, one product per token
                    tensor @ tensor
                torch.cuda.synchronize(tensor.device)
                server.spans.append((begun, meter.read()))
                prompt = sum(len(m["content"].split()) for m in body["messages"])
                self._answer({
                    "id": "scripted", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": tokens, "total_tokens": prompt + tokens},
                })

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def busy_joules(self) -> tuple[float, float]:
        """The counter's delta (J) and the seconds over the time at least one request was being served."""
        joules = seconds = 0.0
        spans = sorted(self.spans, key=lambda span: span[0][0])
        start, end = spans[0]
        for begun, ended in spans[1:]:
            if begun[0] > end[0]:  # a gap with nothing served: close the run of overlapping requests
                joules, seconds = joules + (end[1] - start[1]) / 1000.0, seconds + end[0] - start[0]
                start, end = begun, ended
            elif ended[0] > end[0]:
                end = ended
        return joules + (end[1] - start[1]) / 1000.0, seconds + end[0] - start[0]


def gpu_workspace(folder: Path, url: str) -> Path:
    """A starter workspace whose every role is on the scripted server, four tasks at a time."""
    from autoresearch.workspace.workspace import init_workspace

    root = init_workspace(folder / "ws")
    config = root / "autoresearch.toml"
    text = re.sub(r'openai_base_url = ".*"', f'openai_base_url = "{url}"', config.read_text())
    text = text.replace("[backends]\n", "[backends]\nconcurrency = 4\n", 1)
    for role in ("planner", "producer", "evaluator", "proposer"):
        text += f'\n[portfolios.gpu.{role}]\nbackend = "openai"\nmodel = "scripted"\nseed = 7\nmax_tokens = 400\n'
    config.write_text(text)
    return root


def cli_phase(meter: NvmlMeter, torch, tensor, out: Path | None) -> dict:
    """doctor, eval and a three-trial run through the real command; the store's joules beside the counter's."""
    server = ScriptedGpuServer(meter, torch, tensor)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="check-nvml-") as folder:
        root = gpu_workspace(Path(folder), server.url)
        whole_j = whole_s = 0.0
        for args in (["doctor"], ["eval", "-p", "gpu"], ["run", "-p", "gpu", "--trials", "3", "--seed", "1"]):
            command = [sys.executable, "-c", "from autoresearch.cli.main import main; main()", *args, "-w", str(root)]
            before = meter.read()
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            after = meter.read()
            if args[0] != "doctor":  # the commands that made calls: the counter over their whole run
                whole_j, whole_s = whole_j + (after[1] - before[1]) / 1000.0, whole_s + after[0] - before[0]
            print(f"\n$ autoresearch {' '.join(args)}  (exit {done.returncode})\n{done.stdout}{done.stderr}")
            if out:
                (out / f"cli-{args[0]}.txt").write_text(done.stdout + done.stderr)
        with sqlite3.connect(root / "runs" / "autoresearch.db") as db:
            calls, joules, seconds = db.execute("SELECT count(*), sum(joules), sum(latency_s) FROM calls").fetchone()
            kinds = db.execute("SELECT energy_source, attribution, count(*), sum(joules) FROM calls "
                               "GROUP BY 1, 2 ORDER BY 3 DESC").fetchall()
    served_j, served_s = server.busy_joules()
    server.httpd.shutdown()
    return {"calls": calls, "requests": len(server.spans), "store_j": joules, "store_call_s": seconds,
            "served_j": served_j, "served_s": served_s, "whole_j": whole_j, "whole_s": whole_s, "by_source": kinds}


def main(argv: list[str] | None = None) -> int:
    from autoresearch.bench.arguments import ArgumentParser

    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the idle and load phases")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--cli", action="store_true", help="also the real command against a scripted GPU server")
    parser.add_argument("--out", type=Path, default=None, help="with --cli: keep each command's output here")
    args = parser.parse_args(argv)

    meter = NvmlMeter.open()
    if meter is None:
        print("no NVIDIA GPU readable through NVML here (no pynvml, no driver or no GPU)", file=sys.stderr)
        return 1
    nvml = meter.nvml
    driver = nvml.nvmlSystemGetDriverVersion()
    names = [nvml.nvmlDeviceGetName(h) for h in meter.handles]
    names = [n.decode() if isinstance(n, bytes) else n for n in names]
    cpu = platform.processor() or platform.machine()
    print(f"machine: {platform.node()} · {cpu} · Python {platform.python_version()}")
    print(f"GPUs: {', '.join(names)} · driver {driver} · NVML meter source: {meter.source}")
    started = time.perf_counter()
    for _ in range(50):
        meter.read()
    print(f"one reading of the meter (energy and power of every GPU): {(time.perf_counter() - started) * 20:.2f} ms")
    chosen = select_meter(in_process=False, local=True, gpu=True, cpu_watts_per_core=10.0, server_watts=100.0)
    print(f"select_meter for a model served on this machine: {type(chosen).__name__} ({chosen.source})")

    try:
        import torch

        tensors = [torch.randn(8192, 8192, dtype=torch.bfloat16, device=f"cuda:{i}") for i in range(len(names))]
        gpu_load(0.5, torch, tensors)  # warm-up: kernels chosen, clocks up
    except Exception as exc:  # no torch, no CUDA: the idle phase alone still checks the units
        print(f"no GPU load ({type(exc).__name__}: {exc}); idle phase only")
        torch = tensors = None

    rows: list[dict] = []
    with Trace(meter) as trace:
        time.sleep(1.0)  # the averaged power settles after the warm-up

        def phase(name: str, run) -> None:
            wall, before = time.time(), meter.read()
            meter_j, calls, detail = run()
            after = meter.read()
            t0, t1 = before[0], after[0]
            rows.append({
                "phase": name, "wall_start": wall, "seconds": t1 - t0, "calls": calls, "meter_j": meter_j,
                "counter_j": (after[1] - before[1]) / 1000.0, "averaged_power_j": trace.joules(t0, t1, 1),
                "instant_power_j": trace.joules(t0, t1, 2), "detail": detail,
            })

        # One SharedMeter for every phase, as a process has one per device (shared_meter.shared).
        shared = SharedMeter(meter)

        def one_call(work) -> tuple[float, int, str]:
            token = shared.start("one")
            made = work()
            reading = shared.stop(token, tokens=made or 1)
            return reading.joules, 1, f"{reading.source}, {reading.attribution}"

        phase("idle", lambda: one_call(lambda: time.sleep(args.seconds)))
        if torch is not None:
            phase("load", lambda: one_call(lambda: gpu_load(args.seconds, torch, tensors)))

            def short_calls() -> tuple[float, int, str]:
                readings = []
                for _ in range(40):
                    token = shared.start("short")
                    made = gpu_load(0.03, torch, tensors)
                    readings.append(shared.stop(token, tokens=made))
                return (sum(r.joules for r in readings), len(readings),
                        "each call shorter than a tick: a stand-in (the power the counter showed × time); "
                        "the phase's counter also holds the gaps between calls")

            def overlapping() -> tuple[float, int, str]:
                readings: list = []
                lock = threading.Lock()

                def worker(stream: str) -> None:
                    rng, end = random.Random(stream), time.perf_counter() + args.seconds
                    while time.perf_counter() < end:
                        token = shared.start(stream)
                        made = gpu_load(rng.uniform(0.02, 0.08), torch, tensors)
                        reading = shared.stop(token, tokens=made)
                        with lock:
                            readings.append(reading)

                threads = [threading.Thread(target=worker, args=(stream,)) for stream in "abcd"]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                scopes = sorted({r.attribution for r in readings})
                return sum(r.joules for r in readings), len(readings), "attributions: " + " ".join(scopes)

            phase("short", short_calls)
            phase("overlapping", overlapping)

    print()
    print("| phase | s | calls | meter J | counter J | averaged-power J | instant-power J | counter W "
          "| meter/counter |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"
        ratio = row["meter_j"] / row["counter_j"] if row["counter_j"] > 0 else float("nan")
        print(f"| {row['phase']} | {row['seconds']:.2f} | {row['calls']} | {fmt(row['meter_j'])} | "
              f"{fmt(row['counter_j'])} | {fmt(row['averaged_power_j'])} | {fmt(row['instant_power_j'])} | "
              f"{row['counter_j'] / row['seconds']:.0f} | {ratio:.3f} |")
    for row in rows:
        print(f"{row['phase']}: {row['detail']}")
    cli = None
    if args.cli and torch is not None:
        cli = cli_phase(meter, torch, tensors[0], args.out)
    if cli is not None:
        # A call spans more than the server's work on it (the request and reply on either side), and the
        # commands' whole run more than the calls: the store's joules belong between the two counter figures.
        print(f"cli: {cli['calls']} calls recorded, {cli['requests']} requests served. The counter's delta while "
              f"a request was served: {cli['served_j']:.1f} J over {cli['served_s']:.1f} s; the store's joules: "
              f"{cli['store_j']:.1f} J ({cli['store_j'] / cli['served_j']:.3f} of it); the counter over the eval's "
              f"and run's whole time: {cli['whole_j']:.1f} J over {cli['whole_s']:.1f} s")
        for source, attribution, count, joules in cli["by_source"]:
            print(f"  {count} calls {source} · {attribution}: {joules:.1f} J")
    failures = verdicts(rows, cli)
    for failure in failures:
        print(f"FAIL {failure}")
    print("every check held" if not failures else f"{len(failures)} check(s) failed")
    if args.json:
        args.json.write_text(json.dumps({"gpus": names, "driver": driver, "source": meter.source, "rows": rows,
                                         "cli": cli, "failures": failures}, indent=2))
    return 1 if failures else 0


def verdicts(rows: list[dict], cli: dict | None, tolerance: float = 0.05) -> list[str]:
    """What did not hold: a phase whose calls ran back to back or at once (idle, load, overlapping) must add up
    to the counter's delta within the tolerance, or two of the counter's ticks where that is more (a short
    phase: its last tick keeps its stand-in); the short calls' gaps are the counter's alone, so not those. The
    store's joules must lie between the counter while requests were served and over the commands' run."""
    failures = []
    for row in rows:
        allowed = max(tolerance * row["counter_j"], 2 * COUNTER_PERIOD_S * row["counter_j"] / row["seconds"])
        if row["phase"] != "short" and abs(row["meter_j"] - row["counter_j"]) > allowed:
            failures.append(f"{row['phase']}: the meter's {row['meter_j']:.1f} J against the counter's "
                            f"{row['counter_j']:.1f} J, more than {allowed:.1f} J apart")
    if cli is not None and not cli["served_j"] <= cli["store_j"] <= cli["whole_j"]:
        failures.append(f"cli: the store's {cli['store_j']:.1f} J is not between the counter while serving "
                        f"({cli['served_j']:.1f} J) and over the commands' whole time ({cli['whole_j']:.1f} J)")
    return failures


if __name__ == "__main__":
    sys.exit(main())
