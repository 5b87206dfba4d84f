#!/usr/bin/env python3
"""Tokenizer and TRL-tokenization fixtures for test/tokenizer.test.ts and test/data.test.ts.

Run once, by hand, when the fixtures must change (CI never runs Python):

    python3 -m venv /tmp/venv-text
    /tmp/venv-text/bin/pip install tokenizers transformers jinja2 trl torch
    /tmp/venv-text/bin/python scripts/make-tokenizer-fixtures.py

Versions used for the committed files are recorded in test/fixtures/tokenizers/versions.json.

It writes, under test/fixtures/tokenizers/:
  bpe-byte-level/   a GPT-2 / Llama-3 style tokenizer (regex split + byte-level BPE) trained here on a
                    small corpus written for it, Llama-3 style special tokens and chat template in
                    tokenizer_config.json, a pad token;
  llama2/           a SentencePiece-style BPE with byte fallback in Llama-2's tokenizer.json layout
                    (normalizer Prepend('▁') + Replace(' ', '▁'), no pre-tokenizer), chat template in
                    tokenizer_config.json, no pad token;
  metaspace/        the same model in the newer layout (Metaspace pre-tokenizer, prepend_scheme 'first'),
                    chat template in chat_template.jinja;
  bytes/            256 byte tokens, id = byte value, no special tokens: the vocabulary of the demo's
                    byte-level models (examples/demo), so their ids are the UTF-8 bytes of the text;
  cases.json        per tokenizer: vocab size, special token ids, and for each text the ids that Python
                    `tokenizers` gives (with and without special tokens), what transformers' decode
                    gives (with and without skip_special_tokens), and chat templates rendered by
                    transformers' apply_chat_template;
  trl-cases.json    rows in TRL's formats and what TRL's own ORPOTrainer.tokenize_row (after its
                    maybe_extract_prompt / maybe_apply_chat_template) and SFTTrainer's dataset
                    preparation produce, on a tiny random model made here (no weights are downloaded).
"""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import tokenizers
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test" / "fixtures" / "tokenizers"

# Training text written for these fixtures (no outside corpus): plain English, some code-like
# lines, accented Latin, Greek, Cyrillic, CJK and emoji, so that the merges cover several scripts.
CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs on.",
    "Tokenizers split text into pieces, and the pieces into ids. Ids go into the model.",
    "A language model predicts the next token from the tokens before it, one after another.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # prints 5",
    "for (let i = 0; i < 10; i++) { total += values[i]; }",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 1000 2024 3.14159 -7 1e-5",
    "Café, naïve, résumé, déjà vu, façade, jalapeño, Zürich, São Paulo, Ærøskøbing.",
    "Γειά σου κόσμε. Привет, мир. 你好，世界。こんにちは世界。안녕하세요 세계.",
    "Emoji: 🙂 😀 🎉 👍🏽 🇫🇷 👩‍💻 ❤️ and more text after them.",
    "  Leading spaces, trailing spaces,   runs   of   spaces,\ttabs\t\tand\n\nnew lines.  ",
    "She said: \"don't, won't, can't, I'm, you're, it's, we'll, they've, he'd\".",
    "User: what is the capital of France?\nAssistant: The capital of France is Paris.",
    "Preference data pairs a chosen answer with a rejected one for the same prompt.",
    "ORPO adds an odds-ratio term to the negative log-likelihood of the chosen answer.",
    "The goldfish loss drops about one token in k from the loss so that text is not memorised.",
] * 8

# Texts whose ids are checked: ASCII, Unicode, emoji, whitespace runs, special tokens in text.
TEXTS = [
    "",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "don't stop-believing 12345 3.14 x+y=z",
    "Café déjà vu — naïve façade, Zürich.",
    "Γειά σου κόσμε; Привет, мир; 你好，世界",
    "emoji 🙂🎉 flags 🇫🇷🇯🇵 family 👩‍👩‍👧 skin 👍🏽 heart ❤️",
    "   leading",
    "trailing   ",
    "a  b   c    d\t\te\n\nf\r\ng",
    " \n \t ",
    "line one\nline two\n\n\nline five",
    "def f(x):\n    return x * 2\n",
    "unseen bytes: \u0000\u0007 \u00ff \u2028 \U0001F9EC",
]


def special_texts(specials):
    """Texts with the tokenizer's special tokens inside them (added tokens are split out first)."""
    a, b = specials[0], specials[1]
    return [
        f"{a}Hello{b}",
        f"before {a} middle {b} after",
        f"{b}{b}  {a}\n{a}",
    ]


def save_tokenizer(tok: Tokenizer, out: Path, config: dict, chat_template_file: str | None = None):
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    if chat_template_file is not None:
        (out / "chat_template.jinja").write_text(chat_template_file)


def byte_level_bpe():
    """GPT-2 / Llama-3 style: Llama-3's split regex, byte-level alphabet, BPE, BOS added by the post-processor."""
    llama3_split = (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+"
    )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(tokenizers.Regex(llama3_split), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    specials = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|finetune_right_pad_id|>",
    ]
    trainer = trainers.BpeTrainer(
        vocab_size=700, special_tokens=[], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.add_special_tokens(specials)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B", special_tokens=[("<|begin_of_text|>", bos)]
    )
    chat_template = (
        "{{- bos_token }}\n"
        "{%- if messages[0]['role'] == 'system' %}\n"
        "    {%- set system_message = messages[0]['content'] | trim %}\n"
        "    {%- set messages = messages[1:] %}\n"
        "{%- else %}\n"
        "    {%- set system_message = 'You are a helpful assistant.' %}\n"
        "{%- endif %}\n"
        "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + system_message + '<|eot_id|>' }}\n"
        "{%- for message in messages %}\n"
        "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}\n"
        "{%- endfor %}\n"
        "{%- if add_generation_prompt %}\n"
        "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
        "{%- endif %}\n"
    )
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "pad_token": "<|finetune_right_pad_id|>",
        "clean_up_tokenization_spaces": True,
        "model_max_length": 131072,
        "chat_template": chat_template,
    }
    return tok, config, specials


def sentencepiece_bpe():
    """A SentencePiece-style BPE with byte fallback: <unk>, <s>, </s>, then <0x00>..<0xFF>, then the pieces."""
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    trainer_tok.train_from_iterator(CORPUS, trainer=trainer)
    trained = json.loads(trainer_tok.to_str())
    pieces = sorted(trained["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in pieces:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = trained["model"]["merges"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
    model = models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)

    def with_specials(tok):
        tok.add_special_tokens(["<unk>", "<s>", "</s>"])
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
        )
        return tok

    # Llama-2's layout on the Hub: the normalizer writes the ▁s, no pre-tokenizer.
    llama2 = Tokenizer(model)
    llama2.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    llama2.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    llama2 = with_specials(llama2)

    # The newer layout (Metaspace pre-tokenizer, ▁ only before the first piece).
    model2 = models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    metaspace = Tokenizer(model2)
    metaspace.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    metaspace.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    metaspace = with_specials(metaspace)

    chat_template = (
        "{%- if messages[0]['role'] == 'system' %}"
        "{%- set loop_messages = messages[1:] %}{%- set system_message = messages[0]['content'] %}"
        "{%- else %}{%- set loop_messages = messages %}{%- set system_message = false %}{%- endif %}"
        "{%- for message in loop_messages %}"
        "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
        "{%- endif %}"
        "{%- if loop.index0 == 0 and system_message != false %}"
        "{%- set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
        "{%- else %}{%- set content = message['content'] %}{%- endif %}"
        "{%- if message['role'] == 'user' %}{{- bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
        "{%- elif message['role'] == 'assistant' %}{{- ' ' + content.strip() + ' ' + eos_token }}{%- endif %}"
        "{%- endfor %}"
    )
    base_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
    }
    return llama2, metaspace, chat_template, base_config, ["<s>", "</s>"]


def bytes_tokenizer():
    """256 tokens, id = byte value: byte-level BPE without merges or regex split, no special tokens."""
    byte_to_char = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins, unordered
    # GPT-2's bytes_to_unicode order: the printable bytes map to themselves, the rest to 256 + n.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    mapping, n = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + n)
            n += 1
    assert set(mapping.values()) == set(byte_to_char)
    vocab = {mapping[b]: b for b in range(256)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False, "model_max_length": 1048576}
    return tok, config


CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "  4  "},
        {"role": "user", "content": "And 3 + 3? 🙂"},
    ],
    [
        {"role": "user", "content": "Où est la gare ?"},
        {"role": "assistant", "content": "Tout droit, puis à gauche."},
    ],
    # roles that do not alternate: the Llama-2 template raises
    [{"role": "assistant", "content": "I speak first."}],
]


def tokenizer_cases(name: str, directory: Path, specials: list[str], has_template: bool):
    raw = Tokenizer.from_file(str(directory / "tokenizer.json"))
    hf = transformers.AutoTokenizer.from_pretrained(str(directory))
    texts = TEXTS + (special_texts(specials) if specials else [])
    cases = []
    for text in texts:
        with_special = raw.encode(text, add_special_tokens=True).ids
        without = raw.encode(text, add_special_tokens=False).ids
        assert hf(text)["input_ids"] == with_special, (name, text)
        assert hf(text, add_special_tokens=False)["input_ids"] == without, (name, text)
        cases.append(
            {
                "text": text,
                "ids": with_special,
                "idsWithoutSpecialTokens": without,
                "decoded": hf.decode(with_special, skip_special_tokens=False),
                "decodedSkippingSpecialTokens": hf.decode(with_special, skip_special_tokens=True),
            }
        )
    chats = []
    if has_template:
        for messages in CONVERSATIONS:
            for add_generation_prompt in (False, True):
                try:
                    rendered = hf.apply_chat_template(
                        messages, tokenize=False, add_generation_prompt=add_generation_prompt
                    )
                    chats.append({"messages": messages, "addGenerationPrompt": add_generation_prompt, "text": rendered})
                except Exception as error:  # the template's raise_exception
                    chats.append(
                        {"messages": messages, "addGenerationPrompt": add_generation_prompt, "error": str(error)}
                    )
    return {
        "vocabSize": len(hf),
        "bosTokenId": hf.bos_token_id,
        "eosTokenId": hf.eos_token_id,
        "padTokenId": hf.pad_token_id,
        "texts": cases,
        "chats": chats,
    }


# ---- TRL ----------------------------------------------------------------------------------------

PREFERENCE_ROWS = [
    # standard format, explicit prompt
    {"prompt": "What colour is the sky?", "chosen": " It is blue.", "rejected": " It is green."},
    {"prompt": "Name a fruit:", "chosen": " apple 🍎", "rejected": " a chair"},
    {"prompt": "Café ", "chosen": "au lait", "rejected": "noir, très noir"},
    # conversational, explicit prompt
    {
        "prompt": [{"role": "user", "content": "Say hi."}],
        "chosen": [{"role": "assistant", "content": "Hi there!"}],
        "rejected": [{"role": "assistant", "content": "No."}],
    },
    # conversational, implicit prompt (TRL extracts the shared turns)
    {
        "chosen": [
            {"role": "user", "content": "2 + 2?"},
            {"role": "assistant", "content": "4"},
        ],
        "rejected": [
            {"role": "user", "content": "2 + 2?"},
            {"role": "assistant", "content": "22"},
        ],
    },
]

TEXT_ROWS = [
    {"text": "A short document."},
    {"text": "A longer document that the truncation will cut: " + "words " * 40},
    {"messages": [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello, how can I help?"}]},
    {"prompt": "Question: 2 + 2 = ?", "completion": " Answer: 4."},
    {
        "prompt": [{"role": "user", "content": "Spell 'cat'."}],
        "completion": [{"role": "assistant", "content": "C, A, T."}],
    },
]


def tiny_llama(vocab_size: int):
    import torch

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
    )
    return transformers.LlamaForCausalLM(config)


def trl_cases(directory: Path):
    """What TRL's trainers make of the rows, read back from their prepared datasets."""
    import datasets
    from trl import SFTConfig, SFTTrainer
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    hf = transformers.AutoTokenizer.from_pretrained(str(directory))
    model = tiny_llama(len(hf))
    work = tempfile.mkdtemp()
    try:
        preference = []
        for row in PREFERENCE_ROWS:
            args = ORPOConfig(output_dir=work, max_length=512, report_to=[], remove_unused_columns=False, use_cpu=True, bf16=False)
            trainer = ORPOTrainer(
                model=model, args=args, processing_class=hf, train_dataset=datasets.Dataset.from_list([row])
            )
            out = trainer.train_dataset[0]
            preference.append(
                {
                    "row": row,
                    "chosenIds": out["chosen_input_ids"],
                    "chosenLabels": out["chosen_labels"],
                    "rejectedIds": out["rejected_input_ids"],
                    "rejectedLabels": out["rejected_labels"],
                }
            )
        text = []
        for max_length in (24, 512):
            for row in TEXT_ROWS:
                args = SFTConfig(output_dir=work, max_length=max_length, report_to=[], packing=False, use_cpu=True, bf16=False)
                trainer = SFTTrainer(
                    model=model, args=args, processing_class=hf, train_dataset=datasets.Dataset.from_list([row])
                )
                if len(trainer.train_dataset) == 0:
                    # TRL drops a row whose truncated labels are all -100 (nothing to learn from).
                    text.append({"row": row, "maxLength": max_length, "droppedByTrl": True})
                    continue
                out = trainer.train_dataset[0]
                labels = out["labels"] if "labels" in out else out["input_ids"]
                text.append({"row": row, "maxLength": max_length, "inputIds": out["input_ids"], "labels": labels})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"tokenizer": directory.name, "preference": preference, "text": text}


def main():
    if OUT.exists():
        for child in ("bpe-byte-level", "llama2", "metaspace", "bytes"):
            shutil.rmtree(OUT / child, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)

    tok, config, bpe_specials = byte_level_bpe()
    save_tokenizer(tok, OUT / "bpe-byte-level", config)

    llama2, metaspace, sp_template, sp_config, sp_specials = sentencepiece_bpe()
    save_tokenizer(llama2, OUT / "llama2", {**sp_config, "chat_template": sp_template})
    save_tokenizer(metaspace, OUT / "metaspace", {**sp_config}, chat_template_file=sp_template)

    btok, bconfig = bytes_tokenizer()
    save_tokenizer(btok, OUT / "bytes", bconfig)
    raw = Tokenizer.from_file(str(OUT / "bytes" / "tokenizer.json"))
    sample = "byte ids: é 🙂\n\t\x00"
    assert raw.encode(sample).ids == list(sample.encode("utf-8")), "bytes tokenizer ids must be the UTF-8 bytes"

    cases = {
        "bpe-byte-level": tokenizer_cases("bpe-byte-level", OUT / "bpe-byte-level", bpe_specials, True),
        "llama2": tokenizer_cases("llama2", OUT / "llama2", sp_specials, True),
        "metaspace": tokenizer_cases("metaspace", OUT / "metaspace", sp_specials, True),
        "bytes": tokenizer_cases("bytes", OUT / "bytes", [], False),
    }
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")

    trl = [trl_cases(OUT / "bpe-byte-level"), trl_cases(OUT / "llama2")]
    (OUT / "trl-cases.json").write_text(json.dumps(trl, indent=1, ensure_ascii=False) + "\n")

    import trl as trl_module

    versions = {
        "python": sys.version.split()[0],
        "tokenizers": tokenizers.__version__,
        "transformers": transformers.__version__,
        "trl": trl_module.__version__,
    }
    (OUT / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
    print(f"wrote {OUT}: " + ", ".join(f"{k} {v}" for k, v in versions.items()))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
