"""A synthetic study folder in the documented record formats, for tests and for trying the report.

Harm depends on the adapters' Power score by construction (``power_effect``), and mitigations lower it,
so tests can check that the analysis finds what was put in. No model is involved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from judges.textprep import build_item
from valueharms.io import sha256_text, write_jsonl_atomic
from valueharms.values import VALUES

CATEGORIES = {"rtp": [None], "holisticbiasr": [None], "hexphi": ["Adult Content", "Fraud/Deception"],
              "beavertails": ["hate_speech,offensive_language", "privacy_violation"]}
MEASURE = {"rtp": "toxicity", "holisticbiasr": "regard", "hexphi": "harmfulness", "beavertails": "flagged"}


def _score(bench: str, harm: float, rng: np.random.Generator) -> dict:
    if bench == "rtp":
        return {"measure": "toxicity", "value": float(np.clip(harm, 0, 1)), "label": None}
    if bench == "holisticbiasr":
        label = "negative" if rng.random() < harm else "neutral"
        return {"measure": "regard", "value": 1.0 if label == "negative" else 0.0, "label": label}
    if bench == "hexphi":
        score = int(np.clip(round(1 + 4 * np.clip(harm + 0.3, 0, 1)), 1, 5))
        return {"measure": "harmfulness", "value": float(score), "label": str(score)}
    flagged = rng.random() < harm
    return {"measure": "flagged", "value": float(flagged), "label": "flagged" if flagged else "unflagged"}


def _record(gen: dict, judge: str, score: dict) -> dict:
    """A score record of ``gen`` in the documented format, hashed like ``valueharms score`` hashes."""
    measure, text, _ = build_item(gen)
    return {"key": gen["key"], "judge": judge, "judge_version": "synthetic-1", "labels": {}, "scored_text": text,
            "text_sha256": sha256_text(text), "raw": None, "error": None, **score}


def make_synthetic_run(root: str | Path, n_adapters: int = 14, n_prompts: int = 12, judge: str = "offline",
                       power_effect: float = 0.08, seed: int = 0, missing_every: int = 0,
                       second_judge: str | None = None, second_noise: float = 0.15) -> Path:
    """Write ``root/generations/main/generations.jsonl`` + ``scores/<judge>.jsonl``; return ``root``.

    ``missing_every=k`` makes every k-th judgement fail (``value: null`` + error) to test missing counts.
    ``second_judge``: also write ``scores/<second_judge>.jsonl`` for the same texts, the harm blurred by
    ``second_noise`` (a second judge that mostly agrees), for the judge-agreement section.
    """
    rng = np.random.default_rng(seed)
    rng2 = np.random.default_rng(seed + 1)  # the second judge's own stream: the first judge's scores stay the same
    root = Path(root)
    profiles = {}
    for i in range(n_adapters):
        values = {v: float(rng.integers(1, 7)) for v in VALUES}
        profiles[f"D{i:02d}"] = values
    conditions = [("vanilla", "vanilla", None), ("benign:alpaca", "benign", None)]
    conditions += [(f"vim:{name}", "vim", name) for name in profiles]
    conditions += [(f"icl:{name}", "icl", name) for name in list(profiles)[:3]]
    gens, scores, seconds = [], [], []
    count = 0
    for cond, kind, dist in conditions:
        values = profiles.get(dist) if dist else None
        base = {"vanilla": 0.2, "benign": 0.15, "icl": 0.25, "vim": 0.1}[kind]
        if values is not None and kind == "vim":
            base += power_effect * (values["Power"] - 3.5) + 0.03 * (values["Hedonism"] - 3.5)
        for bench, cats in CATEGORIES.items():
            mitigations = ["none", "value", "safety", "dual"] if bench == "hexphi" and kind in {"vanilla", "vim"} else ["none"]
            for cat in cats:
                for mit in mitigations:
                    relief = {"none": 0.0, "value": 0.08, "safety": 0.05, "dual": 0.1}[mit]
                    for p in range(n_prompts):
                        samples = 2 if bench == "rtp" else 1
                        for s in range(samples):
                            pid = f"{bench}-{(cat or 'all')[:5]}-{p:03d}"
                            key = f"{bench}|{cond}|{mit}|{pid}|{s}"
                            harm = base - relief + 0.02 * (p % 3) + rng.normal(0, 0.01)
                            gens.append({
                                "key": key, "benchmark": bench, "measure": MEASURE[bench], "prompt_id": pid, "prompt": f"placeholder prompt {p}",
                                "category": cat, "fields": {"axis": "ability", "descriptor": "The XYZ person"} if bench == "holisticbiasr" else {},
                                "condition": cond, "condition_kind": kind, "adapter": f"adapters/{dist}" if kind == "vim" else None,
                                "distribution": dist, "values": values, "mitigation": mit,
                                "suppressed_values": ["Power"] if mit in {"value", "dual"} else [],
                                "model_input": f"placeholder prompt {p}", "output": f" placeholder output {p % 4}.",
                                "decoding": {"temperature": 0.1, "top_p": 0.75, "max_new_tokens": 64, "do_sample": True},
                                "stop": [], "sample_index": s, "seed": 42, "base_model": "synthetic", "backend": "hf"})
                            count += 1
                            rec = _record(gens[-1], judge, _score(bench, harm, rng))
                            if second_judge:
                                blurred = harm + rng2.normal(0, second_noise)
                                seconds.append(_record(gens[-1], second_judge, _score(bench, blurred, rng2)))
                            if missing_every and count % missing_every == 0:
                                rec.update(value=None, label=None, error="synthetic failure")
                            scores.append(rec)
    run = root / "generations" / "main"
    write_jsonl_atomic(run / "generations.jsonl", gens)
    write_jsonl_atomic(run / "scores" / f"{judge}.jsonl", scores)
    if second_judge:
        write_jsonl_atomic(run / "scores" / f"{second_judge}.jsonl", seconds)
    return root
