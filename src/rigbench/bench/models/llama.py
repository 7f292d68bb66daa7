"""A Llama-architecture decoder for the inference workload, from a config and random
weights (nothing is downloaded): RMSNorm, rotary position embedding (half-split, as the
Hugging Face Llama), SwiGLU MLP, grouped-query attention, a KV cache.

Two paths compute the same function:

* `LlamaModel.prefill` / `decode`: the fast path. Fused q/k/v and gate/up weights, the
  residual adds inside the wo and down products (addmm), rotary tables precomputed once
  (q, k and v rotated in one pass, v by angle 0); the cache is preallocated (layers, k/v,
  batch, kv heads, length, head dim) and one layer's k and v are written by one copy;
  decode takes the position as a device tensor and masks the unwritten part of the
  cache, so one step has fixed shapes and can be captured in a CUDA graph or compiled.
* `reference_logits`: the plain one. No cache, every position recomputed, weights upcast
  to float32, k/v heads repeated, the causal softmax written out.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rigbench.bench.models.llama_config import SIZES, LlamaConfig

__all__ = ["SIZES", "LlamaConfig", "LlamaModel"]


def _rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), w, eps)


def _add_matmul(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x + y @ w.t() as one matrix product (the residual added in its epilogue)."""
    out = torch.addmm(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]), w.t())
    return out.view(x.shape)


def _rope(x: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, T, groups, kv heads, D) by the half-split rotary embedding, (x1, x2) ->
    (x1·cos − x2·sin, x2·cos + x1·sin), with full-width tables c = [cos, cos] and
    s = [−sin, sin] (T, groups, 1, D) in x's dtype (as the Hugging Face Llama). The tables
    of the v group are 1 and 0: q, k and v go through one pass and stay one tensor."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.addcmul(x * c, torch.cat([x2, x1], dim=-1), s)


class LlamaModel:
    """Weights as plain tensors (inference only)."""

    def __init__(
        self, cfg: LlamaConfig, *, dtype: torch.dtype, device: torch.device | str, seed: int
    ) -> None:
        self.cfg = cfg
        self.dtype = dtype
        self.device = torch.device(device)
        g = torch.Generator(device=self.device).manual_seed(seed)
        d, hd = cfg.dim, cfg.head_dim
        qkv_out = (cfg.n_heads + 2 * cfg.n_kv_heads) * hd
        out_std = 0.02 / math.sqrt(2 * cfg.n_layers)

        def rand(rows: int, cols: int, std: float = 0.02) -> torch.Tensor:
            w = torch.randn(rows, cols, generator=g, device=self.device, dtype=dtype)
            return w.mul_(std)

        def norm_weight() -> torch.Tensor:
            w = torch.rand(d, generator=g, device=self.device, dtype=torch.float32)
            return (0.5 + w).to(dtype)  # not all ones: a wrong norm weight must show

        self.embed = rand(cfg.vocab_size, d)
        self.layers = [
            {
                "attn_norm": norm_weight(),
                "wqkv": rand(qkv_out, d),
                "wo": rand(d, cfg.n_heads * hd, out_std),
                "ffn_norm": norm_weight(),
                "w_gate_up": rand(2 * cfg.ffn_dim, d),
                "w_down": rand(d, cfg.ffn_dim, out_std),
            }
            for _ in range(cfg.n_layers)
        ]
        self.norm = norm_weight()
        self.lm_head = self.embed if cfg.tie_embeddings else rand(cfg.vocab_size, d)
        self.cos = torch.empty(0)  # (S, D/2) float32, for the reference
        self.sin = torch.empty(0)
        self.rope_c = torch.empty(0)  # (S, groups, 1, D) in dtype, for `_rope`
        self.rope_s = torch.empty(0)

    # ---------------------------------------------------------------- bookkeeping

    def matmul_params(self) -> int:
        """Parameters in matrix products per token (the output projection included)."""
        c = self.cfg
        per_layer = sum(self.layers[0][k].numel() for k in ("wqkv", "wo", "w_gate_up", "w_down"))
        return per_layer * c.n_layers + self.lm_head.numel()

    def weight_bytes_per_step(self, batch: int) -> int:
        """Bytes of weights one decode step reads: every matrix and norm weight once, and
        `batch` rows of the embedding."""
        el = self.embed.element_size()
        return el * (self.matmul_params() + (2 * self.cfg.n_layers + 1) * self.cfg.dim) + (
            el * batch * self.cfg.dim
        )

    def kv_bytes_per_token(self) -> int:
        """Cache bytes of one position of one sequence (k and v, every layer)."""
        c = self.cfg
        return 2 * c.n_layers * c.n_kv_heads * c.head_dim * self.embed.element_size()

    def new_cache(self, batch: int, length: int) -> torch.Tensor:
        """The k/v cache, (layers, 2 (k, v), batch, kv heads, length, head dim): one layer's
        k and v of a step are written by one copy."""
        c = self.cfg
        shape = (c.n_layers, 2, batch, c.n_kv_heads, length, c.head_dim)
        return torch.zeros(shape, dtype=self.dtype, device=self.device)

    @property
    def groups(self) -> int:
        """q, k, v heads as groups of n_kv_heads: the q groups, then k, then v."""
        return self.cfg.n_heads // self.cfg.n_kv_heads + 2

    def ensure_rope(self, length: int) -> None:
        """Rotary tables for positions 0..length-1, built once (decode indexes them)."""
        if self.cos.shape[0] >= length:
            return
        hd = self.cfg.head_dim
        inv = 1.0 / (
            self.cfg.rope_theta
            ** (torch.arange(0, hd, 2, dtype=torch.float64, device=self.device) / hd)
        )
        ang = torch.outer(torch.arange(length, dtype=torch.float64, device=self.device), inv)
        self.cos, self.sin = ang.cos().float(), ang.sin().float()
        g = self.groups
        c = torch.ones(length, g, 1, hd, dtype=torch.float32, device=self.device)
        s = torch.zeros_like(c)
        c[:, : g - 1] = torch.cat([self.cos, self.cos], dim=-1)[:, None, None, :]
        s[:, : g - 1] = torch.cat([-self.sin, self.sin], dim=-1)[:, None, None, :]
        self.rope_c, self.rope_s = c.to(self.dtype), s.to(self.dtype)

    # ------------------------------------------------------------------ fast path

    def _qkv(
        self, h: torch.Tensor, layer: dict[str, torch.Tensor], c: torch.Tensor, s: torch.Tensor
    ) -> torch.Tensor:
        """h (B, T, dim) -> q, k, v (B, T, groups, kv heads, D), rotary applied to q, k."""
        cfg = self.cfg
        b, t, _ = h.shape
        qkv = (h @ layer["wqkv"].t()).view(b, t, self.groups, cfg.n_kv_heads, cfg.head_dim)
        return _rope(qkv, c, s)

    def _mlp(self, x: torch.Tensor, layer: dict[str, torch.Tensor]) -> torch.Tensor:
        h = _rms_norm(x, layer["ffn_norm"], self.cfg.norm_eps)
        gate, up = (h @ layer["w_gate_up"].t()).chunk(2, dim=-1)
        return _add_matmul(x, F.silu(gate) * up, layer["w_down"])

    @torch.inference_mode()
    def prefill(self, tokens: torch.Tensor, cache: torch.Tensor, rows: slice) -> torch.Tensor:
        """Run `tokens` (b, P) from position 0, writing the cache rows `rows`; returns the
        logits of the last position (b, vocab)."""
        c = self.cfg
        b, p = tokens.shape
        self.ensure_rope(p)
        rc, rs = self.rope_c[:p], self.rope_s[:p]
        nq = c.n_heads // c.n_kv_heads
        x = self.embed[tokens]
        for i, layer in enumerate(self.layers):
            h = _rms_norm(x, layer["attn_norm"], c.norm_eps)
            qkv = self._qkv(h, layer, rc, rs)  # (b, p, groups, kv heads, D)
            q = qkv[:, :, :nq].reshape(b, p, c.n_heads, c.head_dim).transpose(1, 2)
            kv = qkv[:, :, nq:].permute(2, 0, 3, 1, 4)  # (2, b, kv heads, p, D)
            cache[i, :, rows, :, :p] = kv
            y = F.scaled_dot_product_attention(q, kv[0], kv[1], is_causal=True, enable_gqa=True)
            x = _add_matmul(x, y.transpose(1, 2).reshape(b, p, -1), layer["wo"])
            x = self._mlp(x, layer)
        return _rms_norm(x[:, -1], self.norm, c.norm_eps) @ self.lm_head.t()

    def decode_layer(
        self,
        x: torch.Tensor,
        layer: dict[str, torch.Tensor],
        cache: torch.Tensor,
        pos: torch.Tensor,
        rc: torch.Tensor,
        rs: torch.Tensor,
        mask: torch.Tensor,
        attn: str = "sdpa",
    ) -> torch.Tensor:
        """One layer of a decode step: x (B, 1, dim); the layer's cache (2, B, kv heads, S,
        D) is written at `pos` (one copy for k and v). Every layer has the same shapes, so
        one compilation serves all. `attn`: "sdpa" (scaled_dot_product_attention over the
        whole cache, `mask` additive) or "matmul" (scores, softmax and weighted sum as
        batched matrix products, more blocks in flight at batch 1 and long caches)."""
        c = self.cfg
        b = x.shape[0]
        g = c.n_heads // c.n_kv_heads
        h = _rms_norm(x, layer["attn_norm"], c.norm_eps)
        qkv = self._qkv(h, layer, rc, rs)  # (B, 1, groups, kv heads, D)
        cache[:, :, :, pos] = qkv[:, :, g:].permute(2, 0, 3, 1, 4)  # one index_put_
        # The query heads of one kv head become G "query positions" of that head: the
        # cache is read once per kv head, with no copy of repeated heads.
        # q head h (the weight's order) = group·kv heads + j in `qkv`, = kv head·G + g here.
        qg = qkv[:, 0, :g].reshape(b, c.n_kv_heads, g, c.head_dim)
        if attn == "matmul":
            length = cache.shape[3]
            kc = cache[0].reshape(b * c.n_kv_heads, length, c.head_dim)
            vc = cache[1].reshape(b * c.n_kv_heads, length, c.head_dim)
            scores = torch.baddbmm(
                mask.view(1, 1, length),
                qg.reshape(b * c.n_kv_heads, g, c.head_dim),
                kc.transpose(1, 2),
                alpha=1.0 / math.sqrt(c.head_dim),
            )
            y = torch.bmm(scores.softmax(-1), vc).view(b, c.n_kv_heads, g, c.head_dim)
        else:
            y = F.scaled_dot_product_attention(qg, cache[0], cache[1], attn_mask=mask)
        x = _add_matmul(x, y.reshape(b, 1, -1), layer["wo"])
        return self._mlp(x, layer)

    def decode(
        self,
        tokens: torch.Tensor,
        pos: torch.Tensor,
        cache: torch.Tensor,
        layer_fn: Callable[..., torch.Tensor] | None = None,
        attn: str = "sdpa",
    ) -> torch.Tensor:
        """One step: `tokens` (B, 1) at position `pos` (a 1-element device tensor, the
        same for every row); writes the cache there and attends to positions 0..pos.
        Returns logits (B, vocab). Shapes depend on B and the cache length only.
        `layer_fn` replaces `decode_layer` (a compiled version of it)."""
        c = self.cfg
        length = cache.shape[4]
        rc, rs = self.rope_c.index_select(0, pos), self.rope_s.index_select(0, pos)
        # One additive mask a step (0 up to pos, -inf after), shared by every layer.
        valid = torch.arange(length, device=pos.device) <= pos
        mask = torch.zeros(length, dtype=self.dtype, device=pos.device)
        mask = mask.masked_fill(~valid, float("-inf")).view(1, 1, 1, length)
        fn = layer_fn or self.decode_layer
        x = self.embed[tokens]
        for i, layer in enumerate(self.layers):
            x = fn(x, layer, cache[i], pos, rc, rs, mask, attn)
        return (_rms_norm(x[:, -1], self.norm, c.norm_eps) @ self.lm_head.t()).float()

    # ------------------------------------------------------------------ reference

    @torch.inference_mode()
    def reference_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab), float32, every position recomputed from scratch."""
        c = self.cfg
        b, t = tokens.shape
        hd = c.head_dim
        self.ensure_rope(t)
        cos, sin = self.cos[:t], self.sin[:t]

        def norm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + c.norm_eps) * w.float()

        def rope(x: torch.Tensor) -> torch.Tensor:  # (B, T, H, D)
            half = hd // 2
            x1, x2 = x[..., :half], x[..., half:]
            cc, ss = cos[None, :, None, :], sin[None, :, None, :]
            return torch.cat([x1 * cc - x2 * ss, x2 * cc + x1 * ss], dim=-1)

        causal = torch.ones(t, t, dtype=torch.bool, device=tokens.device).tril()
        x = self.embed[tokens].float()
        for layer in self.layers:
            h = norm(x, layer["attn_norm"])
            wqkv = layer["wqkv"].float()
            nq, nk = c.n_heads * hd, c.n_kv_heads * hd
            q = (h @ wqkv[:nq].t()).view(b, t, c.n_heads, hd)
            k = (h @ wqkv[nq : nq + nk].t()).view(b, t, c.n_kv_heads, hd)
            v = (h @ wqkv[nq + nk :].t()).view(b, t, c.n_kv_heads, hd)
            q, k = rope(q), rope(k)
            rep = c.n_heads // c.n_kv_heads
            k = k.repeat_interleave(rep, dim=2)
            v = v.repeat_interleave(rep, dim=2)
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
            scores = scores.masked_fill(~causal, float("-inf"))
            y = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(b, t, -1)
            x = x + y @ layer["wo"].float().t()
            h = norm(x, layer["ffn_norm"])
            wgu = layer["w_gate_up"].float()
            gate, up = h @ wgu[: c.ffn_dim].t(), h @ wgu[c.ffn_dim :].t()
            x = x + (F.silu(gate) * up) @ layer["w_down"].float().t()
        return norm(x, self.norm) @ self.lm_head.float().t()
