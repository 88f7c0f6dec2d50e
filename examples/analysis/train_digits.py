"""Train examples/analysis/digits_cnn.yaml on scikit-learn's digits with plain torch (the
dlc torch module, full-batch Adam, a few seconds) and save its weights for `dlc attack`:

    python examples/analysis/train_digits.py digits_cnn.safetensors
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import dlc

SPEC = Path(__file__).with_name("digits_cnn.yaml")


def train_digits(output: str | Path) -> float:
    """Train, save the weights to `output`, return the test accuracy."""
    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    # The split `dlc attack --data digits` evaluates on: 20 %, stratified, seed 0.
    train_x, test_x, train_y, test_y = train_test_split(
        images, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    module = dlc.compile(SPEC, opt_level=0, seed=0).torch_module().train()
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-2)
    inputs, labels = torch.from_numpy(train_x), torch.from_numpy(train_y)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(module(inputs)[0], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    with torch.no_grad():
        accuracy = (module(torch.from_numpy(test_x))[0].argmax(1).numpy() == test_y).mean()
    save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(output))
    return float(accuracy)


if __name__ == "__main__":
    destination = sys.argv[1] if len(sys.argv) > 1 else "digits_cnn.safetensors"
    print(f"test accuracy {train_digits(destination):.1%}; wrote {destination}")
