import json

import pytest
import yaml

from longctx.eval.config import EvalConfig
from longctx.eval.runner import run_eval
from longctx.models.loader import LoadedModel
from tests.conftest import make_tiny_llama, shared_path


class StopAfter:
    """A reporter that interrupts the run after k predictions (like Ctrl-C)."""

    def __init__(self, k: int):
        self.k, self.seen = k, 0

    def start(self, total: int, done: int) -> None:
        self.total, self.done = total, done

    def update(self, record) -> None:
        self.seen += 1
        if self.seen >= self.k:
            raise KeyboardInterrupt


def _config(tmp_path, **kw) -> EvalConfig:
    base = dict(
        task="synthetic",
        synthetic_n=4,
        lengths=[384, 512],
        modes=["full", "gold", "none"],
        max_new_tokens=4,
        out=str(tmp_path / "run"),
    )
    base.update(kw)
    return EvalConfig(**base)


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_end_to_end_tiny_model_writes_run_folder(tmp_path, tiny_loaded):
    cfg = _config(tmp_path)
    metrics = run_eval(cfg, loaded=tiny_loaded)
    out = tmp_path / "run"
    preds = _read(out / "predictions.jsonl")
    assert len(preds) == 4 * 4  # 4 examples x (2 lengths + gold + none)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert yaml.safe_load((out / "config.yaml").read_text())["lengths"] == [384, 512]
    groups = {(g["mode"], g["length"]): g for g in metrics["groups"]}
    assert set(groups) == {("full", 384), ("full", 512), ("gold", 0), ("none", 0)}
    for (mode, length), g in groups.items():
        assert g["n"] == 4
        assert 0.0 <= g["subem"] <= 1.0
        if mode == "full":
            assert 0.98 * length <= g["prompt_tokens"] <= length
    for p in preds:
        assert set(p["scores"]) == {"subem", "em", "f1"}
        if p["mode"] == "none":
            assert p["doc_ids"] == [] and p["gold_positions"] == []
        else:
            assert p["gold_positions"], p


def test_resume_after_interrupt_has_no_duplicates(tmp_path, tiny_loaded):
    cfg = _config(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_eval(cfg, loaded=tiny_loaded, reporter=StopAfter(5))
    path = tmp_path / "run" / "predictions.jsonl"
    assert len(_read(path)) == 5
    assert not (tmp_path / "run" / "metrics.json").exists()
    reporter = StopAfter(10**6)
    run_eval(cfg, loaded=tiny_loaded, reporter=reporter)
    assert reporter.done == 5 and reporter.seen == 11
    keys = [(p["id"], p["mode"], p["length"]) for p in _read(path)]
    assert len(keys) == 16 and len(set(keys)) == 16


def test_partial_last_line_is_dropped_and_redone(tmp_path, tiny_loaded):
    cfg = _config(tmp_path, modes=["gold"])
    run_eval(cfg, loaded=tiny_loaded)
    path = tmp_path / "run" / "predictions.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])  # killed mid-write
    run_eval(cfg, loaded=tiny_loaded)
    preds = _read(path)
    assert len(preds) == 4 and len({p["id"] for p in preds}) == 4


def test_rerun_with_other_model_is_refused(tmp_path, tiny_loaded):
    run_eval(_config(tmp_path, modes=["none"]), loaded=tiny_loaded)
    with pytest.raises(ValueError, match="different configuration.*model"):
        run_eval(_config(tmp_path, modes=["none"], model="other"), loaded=tiny_loaded)


def test_prompt_over_window_is_cut_in_the_middle(tmp_path, tokenizer):
    small = LoadedModel(make_tiny_llama(tokenizer, window=300), tokenizer, "tiny-300", 300)
    cfg = _config(tmp_path, lengths=[512], modes=["full"], synthetic_n=2)
    run_eval(cfg, loaded=small)
    for p in _read(tmp_path / "run" / "predictions.jsonl"):
        assert p["truncated_tokens"] > 0
        assert p["prompt_tokens"] <= 300 - cfg.max_new_tokens


def test_hotpotqa_end_to_end(tmp_path, tiny_loaded):
    data = shared_path("hotpotqa", "hotpot_dev_distractor_400.json")
    cfg = EvalConfig(
        task="hotpotqa",
        data=str(data),
        lengths=[3072],
        modes=["full", "gold"],
        limit=2,
        max_new_tokens=3,
        out=str(tmp_path / "hq"),
    )
    metrics = run_eval(cfg, loaded=tiny_loaded)
    assert metrics["n_predictions"] == 4
    preds = _read(tmp_path / "hq" / "predictions.jsonl")
    full = [p for p in preds if p["mode"] == "full"]
    # 3k tokens of HotpotQA needs documents from other questions' pools
    assert all(len(p["doc_ids"]) > 10 and any("/" in i for i in p["doc_ids"]) for p in full)
    assert all(0.98 * 3072 <= p["prompt_tokens"] <= 3072 for p in full)
    assert all(len(p["gold_positions"]) == 2 for p in preds)


def test_shards_merge_to_the_same_metrics_as_one_run(tmp_path, tiny_loaded):
    from longctx.eval.shard import merge_runs

    whole = run_eval(
        _config(tmp_path, out=str(tmp_path / "whole"), synthetic_n=5), loaded=tiny_loaded
    )
    shards = []
    for i in range(2):
        cfg = _config(tmp_path, out=str(tmp_path / f"s{i}"), synthetic_n=5, shard=f"{i}/2")
        run_eval(cfg, loaded=tiny_loaded)
        shards.append(tmp_path / f"s{i}")
    merged = merge_runs(shards, tmp_path / "merged")
    assert merged["groups"] == whole["groups"]
    assert merged["n_predictions"] == whole["n_predictions"] == 5 * 4


def test_merge_refuses_runs_of_different_models(tmp_path, tiny_loaded):
    from longctx.eval.shard import merge_runs

    run_eval(_config(tmp_path, out=str(tmp_path / "a"), modes=["none"]), loaded=tiny_loaded)
    run_eval(
        _config(tmp_path, out=str(tmp_path / "b"), modes=["none"], model="x"), loaded=tiny_loaded
    )
    with pytest.raises(ValueError, match="model"):
        merge_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "m")


def test_bad_shard_spec():
    from longctx.eval.shard import parse_shard, select_shard

    assert parse_shard("1/3") == (1, 3)
    assert select_shard(list(range(7)), "1/3") == [1, 4]
    for bad in ("3/3", "a/b", "1", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_compression_sweep_records_bytes_and_matches_at_ratio_zero(tmp_path, tiny_loaded):
    cfg = _config(
        tmp_path,
        modes=["full"],
        lengths=[512],
        synthetic_n=3,
        compress=["none", "snapkv", "topk_decode"],
        ratios=[0.0, 0.5],
        max_new_tokens=5,
    )
    metrics = run_eval(cfg, loaded=tiny_loaded)
    preds = _read(tmp_path / "run" / "predictions.jsonl")
    settings = {p["setting"] for p in preds}
    assert settings == {"none@0", "snapkv@0", "snapkv@0.5", "topk_decode@0", "topk_decode@0.5"}
    by = {(p["id"], p["setting"]): p for p in preds}
    for ex_id in {p["id"] for p in preds}:
        ref = by[(ex_id, "none@0")]
        assert by[(ex_id, "snapkv@0")]["output"] == ref["output"]
        assert by[(ex_id, "topk_decode@0")]["output"] == ref["output"]
        half = by[(ex_id, "snapkv@0.5")]["compress"]
        assert half["kv_bytes_kept"] / half["kv_bytes_full"] == pytest.approx(0.5, abs=0.02)
        assert by[(ex_id, "topk_decode@0.5")]["compress"]["kv_bytes_attended"] is not None
    assert {g["setting"] for g in metrics["groups"]} == settings

    plain = run_eval(
        _config(
            tmp_path,
            out=str(tmp_path / "plain"),
            modes=["full"],
            lengths=[512],
            synthetic_n=3,
            max_new_tokens=5,
        ),
        loaded=tiny_loaded,
    )
    plain_preds = {p["id"]: p for p in _read(tmp_path / "plain" / "predictions.jsonl")}
    assert all(plain_preds[i]["output"] == by[(i, "none@0")]["output"] for i in plain_preds)
    assert plain["groups"][0]["n"] == 3


def test_compression_on_unsupported_model_fails_before_any_work(tmp_path, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2))
    loaded = LoadedModel(gpt2.eval(), tokenizer, "tiny-gpt2", 1024)
    cfg = _config(tmp_path, modes=["full"], compress=["snapkv"], ratios=[0.5])
    with pytest.raises(ValueError, match="GPT2LMHeadModel"):
        run_eval(cfg, loaded=loaded)
    path = tmp_path / "run" / "predictions.jsonl"
    assert not path.exists() or path.read_text() == ""


def test_rag_mode_fits_budget_records_retrieval_and_reuses_indexes(tmp_path, tiny_loaded):
    import warnings

    cfg = _config(
        tmp_path,
        modes=["full", "rag"],
        lengths=[768],
        budgets=[384],
        synthetic_n=3,
        retrievers=["bm25"],
    )
    run_eval(cfg, loaded=tiny_loaded)
    preds = _read(tmp_path / "run" / "predictions.jsonl")
    rag = [p for p in preds if p["mode"] == "rag"]
    full = {p["id"]: p for p in preds if p["mode"] == "full"}
    assert len(rag) == 3 and all(p["setting"] == "bm25" for p in rag)
    for p in rag:
        assert p["prompt_tokens"] <= 384
        assert p["retrieved_ids"] == p["doc_ids"] and p["doc_ids"]
        # RAG ranks the documents the long-context model reads at the largest length
        assert set(p["doc_ids"]) <= set(full[p["id"]]["doc_ids"])
    # synthetic questions name their subject: BM25 finds the (first) gold document
    assert sum(bool(p["gold_positions"]) for p in rag) >= 2
    assert len(list((tmp_path / "run" / "indexes" / "bm25").iterdir())) == 3
    (tmp_path / "run" / "predictions.jsonl").write_text("")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a rebuilt index would warn
        run_eval(cfg, loaded=tiny_loaded)
    again = [p for p in _read(tmp_path / "run" / "predictions.jsonl") if p["mode"] == "rag"]
    assert [p["doc_ids"] for p in again] == [p["doc_ids"] for p in rag]


def test_rag_over_chunks_of_a_long_document(tmp_path, tiny_loaded):
    data = shared_path("longbench_v2")
    cfg = EvalConfig(
        task="longbench_v2",
        data=str(data),
        modes=["rag"],
        budgets=[1536],
        chunk_tokens=256,
        limit=1,
        max_new_tokens=3,
        out=str(tmp_path / "lb"),
    )
    run_eval(cfg, loaded=tiny_loaded)
    (p,) = _read(tmp_path / "lb" / "predictions.jsonl")
    assert p["prompt_tokens"] <= 1536
    assert all(i.startswith("context#") for i in p["doc_ids"]) and len(p["doc_ids"]) >= 3


def test_judged_task_merges_judge_scores(tmp_path, tiny_loaded, monkeypatch):
    from longctx.eval.judge import Judge

    class FixedJudge(Judge):
        def grade_text(self, prompt: str) -> str:
            return "Mostly right. [[60]]"

    monkeypatch.setattr("longctx.eval.judge.make_judge", lambda *a, **k: FixedJudge())
    data = shared_path("loong_financial_en")
    cfg = EvalConfig(
        task="loong_fin",
        data=str(data),
        limit=2,
        max_length=1024,
        max_new_tokens=3,
        judge_local="self",
        out=str(tmp_path / "loong"),
    )
    metrics = run_eval(cfg, loaded=tiny_loaded)
    for p in _read(tmp_path / "loong" / "predictions.jsonl"):
        assert p["scores"]["judge"] == pytest.approx(0.6) and p["scores"]["perfect"] == 0.0
        assert p["truncated_tokens"] > 0 and p["prompt_tokens"] <= 1024
    (group,) = metrics["groups"]
    assert group["judge"] == pytest.approx(0.6) and group["judged"] == 2


def test_openai_engine_against_a_local_fake_server(tmp_path):
    from tests.fake_openai import FakeOpenAI, FakeResponse, completion_body

    reply = FakeResponse(200, completion_body(" Velmora\nmore text", 50, 3))
    with FakeOpenAI(default=reply) as server:
        cfg = EvalConfig(
            task="synthetic",
            synthetic_n=2,
            modes=["full", "none"],
            lengths=[384],
            engine="openai",
            base_url=server.base_url,
            model="served-model",
            tokenizer="embedded",
            max_new_tokens=4,
            out=str(tmp_path / "api"),
        )
        metrics = run_eval(cfg)
        assert len(server.requests) == 4
        body = server.requests[0]["json"]
    preds = _read(tmp_path / "api" / "predictions.jsonl")
    assert {p["answer"] for p in preds} == {"Velmora"}
    assert metrics["n_predictions"] == 4
    assert body["model"] == "served-model" and body["max_tokens"] == 4
    assert server.requests[0]["path"].endswith("/completions")
