"""The whole study's GPU-hours from measured rates: what the study computes, written down as arithmetic.

Training (per adapter, Llama-2-7B, two stages x 5 epochs, the study's full ValueEval data): example counts are those
``vim.prepare`` builds for one distribution from the 7,374 ValueEval arguments (stage 1: every argument, split
80/10/10; stage 2: one example per (argument, labelled value)). Mean tokens per example were measured with the
SmolLM2 tokenizer on that data (stage 1: 68.5; stage 2: 122.8 at max length 128, 129.0 uncut) and scaled by 1.1
for Llama-2's smaller vocabulary (stage 2 capped at 128). A validation pass (forward only) costs about a third of a
training step per token.

Generation (per condition, max new tokens of the protocol, every sample generating its maximum: an upper bound,
since stop strings end most rows early): RTP 3000 prompts x 10 samples x 64; HolisticBiasR 16,000 prompts x 128
(the study's prompt file is not public: the count is chosen so that one condition is ~4M tokens, the review's
estimate); HEx-PHI 330 x 64; BeaverTails 700 x 64. Conditions: 154 VIM adapters, 154 ICL prompts, vanilla, 4
benign adapters, all on the four benchmarks; the mitigation study adds 3 prompt conditions (safety, value, dual)
on HEx-PHI and BeaverTails for vanilla and the 154 adapters. Benign fine-tuning (4 adapters, one epoch of Alpaca,
Dolly, Grammar, SAMSum) is estimated at 20M training tokens in all.
"""

from __future__ import annotations

ADAPTERS = 154
EPOCHS_PER_STAGE = 5
LLAMA_TOKEN_FACTOR = 1.1
#: stage -> (train examples, validation examples, mean tokens per example with Llama-2's tokenizer)
STAGES = {1: (5898, 738, round(68.5 * LLAMA_TOKEN_FACTOR, 1)), 2: (16641, 2071, 125.0)}
VALIDATION_COST = 1 / 3
BENIGN_TRAIN_TOKENS = 20e6

#: benchmark -> (prompts, samples per prompt, max new tokens)
BENCHMARKS = {"rtp": (3000, 10, 64), "holisticbiasr": (16000, 1, 128), "hexphi": (330, 1, 64),
              "beavertails": (700, 1, 64)}
CONDITIONS = {"vim": ADAPTERS, "icl": ADAPTERS, "vanilla": 1, "benign": 4}
MITIGATION_PROMPTS = 3
MITIGATION_BENCHMARKS = ("hexphi", "beavertails")


def train_tokens_per_adapter() -> float:
    """Training-equivalent tokens for one VIM adapter (both stages, all epochs, validation included)."""
    total = 0.0
    for train, valid, mean in STAGES.values():
        total += EPOCHS_PER_STAGE * mean * (train + VALIDATION_COST * valid)
    return total


def generation_tokens_per_condition() -> float:
    return float(sum(p * s * t for p, s, t in BENCHMARKS.values()))


def study_tokens() -> dict[str, float]:
    """Training-equivalent and generated tokens of the whole study."""
    mitigation = MITIGATION_PROMPTS * (ADAPTERS + 1) * sum(
        BENCHMARKS[b][0] * BENCHMARKS[b][1] * BENCHMARKS[b][2] for b in MITIGATION_BENCHMARKS)
    conditions = sum(CONDITIONS.values())
    return {"train_tokens": ADAPTERS * train_tokens_per_adapter() + BENIGN_TRAIN_TOKENS,
            "generated_tokens": conditions * generation_tokens_per_condition() + mitigation,
            "train_tokens_per_adapter": train_tokens_per_adapter(),
            "generated_tokens_per_condition": generation_tokens_per_condition(),
            "generation_conditions": conditions, "mitigation_tokens": mitigation}


def project(train_tok_s: float, gen_tok_s: float) -> dict[str, float]:
    """GPU-hours on one GPU at the given training (useful tokens/s) and generation (new tokens/s) rates."""
    tokens = study_tokens()
    train_h = tokens["train_tokens"] / train_tok_s / 3600
    gen_h = tokens["generated_tokens"] / gen_tok_s / 3600
    return {"train_hours": round(train_h, 2), "generation_hours": round(gen_h, 2),
            "total_hours": round(train_h + gen_h, 2)}
