#!/usr/bin/env python3
"""Golden values for Tessera's ResNet classifier and MONAI-compatible BasicUNet, computed with PyTorch and MONAI.

What
    resnet_small     a torchvision-style ResNet defined below (BasicBlock, CIFAR-style 3x3 stem, no max-pool),
                     in_channels 1, widths (4, 8, 16), one block per stage, 3 classes, BatchNorm2d; the module and
                     parameter names are torchvision's (conv1, bn1, layerK.J.conv1, layerK.J.downsample.0/1, fc).
                     Input [4, 1, 16, 16] ~ N(0, 1), labels randint(0, 3, (4,)); cross-entropy; train mode.
    resnet3d_small   the same ResNet in 3-D (Conv3d, BatchNorm3d, mean over D, H, W: Tessera's resnet3d), widths
                     (4, 8, 16), 2 classes; input [2, 1, 8, 12, 16] ~ N(0, 1), labels randint(0, 2, (2,)); CLASS-WEIGHTED
                     cross-entropy F.cross_entropy(weight=[0.75, 1.5]) (Tessera's classification.imbalance:
                     weighted_loss); train mode.
    basicunet2d_small / basicunet3d_small
                     monai.networks.nets.BasicUNet(spatial_dims, in_channels=1, out_channels=2,
                     features=(4, 4, 8, 8, 16, 4)), MONAI's own class (default act LeakyReLU 0.1, instance norm
                     with affine, dropout 0, deconv upsampling). Inputs [2, 1, 32, 32] and [1, 1, 16, 32, 32] ~ N(0, 1),
                     target (input > 0); cross-entropy.
    For each model, written to Tests/NeuralNetworkTests/Golden/ with torch.manual_seed(0) before building it:
      <model>_weights.safetensors  the initial state_dict (float tensors; BatchNorm's int64 num_batches_tracked is
                                   left out: Tessera does not keep it)
      <model>_io.safetensors       input, target (float32), logits, grad.<name> for every parameter at the initial
                                   weights; for resnet_small also the running statistics after that one training
                                   forward (after.<name>) and eval-mode logits after the 10 SGD steps (eval_logits)
      models_golden.json           loss, the first 10 losses with SGD(lr 0.01, momentum 0.9) on the same batch,
                                   state_dict names/shapes of the full-size default BasicUNet (2-D and 3-D), provenance

    --check DIR   the other way: loads the checkpoints that Tessera's ModelInteropTests wrote to DIR into MONAI's
                  BasicUNet (default features, 2-D and 3-D) and into the ResNet below (torchvision-style, BatchNorm)
                  with load_state_dict(strict=True), runs the input written beside them and compares with Tessera's logits. PASS/FAIL lines;
                  exit status 1 on any failure.

How to run
    python3 scripts/reference/models_golden.py [--out Tests/NeuralNetworkTests/Golden] [--check DIR]
    The first run creates the git-ignored venv scripts/.venv-torch (shared with torch_golden.py) and installs the
    pinned packages below there (torch from PyPI), then re-executes itself in it. --skip-if-offline exits 0 with
    "SKIPPED" when the packages cannot be installed (CI without PyPI).

Pinned packages
    torch==2.15.0, numpy==2.4.6, safetensors==0.8.0, monai==1.6.1
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
VENV = os.path.join(ROOT, "scripts", ".venv-torch")
PINNED = ["torch==2.15.0", "numpy==2.4.6", "safetensors==0.8.0", "monai==1.6.1"]
SMALL_FEATURES = (4, 4, 8, 8, 16, 4)


def ensure_venv(skip_if_offline):
    if os.path.abspath(sys.prefix) == os.path.abspath(VENV):
        return
    python = os.path.join(VENV, "bin", "python")
    try:
        if not os.path.exists(python):
            subprocess.check_call([sys.executable, "-m", "venv", VENV])
        probe = subprocess.run([python, "-c", "import torch, numpy, safetensors, monai"], capture_output=True)
        if probe.returncode != 0:
            subprocess.check_call([python, "-m", "pip", "install", "-q"] + PINNED)
    except subprocess.CalledProcessError:
        if skip_if_offline:
            print("SKIPPED: torch/monai could not be installed (offline?)")
            sys.exit(0)
        raise
    os.execv(python, [python] + sys.argv)


def resnet_classes(dims=2):
    """A torchvision-style ResNet (torchvision.models.resnet names), small and with a 3x3 stride-1 stem; dims=3 makes
    every Conv2d/BatchNorm2d a Conv3d/BatchNorm3d (Tessera's resnet3d)."""
    import torch.nn as nn

    Conv = nn.Conv2d if dims == 2 else nn.Conv3d
    Norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d

    class BasicBlock(nn.Module):
        def __init__(self, inplanes, planes, stride, norm):
            super().__init__()
            self.conv1 = Conv(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = norm(planes)
            self.relu = nn.ReLU()
            self.conv2 = Conv(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = norm(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = nn.Sequential(Conv(inplanes, planes, 1, stride, bias=False), norm(planes))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    class ResNet(nn.Module):
        def __init__(self, in_channels=1, classes=2, widths=(16, 32, 64), blocks=(1, 1, 1), norm=Norm):
            super().__init__()
            self.conv1 = Conv(in_channels, widths[0], 3, 1, 1, bias=False)
            self.bn1 = norm(widths[0])
            self.relu = nn.ReLU()
            previous = widths[0]
            for i, (w, n) in enumerate(zip(widths, blocks)):
                layer = []
                for b in range(n):
                    layer.append(BasicBlock(previous, w, 2 if i > 0 and b == 0 else 1, norm))
                    previous = w
                setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            self.stages = len(widths)
            self.fc = nn.Linear(previous, classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            for i in range(self.stages):
                x = getattr(self, f"layer{i + 1}")(x)
            return self.fc(x.mean(dim=tuple(range(2, 2 + dims))))

    return ResNet


def float_state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


def write_safetensors(path, tensors, metadata=None):
    from safetensors.torch import save_file

    save_file({k: v.detach().float().contiguous() for k, v in tensors.items()}, path, metadata=metadata)


def build(name):
    import torch
    import torch.nn.functional as F
    from monai.networks.nets import BasicUNet

    torch.manual_seed(0)
    if name == "resnet_small":
        model = resnet_classes()(1, 3, (4, 8, 16), (1, 1, 1))
        x = torch.randn(4, 1, 16, 16)
        y = torch.randint(0, 3, (4,))
    elif name == "resnet3d_small":
        model = resnet_classes(3)(1, 2, (4, 8, 16), (1, 1, 1))
        x = torch.randn(2, 1, 8, 12, 16)
        y = torch.randint(0, 2, (2,))
        weight = torch.tensor([0.75, 1.5])
        return model, x, y, lambda z, t: F.cross_entropy(z, t, weight=weight)
    else:
        dims = 2 if name == "basicunet2d_small" else 3
        model = BasicUNet(spatial_dims=dims, in_channels=1, out_channels=2, features=SMALL_FEATURES)
        x = torch.randn(*([2, 1, 32, 32] if dims == 2 else [1, 1, 16, 32, 32]))
        y = (x[:, 0] > 0).long()
    return model, x, y, F.cross_entropy


def golden(out_dir, provenance):
    import torch
    from monai.networks.nets import BasicUNet

    results = {}
    for name in ["resnet_small", "resnet3d_small", "basicunet2d_small", "basicunet3d_small"]:
        model, x, y, lossf = build(name)
        model.train()
        state = float_state(model)
        write_safetensors(os.path.join(out_dir, f"{name}_weights.safetensors"), state,
                          {"source": "models_golden.py", "model": name})
        model.zero_grad(set_to_none=True)
        logits = model(x)
        loss = lossf(logits, y)
        loss.backward()
        io = {"input": x, "target": y.float(), "logits": logits}
        for k, p in model.named_parameters():
            io["grad." + k] = p.grad
        if name.startswith("resnet"):
            for k, v in float_state(model).items():
                if "running" in k:
                    io["after." + k] = v
        model.load_state_dict(state, strict=False)  # back to the initial running statistics too
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        losses = []
        for _ in range(10):
            opt.zero_grad(set_to_none=True)
            l = lossf(model(x), y)
            l.backward()
            opt.step()
            losses.append(l.item())
        if name.startswith("resnet"):
            model.eval()
            with torch.no_grad():
                io["eval_logits"] = model(x)
        write_safetensors(os.path.join(out_dir, f"{name}_io.safetensors"), io, {"model": name})
        results[name] = {"loss": loss.item(), "sgd_losses": losses, "input_shape": list(x.shape),
                         "parameters": sum(p.numel() for p in model.parameters())}
        print(f"{name}: loss {loss.item():.6f}  sgd {', '.join(f'{v:.5f}' for v in losses)}")
    shapes = {}
    for dims in (2, 3):
        m = BasicUNet(spatial_dims=dims, in_channels=1, out_channels=2)
        shapes[f"basicunet{dims}d"] = [[k, list(v.shape)] for k, v in m.state_dict().items()]
    doc = {"provenance": provenance, "models": results, "state_dict_shapes": shapes}
    with open(os.path.join(out_dir, "models_golden.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def check(folder):
    import torch
    from monai.networks.nets import BasicUNet
    from safetensors.torch import load_file

    failures = 0
    configs = {"basicunet2d": (lambda: BasicUNet(spatial_dims=2, in_channels=1, out_channels=2), True),
               "basicunet3d": (lambda: BasicUNet(spatial_dims=3, in_channels=1, out_channels=2), True),
               # PyTorch's BatchNorm fills in its int64 num_batches_tracked counter when a state_dict lacks it (as
               # Tessera's do), so strict loading applies to the ResNet too.
               "resnet": (lambda: resnet_classes()(1, 2), True),
               "resnet3d": (lambda: resnet_classes(3)(1, 2, (8, 16, 32)), True)}
    for name, (make, strict) in configs.items():
        weights = os.path.join(folder, f"{name}.safetensors")
        if not os.path.exists(weights):
            print(f"FAIL {name}: {weights} missing (run the Swift ModelInteropTests first)")
            failures += 1
            continue
        model = make()
        state = load_file(weights)
        try:
            result = model.load_state_dict(state, strict=strict)
        except RuntimeError as e:
            print(f"FAIL {name}: load_state_dict(strict={strict}): {e}")
            failures += 1
            continue
        how = "load_state_dict(strict=True)"
        if not strict:
            # PyTorch's BatchNorm also has an int64 counter Tessera does not keep; nothing else may differ.
            others = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
            if others or result.unexpected_keys:
                print(f"FAIL {name}: missing {others}, unexpected {result.unexpected_keys}")
                failures += 1
                continue
            how = (f"load_state_dict (all {len(state)} tensors; only the {len(result.missing_keys)} BatchNorm "
                   f"num_batches_tracked counters absent, no unexpected key)")
        model.eval()
        io = load_file(os.path.join(folder, f"{name}_io.safetensors"))
        with torch.no_grad():
            logits = model(io["input"])
        diff = (logits - io["logits"]).abs()
        ok = bool((diff <= 1e-5 + 1e-4 * io["logits"].abs()).all())
        failures += 0 if ok else 1
        nparams = sum(p.numel() for p in model.parameters())
        print(f"{'PASS' if ok else 'FAIL'} {name}: Tessera checkpoint ({len(state)} tensors, {nparams} parameters) "
              f"loads with {how}; logits {list(logits.shape)} max abs diff {diff.max().item():.3e} "
              f"(rtol 1e-4, atol 1e-5)")
    print(f"{'all passed' if failures == 0 else f'{failures} failed'} ({len(configs)} models)")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "NeuralNetworkTests", "Golden"))
    ap.add_argument("--check", metavar="DIR")
    ap.add_argument("--skip-if-offline", action="store_true")
    a = ap.parse_args()
    ensure_venv(a.skip_if_offline)
    import monai
    import numpy
    import torch

    torch.set_num_threads(1)
    provenance = {
        "script": "scripts/reference/models_golden.py",
        "command": " ".join(["python3", "scripts/reference/models_golden.py"] + sys.argv[1:]),
        "torch": torch.__version__, "monai": monai.__version__, "numpy": numpy.__version__,
        "python": sys.version.split()[0],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "threads": 1, "dtype": "float32", "device": "cpu",
    }
    if a.check:
        print(f"# python3 scripts/reference/models_golden.py --check {a.check}  (torch {torch.__version__}, "
              f"monai {monai.__version__}, {provenance['date']})")
        print("# checkpoints written by Tessera: swift test --filter ModelInteropTests (TESSERA_INTEROP_DIR, default "
              "/tmp/tessera-interop), Tessera's own seeded initialisation; input and Tessera's logits beside them")
        sys.exit(1 if check(a.check) else 0)
    os.makedirs(a.out, exist_ok=True)
    golden(a.out, provenance)


if __name__ == "__main__":
    main()
