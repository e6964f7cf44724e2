import json
import time

import pytest

from longctx.eval.judge import (
    LOONG_JUDGE_PROMPT,
    JudgeResult,
    LocalJudge,
    OpenAIJudge,
    make_judge,
    parse_binary_scores,
    parse_score_0_100,
)
from tests.fake_openai import FakeOpenAI, chat_body


def _judge(server, **kw):
    kw.setdefault("backoff", 0.5)
    return OpenAIJudge(server.base_url, "judge-model", api_key="test-key", timeout=5, **kw)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Good answer.\n[[85]]", 85.0),
        ("Score: 85", 85.0),
        ("85/100", 85.0),
        ("The score is **90**.", 90.0),
        ("[[ 72.5 ]]", 72.5),
        ("  42 ", 42.0),
        ("[[150]]", None),
        ("[[-3]]", None),
        ("Rating: 7/10", None),
        ("I liked it", None),
        ("", None),
    ],
)
def test_parse_score_0_100(text, expected):
    assert parse_score_0_100(text) == expected


def test_parse_binary_scores():
    keys = ["reasoning", "grounding"]
    assert parse_binary_scores("reasoning: 1\ngrounding: 0", keys) == {
        "reasoning": 1,
        "grounding": 0,
    }
    fenced = '```json\n{"Reasoning": 1, "grounding": false}\n```'
    assert parse_binary_scores(fenced, keys) == {"reasoning": 1, "grounding": 0}
    assert parse_binary_scores("reasoning: 1", keys) is None
    assert parse_binary_scores("reasoning: 2\ngrounding: 1", keys) is None
    assert parse_binary_scores("**key_point**: 1", ["key_point"]) == {"key_point": 1}


def test_loong_prompt_formats():
    text = LOONG_JUDGE_PROMPT.format(question="Q?", gold="G", prediction="P")
    assert "Q?" in text and "[[" in text and "100" in text


def test_scores_parsed_and_request_shape(server, sleeps):
    server.push(body=chat_body("Correct and complete.\n[[85]]"))
    result = _judge(server).grade("grade this", parse_score_0_100)
    assert result == JudgeResult(raw="Correct and complete.\n[[85]]", parsed=85.0)
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["json"]["model"] == "judge-model"
    assert request["json"]["messages"] == [{"role": "user", "content": "grade this"}]
    assert request["json"]["temperature"] == 0.0
    assert request["headers"]["Authorization"] == "Bearer test-key"
    assert sleeps == []


def test_server_errors_are_retried_with_backoff(server, sleeps):
    server.push(status=500, body={"error": "boom"})
    server.push(status=503, body={"error": "busy"})
    server.push(status=429, body={"error": "slow down"})
    server.push(body=chat_body("[[60]]"))
    result = _judge(server).grade("p", parse_score_0_100)
    assert result.parsed == 60.0 and result.error is None
    assert len(server.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_retry_after_header_is_respected(server, sleeps):
    server.push(status=429, body={"error": "slow down"}, headers={"Retry-After": "3"})
    server.push(body=chat_body("[[60]]"))
    assert _judge(server).grade("p", parse_score_0_100).parsed == 60.0
    assert sleeps == [3.0]


def test_client_error_is_not_retried(server, sleeps):
    server.push(status=400, body={"error": "bad request"})
    result = _judge(server).grade("p", parse_score_0_100)
    assert result.raw is None and result.parsed is None
    assert "400" in result.error and "bad request" in result.error
    assert len(server.requests) == 1 and sleeps == []


def test_retries_exhausted_records_error(server, sleeps):
    for _ in range(3):
        server.push(status=502, body={"error": "gateway"})
    result = _judge(server, max_retries=2).grade("p", parse_score_0_100)
    assert result.parsed is None and "3 attempts" in result.error and "502" in result.error
    assert len(server.requests) == 3 and sleeps == [0.5, 1.0]


def test_timeout_is_retried(server, sleeps):
    server.push(body=chat_body("[[10]]"), delay=2.0)
    server.push(body=chat_body("[[20]]"))
    judge = OpenAIJudge(server.base_url, "m", api_key="k", timeout=0.3)
    start = time.perf_counter()
    result = judge.grade("p", parse_score_0_100)
    assert result.parsed == 20.0 and len(server.requests) == 2 and sleeps == [1.0]
    assert time.perf_counter() - start < 1.5


def test_connection_error_is_retried(sleeps):
    with FakeOpenAI() as fake:
        url = fake.base_url  # a port that is closed once the server stops
    judge = OpenAIJudge(url, "m", api_key="k", timeout=1, max_retries=1)
    result = judge.grade("p", parse_score_0_100)
    assert result.raw is None and "ConnectionError" in result.error and sleeps == [1.0]


def test_garbage_is_recorded_as_unparsed(server, sleeps):
    server.push(body=chat_body("I would rather not give a number."))
    result = _judge(server).grade("p", parse_score_0_100)
    assert result.raw == "I would rather not give a number."
    assert result.parsed is None and result.error is None and result.unparsed


def test_malformed_body_is_an_error(server, sleeps):
    server.push(body="<html>not json</html>")
    server.push(body={"choices": []})
    judge = _judge(server)
    assert "non-JSON" in judge.grade("p", parse_score_0_100).error
    assert "malformed" in judge.grade("q", parse_score_0_100).error


def test_parser_exception_keeps_raw(server, sleeps):
    server.push(body=chat_body("[[50]]"))

    def broken(_text):
        raise KeyError("oops")

    result = _judge(server).grade("p", broken)
    assert result.raw == "[[50]]" and result.parsed is None and "KeyError" in result.error


def test_cache_second_call_makes_no_request(server, sleeps, tmp_path):
    server.push(body=chat_body("[[77]]"))
    judge = _judge(server, cache_dir=tmp_path / "cache")
    first = judge.grade("same prompt", parse_score_0_100)
    second = judge.grade("same prompt", parse_score_0_100)
    assert first.parsed == second.parsed == 77.0
    assert not first.cached and second.cached
    assert len(server.requests) == 1
    (entry,) = (tmp_path / "cache").glob("*.json")
    assert entry.stem == judge.cache_key("same prompt")
    assert json.loads(entry.read_text())["response"] == "[[77]]"
    # a fresh judge on the same folder reuses the entry; other params or prompts do not
    assert _judge(server, cache_dir=tmp_path / "cache").grade("same prompt", str).cached
    assert judge.cache_key("same prompt") != _judge(server, temperature=0.5).cache_key(
        "same prompt"
    )
    assert judge.cache_key("same prompt") != judge.cache_key("other prompt")
    assert len(server.requests) == 1


def test_failures_are_not_cached(server, sleeps, tmp_path):
    server.push(status=400, body={"error": "no"})
    server.push(body=chat_body("[[5]]"))
    judge = _judge(server, cache_dir=tmp_path)
    assert judge.grade("p", parse_score_0_100).error
    assert judge.grade("p", parse_score_0_100).parsed == 5.0
    assert len(server.requests) == 2


def test_local_judge_with_tiny_model(tiny_loaded):
    judge = LocalJudge(tiny_loaded, max_new_tokens=8)
    assert "<|im_start|>user" in judge.render("hello")
    prompt = LOONG_JUDGE_PROMPT.format(question="Revenue?", gold="$5M", prediction="$5M")
    result = judge.grade(prompt, parse_score_0_100)
    assert isinstance(result, JudgeResult) and result.error is None
    assert isinstance(result.raw, str) and not result.cached
    assert result.parsed is None or 0 <= result.parsed <= 100


def test_local_judge_prompt_too_long_is_recorded(tiny_loaded):
    judge = LocalJudge(tiny_loaded, max_new_tokens=tiny_loaded.window)
    result = judge.grade("short", parse_score_0_100)
    assert result.raw is None and "window" in result.error


def test_make_judge(tiny_loaded, tmp_path):
    judge = make_judge("http://127.0.0.1:1/v1", "m", cache_dir=tmp_path)
    assert isinstance(judge, OpenAIJudge) and judge.cache_dir == tmp_path
    assert isinstance(make_judge(None, None, local_model=tiny_loaded), LocalJudge)
    with pytest.raises(ValueError, match="model name"):
        make_judge("http://127.0.0.1:1/v1", None)
    with pytest.raises(ValueError, match="no judge"):
        make_judge(None, None)
