import pytest

from longctx.models.generate import Generation
from longctx.models.openai_engine import APIError, OpenAIEngine
from tests.fake_openai import chat_body, completion_body


def test_completion_text_and_usage(server, sleeps):
    server.push(body=completion_body(" Paris", prompt_tokens=12, completion_tokens=2))
    engine = OpenAIEngine(server.base_url + "/", "served-model", api_key="k")
    gen = engine.generate_text("<|im_start|>user\nCapital?<|im_end|>\n", max_new_tokens=16)
    assert isinstance(gen, Generation)
    assert (gen.text, gen.prompt_tokens, gen.new_tokens) == (" Paris", 12, 2)
    assert gen.seconds >= 0
    (request,) = server.requests
    assert request["path"] == "/v1/completions"
    body = request["json"]
    assert body["model"] == "served-model" and body["prompt"].startswith("<|im_start|>")
    assert body["max_tokens"] == 16 and body["temperature"] == 0.0


def test_without_usage_counts_fall_back(server, sleeps, tokenizer):
    server.push(body=completion_body("Paris is the capital"))
    server.push(body=completion_body("Paris is the capital"))
    bare = OpenAIEngine(server.base_url, "m", api_key="k").generate_text("hi there", 8)
    assert (bare.prompt_tokens, bare.new_tokens) == (-1, -1)
    engine = OpenAIEngine(server.base_url, "m", api_key="k", tokenizer=tokenizer)
    gen = engine.generate_text("hi there", 8)
    assert gen.prompt_tokens == len(engine.encode("hi there")) > 0
    assert gen.new_tokens == len(tokenizer.encode("Paris is the capital", add_special_tokens=False))


def test_chat_mode(server, sleeps):
    server.push(body=chat_body("Lyon", prompt_tokens=5, completion_tokens=1))
    engine = OpenAIEngine(server.base_url, "m", api_key="k", chat=True)
    gen = engine.generate_text("Which city?", max_new_tokens=4)
    assert (gen.text, gen.prompt_tokens, gen.new_tokens) == ("Lyon", 5, 1)
    assert server.requests[0]["path"] == "/v1/chat/completions"
    assert server.requests[0]["json"]["messages"] == [{"role": "user", "content": "Which city?"}]
    with pytest.raises(ValueError):
        engine.generate_ids([1, 2, 3], 4)


def test_generate_ids_sends_token_array(server, sleeps):
    server.push(body=completion_body("ok"))
    gen = OpenAIEngine(server.base_url, "m", api_key="k").generate_ids([5, 6, 7], 3)
    assert server.requests[0]["json"]["prompt"] == [5, 6, 7]
    assert gen.prompt_tokens == 3 and gen.text == "ok"


def test_retries_then_succeeds(server, sleeps):
    server.push(status=500, body={"error": "boom"})
    server.push(body=completion_body("fine", 3, 1))
    gen = OpenAIEngine(server.base_url, "m", api_key="k").generate_text("x", 4)
    assert gen.text == "fine" and len(server.requests) == 2 and sleeps == [1.0]


def test_client_error_raises_without_retry(server, sleeps):
    server.push(status=404, body={"error": "model not found"})
    with pytest.raises(APIError, match="model not found") as info:
        OpenAIEngine(server.base_url, "m", api_key="k").generate_text("x", 4)
    assert info.value.status == 404 and info.value.attempts == 1 and sleeps == []


def test_encode_needs_tokenizer():
    with pytest.raises(RuntimeError, match="tokenizer"):
        OpenAIEngine("http://127.0.0.1:1/v1", "m").encode("x")
