#!/usr/bin/env python3
"""Tiny Hugging Face models and their expected outputs, made with Python
transformers, for test/hub-*.test.ts, test/generate.test.ts and
test/lora.test.ts (which run without Python).

How to run (once; the outputs are committed under test/fixtures/hf/):

    python3 -m venv /tmp/venv
    /tmp/venv/bin/pip install torch transformers safetensors peft   # the CPU torch wheel
    /tmp/venv/bin/python scripts/make-hf-fixtures.py            # writes test/fixtures/hf/

Made with torch 2.13 (CPU), transformers 5.18, peft 0.21. Every model is
float32 with random weights (seeded), small enough that the whole folder stays
well under 2 MB. Each model directory gets expected.json:
    input_ids [B][T], logits [B][T][V] (float32, from model(input_ids)),
    prompt [P], greedy [N] (model.generate(prompt, do_sample=False), new ids only).

Round trip the other way (what hub.saveModel writes, loaded by transformers):

    /tmp/venv/bin/python scripts/make-hf-fixtures.py --check DIR --expected test/fixtures/hf/NAME/expected.json

loads DIR with AutoModelForCausalLM, runs the expected input and prints the
largest relative logits difference (exit status 1 above 1e-4).
"""
import argparse
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    RwkvConfig,
    RwkvForCausalLM,
)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "hf")
VOCAB = 64
EOS = 63


def randomize(model, seed, scale=0.2):
    """Every parameter moved off its initialisation (zero biases and LoRA B included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def inputs(seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB - 1, (2, 12), generator=g)
    prompt = torch.randint(0, VOCAB - 1, (1, 5), generator=g)
    return ids, prompt


def rounded(t):
    return [round(float(x), 7) for x in t]


def expected(model, seed):
    ids, prompt = inputs(seed)
    model.eval()
    with torch.no_grad():
        logits = model(ids).logits.float()
        out = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=10,
            do_sample=False,
            eos_token_id=EOS,
            pad_token_id=EOS,
        )
    return {
        "input_ids": ids.tolist(),
        "logits": [[rounded(row) for row in seq] for seq in logits],
        "prompt": prompt[0].tolist(),
        "greedy": out[0, prompt.shape[1]:].tolist(),
    }


def save(model, name, seed, **kwargs):
    out = os.path.join(ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    model.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=EOS)
    model.save_pretrained(out, **kwargs)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected(model, seed), f)
    return out


def to_transformers4_layout(out):
    """Rewrites config.json as transformers 4 wrote it (rope_theta, rope_scaling, torch_dtype)."""
    path = os.path.join(out, "config.json")
    with open(path) as f:
        config = json.load(f)
    params = config.pop("rope_parameters", None) or {}
    config["rope_theta"] = params.pop("rope_theta", 10000.0)
    if params.get("rope_type", "default") != "default":
        config["rope_scaling"] = params
    config["torch_dtype"] = config.pop("dtype", "float32")
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def check_reload(out, name):
    """transformers itself reloads the fixture (either config layout) to the same logits."""
    with open(os.path.join(out, "expected.json")) as f:
        exp = json.load(f)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor(exp["input_ids"])).logits
    diff = (logits - torch.tensor(exp["logits"])).abs().max().item()
    assert diff < 1e-5, f"{name}: reload differs by {diff}"


def llama_like(config_cls, model_cls, seed, **kw):
    torch.manual_seed(seed)
    base = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=0,
        eos_token_id=EOS,
    )
    base.update(kw)
    model = model_cls(config_cls(**base)).float()
    randomize(model, seed)
    return model


def make_all():
    os.makedirs(ROOT, exist_ok=True)
    torch.set_num_threads(1)

    # RWKV-4: intermediate_size deliberately not 4·hidden.
    torch.manual_seed(1)
    rwkv = RwkvForCausalLM(
        RwkvConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            attention_hidden_size=32,
            intermediate_size=96,
            context_length=64,
            bos_token_id=0,
            eos_token_id=EOS,
        )
    ).float()
    randomize(rwkv, 1, scale=0.1)
    check_reload(save(rwkv, "rwkv4", 1), "rwkv4")
    # The same model as PyTorch's pytorch_model.bin (torch.save zip archive), one tensor with
    # non-contiguous strides (a transposed copy viewed back), as older Hub repositories hold it.
    out = os.path.join(ROOT, "rwkv4-bin")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for name in ("config.json", "generation_config.json", "expected.json"):
        shutil.copy(os.path.join(ROOT, "rwkv4", name), out)
    state = {k: v.clone() for k, v in rwkv.state_dict().items()}
    state["head.weight"] = state["head.weight"].t().contiguous().t()
    assert not state["head.weight"].is_contiguous()
    torch.save(state, os.path.join(out, "pytorch_model.bin"))
    check_reload(out, "rwkv4-bin")
    # The same weights stored as bfloat16 (expected outputs from the rounded weights in float32).
    rwkv_bf16 = RwkvForCausalLM(rwkv.config).float()
    with torch.no_grad():
        for p, q in zip(rwkv_bf16.parameters(), rwkv.parameters()):
            p.copy_(q.to(torch.bfloat16).float())
    out = save(rwkv_bf16.to(torch.bfloat16), "rwkv4-bf16", 1)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected(rwkv_bf16.float(), 1), f)

    # Llama, grouped-query attention (4 query heads, 2 key/value heads), tied embeddings.
    llama_tied = llama_like(LlamaConfig, LlamaForCausalLM, 2, tie_word_embeddings=True)
    check_reload(save(llama_tied, "llama-gqa-tied", 2), "llama-gqa-tied")

    # Llama, untied, one key/value head, llama3 rope scaling, in shards, config in the 4.x layout.
    llama_untied = llama_like(
        LlamaConfig,
        LlamaForCausalLM,
        3,
        num_key_value_heads=1,
        tie_word_embeddings=False,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8,
        },
    )
    out = save(llama_untied, "llama-untied-sharded", 3, max_shard_size="20KB")
    to_transformers4_layout(out)
    check_reload(out, "llama-untied-sharded")

    mistral = llama_like(MistralConfig, MistralForCausalLM, 4, sliding_window=None, tie_word_embeddings=False)
    check_reload(save(mistral, "mistral", 4), "mistral")

    qwen = llama_like(Qwen2Config, Qwen2ForCausalLM, 5, tie_word_embeddings=False, use_sliding_window=False)
    check_reload(save(qwen, "qwen2", 5), "qwen2")

    make_adapter()
    print("fixtures written to", os.path.normpath(ROOT))


def make_adapter():
    """A PEFT LoRA adapter (r 4, alpha 8) on q/k/v/down projections of llama-gqa-tied."""
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "llama-gqa-tied"), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "down_proj"])
    model = get_peft_model(base, config)
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    out = os.path.join(ROOT, "llama-lora")
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))  # PEFT's model-card template
    path = os.path.join(out, "adapter_config.json")
    with open(path) as f:
        adapter_config = json.load(f)
    adapter_config["base_model_name_or_path"] = "llama-gqa-tied"  # not this machine's path
    adapter_config["target_modules"] = sorted(adapter_config["target_modules"])  # PEFT keeps a set
    with open(path, "w") as f:
        json.dump(adapter_config, f, indent=2)
    ids, _ = inputs(2)
    model.eval()
    with torch.no_grad():
        logits = model(ids).logits
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"input_ids": ids.tolist(), "logits": [[rounded(r) for r in s] for s in logits]}, f)


def check(directory, expected_path):
    with open(expected_path) as f:
        exp = json.load(f)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(exp["input_ids"])).logits
    want = torch.tensor(exp["logits"])
    rel = ((logits - want).abs().max() / want.abs().max()).item()
    print(f"{directory}: transformers {transformers.__version__} logits, largest difference relative to max |logit|: {rel:.3g}")
    return rel <= 1e-4


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", metavar="DIR", help="a directory written by hub.saveModel")
    parser.add_argument("--expected", metavar="JSON", help="the expected.json to compare it with")
    args = parser.parse_args()
    if args.check:
        sys.exit(0 if check(args.check, args.expected) else 1)
    make_all()
