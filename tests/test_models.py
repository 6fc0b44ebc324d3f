"""Every registered model builds, runs forward and backward, and stays finite."""

from __future__ import annotations

import pytest
import torch

from dlcourse_tui.errors import UserError
from dlcourse_tui.models.registry import count_params, create_model, get_entry, list_models


@pytest.mark.parametrize("entry", list_models(), ids=lambda e: e.name)
def test_every_model_forward_and_backward(entry) -> None:
    classes = 2 if entry.example_shape == (2,) else 10
    model = create_model(entry.name, input_shape=entry.example_shape, num_classes=classes)
    x = torch.randn(4, *entry.example_shape)
    out = model(x)
    assert out.shape[0] == 4 and out.shape[1] in (1, classes)
    out.float().pow(2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(out).all()
    assert entry.description and entry.task == "classify"


def test_list_models_filters_with_shell_patterns() -> None:
    assert [e.name for e in list_models("lin*")] == ["linear"]
    assert {e.name for e in list_models()} >= {"linear", "neuron", "mlp"}


def test_linear_classifier_templates_are_the_rows_of_w() -> None:
    model = create_model("linear", input_shape=(3, 32, 32), num_classes=10)
    assert count_params(model) == 3 * 32 * 32 * 10 + 10
    assert torch.equal(model.class_templates()[3].flatten(), model.fc.weight[3])


def test_single_neuron_features_are_monomials() -> None:
    model = create_model("neuron", input_shape=(2,), num_classes=2, args={"degree": 2})
    phi = model.features(torch.tensor([[2.0, 3.0]]))
    assert sorted(phi[0].tolist()) == sorted([2.0, 3.0, 4.0, 6.0, 9.0])


def test_unknown_model_and_bad_args_are_user_errors() -> None:
    with pytest.raises(UserError, match="Did you mean: mlp"):
        get_entry("mpl")
    with pytest.raises(UserError, match="model mlp has no setting 'degree'"):
        create_model("mlp", input_shape=(2,), num_classes=2, args={"degree": 3}, strict={"degree"})
    with pytest.raises(UserError, match="takes 2-D points"):
        create_model("neuron", input_shape=(3, 32, 32), num_classes=2)
