"""Build a torchvision model, randomize it, and write its state_dict and its output.

Run by tests/references/torchvision_site.py in a subprocess whose PYTHONPATH holds a
torchvision installed without dependencies; never imported by the test interpreter. Its
one argument is a JSON request: {"model", "size", "options", "folder"}; it reads
`folder/input.npy` and writes `folder/weights.safetensors` and `folder/output.npy`.

torchvision's C extension does not load against this torch; its model definitions do once
the modules that register its fake and autograd ops on that extension are skipped, which
is what the two stand-in modules below do. The models are torchvision's own classes;
"small" sizes shrink only what dominates the weights (channel widths or classifier
widths), keeping every state_dict key.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

for _skipped in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules[_skipped] = types.ModuleType(_skipped)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402
from torchvision import models  # noqa: E402
from torchvision.models import vgg  # noqa: E402


def _alexnet(size: str, options: dict) -> nn.Module:
    model = models.alexnet(num_classes=options.get("classes", 1000))
    if size == "small":  # 256-wide classifier (hidden: 256); the convs keep their widths
        hidden, classes = 256, options.get("classes", 1000)
        model.classifier[1], model.classifier[4] = nn.Linear(256 * 6 * 6, hidden), nn.Linear(hidden, hidden)
        model.classifier[6] = nn.Linear(hidden, classes)
    return model


def _vgg(batch_norm: bool) -> Callable[[str, dict], nn.Module]:
    def build(size: str, options: dict) -> nn.Module:
        classes = options.get("classes", 1000)
        if size == "full":
            return (models.vgg16_bn if batch_norm else models.vgg16)(num_classes=classes)
        # an eighth of the channels (width: 8) and a 128-wide classifier (hidden: 128)
        config = [v if v == "M" else v // 8 for v in vgg.cfgs["D"]]
        model = vgg.VGG(vgg.make_layers(config, batch_norm=batch_norm), num_classes=classes)
        model.classifier[0], model.classifier[3] = nn.Linear(64 * 7 * 7, 128), nn.Linear(128, 128)
        model.classifier[6] = nn.Linear(128, classes)
        return model

    return build


def _plain(constructor: Callable[..., nn.Module], **fixed: object) -> Callable[[str, dict], nn.Module]:
    """torchvision's builder as it is (both sizes); `classes` is its num_classes."""

    def build(size: str, options: dict) -> nn.Module:
        renamed = {"classes": "num_classes"}
        return constructor(**fixed, **{renamed.get(k, k): v for k, v in options.items()})

    return build


def _vit(size: str, options: dict) -> nn.Module:
    if size == "full":
        return models.vit_b_16(num_classes=options.get("classes", 1000))
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        image_size=options.get("image", 64),
        patch_size=16,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        mlp_dim=128,
        num_classes=options.get("classes", 10),
    )


def _convnext(size: str, options: dict) -> nn.Module:
    classes = options.get("classes", 1000)
    if size == "full":
        return models.convnext_tiny(num_classes=classes)
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    # a quarter of the channels and fewer blocks (dims [24, 48, 96, 192], depths [1, 1, 2, 1])
    setting = [
        CNBlockConfig(24, 48, 1),
        CNBlockConfig(48, 96, 1),
        CNBlockConfig(96, 192, 2),
        CNBlockConfig(192, None, 1),
    ]
    return ConvNeXt(setting, stochastic_depth_prob=0.1, num_classes=classes)


BUILDERS: dict[str, Callable[[str, dict], nn.Module]] = {
    "resnet18": _plain(models.resnet18),
    "resnet50": _plain(models.resnet50),
    "alexnet": _alexnet,
    "vgg16": _vgg(batch_norm=False),
    "vgg16_bn": _vgg(batch_norm=True),
    "googlenet": _plain(models.googlenet, aux_logits=False, init_weights=True),
    "vit_b_16": _vit,
    "mobilenet_v2": _plain(models.mobilenet_v2),
    "efficientnet_b0": _plain(models.efficientnet_b0),
    "convnext_tiny": _convnext,
}


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights that keep the signal alive through every layer (He-normal for convs
    and linears, whose torchvision initializations shrink it: GoogLeNet's std 0.01 leaves
    logits that do not depend on the input), random normalization statistics and scales,
    random biases, and random values wherever torchvision starts a tensor at a constant
    (ViT's zero class token, ConvNeXt's 1e-6 layer scales), so that a misplaced tensor shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            shape = tensor.shape
            if name.endswith("running_var") or (tensor.ndim == 1 and name.endswith("weight")):
                tensor.copy_(torch.rand(shape, generator=generator) * 0.5 + 0.75)
            elif name.endswith("running_mean") or name.endswith("bias"):
                tensor.copy_(torch.randn(shape, generator=generator) * 0.1)
            elif "layer_scale" in name:
                tensor.copy_(torch.rand(shape, generator=generator) * 0.5 + 0.25)
            elif name.endswith("weight") and tensor.ndim >= 2:  # conv, linear, in_proj_weight
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            elif tensor.numel() > 1 and bool((tensor == tensor.flatten()[0]).all()):
                tensor.copy_(torch.randn(shape, generator=generator) * 0.05)
    return model.eval()


def main() -> None:
    request = json.loads(sys.argv[1])
    folder = Path(request["folder"])
    torch.manual_seed(0)
    model = randomize(BUILDERS[request["model"]](request["size"], dict(request["options"])))
    image = torch.from_numpy(np.load(folder / "input.npy"))
    with torch.no_grad():
        output = model(image)
    np.save(folder / "output.npy", output.numpy())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "weights.safetensors"))


if __name__ == "__main__":
    main()
