"""One-stream joint encoder shared by the ViT-B and lite backbones.

The sequence `[track query | template tokens | search tokens]` runs through timm `Block`s with full
joint attention. In candidate-elimination (CE) blocks, search tokens that the template centres
attend to least are dropped between the attention and the MLP sub-layers (OSTrack/SSTrack, see
docs/sstrack-reference.md §1.5-1.7); after the final norm they are put back as zero vectors.

With `template_attention="own"` each template's tokens attend only to that template (a mask in
every block), so a template's keys and values in every block depend on it alone:
`template_memory` computes them once per template, and `forward_cached` runs a frame's query and
search rows against them, the same arithmetic as the masked forward without its template rows.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn


def centre_index(grid: int) -> int:
    """Flat index of the template's CTR_POINT cell (the official lookup: 8 -> (3,3), 12 -> (5,5))."""
    c = (grid - 1) // 2
    return c * grid + c


def _attention_with_centre_rows(
    attn: nn.Module, x: torch.Tensor, rows: torch.Tensor, first_search: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """timm Attention output plus the softmax rows of the template centres over search keys.

    Softmax rows are independent, so computing only the T centre rows is numerically identical to
    slicing the full (N x N) probability matrix as the official CE does, and the output itself can
    still use fused SDPA.
    """
    batch, n_tokens, _ = x.shape
    qkv = attn.qkv(x).reshape(batch, n_tokens, 3, attn.num_heads, attn.head_dim)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    out = F.scaled_dot_product_attention(
        q, k, v, dropout_p=attn.attn_drop.p if attn.training else 0.0
    )
    out = attn.proj_drop(attn.proj(attn.norm(out.transpose(1, 2).reshape(batch, n_tokens, -1))))
    centre_q = q[:, :, rows] * attn.scale
    probs = (centre_q @ k.transpose(-2, -1)).softmax(dim=-1)
    return out, probs[..., first_search:]


def own_template_mask(n_query: int, n_templates: int, n_per_template: int, n_search: int, device: torch.device) -> torch.Tensor:
    """(N, N) boolean attention mask, True where a row may attend: template rows see only their
    own template; query and search rows see every token."""
    n_template_tokens = n_templates * n_per_template
    size = n_query + n_template_tokens + n_search
    allowed = torch.ones(size, size, dtype=torch.bool, device=device)
    template = torch.arange(n_template_tokens, device=device) // n_per_template
    rows = slice(n_query, n_query + n_template_tokens)
    allowed[rows] = False
    allowed[rows, rows] = template[:, None] == template[None, :]
    return allowed


def _keys_values(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, N, 2, heads, head_dim) keys (after timm's k_norm) and values of a timm Attention's input."""
    batch, n_tokens, _ = x.shape
    _, k, v = attn.qkv(x).reshape(batch, n_tokens, 3, attn.num_heads, attn.head_dim).unbind(2)
    return torch.stack([attn.k_norm(k.transpose(1, 2)).transpose(1, 2), v], dim=2)


def _attend_with_memory(attn: nn.Module, x: torch.Tensor, memory_keys: torch.Tensor, memory_values: torch.Tensor) -> torch.Tensor:
    """timm `Attention.forward` for rows `x` whose keys and values also include cached ones
    ((B, heads, M, head_dim) each), as the same rows of the full sequence's attention."""
    batch, n_tokens, _ = x.shape
    gate = attn.gate(x).sigmoid() if getattr(attn, "gate", None) is not None else None
    q, k, v = attn.qkv(x).reshape(batch, n_tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    out = F.scaled_dot_product_attention(q, torch.cat([k, memory_keys], dim=2), torch.cat([v, memory_values], dim=2))
    out = attn.norm(out.transpose(1, 2).reshape(batch, n_tokens, -1))
    if gate is not None:
        out = out * gate
    return attn.proj_drop(attn.proj(out))


class JointEncoder(nn.Module):
    """Token embeddings, transformer blocks with CE, final norm. Subclasses embed pixels."""

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        template_grid: int,
        search_grid: int,
        ce_loc: tuple[int, ...],
        ce_keep_ratio: float,
        track_query: bool,
        temporal_embed: bool,
        drop_path_rate: float,
        template_attention: str = "joint",
    ) -> None:
        super().__init__()
        if template_attention not in ("joint", "own"):
            raise ValueError(f"template_attention must be 'joint' or 'own', not {template_attention!r}")
        if template_attention == "own" and ce_loc:
            raise ValueError("template_attention 'own' cannot be combined with candidate elimination (ce_loc)")
        if template_attention == "own" and "attn_mask" not in inspect.signature(Block.forward).parameters:
            raise ValueError("template_attention 'own' needs timm 1.0.16 or later (its blocks take an attention mask)")
        self.template_attention = template_attention
        self.embed_dim = embed_dim
        self.template_grid = template_grid
        self.search_grid = search_grid
        self.ce_loc = tuple(ce_loc)
        self.ce_keep_ratio = ce_keep_ratio
        self.has_query = track_query
        if track_query:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
            self.cls_pos_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))
        if temporal_embed:
            self.temporal_pos_embed_x = nn.Parameter(torch.randn(1, 1, embed_dim))
            self.temporal_pos_embed_z = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.pos_embed_z = nn.Parameter(torch.zeros(1, template_grid**2, embed_dim))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, search_grid**2, embed_dim))
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # plain floats: buildable on the meta device
        norm = _layer_norm_1e6
        self.blocks = nn.Sequential(
            *[
                Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=dpr[i], norm_layer=norm)
                for i in range(depth)
            ]
        )
        self.norm = norm(embed_dim)
        self._init_tokens()

    def _init_tokens(self) -> None:
        for name in ("cls_token", "pos_embed_z", "pos_embed_x"):
            if hasattr(self, name):
                trunc_normal_(getattr(self, name), std=0.02)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    # -- pixels to tokens: the part that differs between backbones ---------------------------------
    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images to (B, H/16 * W/16, C) tokens in raster order."""
        raise NotImplementedError

    def embed_template(self, images: torch.Tensor) -> torch.Tensor:
        """Template crops (B, 3, Hz, Hz) to position-embedded tokens (B, Nz, C).

        Every template gets the same position table and temporal vector (§1.5), so a template's
        tokens can be cached and reused whichever memory slot it occupies.
        """
        tokens = self.patchify(images) + self.pos_embed_z
        if hasattr(self, "temporal_pos_embed_z"):
            tokens = tokens + self.temporal_pos_embed_z
        return tokens

    def embed_search(self, images: torch.Tensor) -> torch.Tensor:
        """Search crops (B, 3, Hx, Hx) to position-embedded tokens (B, Nx, C)."""
        tokens = self.patchify(images) + self.pos_embed_x
        if hasattr(self, "temporal_pos_embed_x"):
            tokens = tokens + self.temporal_pos_embed_x
        return tokens

    # -- the joint encoder ----------------------------------------------------------------------
    def forward(
        self,
        template_tokens: torch.Tensor,
        search_images: torch.Tensor,
        track_query: torch.Tensor | None = None,
        ce_keep_rate: float | None = None,
    ) -> torch.Tensor:
        """Encode; returns (B, Q + T*Nz + Nx, C) with search tokens in raster order.

        Args:
            template_tokens: (B, T*Nz, C) from `embed_template`, templates concatenated in order.
            search_images: (B, 3, Hx, Hx) normalised search crops.
            track_query: (B, 1, C) output query of the previous frame, or None.
            ce_keep_rate: training-time keep ratio replacing the configured one (None at test).
        """
        search = self.embed_search(search_images)
        batch, n_search, dim = search.shape
        parts = [template_tokens, search]
        if self.has_query:
            query = self.cls_token.expand(batch, -1, -1)
            if track_query is not None:
                query = query + track_query
            parts.insert(0, query + self.cls_pos_embed)
        x = torch.cat(parts, dim=1)
        n_query = 1 if self.has_query else 0
        lens_t = template_tokens.shape[1]
        n_nz = self.template_grid**2
        rows = torch.arange(lens_t // n_nz, device=x.device) * n_nz + centre_index(self.template_grid) + n_query
        first_search = n_query + lens_t

        # A run-time ratio (training anneals it from 1 down, §5.4) replaces the configured one.
        keep = self.ce_keep_ratio if ce_keep_rate is None else ce_keep_rate
        if self.ce_keep_ratio >= 1:
            keep = 1.0
        kept_index = torch.arange(n_search, device=x.device).expand(batch, -1)
        removed: list[torch.Tensor] = []
        mask = None
        if self.template_attention == "own":
            # Additive (0 / -inf), not boolean: timm 1.0.16-1.0.25 add the mask to the logits on
            # their unfused path, where a boolean one would hide nothing.
            allowed = own_template_mask(n_query, lens_t // n_nz, n_nz, n_search, x.device)
            mask = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(~allowed, float("-inf"))
        for i, block in enumerate(self.blocks):
            if i in self.ce_loc and keep < 1:
                x, kept_index, dropped = self._ce_block(block, x, rows, first_search, keep, kept_index)
                if dropped is not None:
                    removed.append(dropped)
            else:
                # Without a mask, as before: timm before 1.0.16 has no attn_mask argument.
                x = block(x) if mask is None else block(x, attn_mask=mask)
        x = self.norm(x)
        if removed:
            head, kept = x[:, :first_search], x[:, first_search:]
            order = torch.cat([kept_index, *removed], dim=1)
            padded = torch.cat([kept, kept.new_zeros(batch, n_search - kept.shape[1], dim)], dim=1)
            restored = torch.zeros_like(padded).scatter_(
                1, order.unsqueeze(-1).expand(-1, -1, dim), padded
            )
            x = torch.cat([head, restored], dim=1)
        return x

    def template_memory(self, template_tokens: torch.Tensor) -> torch.Tensor:
        """One template's tokens (B, Nz, C) from `embed_template` to its keys and values in every
        block, (B, Nz, depth, 2, heads, head_dim); "own" template attention only.

        Token-major, so the memories of several templates concatenate along dim 1 as their tokens do.
        """
        if self.template_attention != "own":
            raise ValueError("template_memory needs template_attention 'own' (joint templates also see the search)")
        x, keys_values = template_tokens, []
        for block in self.blocks:
            keys_values.append(_keys_values(block.attn, block.norm1(x)))
            x = block(x)  # alone, the template attends only to itself: the masked forward's rows
        return torch.stack(keys_values, dim=2)

    def forward_cached(
        self, memory: torch.Tensor, search_images: torch.Tensor, track_query: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The masked forward from cached template memories: (B, Q + Nx, C), query then search tokens.

        Args:
            memory: (B, T*Nz, depth, 2, heads, head_dim), the selected templates' `template_memory`
                concatenated along dim 1.
            search_images: (B, 3, Hx, Hx) normalised search crops.
            track_query: (B, 1, C) output query of the previous frame, or None.
        """
        search = self.embed_search(search_images)
        x = search
        if self.has_query:
            query = self.cls_token.expand(search.shape[0], -1, -1)
            if track_query is not None:
                query = query + track_query
            x = torch.cat([query + self.cls_pos_embed, search], dim=1)
        memory = memory.permute(2, 3, 0, 4, 1, 5)  # (depth, 2, B, heads, T*Nz, head_dim)
        for block, (keys, values) in zip(self.blocks, memory):
            x = x + block.drop_path1(block.ls1(_attend_with_memory(block.attn, block.norm1(x), keys, values)))
            x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
        return self.norm(x)

    def _ce_block(
        self,
        block: Block,
        x: torch.Tensor,
        rows: torch.Tensor,
        first_search: int,
        keep: float,
        kept_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A timm Block whose search tokens are pruned between attention and MLP."""
        attn_out, probs = _attention_with_centre_rows(block.attn, block.norm1(x), rows, first_search)
        x = x + block.drop_path1(block.ls1(attn_out))
        n_search = x.shape[1] - first_search
        n_keep = math.ceil(keep * n_search)
        dropped = None
        if n_keep < n_search:
            scores = probs.mean(dim=2).mean(dim=1)  # over centre rows, then heads: (B, L_s)
            order = torch.sort(scores, dim=1, descending=True).indices
            top, rest = order[:, :n_keep], order[:, n_keep:]
            dim = x.shape[-1]
            search = x[:, first_search:]
            kept = search.gather(1, top.unsqueeze(-1).expand(-1, -1, dim))
            x = torch.cat([x[:, :first_search], kept], dim=1)
            dropped = kept_index.gather(1, rest)
            kept_index = kept_index.gather(1, top)
        x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
        return x, kept_index, dropped


def _layer_norm_1e6(dim: int, **factory_kwargs) -> nn.LayerNorm:
    """LayerNorm with eps 1e-6, as everywhere in the official backbone."""
    return nn.LayerNorm(dim, eps=1e-6, **factory_kwargs)
