"""A GPT-2-style decoder for the training workload: learned positions, pre-LayerNorm,
fused attention (`F.scaled_dot_product_attention`, causal), GELU MLP, tied embeddings.

Sizes (`gpt_config.SIZES`) follow GPT-2 (vocabulary padded to 50304, a multiple of 64, as
nanoGPT does).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rigbench.bench.models.gpt_config import SIZES, GPTConfig, flops_per_token

__all__ = ["GPT", "SIZES", "Block", "GPTConfig", "flops_per_token", "matmul_params"]


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        d = cfg.n_embd
        self.n_head = cfg.n_head
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        hd = d // self.n_head
        q = q.view(b, t, self.n_head, hd).transpose(1, 2)
        k = k.view(b, t, self.n_head, hd).transpose(1, 2)
        v = v.view(b, t, self.n_head, hd).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as GPT-2
        self.init_weights()

    def init_weights(self) -> None:
        """GPT-2's initialisation (again after a model built on the meta device is given
        memory): normal(0.02), residual projections scaled by 1/sqrt(2·layers)."""
        self.apply(self._init)
        for block in self.blocks:
            assert isinstance(block, Block)
            std = 0.02 / math.sqrt(2 * self.cfg.n_layer)
            nn.init.normal_(block.c_proj.weight, std=std)
            nn.init.normal_(block.mlp_proj.weight, std=std)
        for m in self.modules():
            if isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of next-token prediction (logits in float32)."""
        t = idx.shape[1]
        pos = torch.arange(t, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))


def matmul_params(model: GPT) -> int:
    """Parameters that take part in matrix products: all but the position embedding (a
    lookup). The token embedding counts once, as the tied output projection (nanoGPT's
    `get_num_params`)."""
    return sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel()
