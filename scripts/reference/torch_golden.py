#!/usr/bin/env python3
"""Golden values for Tessera's NeuralNetwork tests, computed with PyTorch (CPU, float32).

What
    Builds the reference models of ../shared/bench/torch_reference.py (imported from that file, not copied:
    `UNet`, `SmallCNN`, `soft_dice_loss`, `seg_loss`) with torch.manual_seed(0), runs them on a small fixed
    batch and writes, to Tests/NeuralNetworkTests/Golden/:
      <model>_weights.safetensors  the initial state_dict (PyTorch default init, seed 0)
      <model>_io.safetensors       input, target (as float32), logits, and `grad.<name>` for every parameter of
                                   the loss (CE + soft Dice for the U-Net, CE for SmallCNN) at the initial weights
      golden.json                  losses, the first 10 losses on the same batch with SGD(lr 0.01, momentum 0.9)
                                   (the reference's), SGD Nesterov + weight decay, Adam and AdamW,
                                   state_dict names/shapes of the full-size unet2d/unet3d/cls2d, provenance
    Models: "unet2d_small" = UNet(dims=2, enc=(4, 8, 16, 32), bottleneck=64, ncls=2), the unet2d spec with
    narrower channels so the golden files stay small (the full unet2d's weights alone are 7.8 MB); same class,
    same code path, same state_dict names. "cls2d" = SmallCNN(1, 2) at full size. Input [2, 1, 32, 32] ~ N(0, 1)
    (seed 0, drawn after the model as in torch_reference.build); U-Net target = (input > 0), SmallCNN labels
    randint(0, 2, (2,)).

    --check DIR   interoperability the other way: loads Tessera-written checkpoints DIR/<model>.safetensors into
                  the PyTorch modules with load_state_dict(strict=True), runs DIR/<model>_io.safetensors' input
                  and compares with the logits Tessera computed (written by the Swift test
                  `NeuralNetworkTests/InteropTests`). Prints PASS/FAIL lines; exit status 1 on any failure.

How to run
    python3 scripts/reference/torch_golden.py [--out Tests/NeuralNetworkTests/Golden] [--check DIR]
    The first run creates the git-ignored venv scripts/.venv-torch, installs torch==2.15.0 (CPU wheel from PyPI)
    numpy==2.4.6 and safetensors==0.8.0 (the official parser, used by --check) there, and re-executes itself in it. Offline (CI without PyPI): pass --skip-if-offline to
    exit 0 with "SKIPPED" when torch cannot be installed.
"""
import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
VENV = os.path.join(ROOT, "scripts", ".venv-torch")
PINNED = ["torch==2.15.0", "numpy==2.4.6", "safetensors==0.8.0"]


def ensure_venv(skip_if_offline):
    if os.path.abspath(sys.prefix) == os.path.abspath(VENV):
        return
    python = os.path.join(VENV, "bin", "python")
    try:
        if not os.path.exists(python):
            subprocess.check_call([sys.executable, "-m", "venv", VENV])
        probe = subprocess.run([python, "-c", "import torch, numpy, safetensors"], capture_output=True)
        if probe.returncode != 0:
            subprocess.check_call([python, "-m", "pip", "install", "-q"] + PINNED)
    except subprocess.CalledProcessError:
        if skip_if_offline:
            print("SKIPPED: torch could not be installed (offline?)")
            sys.exit(0)
        raise
    os.execv(python, [python] + sys.argv)


def load_reference(path):
    spec = importlib.util.spec_from_file_location("torch_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_safetensors(path, tensors, metadata=None):
    """Writes with the official safetensors package, so Tessera's reader is tested on its output."""
    from safetensors.torch import save_file

    save_file({k: v.detach().float().contiguous() for k, v in tensors.items()}, path, metadata=metadata)


def write_safetensors_minimal(path, tensors, metadata=None):
    """Minimal safetensors writer (F32 only), the published layout; names sorted (kept for reference)."""

    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        a = tensors[name].detach().cpu().contiguous().numpy().astype("<f4")
        blobs.append(a.tobytes())
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    import numpy as np
    import torch

    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: dtype {info['dtype']}"
        b, e = info["data_offsets"]
        a = np.frombuffer(data[8 + n + b:8 + n + e], dtype="<f4").reshape(info["shape"]).copy()
        out[name] = torch.from_numpy(a)
    return out


def build(ref, name):
    import torch

    torch.manual_seed(0)
    if name == "unet2d_small":
        model = ref.UNet(2, (4, 8, 16, 32), 64, 2)
        x = torch.randn(2, 1, 32, 32)
        y = (x[:, 0] > 0).long()
        return model, x, y, ref.seg_loss
    if name == "cls2d":
        model = ref.SmallCNN(1, 2)
        x = torch.randn(2, 1, 32, 32)
        y = torch.randint(0, 2, (2,))
        return model, x, y, torch.nn.functional.cross_entropy
    raise SystemExit("unknown model " + name)


def golden(ref, out_dir, provenance):
    import torch
    import torch.nn.functional as F

    results = {}
    for name in ["unet2d_small", "cls2d"]:
        model, x, y, lossf = build(ref, name)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        write_safetensors(os.path.join(out_dir, f"{name}_weights.safetensors"), state,
                          {"source": "torch_golden.py", "model": name})
        model.zero_grad(set_to_none=True)
        logits = model(x)
        loss = lossf(logits, y)
        loss.backward()
        io = {"input": x, "target": y.float(), "logits": logits}
        for k, p in model.named_parameters():
            io["grad." + k] = p.grad
        write_safetensors(os.path.join(out_dir, f"{name}_io.safetensors"), io, {"model": name})
        entry = {"loss": loss.item(), "input_shape": list(x.shape)}
        if name == "unet2d_small":
            entry["cross_entropy"] = F.cross_entropy(logits, y).item()
            entry["soft_dice"] = ref.soft_dice_loss(logits, y).item()
        # First 10 losses on the same batch from the same initial weights, per optimiser (SGD with momentum is the
        # reference's; the others check Nesterov + weight decay, Adam and AdamW against PyTorch's update rules).
        optimisers = {
            "sgd": lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9),
            "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-3),
            "adam": lambda ps: torch.optim.Adam(ps, lr=1e-3),
            "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01),
        }
        for label, make in optimisers.items():
            model.load_state_dict(state)
            opt = make(model.parameters())
            losses = []
            for _ in range(10):
                opt.zero_grad(set_to_none=True)
                l = lossf(model(x), y)
                l.backward()
                opt.step()
                losses.append(l.item())
            entry[f"{label}_losses"] = losses
        sgd = entry["sgd_losses"]
        entry["optimisers"] = {"sgd": "SGD(lr=0.01, momentum=0.9)",
                               "sgd_nesterov": "SGD(lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-3)",
                               "adam": "Adam(lr=1e-3)", "adamw": "AdamW(lr=1e-3, weight_decay=0.01)"}
        results[name] = entry
        print(f"{name}: loss {entry['loss']:.6f}  sgd {', '.join(f'{v:.5f}' for v in sgd)}")
    shapes = {}
    for label, model in [("unet2d", ref.UNet(2, (16, 32, 64, 128), 256, 2)), ("unet3d", ref.UNet(3, (8, 16, 32), 64, 2)),
                         ("cls2d", ref.SmallCNN(1, 2))]:
        shapes[label] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    doc = {"provenance": provenance, "models": results, "state_dict_shapes": shapes}
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def check(ref, folder):
    import torch

    failures = 0
    configs = {"unet2d": lambda: ref.UNet(2, (16, 32, 64, 128), 256, 2), "unet3d": lambda: ref.UNet(3, (8, 16, 32), 64, 2),
               "cls2d": lambda: ref.SmallCNN(1, 2)}
    for name, make in configs.items():
        weights = os.path.join(folder, f"{name}.safetensors")
        if not os.path.exists(weights):
            print(f"FAIL {name}: {weights} missing (run the Swift InteropTests first)")
            failures += 1
            continue
        model = make()
        try:
            # The official parser must accept Tessera's file and agree with our minimal reader bit for bit.
            from safetensors.torch import load_file

            official = load_file(weights)
            mine = read_safetensors(weights)
            same = official.keys() == mine.keys() and all(torch.equal(official[k], mine[k]) for k in mine)
            print(f"{'PASS' if same else 'FAIL'} {name}: safetensors {__import__('safetensors').__version__} "
                  f"load_file reads {len(official)} tensors, identical to this script's reader")
            failures += 0 if same else 1
            model.load_state_dict(official, strict=True)
        except RuntimeError as e:
            print(f"FAIL {name}: load_state_dict(strict=True): {e}")
            failures += 1
            continue
        io = read_safetensors(os.path.join(folder, f"{name}_io.safetensors"))
        with torch.no_grad():
            logits = model(io["input"])
        diff = (logits - io["logits"]).abs()
        tol = 1e-5 + 1e-4 * io["logits"].abs()
        ok = bool((diff <= tol).all())
        failures += 0 if ok else 1
        nparams = sum(p.numel() for p in model.parameters())
        print(f"{'PASS' if ok else 'FAIL'} {name}: Tessera checkpoint ({len(model.state_dict())} tensors, {nparams} "
              f"parameters) loads with load_state_dict(strict=True); logits {list(logits.shape)} max abs diff "
              f"{diff.max().item():.3e}, max rel diff {(diff / io['logits'].abs().clamp_min(1e-6)).max().item():.3e} "
              f"(rtol 1e-4, atol 1e-5)")
    print(f"{'all passed' if failures == 0 else f'{failures} failed'} ({len(configs)} models)")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "NeuralNetworkTests", "Golden"))
    ap.add_argument("--reference", default=os.path.join(ROOT, "..", "shared", "bench", "torch_reference.py"))
    ap.add_argument("--check", metavar="DIR")
    ap.add_argument("--skip-if-offline", action="store_true")
    a = ap.parse_args()
    ensure_venv(a.skip_if_offline)
    import torch
    import numpy

    torch.set_num_threads(1)
    ref = load_reference(os.path.abspath(a.reference))
    provenance = {
        "script": "scripts/reference/torch_golden.py",
        "command": " ".join(["python3", "scripts/reference/torch_golden.py"] + sys.argv[1:]),
        "torch": torch.__version__, "numpy": numpy.__version__, "python": sys.version.split()[0],
        "reference_models": "../shared/bench/torch_reference.py (UNet, SmallCNN, soft_dice_loss, seg_loss)",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "threads": 1, "dtype": "float32", "device": "cpu",
    }
    if a.check:
        print(f"# python3 scripts/reference/torch_golden.py --check {a.check}  (torch {torch.__version__}, "
              f"numpy {numpy.__version__}, {provenance['date']})")
        print("# checkpoints written by Tessera: swift test --filter InteropTests (TESSERA_INTEROP_DIR, default "
              "/tmp/tessera-interop), Tessera's own seeded initialisation; input and Tessera's logits beside them")
        sys.exit(1 if check(ref, a.check) else 0)
    os.makedirs(a.out, exist_ok=True)
    golden(ref, a.out, provenance)


if __name__ == "__main__":
    main()
