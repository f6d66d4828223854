"""Model: shapes, parameter counts, candidate elimination against a literal port of the official CE."""

from __future__ import annotations

import math

import pytest
import torch

from sstrack.config import CONFIGS, get_config
from sstrack.model import build_model
from sstrack.model.encoder import centre_index


def _tiny(name: str, **extra):
    """A config with tiny widths for speed, keeping the structure (CE, query, sizes)."""
    return get_config(name, embed_dim=64, depth=4, num_heads=2, head_channels=32, **extra)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_shapes_and_finite_outputs(name):
    torch.manual_seed(0)
    cfg = _tiny(name, ce_loc=(1, 2)) if CONFIGS[name].backbone == "vit" else CONFIGS[name]
    model = build_model(cfg).eval()
    templates = torch.randn(2, 3, 3, cfg.template_size, cfg.template_size)
    search = torch.randn(2, 3, cfg.search_size, cfg.search_size)
    with torch.inference_mode():
        tokens = model.embed_templates(templates)
        out = model(tokens, search)
        again = model(tokens, search, out.next_query)
    side = cfg.search_grid
    assert tokens.shape == (2, 3 * cfg.template_grid**2, cfg.embed_dim)
    assert out.pred_boxes.shape == (2, 4)
    assert out.score_map.shape == (2, 1, side, side)
    assert out.size_map.shape == out.offset_map.shape == (2, 2, side, side)
    assert out.search_features.shape == (2, side * side, cfg.embed_dim)
    for tensor in (out.pred_boxes, out.score_map, out.size_map, out.offset_map, again.pred_boxes):
        assert torch.isfinite(tensor).all()
    if cfg.track_query:
        assert out.next_query.shape == (2, 1, cfg.embed_dim)
        # The carried query changes the next frame's result (it is an input, not a no-op).
        assert not torch.allclose(out.score_map, again.score_map)
    else:
        assert out.next_query is None


def test_official_sizes_and_parameter_counts():
    """docs/sstrack-reference.md §1.11: 92,520,837 / 92,828,037 parameters, 245 tensors."""
    for name, params in (("sstrack-b256", 92_520_837), ("sstrack-b384", 92_828_037)):
        model = build_model(CONFIGS[name])
        assert sum(p.numel() for p in model.parameters()) == params
        assert len(model.state_dict()) == 245
    b384 = CONFIGS["sstrack-b384"]
    assert (b384.template_size, b384.search_size, b384.search_factor) == (192, 384, 5.0)
    assert CONFIGS["sstrack-b256"].ce_loc == (3, 6, 9) and CONFIGS["sstrack-b256"].ce_keep_ratio == 0.7


def test_ce_keeps_official_token_counts_on_b256():
    """256 -> 180 -> 126 -> 89 search tokens kept; the 167 pruned come back as exact zeros."""
    torch.manual_seed(0)
    model = build_model(CONFIGS["sstrack-b256"]).eval()
    with torch.inference_mode():
        tokens = model.embed_templates(torch.randn(1, 1, 3, 128, 128))
        out = model(tokens, torch.randn(1, 3, 256, 256))
    zero_rows = (out.search_features == 0).all(-1).sum().item()
    assert zero_rows == 256 - 89
    assert [math.ceil(0.7 * n) for n in (256, 180, 126)] == [180, 126, 89]


def _official_ce_reference(backbone, x, lens_t, keep):
    """Literal port of OSTrack/SSTrack CE: full attention matrix, strip the query row/column,
    template->search block, CTR_POINT rows averaged, sort descending, scatter back with zeros."""
    n_query = 1
    global_index = torch.arange(x.shape[1] - n_query - lens_t).expand(x.shape[0], -1)
    removed = []
    nz = backbone.template_grid**2
    mask = torch.zeros(lens_t, dtype=torch.bool)
    for t in range(lens_t // nz):
        mask[t * nz + centre_index(backbone.template_grid)] = True
    for i, blk in enumerate(backbone.blocks):
        if i in backbone.ce_loc:
            a = blk.attn
            y = blk.norm1(x)
            batch, n, c = y.shape
            qkv = a.qkv(y).reshape(batch, n, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            attn = ((q * a.scale) @ k.transpose(-2, -1)).softmax(-1)
            x = x + a.proj((attn @ v).transpose(1, 2).reshape(batch, n, c))
            attn = attn[:, :, 1:, 1:]
            attn_t = attn[:, :, :lens_t, lens_t:][:, :, mask].mean(dim=2).mean(dim=1)
            ls = attn_t.shape[1]
            lens_keep = math.ceil(keep * ls)
            _, indices = torch.sort(attn_t, dim=1, descending=True)
            topk, nonk = indices[:, :lens_keep], indices[:, lens_keep:]
            removed.append(global_index.gather(1, nonk))
            global_index = global_index.gather(1, topk)
            head = x[:, : n_query + lens_t]
            search = x[:, n_query + lens_t :]
            search = search.gather(1, topk.unsqueeze(-1).expand(-1, -1, c))
            x = torch.cat([head, search], dim=1)
            x = x + blk.mlp(blk.norm2(x))
        else:
            x = blk(x)
    x = backbone.norm(x)
    head, search = x[:, : n_query + lens_t], x[:, n_query + lens_t :]
    total = global_index.shape[1] + sum(r.shape[1] for r in removed)
    pad = torch.zeros(x.shape[0], total - search.shape[1], x.shape[2])
    order = torch.cat([global_index, *removed], dim=1)
    restored = torch.zeros(x.shape[0], total, x.shape[2]).scatter_(
        1, order.unsqueeze(-1).expand(-1, -1, x.shape[2]), torch.cat([search, pad], dim=1)
    )
    return torch.cat([head, restored], dim=1)


def test_ce_matches_the_official_algorithm():
    torch.manual_seed(3)
    cfg = _tiny("sstrack-b256", ce_loc=(1, 3))
    model = build_model(cfg).eval()
    bb = model.backbone
    templates = torch.randn(2, 2, 3, 128, 128)
    search = torch.randn(2, 3, 256, 256)
    with torch.inference_mode():
        tokens = model.embed_templates(templates)
        ours = bb(tokens, search)
        query = bb.cls_token.expand(2, -1, -1) + bb.cls_pos_embed
        x = torch.cat([query, tokens, bb.embed_search(search)], dim=1)
        reference = _official_ce_reference(bb, x, tokens.shape[1], 0.7)
    assert ours.shape == reference.shape
    assert torch.allclose(ours, reference, atol=1e-5)
    pruned = (ours[:, 1 + tokens.shape[1] :] == 0).all(-1).sum(1)
    assert pruned.tolist() == [256 - 126, 256 - 126]


def test_lite_without_ce_prunes_nothing():
    model = build_model(CONFIGS["sstrack-lite"]).eval()
    cfg = model.config
    with torch.inference_mode():
        out = model(model.embed_templates(torch.randn(1, 1, 3, 96, 96)), torch.randn(1, 3, cfg.search_size, cfg.search_size))
    assert not (out.search_features == 0).all(-1).any()


def test_config_overrides_refuse_unknown_keys():
    from sstrack.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown model config keys"):
        get_config("sstrack-lite", serch_size=200)
    with pytest.raises(ConfigError, match="choose one of"):
        get_config("sstrack-b999")
