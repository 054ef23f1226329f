"""docs/testing.md is executable: its python blocks run, and its worked example's tests pass
(and, with the naive loss the text warns about, the finiteness test fails as it says)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hypothesis import Phase, settings

from densitylab import testing

DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def run_block(source: str, name: str) -> dict:
    namespace: dict = {"__name__": f"docs_testing_{name}"}
    exec(compile(source, f"{DOC}:{name}", "exec"), namespace)
    return namespace


def call_tests(namespace: dict) -> list[str]:
    names = [k for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    for name in names:
        namespace[name]()
    return names


def test_the_document_has_the_worked_example_and_the_metric_example():
    blocks = python_blocks()
    assert len(blocks) >= 3
    assert sum("def test_" in b for b in blocks) >= 2


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_every_python_block_runs_and_its_tests_pass(index):
    source = python_blocks()[index]
    namespace = run_block(source, f"block{index}")
    names = call_tests(namespace)
    assert ("def test_" in source) == bool(names)


def test_the_worked_example_catches_the_naive_loss():
    source = next(b for b in python_blocks() if "my_discriminator_loss" in b)
    namespace = run_block(source, "worked_example")
    smoothing = namespace["SMOOTHING"]

    def naive_loss(real_logits, fake_logits, smoothing=smoothing):
        p_real, p_fake = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
        real_term = -(smoothing * torch.log(p_real) + (1 - smoothing) * torch.log(1 - p_real))
        return real_term.mean() - torch.log(1 - p_fake).mean()

    namespace["my_discriminator_loss"] = naive_loss  # the test looks the name up at call time
    finite_test = namespace["test_loss_and_gradients_are_finite_for_extreme_logits"]
    # finding the failure is the point here, not shrinking it
    quick = settings(settings.default, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                     print_blob=False)
    with pytest.raises(AssertionError, match="non-finite"):
        quick(finite_test)()


def test_the_document_names_only_real_helpers_and_the_profile_variable():
    text = DOC.read_text(encoding="utf-8")
    for name in set(re.findall(r"testing\.([a-z_]+)\(", text)) | set(
        re.findall(r"`((?:assert|register)_[a-z_]+)\(", text)
    ):
        assert name in testing.__all__, name
    assert testing.PROFILE_ENV_VAR in text
