"""Judges (Perspective, GPT-4o/OpenAI-compatible, regard, Detoxify, offline, auto), the SQLite judgement cache,
``valueharms score`` / ``valueharms metrics``, and the benchmark metrics. See ``judges.base`` for the contract."""
