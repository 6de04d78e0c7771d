"""Inline masks: inside ``Masker.applied()`` a plain, hook-free ``nn.Linear`` takes its input mask in its forward.

The promise is the hook's, bit for bit: the same outputs and the same gradients as masking the consumer's
input (``attach()``, which uses forward pre-hooks only), masked = compacted, nothing left on the model after
the block, and a clear warning where a hook registered inside the block would see the unmasked input.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import pytest
import torch
from torch import nn

import nodeprune as npr
from conftest import make_mlp


def pruned_mlp(seed: int = 0, sizes: tuple[int, ...] = (6, 12, 9, 4)) -> npr.Masker:
    torch.manual_seed(seed)
    model = make_mlp(sizes).eval()
    masker = npr.Masker(model, torch.randn(1, sizes[0]))
    generator = torch.Generator().manual_seed(seed)
    for layer in masker.layers[:-1]:
        nodes = torch.randperm(layer.size, generator=generator)[: layer.size // 2]
        masker.remove(layer.name, nodes.tolist())
    return masker


def inline_modules(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if "forward" in module.__dict__]


def attached_output(masker: npr.Masker, x: torch.Tensor) -> torch.Tensor:
    masker.attach()
    try:
        return masker.model(x)
    finally:
        masker.detach()


@pytest.mark.parametrize("seed", range(5))
def test_inline_output_is_the_hooks_bit_for_bit_and_the_compacted_models(seed: int) -> None:
    masker = pruned_mlp(seed)
    x = torch.randn(33, 6)
    with torch.no_grad():
        with masker.applied() as model:
            assert inline_modules(model) == ["fc2", "out"]
            inline = model(x)
            again = model(x)
        hooked = attached_output(masker, x)
        compact = masker.compact()(x)
    assert torch.equal(inline, hooked) and torch.equal(again, hooked)
    assert torch.allclose(inline, compact, atol=1e-6, rtol=0)


def test_inline_gradients_equal_the_hooks() -> None:
    masker = pruned_mlp(1)
    model = masker.model
    x = torch.randn(17, 6, requires_grad=True)
    target = torch.randint(0, 4, (17,))

    def gradients(run) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
        model.zero_grad()
        x.grad = None
        nn.functional.cross_entropy(run(x), target).backward()
        return [x.grad.clone(), *(p.grad.clone() for p in model.parameters())]

    def inline(inputs: torch.Tensor) -> torch.Tensor:
        with masker.applied():
            return model(inputs)

    by_hooks = gradients(lambda inputs: attached_output(masker, inputs))
    by_inline = gradients(inline)
    for hooked, inlined in zip(by_hooks, by_inline, strict=True):
        assert torch.equal(hooked, inlined)
    masked_columns = ~masker.mask("fc1")
    assert bool((model.fc2.weight.grad[:, masked_columns] == 0).all())


def test_nothing_is_left_on_the_model_after_the_block_even_when_it_raises() -> None:
    masker = pruned_mlp()
    model = masker.model
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="inside"), masker.applied():
        assert inline_modules(model)
        raise RuntimeError("inside")
    assert inline_modules(model) == []
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    pickle.dumps(model)


def test_pickling_inside_the_block_is_refused_as_with_the_pre_hooks() -> None:
    masker = pruned_mlp()
    with masker.applied() as model, pytest.raises(TypeError, match="'fc2' carries a Masker's inline mask"):
        pickle.dumps(model)


def test_a_mask_or_weight_changed_inside_the_block_acts_at_the_next_forward() -> None:
    masker = pruned_mlp(2)
    model = masker.model
    x = torch.randn(8, 6)
    with torch.no_grad(), masker.applied():
        first = model(x)
        masker.restore("fc1", masker.removed("fc1"))
        restored = model(x)
        model.fc2.weight.mul_(2.0)  # an in-place change acts at the next forward
        doubled = model(x)
    with torch.no_grad():
        expected_doubled = attached_output(masker, x)
        model.fc2.weight.div_(2.0)
        expected_restored = attached_output(masker, x)
    assert not torch.equal(first, restored)
    assert torch.equal(restored, expected_restored)
    assert torch.equal(doubled, expected_doubled)


def test_a_replaced_weight_parameter_is_used() -> None:
    masker = pruned_mlp(3)
    model = masker.model
    x = torch.randn(8, 6)
    with torch.no_grad(), masker.applied():
        model(x)
        model.fc2.weight = nn.Parameter(torch.randn_like(model.fc2.weight))
        inline = model(x)
    with torch.no_grad():
        assert torch.equal(inline, attached_output(masker, x))


def test_merges_act_inline_as_through_the_hooks() -> None:
    masker = pruned_mlp(4)
    kept = [node for node in range(12) if bool(masker.mask("fc1")[node])]
    masker.merge("fc1", kept[0], into=kept[1], scale=0.5)
    masker.replace("fc1", kept[2], 0.25)
    x = torch.randn(10, 6)
    with torch.no_grad():
        with masker.applied() as model:
            inline = model(x)
        compact = masker.compact()(x)
        assert torch.equal(inline, attached_output(masker, x))
    assert torch.allclose(inline, compact, atol=1e-5, rtol=0)


def test_nested_blocks_and_attach() -> None:
    masker = pruned_mlp(5)
    model = masker.model
    x = torch.randn(8, 6)
    with torch.no_grad():
        plain = model(x)
        expected = attached_output(masker, x)
        with masker.applied():
            with masker.applied():
                assert torch.equal(model(x), expected)
            assert inline_modules(model) == ["fc2", "out"]
            assert torch.equal(model(x), expected)
        masker.attach()
        try:
            assert inline_modules(model) == []  # attach() masks through pre-hooks only
            with masker.applied():
                assert torch.equal(model(x), expected)
        finally:
            masker.detach()
        assert torch.equal(model(x), plain)


def test_inference_mode_then_gradients() -> None:
    """A block used under inference_mode, then for a forward that autograd records (frozen weights)."""
    masker = pruned_mlp(6)
    model = masker.model
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    x = torch.randn(8, 6)
    with masker.applied():
        with torch.inference_mode():
            first = model(x)
        leaf = x.clone().requires_grad_(True)
        second = model(leaf)
        second.sum().backward()
    assert torch.equal(first, second.detach())
    assert leaf.grad is not None and bool((leaf.grad != 0).any())


def test_keyword_calls_and_subclasses() -> None:
    class Scaled(nn.Linear):
        def forward(self, input: torch.Tensor) -> torch.Tensor:
            return super().forward(input) * 2.0

    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), Scaled(8, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    masker = npr.Masker(model, torch.randn(1, 5))
    masker.remove("0", [1, 4])
    masker.remove("2", [0])
    x = torch.randn(4, 5)
    with torch.no_grad():
        with masker.applied():
            assert inline_modules(model) == ["4"]  # the subclass keeps the pre-hook
            assert torch.equal(model[4](input=torch.ones(2, 6)), model[4](torch.ones(2, 6)))
            inline = model(x)
        assert torch.allclose(inline, masker.compact()(x), atol=1e-6, rtol=0)


def test_a_hook_registered_before_the_block_keeps_the_pre_hook_and_sees_the_masked_input() -> None:
    masker = pruned_mlp(8)
    model = masker.model
    seen: list[torch.Tensor] = []
    handle = model.fc2.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    try:
        with torch.no_grad(), masker.applied():
            assert inline_modules(model) == ["out"]
            model(torch.randn(5, 6))
    finally:
        handle.remove()
    assert bool((seen[0][:, ~masker.mask("fc1")] == 0).all())


def test_a_hook_registered_inside_the_block_gets_a_warning_and_the_output_stays_masked() -> None:
    masker = pruned_mlp(9)
    model = masker.model
    x = torch.randn(5, 6)
    with torch.no_grad():
        expected = attached_output(masker, x)
        with masker.applied():
            handle = model.fc2.register_forward_hook(lambda module, args, output: None)
            try:
                with pytest.warns(UserWarning, match="'fc2' registered inside Masker.applied"):
                    output = model(x)
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    model(x)  # once per consumer
            finally:
                handle.remove()
    assert torch.equal(output, expected)


def test_copies_made_inside_the_block() -> None:
    """``copy.deepcopy`` rebinds the inline forward to the copy; nodeprune's own copies drop it."""
    from nodeprune._masking.inputs import copy_model

    masker = pruned_mlp(10)
    model = masker.model
    x = torch.randn(5, 6)
    with torch.no_grad(), masker.applied():
        duplicate = copy.deepcopy(model)
        stripped = copy_model(model)
        masked = model(x)
    with torch.no_grad():
        assert torch.equal(duplicate(x), masked)  # the copy's own (equal) weights, this masker's masks
        duplicate.fc2.weight.zero_()
        assert not torch.equal(duplicate(x), masked) and torch.equal(model(x), model(x))
        assert inline_modules(stripped) == []
        assert torch.equal(stripped(x), model(x))  # unmasked


def test_weights_changed_through_data_between_and_inside_blocks() -> None:
    """``W.data`` changed in place leaves no trace (no version bump): the masked weight is never cached."""
    masker = pruned_mlp(11)
    model = masker.model
    x = torch.randn(40, 6)
    with torch.no_grad():
        with masker.applied():
            model(x)
        model.fc2.weight.data.mul_(3.0)  # between blocks (old-style training loops, clipping)
        original = model.out.weight.detach().clone()
        with masker.applied():
            between = model(x)
            model.out.weight.data.add_(1.0)  # inside the block
            inside = model(x)
        assert torch.equal(inside, attached_output(masker, x))
        model.out.weight.data.copy_(original)
        assert torch.equal(between, attached_output(masker, x))


@pytest.mark.parametrize("rows", [1, 2, 200])
def test_a_weight_larger_or_smaller_than_the_input(rows: int) -> None:
    """Either the weight (smaller) or the input (smaller) is masked; both are the hook's result."""
    masker = pruned_mlp(13, sizes=(6, 40, 30, 4))
    x = torch.randn(rows, 6)
    with torch.no_grad():
        with masker.applied() as model:
            inline = model(x)
        assert torch.equal(inline, attached_output(masker, x))
        assert torch.allclose(inline, masker.compact()(x), atol=1e-6, rtol=0)


def test_torch_func_transforms_over_the_parameters() -> None:
    """vmap over stacked weights (functional_call) and plain calls in one block, as through the pre-hooks."""
    masker = pruned_mlp(12)
    model = masker.model
    params = {name: p.detach() for name, p in model.named_parameters()}
    stacked = {name: torch.stack([p, 2 * p]) for name, p in params.items()}
    x = torch.randn(5, 6)

    def run(parameters: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.func.functional_call(model, parameters, (x,))

    with torch.no_grad():
        with masker.applied():
            both = torch.func.vmap(run)(stacked)
            first = run(params)
        masker.attach()
        try:
            expected, expected_first = torch.func.vmap(run)(stacked), run(params)
            one_by_one = torch.stack([expected_first, run({name: 2 * p for name, p in params.items()})])
        finally:
            masker.detach()
    assert torch.equal(both, expected) and torch.equal(first, expected_first)
    assert torch.allclose(both, one_by_one, atol=1e-6, rtol=0)  # vmap's batched products round differently


@pytest.mark.parametrize("how", ["applied", "attach"])
def test_masks_first_used_under_inference_mode_then_with_autograd(how: str) -> None:
    """The cached multipliers and merge tables are made outside inference mode (both ways of applying masks)."""
    masker = pruned_mlp(14)
    kept = [node for node in range(12) if bool(masker.mask("fc1")[node])]
    model = masker.model
    x = torch.randn(3, 6)
    if how == "attach":
        masker.attach()
    try:
        with masker.applied():
            with torch.inference_mode():
                masker.merge("fc1", kept[0], into=kept[1])
                model(x)
            model(x).sum().backward()
    finally:
        masker.detach()
    assert model.fc2.weight.grad is not None


def test_scores_of_another_masker_inside_an_applied_block_equal_the_naive_loop() -> None:
    """The engine's probes read layer inputs: an enclosing block's inline masks become pre-hooks for it."""
    from charpentier_reference import naive_scores

    outer = pruned_mlp(15, sizes=(6, 16, 12, 10, 4))
    model = outer.model
    inner = npr.Masker(model, torch.randn(1, 6))
    inner.remove("fc2", [0, 1, 2, 3])
    generator = torch.Generator().manual_seed(0)
    data = (torch.randn(80, 6, generator=generator), torch.randint(0, 4, (80,), generator=generator))
    outer.attach()
    try:
        expected = naive_scores(inner, "fc1", data)
    finally:
        outer.detach()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with outer.applied():
            scores = npr.LossDelta(data, verbose=False).score(inner, "fc1")
            assert inline_modules(model) == ["fc2", "fc3", "out"]  # back after the scoring
    assert torch.allclose(scores.double(), expected, atol=1e-7, rtol=0)


def test_a_backward_hook_registered_inside_the_block_gets_the_warning() -> None:
    masker = pruned_mlp(16)
    model = masker.model
    with masker.applied():
        handle = model.fc2.register_full_backward_hook(lambda module, grad_in, grad_out: None)
        try:
            with pytest.warns(UserWarning, match="input \\(or its gradient\\)"):
                model(torch.randn(3, 6, requires_grad=True)).sum().backward()
        finally:
            handle.remove()


def test_a_keyword_call_through_the_pre_hooks_is_a_clear_error() -> None:
    class KeywordCall(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.out = nn.Linear(4, 6), nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(input=torch.relu(self.fc1(x)))

    torch.manual_seed(17)
    model = KeywordCall().eval()
    masker = npr.Masker(model, torch.randn(1, 4))
    masker.remove("fc1", [2])
    x = torch.randn(5, 4)
    with torch.no_grad():
        with masker.applied():
            inline = model(x)
        assert torch.allclose(inline, masker.compact()(x), atol=1e-6, rtol=0)
        masker.attach()
        try:
            with pytest.raises(TypeError, match="called with its input as a keyword"):
                model(x)
        finally:
            masker.detach()
