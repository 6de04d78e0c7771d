"""Models the Masker is given: the output layer is what the model returns; bad models and batches are refused."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import nodeprune as npr
from conftest import Snapshot, make_mlp


class ProbeAfterHead(nn.Module):
    """A probe on the hidden features, called after the real head; its output is kept for logging only."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 6), nn.Linear(6, 5)
        self.head = nn.Linear(5, 3)
        self.probe = nn.Linear(5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc2(torch.sigmoid(self.fc1(x))))
        y = self.head(h)
        self.statistic = float(self.probe(h).detach().mean())
        return y


class Heads(nn.Module):
    """Two heads on shared features, returned as a tuple, a dict or a ModelOutput-like mapping."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.fc = nn.Linear(4, 6)
        self.logits_head, self.aux_head = nn.Linear(6, 3), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> object:
        h = torch.relu(self.fc(x))
        logits, aux = self.logits_head(h), self.aux_head(h)  # aux is called last
        if self.kind == "tuple":
            return logits, aux
        if self.kind == "dict":
            return {"logits": logits, "aux": aux}
        return ModelOutput(aux=aux, logits=logits)  # logits is not first: .logits is the output


class ModelOutput(OrderedDict):
    """Like transformers' ModelOutput: an OrderedDict whose fields are also attributes."""

    def __getattr__(self, name: str) -> object:
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(name) from error


def test_a_probe_called_after_the_head_is_neither_the_output_layer_nor_a_layer() -> None:
    torch.manual_seed(0)
    model = ProbeAfterHead().eval()
    x = torch.randn(8, 4)
    masker = npr.Masker(model, x[:1])
    assert masker.output_layer == "head" and masker.output_layers == ("head",)
    assert [layer.name for layer in masker.layers] == ["fc1", "fc2"]
    assert all(layer.exact for layer in masker.layers)
    with pytest.raises(ValueError, match="'head' is the output layer"):
        masker.layer("head")
    with pytest.raises(ValueError, match="'probe' is not a layer: its output does not reach the model's output"):
        masker.layer("probe")
    masker.remove("fc1", [0, 3])
    masker.remove("fc2", [1])
    with masker.applied(), torch.no_grad():
        masked = model(x)
    small = masker.compact()
    with torch.no_grad():
        compact = small(x)
    assert torch.allclose(masked, compact, atol=1e-6)  # the probe's input columns are removed with fc2's nodes
    assert small.probe.in_features == 4 and small.head.in_features == 4


@pytest.mark.parametrize("kind", ["tuple", "dict", "ModelOutput"])
def test_a_model_returning_a_tuple_dict_or_model_output_has_the_head_of_its_logits_as_output_layer(kind) -> None:
    torch.manual_seed(0)
    model = Heads(kind).eval()
    with pytest.warns(UserWarning, match="'aux_head': no consumer module"):  # a returned tensor, still a layer
        masker = npr.Masker(model, torch.randn(1, 4))
    assert masker.output_layer == "logits_head"
    assert [layer.name for layer in masker.layers] == ["fc", "aux_head"]


def test_a_sum_of_two_heads_makes_both_output_layers() -> None:
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 3), nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.fc(x))
            return self.a(h) + self.b(h)

    masker = npr.Masker(TwoHeads(), torch.randn(1, 4))
    assert masker.output_layers == ("a", "b") and masker.output_layer == "b"
    assert [layer.name for layer in masker.layers] == ["fc"]


def test_refuses_an_empty_example_batch() -> None:
    model = make_mlp()
    snapshot = Snapshot.of(model)
    with pytest.raises(ValueError, match=r"must be a batch of at least one sample. Got a tensor of shape \(0, 6\)"):
        npr.Masker(model, torch.randn(0, 6))
    with pytest.raises(ValueError, match="at least one sample"):
        npr.Masker(model, (torch.randn(0, 6),))
    snapshot.assert_same(model)


def test_refuses_construction_inside_inference_mode() -> None:
    model = make_mlp()
    x = torch.randn(1, 6)
    with torch.inference_mode(), pytest.raises(ValueError, match=r"inside torch.inference_mode\(\).*outside"):
        npr.Masker(model, x)


def test_refuses_a_model_built_under_inference_mode() -> None:
    with torch.inference_mode():
        model = make_mlp()
    with pytest.raises(ValueError, match=r"'fc1.weight' is an inference tensor.*load_state_dict"):
        npr.Masker(model, torch.randn(1, 6))


def test_refuses_example_inputs_made_under_inference_mode() -> None:
    with torch.inference_mode():
        x = torch.randn(1, 6)
    with pytest.raises(ValueError, match=r"inference tensor.*example_inputs.clone\(\)"):
        npr.Masker(make_mlp(), x)


def test_refuses_a_torch_compile_wrapper_and_names_orig_mod() -> None:
    model = make_mlp()
    compiled = torch.compile(model)  # compiles lazily: nothing is compiled here
    with pytest.raises(TypeError, match=r"torch.compile wrapper.*ignores the hooks.*Pass model._orig_mod"):
        npr.Masker(compiled, torch.randn(1, 6))
    assert [layer.name for layer in npr.Masker(compiled._orig_mod, torch.randn(1, 6)).layers] == ["fc1", "fc2"]


class DetachedProbe(nn.Module):
    """A probe reading the hidden features outside autograd (``h.detach()``): torch-pruning cannot see it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head, self.probe = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 3), nn.Linear(5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc2(torch.relu(self.fc1(x))))
        self.statistic = float(self.probe(h.detach()).mean().detach())
        return self.head(h)


def test_refuses_to_compact_when_a_detached_reader_would_break_the_compacted_model() -> None:
    torch.manual_seed(0)
    model = DetachedProbe().eval()
    masker = npr.Masker(model, torch.randn(2, 4))
    masker.remove("fc2", [1, 3])
    model(torch.randn(1, 4))  # the model's own forward sets an attribute: snapshot after it
    before = Snapshot.of(model)
    with pytest.raises(npr.masker.CompactionError, match=r"fails on the example inputs.*h\.detach"):
        masker.compact()
    before.assert_same(model)
    with masker.applied():  # the masks themselves keep working
        model(torch.randn(3, 4))


def test_refuses_a_compacted_copy_that_differs_from_the_masked_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from nodeprune._masking import compaction

    torch.manual_seed(0)
    model = make_mlp().eval()
    masker = npr.Masker(model, torch.randn(2, 6))
    masker.remove("fc1", [0, 4])
    original = compaction.compacted

    def wrong(*args: object, **kwargs: object) -> nn.Module:
        small = original(*args, **kwargs)  # type: ignore[arg-type]
        with torch.no_grad():
            small.fc2.bias += 1.0
        return small

    monkeypatch.setattr(compaction, "compacted", wrong)
    with pytest.raises(npr.masker.CompactionError, match="differs from the masked one"):
        masker.compact()
