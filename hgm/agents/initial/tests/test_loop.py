"""The whole agent loop against a tiny fake OpenAI-compatible server (no network: local sockets)."""

import http.server
import json
import socketserver
import threading

import coding_agent
import pytest


def tool_call(name, arguments, call_id):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def completion(content=None, calls=None):
    message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "c", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class FakeLLM:
    """Serves canned completions in order and keeps every request body."""

    def __init__(self, replies):
        self.replies, self.requests = list(replies), []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                fake.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                fake.auth = self.headers.get("Authorization")
                status, body = (200, fake.replies.pop(0)) if fake.replies else (400, {"error": "no more replies"})
                if isinstance(body, tuple):  # (status, error body)
                    status, body = body
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

            def address_string(self):
                return "fake"

        self.handler = Handler


@pytest.fixture(params=["tcp", "unix"])
def serve(request, tmp_path, monkeypatch):
    def start(replies):
        fake = FakeLLM(replies)
        if request.param == "tcp":
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), fake.handler)
            monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
        else:
            class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
                daemon_threads = True
            sock = tmp_path / "llm.sock"
            server = UnixServer(str(sock), fake.handler)
            monkeypatch.setenv("HGM_LLM_SOCKET", str(sock))
            monkeypatch.setenv("HGM_LLM_BASE_URL", "http://hgm-gateway/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "session-token")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        request.addfinalizer(server.shutdown)
        return fake
    return start


def run_agent(tmp_path, monkeypatch, *extra):
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    statement = tmp_path / "statement.md"
    statement.write_text("Write hello.py that prints hello.")
    chat = tmp_path / "logs" / "chat.md"
    monkeypatch.chdir(tmp_path)
    code = coding_agent.main([
        "--problem-statement-file", str(statement), "--git-dir", str(repo), "--base-commit", "abc123",
        "--chat-history-file", str(chat), "--language", "python", "--model", "fake-model", *extra,
    ])
    return code, repo, chat.read_text()


def test_loop_runs_tools_survives_bad_json_and_logs(serve, tmp_path, monkeypatch):
    fake = serve(
        [
            completion(
                "Let me write it.",
                [
                    tool_call(
                        "editor",
                        json.dumps({"command": "create", "path": "hello.py", "file_text": "print('hello')\n"}),
                        "1",
                    )
                ],
            ),
            completion(None, [tool_call("bash", '{"command": "python hello.py', "2")]),
            completion(
                None, [tool_call("nosuchtool", "{}", "3"), tool_call("bash", '{"command": "python hello.py"}', "4")]
            ),
            completion("Done."),
        ]
    )
    code, repo, chat = run_agent(tmp_path, monkeypatch)
    assert code == 0
    assert (repo / "hello.py").read_text() == "print('hello')\n"
    assert len(fake.requests) == 4 and fake.auth == "Bearer session-token"
    first = fake.requests[0]
    assert first["model"] == "fake-model" and {t["function"]["name"] for t in first["tools"]} >= {"bash", "editor"}
    assert "Write hello.py" in first["messages"][1]["content"]
    tool_msgs = [m for m in fake.requests[3]["messages"] if m["role"] == "tool"]
    assert "not valid JSON" in tool_msgs[1]["content"]
    assert "no tool named" in tool_msgs[2]["content"]
    assert "hello\n[exit code: 0]" in tool_msgs[3]["content"]
    assert "Write hello.py" in chat and "Done." in chat and "not valid JSON" in chat and "## Stopped\n\ndone" in chat


def test_step_limit_and_llm_error(serve, tmp_path, monkeypatch):
    looping = [completion(None, [tool_call("bash", '{"command": "true"}', str(i))]) for i in range(5)]
    fake = serve(looping)
    code, _, chat = run_agent(tmp_path, monkeypatch, "--max-steps", "3")
    assert code == 0 and len(fake.requests) == 3 and "step limit reached" in chat

    fake.replies.clear()  # the server now answers 400: the agent stops with an LLM error, not a traceback
    code, _, chat = run_agent(tmp_path, monkeypatch)
    assert code == 3 and "LLM error" in chat


def test_self_improve_mentions_own_code(serve, tmp_path, monkeypatch):
    fake = serve([completion("Nothing to do.")])
    run_agent(tmp_path, monkeypatch, "--self-improve", "--test-description", "run pytest")
    user = fake.requests[0]["messages"][1]["content"]
    assert "your own source code" in user and "run pytest" in user


def test_wall_time_limit_stops_before_asking(serve, tmp_path, monkeypatch):
    fake = serve([completion("never sent")])
    code, _, chat = run_agent(tmp_path, monkeypatch, "--max-wall-s", "0")
    assert code == 0 and fake.requests == [] and "wall-time limit reached" in chat


def test_old_tool_output_is_elided_to_stay_under_the_context_window(serve, tmp_path, monkeypatch):
    flood = "python3 -c \"print('x' * 3000)\""
    fake = serve([completion(None, [tool_call("bash", json.dumps({"command": flood}), str(i))]) for i in range(8)]
                 + [completion("Done.")])
    monkeypatch.setenv("AGENT_CONTEXT_WINDOW", "4000")  # tokens; 3 bytes each by the agent's estimate
    code, _, chat = run_agent(tmp_path, monkeypatch)
    assert code == 0 and len(fake.requests) == 9 and "## Stopped\n\ndone" in chat
    sizes = [len(json.dumps([r["messages"], r["tools"]])) for r in fake.requests]
    assert max(sizes) // 3 <= 4000 * 3 // 4, sizes
    last = fake.requests[-1]["messages"]
    tool_outputs = [m["content"] for m in last if m["role"] == "tool"]
    assert "x" * 3000 in tool_outputs[-1], "the newest output is kept"
    assert tool_outputs[0] == coding_agent.prompts.ELIDED and tool_outputs.count(coding_agent.prompts.ELIDED) < 8
    assert chat.count("x" * 3000) == 8, "the chat log keeps everything"


def test_a_conversation_that_cannot_fit_stops_cleanly(serve, tmp_path, monkeypatch):
    fake = serve([completion("never sent")])
    code, _, chat = run_agent(tmp_path, monkeypatch, "--context-window", "10")
    assert code == 0 and fake.requests == [] and "context window full" in chat


def test_a_context_length_error_stops_the_agent_at_once(serve, tmp_path, monkeypatch):
    error = (400, {"error": {"message": "This model's maximum context length is 8192 tokens.",
                             "type": "invalid_request_error", "code": "context_length_exceeded"}})
    fake = serve([error, completion("never asked")])
    code, _, chat = run_agent(tmp_path, monkeypatch)
    assert code == 3 and len(fake.requests) == 1  # not retried
    assert "LLM error: context window exceeded" in chat and "maximum context length" in chat


def test_reasoning_content_of_tool_call_turns_is_sent_back(serve, tmp_path, monkeypatch):
    thinking = completion(None, [tool_call("bash", '{"command": "true"}', "1")])
    thinking["choices"][0]["message"]["reasoning_content"] = "I should run true first."
    answer = completion("Done.")
    answer["choices"][0]["message"]["reasoning_content"] = "All good."
    fake = serve([thinking, answer])
    run_agent(tmp_path, monkeypatch)
    [assistant] = [m for m in fake.requests[1]["messages"] if m["role"] == "assistant"]
    assert assistant["reasoning_content"] == "I should run true first." and assistant["tool_calls"]
