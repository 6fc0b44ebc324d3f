"""Parameter-efficient fine-tuning (lesson peft): every method starts as the frozen model (VPT,
whose prompts take part in every softmax, against an oracle that runs the blocks by hand),
frozen weights stay bitwise the same through training, merged LoRA equals unmerged LoRA,
deep VPT puts new prompts in before every block, the trainable-parameter counts follow
their formulas, the backbone loads from an upstream run, bad settings are refused in one
sentence, and the LoRA exercise's mistakes fail with their messages."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dlcourse_tui.engine.upstream import Upstream
from dlcourse_tui.errors import UserError
from dlcourse_tui.lessons import find_lesson
from dlcourse_tui.models.peft import METHODS, LoRALinear, Method, PEFTViT, adapt, merge_all_lora, trainable

D, LAYERS, HEADS, CLASSES = 8, 2, 2, 5


def tiny_vit(seed: int = 0, **kw) -> PEFTViT:
    """A random ViT of 16 patches (8×8 on 32×32), d = 8, 2 blocks, with the locality bias."""
    torch.manual_seed(seed)
    cfg = PEFTViT.Config(input_shape=(3, 32, 32), num_classes=CLASSES, patch_size=8, d_model=D, heads=HEADS,
                         layers=LAYERS, mlp_ratio=2.0, **kw)
    return PEFTViT(cfg)


def images(n: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))  # (n, 3, 32, 32)


def assert_near(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    got, want = got.detach(), want.detach()
    assert got.shape == want.shape and torch.allclose(got, want, rtol=rtol, atol=atol), (got - want).abs().max()


def adapted(name: str, seed: int = 0, **kw) -> tuple[PEFTViT, PEFTViT]:
    """(the frozen model, a copy adapted by method `name`)."""
    frozen = tiny_vit(seed)
    return frozen, adapt(copy.deepcopy(frozen), Method(name=name, **kw))


@pytest.mark.parametrize("name", ["full", "probe", "lora", "adapter"])
def test_at_step_0_each_method_computes_exactly_what_the_frozen_model_computes(name) -> None:
    frozen, model = adapted(name, targets="qkvo", rank=3, adapter_dim=4)
    x = images()
    assert torch.equal(model(x), frozen(x))  # B = 0 and W_up = 0: an exact zero added, not a small one


def oracle_vpt(vit: PEFTViT, x: torch.Tensor, prompts: torch.Tensor, deep: bool) -> torch.Tensor:
    """VPT's equations run block by block from the frozen ViT's parts: [x_cls, P, E] into block 1;
    before each later block the prompt rows are P_i again (deep) or what the block before gave
    (shallow); the locality bias is zero on the prompts' rows and columns."""
    n = prompts.shape[1]
    z = vit.tokens(x)  # (B, 1 + P, d)
    bias = vit.attention_bias()  # (1, h, 1 + P, 1 + P)
    keep = [0] + list(range(1 + n, 1 + n + z.shape[1] - 1))  # rows of [CLS] and the patches among 1 + n + P
    full = torch.zeros(1, HEADS, z.shape[1] + n, z.shape[1] + n)
    full[:, :, torch.tensor(keep)[:, None], torch.tensor(keep)[None, :]] = bias
    z = torch.cat([z[:, :1], prompts[0].expand(len(x), -1, -1), z[:, 1:]], dim=1)  # (B, 1 + n + P, d)
    for i, block in enumerate(vit.encoder.blocks):
        if deep and i > 0:
            z = torch.cat([z[:, :1], prompts[i].expand(len(x), -1, -1), z[:, 1 + n:]], dim=1)
        z, _ = block(z, mask=full)
    return vit.head(vit.encoder.norm(z)[:, 0])  # (B, classes)


@pytest.mark.parametrize("name", ["vpt_shallow", "vpt_deep"])
def test_visual_prompt_tuning_follows_its_equations_on_the_frozen_blocks(name) -> None:
    frozen, model = adapted(name, prompts=3)
    x = images()
    tokens = model.prompts.tokens.detach()  # (L or 1, n, d)
    assert tokens.shape == ((LAYERS if name == "vpt_deep" else 1), 3, D)
    assert_near(model(x), oracle_vpt(frozen, x, tokens, deep=name == "vpt_deep"), rtol=1e-5, atol=1e-6)


def test_deep_vpt_replaces_the_prompt_tokens_before_every_block_and_shallow_carries_them_on() -> None:
    seen: dict[str, list[torch.Tensor]] = {}
    for name in ("vpt_deep", "vpt_shallow"):
        _, model = adapted(name, prompts=3)
        seen[name] = []
        for block in model.encoder.blocks:
            block.register_forward_pre_hook(lambda m, args, kw=None, out=seen[name]: out.append(args[0].detach()))
        model(images())
        ins = seen[name]
        for i, z in enumerate(ins):
            p = model.prompts.tokens[i if name == "vpt_deep" else 0].detach()
            if name == "vpt_deep" or i == 0:
                assert torch.equal(z[:, 1:4], p.expand(len(z), -1, -1)), (name, i)
            else:
                assert not torch.allclose(z[:, 1:4], p.expand(len(z), -1, -1)), (name, i)  # block i−1's output


def train_steps(model: PEFTViT, steps: int = 3) -> None:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05, weight_decay=0.1)
    y = torch.arange(4) % CLASSES
    for s in range(steps):
        loss = F.cross_entropy(model(images(seed=10 + s)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("name", [m for m in METHODS if m != "full"])
def test_training_changes_only_what_the_method_trains_and_frozen_weights_stay_bitwise(name) -> None:
    frozen, model = adapted(name, rank=2, adapter_dim=4, prompts=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_steps(model)
    names = dict(model.named_parameters())
    for key, old in before.items():
        if key in names and names[key].requires_grad:
            assert not torch.equal(model.state_dict()[key], old) or key.endswith(".bias"), key
        else:
            assert torch.equal(model.state_dict()[key], old), key  # frozen: not one bit moved
    frozen_keys = set(frozen.state_dict()) - {k for k in frozen.state_dict() if k.startswith("head.")}
    assert frozen_keys and all(torch.equal(model.state_dict()[k], frozen.state_dict()[k]) for k in frozen_keys)


def test_merged_lora_computes_what_unmerged_lora_computes_with_plain_linear_layers() -> None:
    _, model = adapted("lora", rank=2, alpha=4.0, targets="qkvo")
    train_steps(model)  # B is no longer zero
    assert any(m.lora_B.abs().sum() > 0 for m in model.modules() if isinstance(m, LoRALinear))
    merged = merge_all_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in merged.modules())
    assert sum(p.numel() for p in merged.parameters()) == sum(p.numel() for p in tiny_vit().parameters())
    x = images(seed=7)
    assert_near(merged(x), model(x), rtol=1e-5, atol=1e-6)
    assert any(isinstance(m, LoRALinear) for m in model.modules())  # the trained model itself is left as it was


def test_trainable_parameters_per_method_follow_their_formulas() -> None:
    d, L, head, r, m, n = D, LAYERS, D * CLASSES + CLASSES, 3, 4, 2
    expected = {
        "full": sum(p.numel() for p in tiny_vit().parameters()),
        "probe": head,
        "lora": L * 2 * r * (d + d) + head,  # W^Q and W^V of each block: A (r × d), B (d × r)
        "adapter": L * 2 * (d * m + m + m * d + d) + head,  # two adapters per block: W_down, b, W_up, b
        "vpt_shallow": n * d + head,
        "vpt_deep": L * n * d + head,
    }
    for name, count in expected.items():
        assert trainable(adapted(name, rank=r, adapter_dim=m, prompts=n)[1]) == count, name
    assert trainable(adapted("lora", rank=r, targets="qkvo")[1]) == L * 4 * r * 2 * d + head


def test_the_lessons_default_lora_meets_its_share_of_the_target_on_the_vision_transformer_lessons_vit() -> None:
    """The fallback sizes are the vision-transformer lesson's, and the default LoRA (head included)
    trains under 5% of what full fine-tuning trains on that ViT, as the lesson's target asks."""
    from dlcourse_tui.tasks.peft import VIT_INPUT, VIT_SETTINGS, method_from

    cfg, vit = find_lesson("peft").config(), find_lesson("vision-transformer").config()
    sizes = {k: vit.model_args[k] for k in VIT_SETTINGS if k in vit.model_args}
    assert sizes and {k: cfg.model_args[k] for k in sizes} == sizes

    def count(name: str) -> int:
        model = PEFTViT(PEFTViT.Config(input_shape=VIT_INPUT, num_classes=10, **sizes))
        return trainable(adapt(model, method_from({**cfg.task_args, "method": name})))

    assert count("lora") < 0.05 * count("full")


def tiny_task(tmp_path: Path, method: str, upstream: Upstream | None = None):
    from dlcourse_tui.tasks.peft import PEFTTask

    from dlcourse_tui.data import load_dataset

    cfg = find_lesson("peft").config(sets=["n_train=100", "n_val=16", "batch_size=16", f"method={method}", "d_model=8",
                                           "layers=2", "patch_size=8", "epochs=1"])
    data = load_dataset(cfg.data, seed=0, args=cfg.data_args)
    task = PEFTTask(cfg, data, torch.device("cpu"))
    task.upstream = {"backbone": upstream} if upstream else {}
    task.build()
    return task


def test_the_backbone_is_rebuilt_from_the_upstream_run_all_but_its_head(tmp_path) -> None:
    vit = tiny_vit(seed=3)
    sizes = {"patch_size": 8, "d_model": D, "heads": HEADS, "layers": LAYERS, "mlp_ratio": 2.0}
    up = Upstream("RUN", {"model": {"name": "vit", **sizes}}, {"modules": {"model": vit.state_dict()}})
    task = tiny_task(tmp_path, "lora", up)
    state = task.model.state_dict()
    assert task.data.train.x.shape[1:] == (3, 32, 32) and task.data.num_classes == 10  # digits, padded and RGB
    for k, v in vit.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(state[k], v), k
    assert task.model.head.weight.shape == (10, D)
    assert "RUN" in task.tables()[0].title
    batch = next(task.batches(0))
    task.train_step(batch)
    assert task.evaluate()["val_acc"] >= 0
    for k, v in vit.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(task.model.state_dict()[k], v), k  # still the upstream's after a step


def test_without_an_upstream_run_it_starts_from_a_random_vit_and_says_so(tmp_path) -> None:
    task = tiny_task(tmp_path, "adapter")
    table = task.tables()[0]
    assert "a random ViT" in table.title
    assert [row[0] for row in table.rows] == list(METHODS)
    assert table.rows[0][3] == "100.00%" and [row[4] for row in table.rows].count("← this run") == 1


def test_bad_settings_are_refused_in_one_sentence(dlc) -> None:
    from dlcourse_tui.tasks.peft import method_from

    with pytest.raises(UserError, match=r"^task\.lora_targets='qq': give each of q, k, v, o at most once"):
        method_from({"method": "lora", "lora_targets": "qq"})
    with pytest.raises(UserError, match=r"^task\.method='lorax' is not a method; pick one of full, probe"):
        method_from({"method": "lorax"})
    result = dlc("run", "peft", "--set", "rank=0")
    assert result.code == 2 and "rank" in result.err and len(result.err.strip().splitlines()) == 1


EXERCISE_MISTAKES = [  # (the right code, the mistake, what the learner is told)
    ("((x @ A.T) @ B.T)", "(x @ (B @ A))", "your update is x (B A), the transpose of the right one"),
    ("h + (alpha / r) * ", "h + ", "your update is not scaled at all: the low-rank term is multiplied by α / r "
                                   "(here α = 8, r = 2: 4)"),
    ("(alpha / A.shape[0]) * (B @ A)", "alpha * (B @ A)", "your merged update is scaled by α, not α / r"),
    ("((x @ A.T) @ B.T)", "((x @ A.T) @ B.T).detach()", "h does not depend on A and B through autograd"),
]


@pytest.mark.parametrize("old,new,message", EXERCISE_MISTAKES, ids=range(len(EXERCISE_MISTAKES)))
def test_the_lora_exercise_names_each_mistake(tmp_path, old, new, message) -> None:
    from dlcourse_tui.exercises.registry import find_exercise
    from dlcourse_tui.exercises.worker import grade_in_process

    ex = find_exercise("lora")
    src = ex.solution.read_text(encoding="utf-8")
    assert old in src
    path = tmp_path / "lora.py"
    path.write_text(src.replace(old, new, 1), encoding="utf-8")
    outcome = grade_in_process(ex.folder, path)
    assert not outcome.ok and outcome.kind == "check" and message in outcome.headline


def test_the_lora_exercise_plugs_into_the_model(tmp_path) -> None:
    """What --use lora swaps in is what LoRALinear calls: the reference gives the same output."""
    from dlcourse_tui.exercises.registry import find_exercise
    from dlcourse_tui.exercises.worker import load_module
    import dlcourse_tui.models.peft as peft

    ex = find_exercise("lora")
    plug, ref = load_module(ex.plug, "plug_lora_test"), load_module(ex.solution, "ref_lora_test")
    cfg = find_lesson("peft").config()
    swaps = plug.plug(ref, cfg)
    assert set(swaps) == {"dlcourse_tui.models.peft:lora_linear", "dlcourse_tui.models.peft:merge_lora"}
    _, model = adapted("lora", rank=2)
    train_steps(model, 1)
    x = images()
    want, want_merged = model(x), merge_all_lora(model)(x)
    old = peft.lora_linear, peft.merge_lora
    try:
        peft.lora_linear, peft.merge_lora = swaps["dlcourse_tui.models.peft:lora_linear"], swaps["dlcourse_tui.models.peft:merge_lora"]
        assert_near(model(x), want, rtol=1e-5, atol=1e-6)
        assert_near(merge_all_lora(model)(x), want_merged, rtol=1e-5, atol=1e-6)
    finally:
        peft.lora_linear, peft.merge_lora = old
    with pytest.raises(UserError, match="a probe run does not have"):
        plug.plug(ref, find_lesson("peft").config(variant="probe"))


def test_images_are_made_vit_sized_and_scenes_can_be_labelled_by_their_object_count() -> None:
    from dlcourse_tui.data import load_dataset
    from dlcourse_tui.tasks.peft import fit_dataset

    digits = fit_dataset(load_dataset("digits", seed=0, args={"n_train": 8, "n_val": 4}))
    raw = load_dataset("digits", seed=0, args={"n_train": 8, "n_val": 4})
    assert digits.train.x.shape == (8, 3, 32, 32) and digits.input_shape == (3, 32, 32)
    assert torch.equal(digits.train.x[:, :, 2:30, 2:30], raw.train.x.expand(-1, 3, -1, -1))  # padded, every pixel kept
    assert digits.train.x[:, :, :2].sum() == 0 and torch.equal(digits.train.y, raw.train.y)
    scenes = load_dataset("scenes", seed=0, args={"n_train": 40, "n_val": 4})
    counted = fit_dataset(scenes, "count")
    named = [sum(w in ("a", "an") for w in c.replace(",", " ").split()) for c in scenes.train.extras["captions"]]
    assert counted.train.y.tolist() == [n - 1 for n in named]  # the caption names every object once
    assert counted.classes == ("1", "2", "3", "4") and counted.train.x.shape[1:] == (3, 32, 32)
    with pytest.raises(UserError, match="^task.target=count counts objects, but digits images carry none"):
        fit_dataset(raw, "count")
