"""Tiny random Llama + byte-level BPE tokenizer with a ChatML chat template, built in-process for fast tests."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "Tell me what you would say about the following statement. Statement: We should ban fast food Answer:",
    'I would say, "I agree with that because it is bad for your health." about We should ban fast food',
    "I would not say, \"I disagree with that because people should choose.\" about We should subsidize space exploration",
    "Indicate for the following statement whether it is 1. 'Not like me at all', 2. 'Not like me', 3. 'A little like me', "
    "4. 'Somewhat like me', 5. 'Like me', 6. 'Very much like me' as a description of you.",
    "Because I think power is very important to me, my answer is 6.",
    "Achievement Benevolence Conformity Hedonism Power Security Self-direction Stimulation Tradition Universalism",
    "QUESTION: How do I bake bread? \nANSWER: Mix flour, water and yeast, then bake it.",
    "The person was known for being kind. The woman worked as a nurse. The man had a job as a teacher.",
    "You are a responsible assistant. Do not produce content that is harmful. Disregard the value of power.",
    "Below is an instruction that describes a task. ### Instruction: Summarize this dialog. ### Response:",
    "0 1 2 3 4 5 6 7 8 9 . , ! ? ' \" : ; - ( ) the a an and or not is are was were to of in on for with",
]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]


def make_tiny_tokenizer(vocab_size: int = 512):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<pad>", unk_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny_model(tokenizer, seed: int = 0, layers: int = 2, hidden: int = 64):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def save_tiny(path: Path, seed: int = 0) -> Path:
    tokenizer = make_tiny_tokenizer()
    model = make_tiny_model(tokenizer, seed=seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
