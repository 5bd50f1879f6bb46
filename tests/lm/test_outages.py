"""A server that goes away mid-run: its calls wait for it to come back, say so, and give up after the wait."""

from __future__ import annotations

import pytest

from autoresearch.energy import EstimateMeter
from autoresearch.errors import BackendUnreachable, ServerError
from autoresearch.lm import outages
from autoresearch.lm.backends import CompletionRequest, FakeBackend
from autoresearch.lm.backends.base import ChatMessage
from autoresearch.lm.engine import MAX_OUTAGE_WAITS, BackendEngine
from autoresearch.workspace.config import RoleConfig

SERVER = "openai at http://127.0.0.1:8080/v1"
GONE = BackendUnreachable("cannot reach http://127.0.0.1:8080/v1/chat/completions: [Errno 111] Connection refused")


class Clock:
    """Fake time: sleep() moves it on and is counted."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Probe:
    """A server's model list, down until `back_at` on the clock (None: never back)."""

    def __init__(self, clock: Clock, back_at: float | None):
        self.clock, self.back_at, self.asked, self.at = clock, back_at, 0, []

    def __call__(self) -> list[str]:
        self.asked += 1
        self.at.append(self.clock.now)
        if self.back_at is None or self.clock.now < self.back_at:
            raise BackendUnreachable("connection refused")
        return ["smollm2"]


@pytest.fixture
def heard():
    lines: list[str] = []
    with outages.listening(lines.append):
        yield lines


def wait(clock: Clock, probe: Probe, wait_s: float = 600.0, **kw) -> bool:
    return outages.wait_for_server(SERVER, probe, f"unreachable: {GONE}", wait_s, clock=clock, sleep=clock.sleep,
                                   **kw)


def test_a_call_waits_for_a_restarted_server_and_says_when_it_went_and_came_back(heard):
    clock = Clock()
    probe = Probe(clock, back_at=clock.now + 40)
    assert wait(clock, probe) is True
    assert 40 <= clock.now - 1000 <= 40 + outages.MAX_PROBE_S
    gaps = [later - earlier for earlier, later in zip(probe.at, probe.at[1:])]
    assert gaps == [1, 2, 4, 8, 10, 10, 10]  # soon after the call failed, then every MAX_PROBE_S
    assert len(heard) == 2
    assert heard[0].startswith(f"{SERVER} stopped answering (unreachable: cannot reach ") and "up to 10 min" in heard[0]
    assert heard[1] == f"{SERVER} answers again after {clock.now - 1000:.0f} s"


def test_a_server_that_answers_its_probe_is_no_outage_and_nothing_is_said(heard):
    clock = Clock()
    assert wait(clock, Probe(clock, back_at=0)) is True  # the call's own failure: it runs again at once
    assert clock.sleeps == [] and heard == []


def test_a_server_that_stays_away_is_given_up_after_the_wait_and_later_calls_fail_at_once(heard):
    clock = Clock()
    probe = Probe(clock, back_at=None)
    assert wait(clock, probe, wait_s=120) is False
    assert clock.now - 1000 == pytest.approx(120)  # the last sleep is cut to the wait's end
    assert heard[-1] == f"{SERVER} did not come back within 2 min (`[backends] outage_wait_s`)"

    slept, said = len(clock.sleeps), len(heard)
    assert wait(clock, probe, wait_s=120) is False  # the next call: one probe, no second wait
    assert len(clock.sleeps) == slept and len(heard) == said

    probe.back_at = clock.now  # it comes back: the next call finds it, and says so
    assert wait(clock, probe, wait_s=120) is True
    assert heard[-1] == f"{SERVER} answers again after 120 s"
    probe.back_at = None
    assert wait(clock, probe, wait_s=120) is False  # a new outage gets a whole new wait
    assert clock.now - 1000 == pytest.approx(240)


def test_a_call_the_suite_no_longer_needs_stops_waiting(heard):
    clock = Clock()
    probe = Probe(clock, back_at=None)
    assert wait(clock, probe, stopped=lambda: clock.now >= 1001.5) is False
    assert clock.now == 1001.5 and probe.asked == 2  # noticed within a slice of its 2 s wait, not after it


def test_only_refused_connections_and_server_errors_are_waited_out():
    assert outages.waits_out(GONE) and outages.waits_out(ServerError("HTTP 503: Loading model"))
    from autoresearch.errors import (
        BackendTimeout,
        ContextLengthExceeded,
        MalformedResponse,
    )
    assert not any(outages.waits_out(e("x")) for e in (BackendTimeout, ContextLengthExceeded, MalformedResponse))


# --- the engine ------------------------------------------------------------------------------------------


class Server(FakeBackend):
    """A fake served model (not in process): its calls and model list fail while `down` says so."""

    in_process = False
    name = "openai"
    base_url = "http://127.0.0.1:8080/v1"

    def __init__(self, down_calls: int, error=GONE, list_fails: bool = True):
        super().__init__(responder=lambda request: "hello", models=["smollm2"])
        self.down_calls, self.error, self.list_fails, self.attempts = down_calls, error, list_fails, 0

    def complete(self, request):
        self.attempts += 1
        if self.attempts <= self.down_calls:
            raise self.error
        return super().complete(request)

    def list_models(self):
        if self.list_fails and self.attempts <= self.down_calls:
            self.attempts += 1  # each probe brings the restart nearer
            raise self.error
        return super().list_models()


def engine(server: Server, outage_wait_s: float = 600.0) -> BackendEngine:
    return BackendEngine("producer", RoleConfig(backend="openai", model="smollm2"), server, METER,
                         backoff_s=0, outage_wait_s=outage_wait_s, server=server.base_url)


METER = EstimateMeter(in_process=False, cpu_watts_per_core=12.0, server_watts=60.0)
REQUEST = CompletionRequest(model="smollm2", messages=(ChatMessage("user", "Hi"),))


def test_the_engines_call_outlasts_a_restart_and_answers(heard, quick_probes):
    server = Server(down_calls=10)  # 3 failed attempts, then 7 failed probes
    assert engine(server).call(REQUEST).text == "hello"
    assert [line.split(" (")[0] for line in heard] == [f"{SERVER} stopped answering",
                                                              f"{SERVER} answers again after 0 s"]


def test_without_a_wait_the_call_fails_after_its_retries(heard, quick_probes):
    server = Server(down_calls=10)
    with pytest.raises(BackendUnreachable):
        engine(server, outage_wait_s=0).call(REQUEST)
    assert server.attempts == 3 and heard == []


def test_a_request_the_server_fails_while_it_lists_its_models_fails_after_a_bounded_number_of_rounds(
        heard, quick_probes):
    server = Server(down_calls=10**6, error=ServerError("HTTP 500: the model crashed on this prompt"), list_fails=False)
    with pytest.raises(ServerError):
        engine(server).call(REQUEST)
    assert server.attempts == 3 * (MAX_OUTAGE_WAITS + 1)
    assert heard == []  # the server was there all along: no outage to speak of


def test_an_in_process_model_never_waits(heard, quick_probes):
    server = Server(down_calls=10)
    server.in_process = True
    with pytest.raises(BackendUnreachable):
        engine(server).call(REQUEST)
    assert server.attempts == 3


def test_a_server_without_an_address_is_named_by_its_backend_alone(heard, quick_probes):
    server = Server(down_calls=5)
    server.base_url = None
    assert engine(server).call(REQUEST).text == "hello"
    assert heard[0].startswith("openai stopped answering (")
