"""Chapter 4's models: hand-written RNN/LSTM/GRU cells and attention against PyTorch's own
(weights copied, masks included), the worked example, shapes, causality, the hooks chapter 5
builds on, and the one-sentence errors of bad knobs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse_tui.errors import UserError
from dlcourse_tui.models.attention import (
    MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention, torch_mha_mask,
)
from dlcourse_tui.models.registry import count_params, create_model
from dlcourse_tui.models.rnn import GRUCell, LSTMCell, Recurrent, RNNCell
from dlcourse_tui.models.transformer import (
    TransformerBlock, TransformerConfig, TransformerDecoder, TransformerEncoder, sinusoidal_positions,
)
from dlcourse_tui.models.vit import attention_rollout, patchify, shifted_views

TORCH_RNN = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


# ---------------------------------------------------------------------------- recurrent cells


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_hand_written_cells_match_torch_with_copied_weights(cell) -> None:
    torch.manual_seed(0)
    ref = TORCH_RNN[cell](5, 7, num_layers=2, batch_first=True).double()
    mine = Recurrent(cell, 5, 7, layers=2).double().load_torch(ref)
    x = torch.randn(3, 11, 5, dtype=torch.float64)
    out_ref, state_ref = ref(x)
    out, states = mine(x)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-12)
    if cell == "lstm":
        h_ref, c_ref = state_ref
        torch.testing.assert_close(torch.stack([s[0] for s in states]), h_ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(torch.stack([s[1] for s in states]), c_ref, rtol=0, atol=1e-12)
    else:
        torch.testing.assert_close(torch.stack(states), state_ref, rtol=0, atol=1e-12)
    # the gradients agree too: autograd through the hand-written steps
    g_ref = torch.autograd.grad(out_ref.pow(2).sum(), ref.weight_hh_l0)[0]
    g = torch.autograd.grad(mine(x)[0].pow(2).sum(), mine.cells[0].hh.weight)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mine_cls, ref_cls", [(RNNCell, nn.RNNCell), (LSTMCell, nn.LSTMCell), (GRUCell, nn.GRUCell)])
def test_one_step_matches_torchs_cell(mine_cls, ref_cls) -> None:
    torch.manual_seed(1)
    ref = ref_cls(4, 6).double()
    mine = mine_cls(4, 6).double()
    with torch.no_grad():
        mine.ih.weight.copy_(ref.weight_ih), mine.hh.weight.copy_(ref.weight_hh)
        mine.ih.bias.copy_(ref.bias_ih), mine.hh.bias.copy_(ref.bias_hh)
    x, h, c = (torch.randn(2, n, dtype=torch.float64) for n in (4, 6, 6))
    if mine_cls is LSTMCell:
        for a, b in zip(mine(x, (h, c)), ref(x, (h, c))):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    else:
        torch.testing.assert_close(mine(x, h), ref(x, h), rtol=0, atol=1e-12)


def test_the_vanilla_cell_is_tanh_of_one_matrix_on_h_and_x_stacked() -> None:
    cell = RNNCell(3, 4).double()
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    W = torch.cat([cell.hh.weight, cell.ih.weight], dim=1)  # W [h; x]
    b = cell.hh.bias + cell.ih.bias
    torch.testing.assert_close(cell(x, h), torch.tanh(torch.cat([h, x], dim=1) @ W.T + b))


def test_the_probe_measures_the_gradient_reaching_each_step() -> None:
    torch.manual_seed(0)
    model = create_model("lstm", input_shape=(9, 3), num_classes=4, args={"hidden": 5}).double()
    x, y = torch.randn(6, 9, 3, dtype=torch.float64), torch.randint(0, 4, (6,))
    plain = model(x)
    probe = torch.zeros(6, 9, 5, dtype=torch.float64, requires_grad=True)
    probed = model(x, probe=probe)
    torch.testing.assert_close(plain, probed)  # adding zeros changes nothing forward
    loss = F.cross_entropy(probed, y)
    (g,) = torch.autograd.grad(loss, probe)
    # at the last step the gradient is the head's: W_yᵀ (softmax − onehot) / B
    direct = (torch.softmax(plain, 1) - F.one_hot(y, 4)) @ model.head.weight / 6
    torch.testing.assert_close(g[:, -1], direct.detach())
    norms = model.step_gradients(x, lambda logits: F.cross_entropy(logits, y))
    torch.testing.assert_close(norms, g.norm(dim=2).mean(0))


def test_chrono_init_opens_the_forget_gate_and_closes_the_input_gate() -> None:
    torch.manual_seed(0)
    model = create_model("lstm", input_shape=(100, 9), num_classes=8, args={"hidden": 16, "gate_init": "chrono"})
    b = model.rnn.cells[0].ih.bias.detach()
    b_i, b_f = b[:16], b[16:32]
    assert (b_f >= 0).all() and (b_f <= math.log(99) + 1e-6).all()
    torch.testing.assert_close(b_i, -b_f)
    gru = create_model("gru", input_shape=(100, 9), num_classes=8, args={"hidden": 16, "gate_init": "chrono"})
    assert (gru.rnn.cells[0].ih.bias[16:32] >= 0).all()


def test_images_are_read_row_by_row() -> None:
    model = create_model("gru", input_shape=(1, 28, 28), num_classes=10, args={"hidden": 8})
    x = torch.randn(2, 1, 28, 28)
    assert model(x).shape == (2, 10)
    assert model.hidden_states(x).shape == (2, 28, 8)  # 28 steps, one per row
    torch.testing.assert_close(model(x), model(x[:, 0]))  # (B, T = rows, D = columns) is the same input


# ---------------------------------------------------------------------------- attention


def _qkv(tq: int = 5, tk: int = 7, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 3, t, d, generator=g, dtype=torch.float64) for t in (tq, tk, tk))


def _bool_mask(tq: int, tk: int, seed: int = 0) -> torch.Tensor:
    m = torch.rand(2, 1, tq, tk, generator=torch.Generator().manual_seed(seed)) > 0.4
    m[..., 0] = True  # every query keeps at least one key (else the softmax is NaN, in both)
    return m


def test_attention_by_hand_matches_torchs_sdpa_with_and_without_masks() -> None:
    q, k, v = _qkv()
    for mask in (None, _bool_mask(5, 7), torch.randn(2, 3, 5, 7, dtype=torch.float64)):
        out, w = scaled_dot_product_attention(q, k, v, mask)
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 5, dtype=torch.float64))
        fast, none = scaled_dot_product_attention(q, k, v, mask, need_weights=False, use_sdpa=True)
        assert none is None
        torch.testing.assert_close(fast, out)
    bool_mask = _bool_mask(5, 7)
    _, w = scaled_dot_product_attention(q, k, v, bool_mask)
    assert (w[~bool_mask.expand_as(w)] == 0).all()  # masked keys get exactly no weight


def test_causal_attention_matches_is_causal_and_sees_no_future() -> None:
    q, k, v = _qkv(6, 6)
    out, w = scaled_dot_product_attention(q, k, v, causal=True)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert torch.equal(w.triu(1), torch.zeros_like(w))  # the masked triangle
    fast, _ = scaled_dot_product_attention(q, k, v, causal=True, need_weights=False, use_sdpa=True)
    torch.testing.assert_close(fast, out)
    # causal and a padding mask together, on both paths
    pad = _bool_mask(6, 6)
    both, _ = scaled_dot_product_attention(q, k, v, pad, causal=True)
    torch.testing.assert_close(both, F.scaled_dot_product_attention(q, k, v, attn_mask=pad & causal_mask(6)))
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, pad, causal=True, use_sdpa=True,
                                                            need_weights=False)[0], both)
    # more keys than queries: the queries are the last positions (decoding with a cache)
    q2, k2, v2 = _qkv(2, 5)
    assert causal_mask(2, 5).tolist() == [[True, True, True, True, False], [True] * 5]
    torch.testing.assert_close(scaled_dot_product_attention(q2, k2, v2, causal=True, use_sdpa=True,
                                                            need_weights=False)[0],
                               scaled_dot_product_attention(q2, k2, v2, causal=True)[0])


def _copied_mha(d: int = 12, heads: int = 3, kdim: int | None = None):
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(d, heads, batch_first=True, kdim=kdim, vdim=kdim).double()
    mine = MultiHeadAttention(d, heads, context_dim=kdim).double().load_torch(ref)
    return mine, ref


def test_multi_head_attention_matches_nn_multiheadattention() -> None:
    mine, ref = _copied_mha()
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    out, w = mine(x, need_weights=True)
    out_ref, w_ref = ref(x, x, x, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, out_ref)
    torch.testing.assert_close(w, w_ref)  # (B, heads, T, T), every head's own weights
    assert w.shape == (2, 3, 5, 5)


def test_cross_attention_matches_with_other_key_and_value_sizes() -> None:
    mine, ref = _copied_mha(kdim=7)
    x, ctx = torch.randn(2, 4, 12, dtype=torch.float64), torch.randn(2, 6, 7, dtype=torch.float64)
    out, w = mine(x, ctx, need_weights=True)
    out_ref, w_ref = ref(x, ctx, ctx, average_attn_weights=False)
    torch.testing.assert_close(out, out_ref)
    torch.testing.assert_close(w, w_ref)
    assert w.shape == (2, 3, 4, 6)  # queries from x, keys and values from the context


def test_boolean_masks_mean_opposite_things_here_and_in_nn_multiheadattention() -> None:
    mine, ref = _copied_mha()
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    allowed = causal_mask(5)  # ours: True = may attend
    out, w = mine(x, mask=allowed, need_weights=True)
    out_ref, w_ref = ref(x, x, x, attn_mask=torch_mha_mask(allowed), average_attn_weights=False)  # theirs: True = masked out
    torch.testing.assert_close(out, out_ref)
    torch.testing.assert_close(w, w_ref)
    wrong, _ = ref(x, x, x, attn_mask=allowed)  # the same tensor, unconverted, masks the other triangle
    assert not torch.allclose(wrong, out)
    torch.testing.assert_close(mine(x, causal=True)[0], out)
    # a padding mask: ours (B, 1, 1, S) with True for real tokens, theirs key_padding_mask True for padding
    keep = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out, _ = mine(x, mask=padding_mask(keep))
    out_ref, _ = ref(x, x, x, key_padding_mask=~keep)
    torch.testing.assert_close(out, out_ref)
    assert not torch.allclose(ref(x, x, x, key_padding_mask=keep)[0][1], out[1])


def test_the_fused_path_gives_the_hand_written_result() -> None:
    torch.manual_seed(0)
    slow = MultiHeadAttention(16, 4).double()
    fast = MultiHeadAttention(16, 4, use_sdpa=True).double()
    fast.load_state_dict(slow.state_dict())
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    torch.testing.assert_close(fast(x, causal=True)[0], slow(x, causal=True)[0])
    assert fast(x)[1] is None and fast(x, need_weights=True)[1].shape == (3, 4, 7, 7)


def test_the_worked_example_table() -> None:
    from dlcourse_tui.tasks.sequence import attention_worked_example

    table = attention_worked_example()
    assert [r[1:] for r in table.rows] == [("112", "14", "0.88", "0.88"), ("96", "12", "0.12", "0.12")]
    w = torch.softmax(torch.tensor([112.0, 96.0]) / math.sqrt(64), dim=0)
    assert round(w[0].item(), 2) == 0.88 and round(w[1].item(), 2) == 0.12


# ---------------------------------------------------------------------------- blocks and stacks


def test_encoder_and_decoder_shapes_and_their_attention_maps() -> None:
    cfg = TransformerConfig(d_model=16, heads=4, layers=3)
    enc, dec = TransformerEncoder(cfg), TransformerDecoder(cfg)
    src, tgt = torch.randn(2, 7, 16), torch.randn(2, 5, 16)
    memory, maps = enc(src, need_weights=True)
    assert memory.shape == (2, 7, 16) and len(maps) == 3 and maps[0]["self"].shape == (2, 4, 7, 7)
    out, maps = dec(tgt, memory, need_weights=True)
    assert out.shape == (2, 5, 16) and len(maps) == 3
    assert maps[0]["self"].shape == (2, 4, 5, 5) and maps[0]["cross"].shape == (2, 4, 5, 7)
    assert all(torch.equal(m["self"].triu(1), torch.zeros(2, 4, 5, 5)) for m in maps)  # the masked triangle
    assert enc(src)[1] == []


@pytest.mark.parametrize("norm_first", [True, False])
def test_the_decoder_is_causal_only_with_its_mask(norm_first) -> None:
    torch.manual_seed(0)
    dec = TransformerDecoder(TransformerConfig(d_model=16, heads=2, layers=2, norm_first=norm_first)).eval()
    memory, tgt = torch.randn(1, 6, 16), torch.randn(1, 5, 16)
    changed = tgt.clone()
    changed[:, 3:] += torch.randn(1, 2, 16)  # change positions 3 and 4
    a, b = dec(tgt, memory)[0], dec(changed, memory)[0]
    torch.testing.assert_close(a[:, :3], b[:, :3])  # positions 0-2 cannot see 3-4
    a, b = dec(tgt, memory, causal=False)[0], dec(changed, memory, causal=False)[0]
    assert not torch.allclose(a[:, :3], b[:, :3])  # without the mask they can


def test_a_block_is_residual_plus_layer_norm() -> None:
    torch.manual_seed(0)
    block = TransformerBlock(8, 2)
    x = torch.randn(2, 3, 8)
    attn, _ = block.self_attn(block.norm1(x))
    h = x + attn
    torch.testing.assert_close(block(x)[0], h + block.mlp(block.norm2(h)))  # pre-norm: x + f(LN(x))
    post = TransformerBlock(8, 2, norm_first=False)
    h = post.norm1(x + post.self_attn(x)[0])
    torch.testing.assert_close(post(x)[0], post.norm2(h + post.mlp(h)))  # post-norm: LN(x + f(x))


def test_hooks_for_chapter_five_adapters_prompts_and_lora() -> None:
    torch.manual_seed(0)
    enc = TransformerEncoder(TransformerConfig(d_model=8, heads=2, layers=3)).eval()
    x = torch.randn(2, 4, 8)
    base = enc(x)[0]
    seen = []
    prompts = torch.randn(3, 1, 2, 8)  # deep prompt tuning: new prompt tokens before every block

    def swap_prompts(i, tokens):
        seen.append((i, tokens.shape[1]))
        return torch.cat([prompts[i].expand(tokens.shape[0], -1, -1), tokens[:, -4:]], dim=1)

    out, _ = enc(x, before_block=swap_prompts)
    assert seen == [(0, 4), (1, 6), (2, 6)] and out.shape == (2, 6, 8)
    block = enc.blocks[0]
    block.adapter_mlp = nn.Linear(8, 8)  # a bottleneck adapter goes in a slot ...
    nn.init.zeros_(block.adapter_mlp.weight), nn.init.zeros_(block.adapter_mlp.bias)
    assert not torch.allclose(enc(x)[0], base)  # ... and replaces the sublayer's output
    block.adapter_mlp = nn.Identity()

    class LoRA(nn.Module):
        def __init__(self, base: nn.Linear, r: int = 2) -> None:
            super().__init__()
            self.base, self.a, self.b = base, nn.Linear(base.in_features, r, bias=False), nn.Linear(r, base.out_features, bias=False)
            nn.init.zeros_(self.b.weight)

        def forward(self, z):
            return self.base(z) + self.b(self.a(z))

    for b in enc.blocks:
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(b.self_attn, name, LoRA(getattr(b.self_attn, name)))
    torch.testing.assert_close(enc(x)[0], base)  # B = 0: the wrapped model starts where it was


def test_sinusoidal_positions() -> None:
    pe = sinusoidal_positions(10, 6)
    assert pe.shape == (10, 6)
    torch.testing.assert_close(pe[3, 0], torch.tensor(math.sin(3.0)))
    torch.testing.assert_close(pe[3, 1], torch.tensor(math.cos(3.0)))
    torch.testing.assert_close(pe[5, 2], torch.tensor(math.sin(5 / 10000 ** (2 / 6))))


def test_seq2seq_transformer_shapes_and_greedy_decoding() -> None:
    model = create_model("transformer", input_shape=(6,), num_classes=9, args={"d_model": 16, "heads": 2, "layers": 1})
    src, tgt_in = torch.randint(1, 9, (3, 6)), torch.randint(0, 9, (3, 6))
    assert model(src, tgt_in).shape == (3, 6, 9)
    maps = model.attention_maps(src, tgt_in)
    assert maps["encoder"][0].shape == (3, 2, 6, 6) and maps["cross"][0].shape == (3, 2, 6, 6)
    out = model.eval().generate(src, 6, bos=0)
    assert out.shape == (3, 6)
    # greedy: each token is the argmax given the ones before it
    logits = model(src, torch.cat([torch.zeros(3, 1, dtype=torch.long), out[:, :-1]], dim=1))
    assert torch.equal(logits.argmax(-1), out)


# ---------------------------------------------------------------------------- the ViT


def test_patches_are_read_row_by_row_from_the_top_left() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    p = patchify(x, 4)
    assert p.shape == (2, 4, 3 * 16)
    torch.testing.assert_close(p[0, 0], x[0, :, :4, :4].flatten())
    torch.testing.assert_close(p[0, 1], x[0, :, :4, 4:].flatten())
    torch.testing.assert_close(p[1, 2], x[1, :, 4:, :4].flatten())


def test_vit_has_64_patches_a_cls_token_and_learned_positions() -> None:
    model = create_model("vit", input_shape=(3, 32, 32), num_classes=10,
                         args={"d_model": 16, "heads": 2, "layers": 2, "patch_size": 4})
    assert model.pos_embed.shape == (1, 65, 16) and model.cls_token.requires_grad and model.pos_embed.requires_grad
    assert isinstance(model.patch_embed, nn.Linear) and model.patch_embed.in_features == 3 * 4 * 4
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    maps = model.attention_maps(x)
    assert len(maps) == 2 and maps[0].shape == (2, 2, 65, 65)
    cls = model.cls_attention(x)
    assert cls.shape == (2, 2, 2, 8, 8)  # (B, layers, heads, 8, 8)
    torch.testing.assert_close(cls[0, 1, 0].flatten(), maps[1][0, 0, 0, 1:])  # first row, first element dropped
    rolled = model.cls_attention(x, rollout=True)
    assert rolled.shape == (2, 2, 1, 8, 8) and (rolled.sum(dim=(-1, -2)) < 1).all()
    assert count_params(model) > 0


def test_the_locality_bias_starts_local_and_leaves_cls_alone() -> None:
    model = create_model("vit", input_shape=(3, 32, 32), num_classes=10, args={"d_model": 16, "heads": 2})
    bias = model.attention_bias()  # (1, h, 65, 65)
    assert bias.shape == (1, 2, 65, 65)
    assert (bias[0, :, 0] == 0).all() and (bias[0, :, :, 0] == 0).all()  # [CLS]'s row and column
    # patch 0 is (row 0, col 0), patch 9 is (row 1, col 1), patch 63 is (row 7, col 7); head 0 has σ = 1
    assert bias[0, 0, 1, 1] == 0 and math.isclose(bias[0, 0, 1, 10].item(), -1.0)  # Δ² = 2, −2 / 2σ²
    assert math.isclose(bias[0, 0, 1, 64].item(), -49.0) and bias[0, 1, 1, 64] > bias[0, 0, 1, 64]  # σ = 3 reaches further
    torch.testing.assert_close(bias[0, :, 10, 19], bias[0, :, 1, 10])  # the same offset, the same bias
    plain = create_model("vit", input_shape=(3, 32, 32), num_classes=10, args={"d_model": 16, "heads": 2,
                                                                             "locality": False})
    assert plain.attention_bias() is None and count_params(model) - count_params(plain) == 2 * 15 * 15
    rows = plain.pos_embed[0, 1:9].detach()  # the first row of patches: the same row code, other column codes
    torch.testing.assert_close(rows[:, :8], rows[:1, :8].expand(8, 8))


def test_shifted_patches_hold_the_pixels_around_each_patch() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    v = shifted_views(x, 2)  # (B, 5C, H, W): the image, then shifted by (−2, −2), (−2, 2), (2, −2), (2, 2)
    assert v.shape == (2, 15, 8, 8)
    torch.testing.assert_close(v[:, :3], x)
    torch.testing.assert_close(v[:, 3:6, 2:, 2:], x[..., :-2, :-2])  # pixel (i, j) holds (i − 2, j − 2)
    torch.testing.assert_close(v[:, 12:, :-2, :-2], x[..., 2:, 2:])  # and here (i + 2, j + 2)
    assert (v[:, 3:6, :2] == 0).all()  # zeros shifted in
    model = create_model("vit", input_shape=(3, 32, 32), num_classes=10,
                         args={"d_model": 16, "heads": 2, "layers": 1, "shifted_patches": True})
    assert model.patch_embed.in_features == 5 * 3 * 4 * 4 and model(torch.randn(2, 3, 32, 32)).shape == (2, 10)



@pytest.mark.parametrize("shifted", [True, False])
def test_vit_shortcuts_give_the_numbers_of_the_plain_path(shifted: bool) -> None:
    """The strided convolution gives x_i E of every (shifted) patch, and the last block's [CLS]-only
    pass gives the [CLS] row of the full encoder."""
    model = create_model("vit", input_shape=(3, 32, 32), num_classes=10,
                         args={"d_model": 16, "heads": 2, "layers": 2, "shifted_patches": shifted}).eval()
    x = torch.randn(3, 3, 32, 32)
    views = shifted_views(x, 2) if shifted else x
    torch.testing.assert_close(model.embed_patches(x), model.patch_embed(patchify(views, 4)), atol=1e-5, rtol=1e-5)
    z, _ = model.encoder(model.tokens(x), model.attention_bias())  # (B, P + 1, d): every row
    torch.testing.assert_close(model(x), model.head(z[:, 0]), atol=1e-5, rtol=1e-5)

def test_attention_rollout_multiplies_the_layers() -> None:
    a = torch.softmax(torch.randn(1, 2, 4, 4), -1)
    b = torch.softmax(torch.randn(1, 2, 4, 4), -1)
    r1, r2 = attention_rollout([a, b])
    eye = torch.eye(4)
    mix = lambda m: 0.5 * m.mean(1) + 0.5 * eye  # noqa: E731  (rows already sum to 1)
    torch.testing.assert_close(r1, mix(a))
    torch.testing.assert_close(r2, mix(b) @ mix(a))
    torch.testing.assert_close(r2.sum(-1), torch.ones(1, 4))


# ---------------------------------------------------------------------------- bad knobs


@pytest.mark.parametrize("name, shape, args, sentence", [
    ("transformer", (8,), {"d_model": 30, "heads": 4}, "d_model=30 is not divisible by heads=4"),
    ("vit", (3, 32, 32), {"d_model": 64, "heads": 5}, "d_model=64 is not divisible by heads=5"),
    ("vit", (3, 32, 32), {"patch_size": 5}, "patch_size=5 does not divide the 32×32 image into whole patches"),
    ("vit", (1, 28, 28), {"patch_size": 8}, "pick one of 1, 2, 4, 7, 14, 28"),
    ("lstm", (28, 28), {"hidden": 0}, "hidden=0: the hidden state needs at least 1 unit"),
    ("gru", (28, 28), {"gate_init": "warm"}, "gate_init='warm': choose one of default, chrono"),
    ("transformer", (8,), {"layers": 0}, "layers=0: a stack needs at least 1 block"),
])
def test_bad_settings_are_one_sentence(name, shape, args, sentence) -> None:
    with pytest.raises(UserError) as e:
        create_model(name, input_shape=shape, num_classes=10, args=args)
    message = str(e.value)
    assert sentence in message and "\n" not in message
    assert message.count(". ") == 0  # one sentence


@pytest.mark.parametrize("argv, sentence", [
    (["run", "transformer", "--set", "heads=3"], "d_model=64 is not divisible by heads=3"),
    (["run", "vision-transformer", "--set", "patch_size=3"], "patch_size=3 does not divide the 32×32 image"),
    (["run", "recurrent-networks", "--set", "hidden=1000"], "model.hidden=1000 is out of range"),
    (["run", "transformer", "--set", "seq_len=100"], "data.seq_len=100 is out of range"),
    (["run", "recurrent-networks", "--variant", "memory", "--set", "key_window=200"],
     "data.key_window=200 is out of range: the window the marked symbol falls in"),
    (["run", "vision-transformer", "--set", "layers=0"], "model.layers=0 is out of range"),
])
def test_bad_knobs_exit_2_with_one_sentence(dlc, argv, sentence) -> None:
    r = dlc(*argv, "--set", "n_train=100", "--set", "n_val=10", "--epochs", "1")
    assert r.code == 2, r.out + r.err
    assert sentence in r.err, r.err
