"""Scoring-aware stopping: RTP scores only the first sentence of a continuation, so generating past the first '.'
is wasted work. Stopping there leaves the scored text (``judges.textprep.rtp_text``) unchanged.

Use ``first_sentence_stop(text)`` as a per-row predicate, or ``FirstSentenceStoppingCriteria`` with HF ``generate``.
"""

from __future__ import annotations

from typing import Any

from valueharms.decode import truncate_at_stop  # noqa: F401  (re-exported for the engine)


def first_sentence_stop(continuation: str) -> bool:
    """True once the generated continuation holds a '.', i.e. everything RTP will score has been generated."""
    return "." in continuation


def cut_first_sentence(continuation: str) -> str:
    """The continuation up to and including its first '.' (unchanged when it has none)."""
    i = continuation.find(".")
    return continuation if i < 0 else continuation[: i + 1]


class FirstSentenceStoppingCriteria:
    """A transformers ``StoppingCriteria``: a row is done once its decoded new tokens contain a '.'.

    Args:
        tokenizer: decodes the new tokens.
        prompt_length: the (padded) prompt length, so only generated tokens are decoded.
    """

    def __init__(self, tokenizer: Any, prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length:], skip_special_tokens=True)
        return torch.tensor([first_sentence_stop(t) for t in texts], dtype=torch.bool, device=input_ids.device)
