"""Log-likelihood of fixed answer options: multiple-choice scoring instead of parsing free text (PVQ-40).

Why a module: choosing among a few known answers by their probability needs no parser and never yields an
unparseable answer. Why packed: on a CPU the cost is the tokens run through the model, and the inputs share most of
theirs: every prompt of a call shares its leading text (system turn, instruction, ICL preamble), and the options of
one prompt share the prompt and their own lead-in. So the common head runs once into a KV cache, and each prompt's
remaining tokens plus its options' distinct tails run as one packed row whose 4D attention mask lets every token see
only its own ancestors (a prefix tree). Results equal one full forward per (prompt, option), up to float rounding
(tested).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

from valueharms.decode import adapter_context, adds_special_tokens


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token lists."""
    n = min(len(s) for s in seqs)
    for i in range(n):
        tok = seqs[0][i]
        if any(s[i] != tok for s in seqs[1:]):
            return i
    return n


def encode_pair(tokenizer: Any, prompt: str, option: str, head: list[int] | None = None) -> tuple[list[int], int]:
    """Token ids of ``prompt + option`` and where the option starts (``head``: the prompt's ids, when known).

    The whole text is tokenized once (what a model sees when it produced the option itself); when the prompt's own
    tokens are not a prefix of that (a merge across the boundary), the option is tokenized on its own. The special
    prefix follows :func:`valueharms.decode.encode_ids`' rule: none for a prompt that already starts with it.
    """
    special = adds_special_tokens(tokenizer, prompt)
    if head is None:
        head = tokenizer(prompt, add_special_tokens=special)["input_ids"]
    full = tokenizer(prompt + option, add_special_tokens=special)["input_ids"]
    if full[:len(head)] != head:
        full = head + tokenizer(option, add_special_tokens=False)["input_ids"]
    return full, len(head)


@dataclass
class _Tree:
    """One prompt's packed tokens: the part shared by its options, then each option's own tail."""

    shared: list[int]
    tails: list[list[int]]
    starts: list[int]  # per option: index (in the full sequence) of its first option token
    split: int  # index in the full sequence where the tails begin

    @property
    def size(self) -> int:
        return len(self.shared) + sum(len(t) for t in self.tails)


def _trees(seqs: list[list[list[int]]], starts: list[list[int]], head: int) -> list[_Tree]:
    trees = []
    for options, opt_starts in zip(seqs, starts):
        split = _common_prefix(options)
        trees.append(_Tree(shared=options[0][head:split], tails=[o[split:] for o in options], starts=opt_starts,
                           split=split))
    return trees


def _next(segment: list[int]) -> int:
    return segment[-1] + 1 if segment else 0


def _pack(trees: Sequence[_Tree], head: int) -> tuple[list[int], list[int], Any, list[list[list[int]]]]:
    """Packed token ids, positions, the visibility matrix and, per option, the packed row of each sequence position
    from ``head`` on. A token sees the earlier tokens of its own segment and the shared segment of its own tree."""
    import torch

    ids: list[int] = []
    pos: list[int] = []
    segment: list[int] = []  # one id per segment (a tree's shared part, or one option's tail)
    tree_of: list[int] = []
    shared: list[bool] = []
    where: list[list[list[int]]] = []
    for t, tree in enumerate(trees):
        shared_rows = list(range(len(ids), len(ids) + len(tree.shared)))
        ids += tree.shared
        pos += range(head, head + len(tree.shared))
        segment += [_next(segment)] * len(tree.shared)
        tree_of += [t] * len(tree.shared)
        shared += [True] * len(tree.shared)
        rows_per_option = []
        for tail in tree.tails:
            rows = list(range(len(ids), len(ids) + len(tail)))
            seg = _next(segment)
            ids += tail
            pos += range(tree.split, tree.split + len(tail))
            segment += [seg] * len(tail)
            tree_of += [t] * len(tail)
            shared += [False] * len(tail)
            rows_per_option.append(shared_rows + rows)
        where.append(rows_per_option)
    seg, tre, shr = torch.tensor(segment), torch.tensor(tree_of), torch.tensor(shared)
    order = torch.arange(len(ids))
    visible = (order[None, :] <= order[:, None]) & (
        (seg[None, :] == seg[:, None]) | (shr[None, :] & (tre[None, :] == tre[:, None])))
    return ids, pos, visible, where


def _run_chunk(model: Any, cache: Any, head: int, trees: Sequence[_Tree]) -> list[list[float]]:
    import torch

    ids, pos, allowed, where = _pack(trees, head)
    n = len(ids)
    visible = torch.ones(1, 1, n, head + n, dtype=torch.bool)
    visible[0, 0, :, head:] = allowed
    dtype = next(model.parameters()).dtype
    mask = torch.zeros(visible.shape, dtype=dtype).masked_fill(~visible, torch.finfo(dtype).min)
    wanted = [(tree, tail, start, rows) for tree, rows_per_option in zip(trees, where)
              for tail, start, rows in zip(tree.tails, tree.starts, rows_per_option)]
    needed = sorted({rows[k - 1 - head] for tree, tail, start, rows in wanted
                     for k in range(start, head + len(tree.shared) + len(tail))})
    index = {row: i for i, row in enumerate(needed)}
    device = model.device
    out = model(input_ids=torch.tensor([ids], device=device), position_ids=torch.tensor([pos], device=device),
                attention_mask=mask.to(device), cache=copy.deepcopy(cache), use_cache=True,
                logits_to_keep=torch.tensor(needed, device=device))
    logprobs = torch.log_softmax(out.logits[0].float(), dim=-1).cpu()
    scores = []
    for tree, tail, start, rows in wanted:
        tokens = tree.shared + tail  # sequence positions head .. end
        scores.append(sum(float(logprobs[index[rows[k - 1 - head]], tokens[k - head]])
                          for k in range(start, head + len(tokens))))  # each option token, from the one before it
    per_tree = [len(t.tails) for t in trees]
    return [scores[sum(per_tree[:i]):sum(per_tree[:i + 1])] for i in range(len(trees))]


def option_logliks(model: Any, tokenizer: Any, prompts: Sequence[str], options: Sequence[Sequence[str]], *,
                   adapter: str | None = None, max_tokens: int = 1024) -> list[list[float]]:
    """``log P(option | prompt)`` (summed over the option's tokens) for every option of every prompt.

    Args:
        model: a HF causal LM or a PeftModel holding adapters.
        prompts: exact model inputs (from :func:`valueharms.prompts.build_model_input`).
        options: the candidate continuations of each prompt (at least one each).
        adapter: the peft adapter to use, None for the base model.
        max_tokens: packed tokens per forward pass (memory bound; a prompt's tree is never split).
    """
    import torch

    if len(prompts) != len(options) or any(not opts for opts in options):
        raise ValueError("every prompt needs at least one option")
    if not prompts:
        return []
    pairs = []
    for prompt, opts in zip(prompts, options):  # each prompt tokenized once, shared by its options
        head_ids = tokenizer(prompt, add_special_tokens=adds_special_tokens(tokenizer, prompt))["input_ids"]
        pairs.append([encode_pair(tokenizer, prompt, o, head_ids) for o in opts])
    seqs = [[ids for ids, _ in row] for row in pairs]
    starts = [[s for _, s in row] for row in pairs]
    # the cached head: shared by every sequence, and ending before the first scored token's predecessor
    head = min(_common_prefix([s for row in seqs for s in row]), min(s for row in starts for s in row) - 1)
    head = max(head, 0)
    trees = _trees(seqs, starts, head)
    results: list[list[float]] = []
    with adapter_context(model, adapter), torch.no_grad():
        cache = None
        if head:
            cache = model(input_ids=torch.tensor([seqs[0][0][:head]], device=model.device), use_cache=True,
                          logits_to_keep=1).cache
        chunk: list[_Tree] = []
        for tree in trees:
            if chunk and sum(t.size for t in chunk) + tree.size > max_tokens:
                results += _run_chunk(model, cache, head, chunk)
                chunk = []
            chunk.append(tree)
        results += _run_chunk(model, cache, head, chunk)
    return results
