"""The training workload's GPT-2 sizes and its FLOPs count, without torch: the process
that plans a run (and judges it) reads them without importing torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class GPTConfig:
    n_layer: int
    n_embd: int
    n_head: int
    block_size: int  # context length in tokens
    vocab_size: int


SIZES: dict[str, GPTConfig] = {
    "tiny": GPTConfig(n_layer=2, n_embd=64, n_head=2, block_size=64, vocab_size=512),
    "124m": GPTConfig(n_layer=12, n_embd=768, n_head=12, block_size=1024, vocab_size=50304),
    "350m": GPTConfig(n_layer=24, n_embd=1024, n_head=16, block_size=1024, vocab_size=50304),
    "774m": GPTConfig(n_layer=36, n_embd=1280, n_head=20, block_size=1024, vocab_size=50304),
    "1.5b": GPTConfig(n_layer=48, n_embd=1600, n_head=25, block_size=1024, vocab_size=50304),
    # Does not fit one 80 GB GPU with AdamW (16 bytes a parameter): the FSDP size.
    "6.7b": GPTConfig(n_layer=32, n_embd=4096, n_head=32, block_size=2048, vocab_size=50304),
}


def flops_per_token(n_params: int, cfg: GPTConfig, *, attention: bool = True) -> float:
    """Training FLOPs per token: 6·N (forward 2·N, backward 4·N), plus, with `attention`,
    12·L·d·T for the attention scores and their weighted sum (PaLM, appendix B; nanoGPT's
    `estimate_mfu`), counted over the full T×T square although the mask is causal."""
    base = 6.0 * n_params
    if attention:
        base += 12.0 * cfg.n_layer * cfg.n_embd * cfg.block_size
    return base
