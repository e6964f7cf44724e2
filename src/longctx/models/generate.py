"""Greedy generation with the local transformers engine."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from longctx.models.loader import LoadedModel


@dataclass
class Generation:
    """One generated continuation.

    Attributes:
        text: The decoded continuation (special tokens removed).
        prompt_tokens: Length of the prompt in tokens.
        new_tokens: Number of generated tokens.
        seconds: Wall time of prefill and decoding.
    """

    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float


class LocalEngine:
    """Runs a :class:`LoadedModel` with transformers' ``generate``, greedy by default."""

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded

    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    def encode(self, text: str) -> list[int]:
        """Token ids of a fully rendered prompt (chat templates already hold the BOS token)."""
        add_special = not self.loaded.has_chat_template
        return self.tokenizer.encode(text, add_special_tokens=add_special)

    @torch.inference_mode()
    def generate_ids(
        self, input_ids: list[int], max_new_tokens: int, do_sample: bool = False
    ) -> Generation:
        """Generate from token ids.

        Args:
            input_ids: The prompt, shape ``(seq_len,)`` as a list.
            max_new_tokens: Upper bound on generated tokens.
            do_sample: Sample instead of greedy decoding.
        """
        start = time.perf_counter()
        ids = torch.tensor([input_ids], dtype=torch.long, device=self.loaded.device)
        model = self.loaded.model
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new = out[0, ids.shape[1] :]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return Generation(text, ids.shape[1], int(new.numel()), time.perf_counter() - start)
