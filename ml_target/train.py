"""
A small GPT over bytes and its training, in one file: the only file agents edit (program.md).

Rotary position embeddings, RMSNorm, QK-norm, causal attention, a ReLU^2 MLP, AdamW with a
warm-up and a warm-down. It trains for TIME_BUDGET seconds (start-up and compilation are not
counted), then hands the model to the harness, which scores it on held-out plays it never saw.

    python prepare.py run      # one trial, the way the swarm runs it
"""

import math
import time
from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F

from prepare import (DEVICE, MAX_SEQ_LEN, PROFILE, TIME_BUDGET, VOCAB_SIZE, make_dataloader,
                     save_for_evaluation)

# ---------------------------------------------------------------------------------------------
# Hyperparameters: top-level constants, one per line, which the mutate proposer perturbs.

# Transformer blocks.
DEPTH = 4

# Width of the residual stream.
MODEL_DIM = 128

# Width of one attention head (heads = MODEL_DIM // HEAD_DIM).
HEAD_DIM = 32

# MLP hidden width as a multiple of MODEL_DIM.
MLP_RATIO = 4

# MLP nonlinearity.
ACTIVATION = "relu2"  # choices: relu2, gelu, silu

# Logits are squashed into (-SOFTCAP, SOFTCAP) by a tanh.
SOFTCAP = 15.0

# Sequences per optimizer step.
DEVICE_BATCH_SIZE = 32

# Peak learning rate of the block matrices.
MATRIX_LR = 3e-3

# Peak learning rate of the embedding and the output head.
EMBED_LR = 1e-2

# AdamW decoupled weight decay of the block matrices.
WEIGHT_DECAY = 0.1

# Steps AdamW's second moment averages over (beta2 = 1 - 1 / ADAM_HORIZON).
ADAM_HORIZON = 20

# Share of the budget spent raising the learning rate from zero.
WARMUP_FRAC = 0.05

# Share of the budget at the end spent lowering it to FINAL_LR_FRAC of the peak.
WARMDOWN_FRAC = 0.4

# Learning rate at the very end, as a share of the peak.
FINAL_LR_FRAC = 0.1

# Gradient norm clipping threshold.
GRAD_CLIP = 1.0

# Random seed of the initialization and the data order.
SEED = 1337  # fixed: a lucky seed is noise, not an improvement

if PROFILE == "gpu":  # an H100 trains a bigger model in the same five minutes
    DEPTH, MODEL_DIM, HEAD_DIM, DEVICE_BATCH_SIZE = 8, 1024, 128, 32

COMPILE = DEVICE.type == "cuda"  # torch.compile: minutes to gain on a GPU, seconds to lose on CPU
PEAK_FLOPS = 989.5e12  # fixed: H100 SXM dense bf16 peak, for mfu_percent

# ---------------------------------------------------------------------------------------------
# Model


def rotary_tables(seq_len, head_dim, base=10000.0):
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]


def apply_rotary(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def norm(x):
    return F.rms_norm(x, (x.size(-1),))


class Attention(nn.Module):
    def __init__(self, dim, head_dim):
        super().__init__()
        self.n_head, self.head_dim = dim // head_dim, head_dim
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).unbind(2)
        q, k = apply_rotary(norm(q), cos, sin), apply_rotary(norm(k), cos, sin)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, MLP_RATIO * dim, bias=False)
        self.proj = nn.Linear(MLP_RATIO * dim, dim, bias=False)

    def forward(self, x):
        h = self.fc(x)
        if ACTIVATION == "relu2":
            h = F.relu(h).square()
        elif ACTIVATION == "gelu":
            h = F.gelu(h)
        else:
            h = F.silu(h)
        return self.proj(h)


class Block(nn.Module):
    def __init__(self, dim, head_dim):
        super().__init__()
        self.attn = Attention(dim, head_dim)
        self.mlp = MLP(dim)

    def forward(self, x, cos, sin):
        x = x + self.attn(norm(x), cos, sin)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        head_dim = max(2, HEAD_DIM // 2 * 2)  # rotary embeddings pair up channels
        dim = max(1, MODEL_DIM // head_dim) * head_dim
        self.embed = nn.Embedding(VOCAB_SIZE, dim)
        self.blocks = nn.ModuleList(Block(dim, head_dim) for _ in range(DEPTH))
        self.head = nn.Linear(dim, VOCAB_SIZE, bias=False)
        cos, sin = rotary_tables(MAX_SEQ_LEN, head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.zeros_(p)  # each block starts as the identity
            else:
                nn.init.normal_(p, std=0.02 if p.shape[0] == VOCAB_SIZE else p.shape[-1] ** -0.5)

    def forward(self, idx):
        T = idx.size(1)
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = norm(self.embed(idx))
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.head(norm(x)).float()
        return SOFTCAP * torch.tanh(logits / SOFTCAP)

    def flops_per_token(self):
        matrices = sum(p.numel() for n, p in self.named_parameters() if "blocks" in n) + self.head.weight.numel()
        return 6 * matrices + 12 * DEPTH * MODEL_DIM * MAX_SEQ_LEN


# ---------------------------------------------------------------------------------------------
# Training

def learning_rate_multiplier(progress):
    if progress < WARMUP_FRAC:
        return progress / WARMUP_FRAC
    if progress < 1.0 - WARMDOWN_FRAC:
        return 1.0
    decay = (1.0 - progress) / WARMDOWN_FRAC
    return FINAL_LR_FRAC + (1.0 - FINAL_LR_FRAC) * max(decay, 0.0)


def make_optimizer(model):
    matrices = [p for n, p in model.named_parameters() if "blocks" in n]
    others = [p for n, p in model.named_parameters() if "blocks" not in n]
    groups = [dict(params=matrices, lr=MATRIX_LR, weight_decay=WEIGHT_DECAY),
              dict(params=others, lr=EMBED_LR, weight_decay=0.0)]
    for group in groups:
        group["peak_lr"] = group["lr"]
    return torch.optim.AdamW(groups, betas=(0.9, 1.0 - 1.0 / ADAM_HORIZON), fused=DEVICE.type == "cuda")


def main():
    t_start = time.time()
    torch.manual_seed(SEED)
    model = GPT().to(DEVICE)
    step_model = torch.compile(model) if COMPILE else model
    optimizer = make_optimizer(model)
    loader = make_dataloader(DEVICE_BATCH_SIZE, MAX_SEQ_LEN, DEVICE, seed=SEED)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if DEVICE.type == "cuda" else nullcontext()
    num_params = sum(p.numel() for p in model.parameters())
    print(f"profile {PROFILE}, device {DEVICE}, {num_params / 1e6:.2f}M parameters, budget {TIME_BUDGET:g}s")

    # The first step compiles and warms up; the clock starts after it, as in autoresearch.
    training_seconds, step, tokens, loss_ema = 0.0, 0, 0, None
    while True:
        t0 = time.time()
        progress = min(training_seconds / TIME_BUDGET, 1.0)
        for group in optimizer.param_groups:
            group["lr"] = group["peak_lr"] * learning_rate_multiplier(progress)
        x, y = next(loader)
        with autocast:
            loss = F.cross_entropy(step_model(x).view(-1, VOCAB_SIZE), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()  # also waits for the GPU, so the step time is real
        if not math.isfinite(loss_value):
            raise SystemExit(f"loss is {loss_value} at step {step}: diverged")
        if step > 0:
            training_seconds += time.time() - t0
            tokens += x.numel()
        step += 1
        loss_ema = loss_value if loss_ema is None else 0.9 * loss_ema + 0.1 * loss_value
        if step % 50 == 0:
            print(f"step {step:5d} | loss {loss_ema:.4f} | lr x{learning_rate_multiplier(progress):.2f} "
                  f"| {training_seconds:.1f}s | {tokens / max(training_seconds, 1e-9):,.0f} tok/s")
        if training_seconds >= TIME_BUDGET:
            break

    tokens_per_second = tokens / training_seconds
    mfu = 100 * tokens_per_second * model.flops_per_token() / PEAK_FLOPS if DEVICE.type == "cuda" else 0.0
    peak_vram_mb = torch.cuda.max_memory_allocated() / 2**20 if DEVICE.type == "cuda" else 0.0
    print(f"trained {step} steps, {tokens / 1e6:.2f}M tokens, {tokens_per_second:,.0f} tok/s, "
          f"final loss {loss_ema:.4f}, {time.time() - t_start:.1f}s in all")
    save_for_evaluation(model, training_seconds=training_seconds, num_steps=step,
                        total_tokens_M=tokens / 1e6, mfu_percent=mfu, peak_vram_mb=peak_vram_mb)


if __name__ == "__main__":
    main()
