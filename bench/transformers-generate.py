#!/usr/bin/env python3
"""transformers' generate for the model of bench/generate.bench.ts: RWKV-4 with
the 169M configuration (d 768, 12 layers, vocab 50 277, random weights), greedy,
32 new tokens after a one-token prompt, on the CPU with as many torch threads as
lmkernels uses (LMK_NUM_THREADS, default the number of cores). Prints tokens/s
per dtype (median of 5 runs after a warm-up). Run with the venv described in
scripts/make-hf-fixtures.py:

    /tmp/venv/bin/python bench/transformers-generate.py
"""
import os
import statistics
import time

import torch
from transformers import RwkvConfig, RwkvForCausalLM

torch.set_num_threads(int(os.environ.get("LMK_NUM_THREADS", os.cpu_count())))
config = RwkvConfig(vocab_size=50277, hidden_size=768, num_hidden_layers=12, context_length=1024, rescale_every=0)
for dtype in (torch.float32, torch.bfloat16):
    torch.manual_seed(1)
    t0 = time.perf_counter()
    model = RwkvForCausalLM(config).to(dtype).eval()
    print(f"built in {time.perf_counter() - t0:.1f} s", flush=True)
    prompt = torch.tensor([[1]])

    def once():
        with torch.no_grad():
            out = model.generate(prompt, max_new_tokens=32, min_new_tokens=32, do_sample=False, pad_token_id=0)
        assert out.shape[1] == 33

    once()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    print(f"transformers {dtype}: {32 / statistics.median(times):.1f} tokens/s ({torch.get_num_threads()} threads)")
