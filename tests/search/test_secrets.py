"""An API key for an OpenAI-compatible server comes from the environment and is never written anywhere:
not the store, results.tsv, Optuna's database, commit messages, other files, or what the CLI prints."""

from __future__ import annotations

import importlib.util
import secrets
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from scripted import ScriptedPipeline, git

from autoresearch.cli.main import main
from autoresearch.lm.backends.base import ChatMessage, CompletionRequest

_spec = importlib.util.spec_from_file_location(
    "secrets_openai_stub", Path(__file__).resolve().parents[1] / "lm" / "backends" / "openai_stub.py")
openai_stub = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = openai_stub  # dataclasses look their module up there
_spec.loader.exec_module(openai_stub)

KEY_ENV = "AUTORESEARCH_TEST_API_KEY"


class ScriptedServer(openai_stub.OpenAIStub):
    """An OpenAI-compatible server whose replies come from the scripted pipeline; every 9th chat call is
    rejected with an error that echoes the caller's key back, as a careless server might."""

    def __init__(self, pipeline: ScriptedPipeline):
        super().__init__(models=("local-model",))
        self.pipeline = pipeline
        self.chats = 0

    def chat(self, body: dict[str, Any]) -> tuple[int, Any]:
        self.chats += 1
        if self.chats % 9 == 0:
            key = self.requests[-1].headers.get("authorization", "").removeprefix("Bearer ")
            return 400, {"error": {"message": f"request rejected for api key {key}"}}
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        request = CompletionRequest(model=body["model"], json_schema=schema,
                                    messages=tuple(ChatMessage(m["role"], m["content"]) for m in body["messages"]))
        text = self.pipeline.respond(request)
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split())}}


def openai_workspace(root: Path, base_url: str) -> None:
    config = (root / "autoresearch.toml").read_text()
    config = config.replace('backend = "embedded"\nmodel = "smollm2-135m"',
                            f'backend = "openai"\nmodel = "local-model"\nbase_url = "{base_url}"')
    config = config.replace('openai_api_key_env = "OPENAI_API_KEY"', f'openai_api_key_env = "{KEY_ENV}"')
    config = config.replace('optimizable = ["producer.md", "planner.md"]', 'optimizable = ["producer.md"]')
    (root / "autoresearch.toml").write_text(config + '\n[search]\noperators = ["rephrase"]\n')
    git(root, "commit", "-qam", "openai portfolio")


def test_the_api_key_is_used_but_never_stored_logged_or_committed(loop_workspace):
    root = loop_workspace()
    key = "sk-test-" + secrets.token_hex(16)
    server = ScriptedServer(ScriptedPipeline(variants=["Answer!!\n", "Answer!!!!\n", "Answer!!!!!!\n"])).start()
    try:
        openai_workspace(root, server.base_url)
        result = CliRunner().invoke(main, ["run", "-w", str(root), "--trials", "3", "--seed", "1"],
                                    env={KEY_ENV: key})
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    # The key was sent to the server, and a failure that echoed it was recorded, redacted.
    assert any(r.headers.get("authorization") == f"Bearer {key}" for r in server.requests)
    db = sqlite3.connect(root / "runs" / "autoresearch.db")
    errors = [row[0] for row in db.execute("SELECT error FROM calls WHERE status='failed'")]
    assert errors and all("***" in e for e in errors)
    assert db.execute("SELECT COUNT(*) FROM trials WHERE status='keep'").fetchone()[0] >= 1
    db.close()
    time.sleep(0.1)

    needle = key.encode()
    leaks = [str(p.relative_to(root)) for p in root.rglob("*")
             if p.is_file() and ".git" not in p.relative_to(root).parts and needle in p.read_bytes()]
    assert leaks == []
    for p in (root / ".git").rglob("*"):  # refs, logs, config, index (objects are compressed: see git log)
        if p.is_file() and "objects" not in p.parts:
            assert needle not in p.read_bytes(), p
    assert key not in git(root, "log", "--all", "--format=%H %an %ae %s%n%b")
    assert key not in result.output and key not in result.stderr
    assert (root / "runs" / "results.tsv").exists() and (root / "runs" / "optuna.db").exists()
