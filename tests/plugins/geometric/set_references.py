"""Plain-torch references for the set half of the geometric family, written as their
reference implementations write them, so that their state_dicts carry the reference keys.

- Deep Sets: manzilzaheer/DeepSets, PointClouds/classifier.py (the authors' PyTorch code):
  PermEqui1_max/_mean, PermEqui2_max/_mean and the DTanh classifier, transcribed; and the
  generic invariant model rho(sum phi(x)) of reference_models.json.
- PointNet: the authors' layout (charlesq34/pointnet, models/pointnet_cls.py and
  transform_nets.py) written with the module names of the PyTorch port
  fxia22/pointnet.pytorch (pointnet/model.py: STN3d, STNkd, PointNetfeat, PointNetCls),
  extended to the authors' five shared convs and ReLU after the last one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# -- Deep Sets (PointClouds/classifier.py) -----------------------------------------------


class PermEqui1_max(nn.Module):  # the reference's class names
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.Gamma = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xm, _ = x.max(1, keepdim=True)
        return self.Gamma(x - xm)


class PermEqui1_mean(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.Gamma = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xm = x.mean(1, keepdim=True)
        return self.Gamma(x - xm)


class PermEqui2_max(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.Gamma = nn.Linear(in_dim, out_dim)
        self.Lambda = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xm, _ = x.max(1, keepdim=True)
        xm = self.Lambda(xm)
        x = self.Gamma(x)
        return x - xm


class PermEqui2_mean(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.Gamma = nn.Linear(in_dim, out_dim)
        self.Lambda = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xm = x.mean(1, keepdim=True)
        xm = self.Lambda(xm)
        x = self.Gamma(x)
        return x - xm


PERM_EQUI = {
    ("max", False): PermEqui1_max,
    ("mean", False): PermEqui1_mean,
    ("max", True): PermEqui2_max,
    ("mean", True): PermEqui2_mean,
}


class DTanh(nn.Module):
    """The ModelNet40 classifier; `pool` as the reference's constructor: 'max1' (PermEqui1_max),
    'max' (PermEqui2_max), 'mean1', 'mean'. The set is max-pooled in every case."""

    def __init__(self, d_dim: int, x_dim: int = 3, pool: str = "mean") -> None:
        super().__init__()
        layer = {
            "max": PermEqui2_max,
            "max1": PermEqui1_max,
            "mean": PermEqui2_mean,
            "mean1": PermEqui1_mean,
        }[pool]
        self.phi = nn.Sequential(
            layer(x_dim, d_dim), nn.Tanh(), layer(d_dim, d_dim), nn.Tanh(), layer(d_dim, d_dim), nn.Tanh()
        )
        self.ro = nn.Sequential(
            nn.Dropout(p=0.5), nn.Linear(d_dim, d_dim), nn.Tanh(), nn.Dropout(p=0.5), nn.Linear(d_dim, 40)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phi_output = self.phi(x)
        sum_output, _ = phi_output.max(1)
        return self.ro(sum_output)


class DeepSetsSum(nn.Module):
    """rho(sum phi(x)): phi 1-100-100-100 and rho 100-100-1, ReLU (reference_models.json)."""

    def __init__(self) -> None:
        super().__init__()
        self.phi = nn.Sequential(
            nn.Linear(1, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU()
        )
        self.rho = nn.Sequential(nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rho(self.phi(x).sum(1))


# -- PointNet (the authors' layout, fxia22's names) ------------------------------------------


class STNkd(nn.Module):
    """The T-Net: fxia22's STN3d (k = 3) and STNkd (k = 64) are this module."""

    def __init__(self, k: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(k, 64, 1)
        self.conv2 = nn.Conv1d(64, 128, 1)
        self.conv3 = nn.Conv1d(128, 1024, 1)
        self.fc1 = nn.Linear(1024, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, k * k)
        self.bn1 = nn.BatchNorm1d(64)
        self.bn2 = nn.BatchNorm1d(128)
        self.bn3 = nn.BatchNorm1d(1024)
        self.bn4 = nn.BatchNorm1d(512)
        self.bn5 = nn.BatchNorm1d(256)
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batchsize = x.size()[0]
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = torch.max(x, 2, keepdim=True)[0]
        x = x.view(-1, 1024)
        x = F.relu(self.bn4(self.fc1(x)))
        x = F.relu(self.bn5(self.fc2(x)))
        x = self.fc3(x)
        iden = torch.eye(self.k, dtype=x.dtype).flatten().view(1, self.k * self.k).repeat(batchsize, 1)
        x = x + iden
        return x.view(-1, self.k, self.k)


class PointNetfeat(nn.Module):
    """The trunk: input transform, convs 64-64, feature transform, convs 64-128-1024 (batch
    norm and ReLU after each, as the authors' tf_util.conv2d), max over the points."""

    def __init__(self, transforms: bool = True) -> None:
        super().__init__()
        self.transforms = transforms
        if transforms:
            self.stn = STNkd(k=3)
            self.fstn = STNkd(k=64)
        widths = [3, 64, 64, 64, 128, 1024]
        for i in range(5):
            setattr(self, f"conv{i + 1}", nn.Conv1d(widths[i], widths[i + 1], 1))
            setattr(self, f"bn{i + 1}", nn.BatchNorm1d(widths[i + 1]))

    def layer(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transforms:
            trans = self.stn(x)
            x = torch.bmm(x.transpose(2, 1), trans).transpose(2, 1)
        x = self.layer(2, self.layer(1, x))
        if self.transforms:
            trans_feat = self.fstn(x)
            x = torch.bmm(x.transpose(2, 1), trans_feat).transpose(2, 1)
        for i in (3, 4, 5):
            x = self.layer(i, x)
        return torch.max(x, 2, keepdim=True)[0].view(-1, 1024)


class PointNetCls(nn.Module):
    def __init__(self, k: int = 40, transforms: bool = True) -> None:
        super().__init__()
        self.feat = PointNetfeat(transforms)
        self.fc1 = nn.Linear(1024, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, k)
        self.dropout = nn.Dropout(p=0.3)
        self.bn1 = nn.BatchNorm1d(512)
        self.bn2 = nn.BatchNorm1d(256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feat(x)
        x = self.dropout(F.relu(self.bn1(self.fc1(x))))
        x = self.dropout(F.relu(self.bn2(self.fc2(x))))
        return self.fc3(x)


def randomize_batch_norms(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random affine parameters and running statistics in every batch norm, so that a wrong
    statistic or a swapped weight shows in the outputs; returns the module in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm1d):
                channels = layer.num_features
                layer.weight.copy_(1 + 0.2 * torch.randn(channels, generator=generator))
                layer.bias.copy_(0.2 * torch.randn(channels, generator=generator))
                layer.running_mean.copy_(0.1 * torch.randn(channels, generator=generator))
                layer.running_var.copy_(0.5 + torch.rand(channels, generator=generator))
    return module.eval()


def onnx_and_torch_outputs(model, inputs: dict) -> tuple[list, list]:
    """The model's outputs in ONNX Runtime and in its ejected PyTorch module (model.py
    loaded), in output order, as numpy arrays."""
    onnx_outputs = list(model.run(inputs, provider="cpu").values())
    module = model.torch_module()
    names = [node.attrs.name for node in model.graph.inputs()]
    with torch.no_grad():
        result = module(*(torch.from_numpy(inputs[name]) for name in names))
    results = result if isinstance(result, tuple) else (result,)
    return onnx_outputs, [r.numpy() for r in results]
