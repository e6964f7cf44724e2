"""Shared-prefill rollouts and compressed scoring agree with plain re-prefilled forward passes."""

from __future__ import annotations

import pytest
import torch

from longctx.train.rollout import (
    SamplingParams,
    filter_logits,
    group_prompts,
    rollout_batch,
    shared_prefill_rollouts,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tokenizer):
    from tests.conftest import make_tiny_llama

    return make_tiny_llama(tokenizer, seed=1)


def _prompt(n: int = 40, seed: int = 0) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(100, 5000, (n,), generator=g).tolist()


@torch.no_grad()
def _reference_logits(model, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    """Next-token logits before each of ``tokens``, each from its own full forward pass."""
    rows = []
    for t in range(len(tokens)):
        ids = torch.tensor([prompt + tokens[:t]])
        rows.append(model(input_ids=ids).logits[0, -1].float())
    return torch.stack(rows)


def test_shared_prefill_logits_match_per_row_prefill(model):
    prompt = _prompt()
    forced = torch.randint(100, 5000, (3, 6), generator=torch.Generator().manual_seed(1))
    params = SamplingParams(max_new_tokens=6)
    out = shared_prefill_rollouts(model, prompt, 3, params, forced=forced, return_logits=True)
    assert out.completions == forced.tolist()
    for row in range(3):
        expected = _reference_logits(model, prompt, forced[row].tolist())
        torch.testing.assert_close(out.logits[row], expected, atol=1e-5, rtol=1e-5)


def test_finished_rows_leave_the_batch_without_changing_the_others(model):
    prompt, eos = _prompt(seed=2), 7
    forced = torch.randint(100, 5000, (3, 5), generator=torch.Generator().manual_seed(3))
    forced[1, 1] = eos  # row 1 stops after two tokens
    params = SamplingParams(max_new_tokens=5, eos_token_ids=(eos,))
    out = shared_prefill_rollouts(model, prompt, 3, params, forced=forced, return_logits=True)
    assert out.completions[1] == forced[1, :2].tolist()
    assert [len(c) for c in out.completions] == [5, 2, 5]
    for row in range(3):
        tokens = out.completions[row]
        torch.testing.assert_close(
            out.logits[row], _reference_logits(model, prompt, tokens), atol=1e-5, rtol=1e-5
        )


def test_sampling_respects_top_k_top_p_and_eos(model):
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    kept = filter_logits(logits, SamplingParams(1, temperature=1.0, top_k=2)).isfinite()
    assert kept.tolist() == [[True, True, False, False]]
    nucleus = filter_logits(logits, SamplingParams(1, top_p=0.7)).isfinite()
    assert nucleus.tolist() == [[True, True, False, False]]  # 0.64 < 0.7 <= 0.88
    torch.manual_seed(0)
    prompt = _prompt(seed=4)
    params = SamplingParams(max_new_tokens=6, temperature=0.7, top_p=0.9, top_k=50)
    completions = rollout_batch(model, [prompt] * 3 + [prompt[:-1]] * 2, params)
    assert len(completions) == 5 and all(1 <= len(c) <= 6 for c in completions)
    assert group_prompts([[1], [1], [2], [1]]) == [([1], 2), ([2], 1), ([1], 1)]


def test_cached_logps_equal_full_forward_without_compression(tokenizer):
    from trl.trainer.utils import add_fused_lm_head

    from longctx.compress import make_method
    from longctx.train.compress_aware import (
        QUESTION_MARKER,
        cached_logps,
        compress_prompt,
        compressed_rollouts,
        split_question,
    )
    from tests.conftest import make_tiny_llama

    model = make_tiny_llama(tokenizer, seed=2)
    marker = tokenizer.encode(QUESTION_MARKER, add_special_tokens=False)
    text = "[DOC 1] Ravel was born in Ciboure.\n\n[DOC 2] Oslo has parks." * 4
    prompt = tokenizer.encode(f"{text}\n\nQuestion: Where was Ravel born?")
    context, question = split_question(prompt, marker)
    assert question[: len(marker)] == marker and context + question == prompt
    completion = torch.randint(100, 5000, (2, 5), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(completion)
    mask[1, 3:] = 0
    with torch.no_grad():
        full = model(input_ids=torch.cat([torch.tensor([prompt] * 2), completion], 1)).logits
    expected = full[:, len(prompt) - 1 : -1].log_softmax(-1)
    expected = expected.gather(-1, completion.unsqueeze(-1)).squeeze(-1) * mask

    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    whole = compress_prompt(model, prompt, make_method("none"), marker)
    logps, entropy = cached_logps(model, whole, completion, mask)
    torch.testing.assert_close(logps, expected, atol=1e-5, rtol=1e-5)
    assert entropy.shape == logps.shape and logps.requires_grad

    squeezed = compress_prompt(model, prompt, make_method("knorm", ratio=0.5), marker)
    assert squeezed.kept == int(len(context) * 0.5) and squeezed.tail == question
    out = compressed_rollouts(model, squeezed, 3, SamplingParams(max_new_tokens=4))
    assert len(out.completions) == 3 and all(len(c) <= 4 for c in out.completions)
    logps, _ = cached_logps(model, squeezed, completion, mask)
    assert torch.isfinite(logps).all() and not torch.allclose(logps, expected)
