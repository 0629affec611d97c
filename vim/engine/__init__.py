"""Fast generation: ``MultiLoRAEngine`` (many LoRA adapters of one base model in one batch) and scoring-aware
stopping helpers. See docs/performance.md."""

from vim.engine.multilora import MultiLoRAEngine, MultiLoRALinear, load_adapter, sample_next

__all__ = ["MultiLoRAEngine", "MultiLoRALinear", "load_adapter", "sample_next"]
