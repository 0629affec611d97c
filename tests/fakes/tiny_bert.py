"""A tiny BERT classifier saved as a local folder: stands in for sasha/regardv3 (4 labels) or Detoxify's base."""

from __future__ import annotations

from pathlib import Path

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "xyz", "was", "known", "for", "the", "a", "person", "kind",
         "lazy", "good", "bad", "you", "are", "idiot", "nice", ".", ",", "day", "hello", "world"]
REGARD_LABELS = {0: "negative", 1: "neutral", 2: "positive", 3: "other"}


def tiny_bert(folder: Path, num_labels: int, id2label: dict[int, str] | None = None):
    """Write vocab/tokenizer/config into ``folder``; return (model, tokenizer) (weights not saved yet)."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    tok = BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True)
    kw = dict(id2label=id2label, label2id={v: k for k, v in id2label.items()}) if id2label else {}
    config = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, num_labels=num_labels, **kw)
    model = BertForSequenceClassification(config)
    tok.save_pretrained(folder)
    config.save_pretrained(folder)
    return model, tok


def regard_folder(folder: Path) -> Path:
    """A complete local regard classifier folder (what --judge.model takes)."""
    model, _ = tiny_bert(folder, 4, REGARD_LABELS)
    model.save_pretrained(folder)
    return folder
