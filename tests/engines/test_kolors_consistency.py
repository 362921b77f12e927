"""Consistency in the kolors engine, through its real code on tiny real modules
(_consistency_fixtures: a tiny CLIPModel in the release's image_encoder/ layout, the adapter
file in the IP-Adapter-Plus format, a tiny UNet running diffsynth's forward with down, mid and
up attention blocks).

The attention maths is checked against computations written out here with explicit softmax,
not against the code under test."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from _consistency_fixtures import (
    CROSS_ORDER,
    IP_REPO,
    TinyStoryUNet,
    adapter_state,
    make_story_engine,
    picture,
    write_ip_adapter,
    write_story_layout,
)
from _kolors_fixtures import make_panel

from kolorsc.engines.base import Reference, RenderJob, SharedAttention, SharedMember
from kolorsc.errors import EngineError, ModelMissingError


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("consistency") / "models"
    write_story_layout(root)
    return root


@pytest.fixture
def engine(models_dir, tmp_path):
    e = make_story_engine(models_dir, tmp_path / "cache")
    yield e
    e.close()


def ref(character: str, data: bytes, scale: float) -> Reference:
    return Reference(character, hashlib.sha256(data).hexdigest(), scale, data)


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def render(engine, jobs):
    return {(job.panel.index, job.seed): pixels(image) for job, image in engine.render(jobs, None)}


GIRL, PRINCE = picture((200, 30, 30)), picture((30, 30, 200), pattern=2)


# -- IP-Adapter through the engine --------------------------------------------------------------


def test_scale_zero_gives_the_same_image_as_no_adapter(engine):
    panel = make_panel(steps=3)
    plain = render(engine, [RenderJob(panel, 1)])
    zero = render(engine, [RenderJob(panel, 1, (ref("girl", GIRL, 0.0),))])
    assert engine.calls.projections == 2  # the picture and the zero picture went through the adapter path
    assert np.array_equal(plain[(1, 1)], zero[(1, 1)])
    strong = render(engine, [RenderJob(panel, 1, (ref("girl", GIRL, 0.8),))])
    assert np.abs(strong[(1, 1)] - plain[(1, 1)]).max() > 10


def test_a_reference_change_changes_exactly_its_characters_panels(models_dir, tmp_path):
    panels = [make_panel(index=i, prompt=p, seed=i, steps=2) for i, p in enumerate(["少女", "王子", "风景"], start=1)]

    def jobs(girl: bytes):
        return [RenderJob(panels[0], 1, (ref("girl", girl, 0.7),)), RenderJob(panels[1], 2, (ref("prince", PRINCE, 0.7),)),
                RenderJob(panels[2], 3)]

    first = make_story_engine(models_dir, tmp_path / "cache")
    before = render(first, jobs(GIRL))
    kv_before = dict(first._picture_kv)
    other = picture((30, 200, 30), pattern=1)
    after = render(first, jobs(other))
    assert not np.array_equal(before[(1, 1)], after[(1, 1)])  # the girl's panel
    assert np.array_equal(before[(2, 2)], after[(2, 2)]) and np.array_equal(before[(3, 3)], after[(3, 3)])
    # the conditioning itself: a new entry for the new picture, the prince's and the zero picture's untouched
    sha = hashlib.sha256
    assert set(first._picture_kv) - set(kv_before) == {sha(other).hexdigest()}
    prince_kv = first._picture_kv[sha(PRINCE).hexdigest()]
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(prince_kv, kv_before[sha(PRINCE).hexdigest()]))


def test_image_encoder_runs_once_per_picture_and_its_embeddings_are_cached(models_dir, tmp_path):
    panels = [make_panel(index=i, seed=i, steps=1) for i in (1, 2, 3)]
    jobs = [RenderJob(p, p.seed, (ref("girl", GIRL, 0.5),)) for p in panels]
    first = make_story_engine(models_dir, tmp_path / "cache")
    list(first.render(jobs, None))
    assert first.calls.image_encoder == 2  # the picture once (three panels) + the zero picture
    assert first.calls.projections == 2
    assert first.calls.unet == 3  # one batch-2 call per step and panel: no extra UNet work per step
    second = make_story_engine(models_dir, tmp_path / "cache")
    list(second.render(jobs, None))
    assert second.calls.image_encoder == 0 and "load image_encoder" not in second.events


def test_low_memory_plan_frees_the_image_encoder_with_the_text_encoder(models_dir, tmp_path):
    e = make_story_engine(models_dir, tmp_path / "cache", low_memory=True)
    list(e.render([RenderJob(make_panel(steps=1), 1, (ref("girl", GIRL, 0.5),))], None))
    ev = e.events
    assert ev.index("release text_encoder") < ev.index("load image_encoder") < ev.index("release image_encoder") < ev.index("load unet")
    assert ev.index("load ip_adapter") < ev.index("release adapter")  # projected, then dropped before denoising
    resident = make_story_engine(models_dir, tmp_path / "cache2", low_memory=False)
    list(resident.render([RenderJob(make_panel(steps=1), 1, (ref("girl", GIRL, 0.5),))], None))
    assert not any(e.startswith("release") for e in resident.events)


def test_two_characters_each_add_their_own_term(engine):
    panel = make_panel(steps=2)
    alone = render(engine, [RenderJob(panel, 1, (ref("girl", GIRL, 0.6),))])
    with_zero = render(engine, [RenderJob(panel, 1, (ref("girl", GIRL, 0.6), ref("prince", PRINCE, 0.0)))])
    both = render(engine, [RenderJob(panel, 1, (ref("girl", GIRL, 0.6), ref("prince", PRINCE, 0.6)))])
    assert np.array_equal(alone[(1, 1)], with_zero[(1, 1)])
    assert not np.array_equal(alone[(1, 1)], both[(1, 1)])


def test_refine_pass_keeps_the_references(engine):
    from kolorsc.spec.model import Refine

    panel = make_panel(steps=2, refine=Refine(scale=2.0, strength=0.5, steps=2))
    plain = render(engine, [RenderJob(panel, 1, (ref("girl", GIRL, 0.0),))])
    refined = render(engine, [RenderJob(panel, 1, (ref("girl", GIRL, 0.7),))])
    assert plain[(1, 1)].shape == (128, 128, 3) and not np.array_equal(plain[(1, 1)], refined[(1, 1)])


def test_missing_adapter_fails_before_any_model_loads(models_dir, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(models_dir / "Kwai-Kolors" / "Kolors", bare / "Kwai-Kolors" / "Kolors")
    e = make_story_engine(bare, tmp_path / "cache")
    job = RenderJob(make_panel(), 1, (ref("girl", GIRL, 0.5),))
    with pytest.raises(ModelMissingError, match="kolorsc models pull ip-adapter"):
        e.require([job])
    with pytest.raises(ModelMissingError, match="ip_adapter_plus_general.bin"):
        list(e.render([job], None))
    assert e.loader.loaded == [] and e.events == []
    # identity images' pictures count too
    member = SharedMember(make_panel(index=2), 2, (ref("girl", GIRL, 0.5),))
    with pytest.raises(ModelMissingError):
        e.require([RenderJob(make_panel(), 1, shared=SharedAttention((member,), group=2))])
    e.require([RenderJob(make_panel(), 1)])  # no pictures: nothing more needed
    from kolorsc.codeid import code_identity

    assert e.consistency_identity(references=False) == {"code": code_identity("kolorsc.engines.kolors.consistent")}


def test_consistency_identity_follows_the_adapter_files(models_dir, tmp_path, engine):
    from kolorsc.codeid import code_identity

    ident = engine.consistency_identity()
    assert ident["code"] == code_identity("kolorsc.engines.kolors.consistent") and len(ident["ip_adapter"]) == 16
    import shutil

    other = tmp_path / "other"
    shutil.copytree(models_dir, other)
    write_ip_adapter(other, seed=5, state=adapter_state(5, depth=3))
    assert make_story_engine(other, tmp_path / "c").consistency_identity()["ip_adapter"] != ident["ip_adapter"]


# -- the adapter file and the image encoder ----------------------------------------------------


def test_adapter_layers_follow_the_checkpoint_order(models_dir):
    from kolorsc.engines.kolors.ipadapter import load_adapter
    from kolorsc.engines.kolors.unet_parts import (
        attention_blocks,
        cross_attention_order,
    )

    unet = TinyStoryUNet()
    assert [(b.block_id, b.part, b.layers) for b in attention_blocks(unet)] == [(1, "down", 1), (4, "mid", 1), (7, "up", 2)]
    assert cross_attention_order(unet) == CROSS_ORDER
    state = torch.load(models_dir / IP_REPO / "ip_adapter_plus_general.bin", weights_only=True)
    adapter = load_adapter(models_dir / IP_REPO / "ip_adapter_plus_general.bin", unet, torch.float32, "cpu")
    assert [layer for layer, _, _ in adapter.layers] == CROSS_ORDER
    for n, (_, k, v) in enumerate(adapter.layers):
        assert torch.equal(k, state["ip_adapter"][f"{2 * n + 1}.to_k_ip.weight"])
        assert torch.equal(v, state["ip_adapter"][f"{2 * n + 1}.to_v_ip.weight"])
    assert adapter.resampler.shape.heads == 1 and adapter.resampler.shape.depth == 2


def test_wrong_adapter_files_fail_clearly(tmp_path):
    from kolorsc.engines.kolors.ipadapter import load_adapter

    unet = TinyStoryUNet()
    cases = {
        "three-layers.bin": (adapter_state(layer_widths=(32, 32, 32)), "has 3 IP-Adapter layers, the UNet 4"),
        "wide.bin": (adapter_state(layer_widths=(32, 64, 32, 32)), "layer 3 should hold to_k_ip/to_v_ip of shape (32, 32)"),
        "plain.bin": ({"image_proj": {"proj.weight": torch.zeros(4, 4)}, "ip_adapter": {}}, "is not an IP-Adapter-Plus file"),
    }
    for name, (state, message) in cases.items():
        torch.save(state, tmp_path / name)
        with pytest.raises(EngineError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_adapter(tmp_path / name, unet, torch.float32, "cpu")
    (tmp_path / "cut.bin").write_bytes((tmp_path / "wide.bin").read_bytes()[:100])
    with pytest.raises(EngineError, match="cannot read"):
        load_adapter(tmp_path / "cut.bin", unet, torch.float32, "cpu")


def test_resampler_matches_a_written_out_perceiver(models_dir):
    from kolorsc.engines.kolors.resampler import Resampler, ResamplerShape

    proj = adapter_state()["image_proj"]
    resampler = Resampler(ResamplerShape.of(proj))
    resampler.load_state_dict(proj, strict=True)
    x = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(0))

    def ln(t, w, b):
        return torch.nn.functional.layer_norm(t, (t.shape[-1],), w, b)

    lat = proj["latents"]
    h = x @ proj["proj_in.weight"].T + proj["proj_in.bias"]
    for i in range(2):
        p = {k[len(f"layers.{i}."):]: v for k, v in proj.items() if k.startswith(f"layers.{i}.")}
        xs, ls = ln(h, p["0.norm1.weight"], p["0.norm1.bias"]), ln(lat, p["0.norm2.weight"], p["0.norm2.bias"])
        q = ls @ p["0.to_q.weight"].T
        kv = torch.cat([xs, ls], dim=1) @ p["0.to_kv.weight"].T
        k, v = kv[..., :64], kv[..., 64:]
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(64), dim=-1)
        lat = (weights @ v) @ p["0.to_out.weight"].T + lat
        f = ln(lat, p["1.0.weight"], p["1.0.bias"]) @ p["1.1.weight"].T
        lat = torch.nn.functional.gelu(f) @ p["1.3.weight"].T + lat
    expected = ln(lat @ proj["proj_out.weight"].T + proj["proj_out.bias"], proj["norm_out.weight"], proj["norm_out.bias"])
    with torch.no_grad():
        assert torch.allclose(resampler(x), expected, atol=1e-5)


def test_image_encoder_reads_the_release_layout_and_uses_the_penultimate_layer(models_dir):
    from transformers import CLIPModel

    from kolorsc.engines.kolors.ipadapter import encode_picture, load_image_encoder

    folder = models_dir / IP_REPO / "image_encoder"
    assert {p.name for p in folder.iterdir()} >= {"config.json", "pytorch_model.bin"}
    enc = load_image_encoder(folder, torch.float32, "cpu")
    assert enc.processor.crop_size == {"height": 28, "width": 28}
    hidden = encode_picture(enc, GIRL)
    full = CLIPModel.from_pretrained(str(folder)).eval()
    import io

    from PIL import Image

    pixels_ = enc.processor(images=Image.open(io.BytesIO(GIRL)).convert("RGB"), return_tensors="pt").pixel_values
    with torch.no_grad():
        expected = full.vision_model(pixels_, output_hidden_states=True).hidden_states[-2]
        zeros = full.vision_model(torch.zeros_like(pixels_), output_hidden_states=True).hidden_states[-2]
    assert hidden.shape == (1, 5, 32) and torch.allclose(hidden, expected, atol=1e-6)
    assert torch.allclose(encode_picture(enc, None), zeros, atol=1e-6)


def test_image_encoder_without_weights_fails_clearly(models_dir, tmp_path):
    import shutil

    from kolorsc.engines.kolors.ipadapter import load_image_encoder

    folder = tmp_path / "image_encoder"
    shutil.copytree(models_dir / IP_REPO / "image_encoder", folder)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    torch.save({k: v for k, v in state.items() if "encoder.layers.1." not in k}, folder / "pytorch_model.bin")
    with pytest.raises(EngineError, match="lacks image encoder weights"):
        load_image_encoder(folder, torch.float32, "cpu")


def test_several_pictures_written_out():
    """One cross-attention with two picture slots, per image scales, against explicit sums."""
    from diffsynth.models.attention import Attention

    from kolorsc.engines.kolors import ipadapter

    g = torch.Generator().manual_seed(1)
    attn = Attention(q_dim=16, num_heads=2, head_dim=8, kv_dim=12, bias_out=True)
    with torch.no_grad():
        for p in attn.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    x, text = torch.randn(2, 6, 16, generator=g), torch.randn(2, 5, 12, generator=g)
    kv = [[(torch.randn(1, 4, 16, generator=g), torch.randn(1, 4, 16, generator=g))] for _ in range(3)]
    slots = [[ipadapter.Slot(kv[0], 0.7), ipadapter.Slot(kv[1], 0.4)]]  # one guided image: cond row 0, uncond row 1
    kwargs = ipadapter.ipadapter_kwargs_list([(0, 0)], slots, kv[2], guided=True, dtype=torch.float32)[0][0]

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer_blocks = torch.nn.ModuleList([torch.nn.Module()])
            self.transformer_blocks[0].attn2 = attn

    unet = torch.nn.Module()
    unet.blocks = torch.nn.ModuleList([Holder()])
    with torch.no_grad(), ipadapter.installed(unet, [(0, 0)]):
        got = attn(x, encoder_hidden_states=text, ipadapter_kwargs=kwargs)
    assert "interact_with_ipadapter" not in attn.__dict__  # removed again

    def heads(t):
        return t.view(t.shape[0], -1, 2, 8).transpose(1, 2)

    def attend(q, k, v):
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1) @ v

    with torch.no_grad():
        q = heads(x @ attn.to_q.weight.T)
        out = attend(q, heads(text @ attn.to_k.weight.T), heads(text @ attn.to_v.weight.T))
        cond = 0.7 * attend(q[:1], heads(kv[0][0][0]), heads(kv[0][0][1])) + 0.4 * attend(q[:1], heads(kv[1][0][0]), heads(kv[1][0][1]))
        uncond = 1.1 * attend(q[1:], heads(kv[2][0][0]), heads(kv[2][0][1]))  # the zero picture in both slots
        out = out + torch.cat([cond, uncond])
        expected = out.transpose(1, 2).reshape(2, 6, 16) @ attn.to_out.weight.T + attn.to_out.bias
    assert torch.allclose(got, expected, atol=1e-5)


# -- shared attention --------------------------------------------------------------------------


def test_shared_attention_hook_matches_a_written_out_computation():
    from diffsynth.models.attention import Attention

    from kolorsc.engines.kolors.shared_attention import (
        ShareLayout,
        installed,
        token_sample,
    )

    g = torch.Generator().manual_seed(3)
    attn = Attention(q_dim=16, num_heads=2, head_dim=8, bias_out=True)
    with torch.no_grad():
        for p in attn.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    n, tokens = 4, 10  # 2 identity images, 2 others; guided: 8 rows
    x = torch.randn(2 * n, tokens, 16, generator=g)
    layout = ShareLayout(identity=2, rates=[0.5, 0.3, 0.5, 0.2], identity_ids=[(1, 11), (2, 12)], guided=True, from_step=1)
    with torch.no_grad():
        plain = attn(x)
        with installed([attn], layout):
            layout.step = 0
            before = attn(x)
            layout.step = 3
            shared = attn(x)
        after = attn(x)
    assert torch.equal(before, plain) and torch.equal(after, plain)  # before from_step, and once removed

    def proj(t, w):
        return t @ w.T

    expected = torch.empty_like(shared)
    for row in range(2 * n):
        half, i = divmod(row, n)
        keys_from = [x[row]]
        for j in range(2):
            if j == i:
                continue
            idx = token_sample(tokens, layout.rates[i], layout.identity_ids[j], 3)
            assert len(idx) == round(layout.rates[i] * tokens)
            keys_from.append(x[half * n + j][idx])
        src = torch.cat(keys_from)
        q, k, v = proj(x[row], attn.to_q.weight), proj(src, attn.to_k.weight), proj(src, attn.to_v.weight)
        heads_out = []
        for h in range(2):
            sl = slice(8 * h, 8 * h + 8)
            w = torch.softmax(q[:, sl] @ k[:, sl].T / math.sqrt(8), dim=-1)
            heads_out.append(w @ v[:, sl])
        expected[row] = torch.cat(heads_out, dim=-1) @ attn.to_out.weight.T + attn.to_out.bias
    assert torch.allclose(shared, expected, atol=1e-5)
    assert not torch.allclose(shared, plain, atol=1e-3)


def test_token_samples_are_seeded_nested_and_fresh_each_step():
    from kolorsc.engines.kolors.shared_attention import token_sample

    a = token_sample(64, 0.5, (1, 7), 2)
    assert torch.equal(a, token_sample(64, 0.5, (1, 7), 2)) and len(a) == 32
    assert set(token_sample(64, 0.25, (1, 7), 2).tolist()) <= set(a.tolist())
    assert not torch.equal(a, token_sample(64, 0.5, (1, 7), 3))
    assert not torch.equal(a, token_sample(64, 0.5, (2, 7), 2))


def shared_jobs(panels, group=3, identity=2, rate=0.5):
    members = tuple(SharedMember(p, p.seed, (), rate) for p in panels[:identity])
    shared = SharedAttention(members, group=group, rate=rate)
    return [RenderJob(p, p.seed, shared=shared) for p in panels]


def test_shared_render_yields_every_job_once_and_a_panel_alone_equals_its_full_build(engine):
    panels = [make_panel(index=i, prompt=f"一只猫{i}", seed=i, steps=3) for i in range(1, 6)]
    jobs = shared_jobs(panels)
    full = list(engine.render(jobs, None))
    assert sorted(j.panel.index for j, _ in full) == [1, 2, 3, 4, 5]
    by_index = {j.panel.index: pixels(im) for j, im in full}
    alone = render(engine, [jobs[3]])  # only panel 4 rebuilt: the identity panels run again, unyielded
    assert list(alone) == [(4, 4)] and np.array_equal(alone[(4, 4)], by_index[4])
    ident = render(engine, [jobs[1]])  # an identity panel alone
    assert np.array_equal(ident[(2, 2)], by_index[2])
    unshared = render(engine, [RenderJob(panels[3], 4)])
    assert not np.array_equal(unshared[(4, 4)], by_index[4])  # sharing changed it


def test_panels_with_and_without_guidance_share_one_batch(engine):
    from kolorsc.engines.kolors.batch import plan_batches

    panels = [make_panel(index=i, prompt=f"一只猫{i}", seed=i, steps=2, cfg=1.0 if i == 3 else 4.0) for i in range(1, 5)]
    jobs = shared_jobs(panels, group=4)
    assert len(plan_batches(jobs)) == 1  # one identity, one batch: guidance on for all, cfg 1 is uncond + 1 * (cond - uncond)
    full = render(engine, jobs)
    assert sorted(full) == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert np.array_equal(render(engine, [jobs[2]])[(3, 3)], full[(3, 3)])


def test_sharing_off_leaves_the_images_of_today(models_dir, tmp_path):
    panels = [make_panel(index=i, prompt=f"一只猫{i}", seed=i, steps=2) for i in range(1, 4)]
    before = render(make_story_engine(models_dir, tmp_path / "a"), [RenderJob(p, p.seed) for p in panels])
    e = make_story_engine(models_dir, tmp_path / "b")
    render(e, shared_jobs(panels))  # a shared render first: its hooks must leave nothing behind
    after = render(e, [RenderJob(p, p.seed) for p in panels])
    assert all(np.array_equal(before[k], after[k]) for k in before)
    unet = e.unet
    assert not any("forward" in m.__dict__ or "interact_with_ipadapter" in m.__dict__ for m in unet.modules())


def test_batches_are_padded_to_one_shape(engine):
    from kolorsc.engines.kolors.batch import plan_batches

    panels = [make_panel(index=i, seed=i, steps=2) for i in range(1, 7)]
    jobs = shared_jobs(panels, group=4, identity=2)
    batches = plan_batches(jobs)
    assert [len(b.items) for b in batches] == [4, 4]
    assert [[it.panel.index for it in b.items] for b in batches] == [[1, 2, 3, 4], [1, 2, 5, 6]]
    assert [it.job is not None for it in batches[1].items] == [False, False, True, True]
    odd = plan_batches(jobs[:5])  # 3 readers in slots of 2: the last batch repeats panel 5, unyielded
    assert [[it.panel.index for it in b.items] for b in odd] == [[1, 2, 3, 4], [1, 2, 5, 5]]
    assert [it.job is not None for it in odd[1].items] == [False, False, True, False]
    plain = plan_batches([RenderJob(panels[0], 1, (ref("girl", GIRL, 0.5),))])
    assert len(plain) == 1 and plain[0].identity == 0 and len(plain[0].items) == 1


def test_shared_and_references_together(engine):
    panels = [make_panel(index=i, prompt=f"一只猫{i}", seed=i, steps=2) for i in range(1, 4)]
    members = (SharedMember(panels[0], 1, (ref("girl", GIRL, 0.6),)), SharedMember(panels[1], 2))
    shared = SharedAttention(members, group=3)
    jobs = [RenderJob(panels[0], 1, (ref("girl", GIRL, 0.6),), shared), RenderJob(panels[1], 2, (), shared),
            RenderJob(panels[2], 3, (ref("prince", PRINCE, 0.6),), shared)]
    out = render(engine, jobs)
    assert len(out) == 3
    alone = render(engine, [jobs[2]])
    assert np.array_equal(alone[(3, 3)], out[(3, 3)])


# -- `kolorsc models pull|verify ip-adapter` ---------------------------------------------------


def test_ip_adapter_model_is_pulled_and_verified_like_the_others(models_dir, tmp_path):
    import shutil

    from kolorsc import models

    assert models.verify(["ip-adapter"], models_dir).ok
    calls = []

    def download(repo, files, dest):  # stands in for modelscope's snapshot_download
        calls.append((repo, sorted(files)))
        for rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(models_dir / repo / rel, dest / rel)

    dest = tmp_path / "models"
    [folder] = models.pull(["ip-adapter"], dest, download=download)
    assert calls == [("Kwai-Kolors/Kolors-IP-Adapter-Plus",
                      ["image_encoder/config.json", "image_encoder/pytorch_model.bin", "ip_adapter_plus_general.bin"])]
    assert folder == dest / IP_REPO and models.verify(["ip-adapter"], dest).ok
    adapter = folder / "ip_adapter_plus_general.bin"
    adapter.write_bytes(adapter.read_bytes()[:1000])
    [problem] = models.verify(["ip-adapter"], dest).problems()
    assert "ip_adapter_plus_general.bin" in problem and "zip" in problem


# -- from a story file to images ---------------------------------------------------------------


def test_story_to_images_a_new_picture_re_renders_exactly_its_characters_panels(models_dir, tmp_path):
    """A story with two characters' pictures and the adapter on, through the story format,
    the per-panel resolution, the render keys' consistency inputs, the jobs and the engine."""
    from dataclasses import replace

    from _spec_fixtures import edit, make_project, story_text, write_story

    from kolorsc.consistency import panel_consistency, render_key_inputs
    from kolorsc.engines.jobs import render_jobs
    from kolorsc.prompts import compile_story
    from kolorsc.spec import load_story

    proj = make_project(tmp_path)
    (proj / "stories" / "girl.png").write_bytes(GIRL)
    (proj / "stories" / "prince.png").write_bytes(PRINCE)
    text = edit(story_text(), "    look: 一个黑色长发少女，红色长裙\n", "    look: 一个黑色长发少女，红色长裙\n    reference: girl.png\n")
    text = edit(text, "    look: 一个英俊少年，白色长袍\n", "    look: 一个英俊少年，白色长袍\n    reference: prince.png\n")
    text = edit(text, "defaults:\n", "consistency:\n  ip_adapter: {scale: 0.7}\ndefaults:\n")
    path = write_story(proj, text)

    def build(story):
        panels = [replace(p, width=64, height=64, steps=1) for p in compile_story(story)]
        pcs = panel_consistency(story)
        pictures = {k: c.reference.path.read_bytes() for k, c in story.characters.items()}
        shas = {k: hashlib.sha256(v).hexdigest() for k, v in pictures.items()}
        by_index, by_pc = {p.index: p for p in panels}, {pc.index: pc for pc in pcs}
        keys = {i: render_key_inputs(by_pc[i], by_index, by_pc, shas) for i in by_index}
        jobs = render_jobs(panels, pcs, pictures)
        return keys, jobs

    engine = make_story_engine(models_dir, tmp_path / "cache")
    keys, jobs = build(load_story(path))
    before = {k[0]: im for k, im in render(engine, list(jobs.values())).items()}
    (proj / "stories" / "prince.png").write_bytes(picture((250, 250, 40), pattern=3))
    keys2, jobs2 = build(load_story(path))
    changed = sorted(i for i in keys if keys[i] != keys2[i])
    assert changed == [4, 5, 6]  # the scenes whose prompt names the prince
    rerendered = {k[0]: im for k, im in render(engine, [j for (i, _), j in jobs2.items() if i in changed]).items()}
    assert all(not np.array_equal(before[i], rerendered[i]) for i in changed)
    unchanged = {k[0]: im for k, im in render(engine, [j for (i, _), j in jobs2.items() if i not in changed]).items()}
    assert all(np.array_equal(before[i], unchanged[i]) for i in unchanged)
