#!/usr/bin/env python3
"""torch_classifier.py -- the PyTorch peer of `tessera-bench train-step --model resnet3d`.

The sample classification pipeline's model (pipelines/classification-resnet3d.yaml): torchvision's ResNet layout in
3-D as scripts/reference/models_golden.py defines it (the module whose weights Tessera's checkpoints load into),
widths (8, 16, 32), one BasicBlock a stage, affine InstanceNorm3d, 2 classes; a fixed batch of 4 studies
[4, 1, 14, 48, 56] ~ N(0, 1) with labels 0/1, cross-entropy, SGD(lr 0.01, momentum 0.9).

Timing, output and every option are ../shared/bench/torch_reference.py's (its harness is imported, not copied): this
script only adds the model `resnet3d` to its `build` and runs its `main`.

usage: torch_classifier.py --shared ../shared/bench --model resnet3d --threads 1 [--channels-last] [...]
"""
import os
import sys


def main():
    shared = "../shared/bench"
    if "--shared" in sys.argv:
        i = sys.argv.index("--shared")
        shared = sys.argv[i + 1]
        del sys.argv[i : i + 2]
    sys.path.insert(0, os.path.abspath(shared))
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "reference"))
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch_reference as reference
    from models_golden import resnet_classes

    peer_build = reference.build

    def build(model_name, batch, channels_last):
        if model_name != "resnet3d":
            return peer_build(model_name, batch, channels_last)
        torch.manual_seed(0)
        norm = lambda c: nn.InstanceNorm3d(c, affine=True)  # noqa: E731 (as FeatureNorm .instance)
        model = resnet_classes(3)(1, 2, (8, 16, 32), (1, 1, 1), norm)
        x = torch.randn(batch, 1, 14, 48, 56)
        y = torch.arange(batch) % 2
        if channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return model, x, y, F.cross_entropy, None

    reference.build = build
    if "--batch" not in sys.argv and "--model" in sys.argv and sys.argv[sys.argv.index("--model") + 1] == "resnet3d":
        sys.argv += ["--batch", "4"]
    reference.main()


if __name__ == "__main__":
    main()
