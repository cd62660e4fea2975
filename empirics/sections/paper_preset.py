"""``invlimits verify --preset paper``: the CEM paper's CIFAR-10 configuration.

VGG11-BN split after the second conv block (8-channel bottleneck, 512-dim features), Gaussian
noise σ = 0.025, CEM λ = 16 with k = 3 components per class, 240 epochs — with and without CEM —
then the decoder attack on train and held-out data.  Needs the CIFAR-10 python batches under
``--cifar-root`` (folder ``cifar-10-batches-py``; never downloaded) and a CUDA device; when either
is missing it says exactly what is missing and stops.
"""

from __future__ import annotations

from pathlib import Path

from ..report import Section


def _missing(args) -> list[str]:
    import torch
    miss = []
    root = getattr(args, "cifar_root", None)
    if root is None:
        miss.append("CIFAR-10: pass --cifar-root DIR (DIR/cifar-10-batches-py/data_batch_1..5, test_batch)")
    else:
        base = Path(root)
        if (base / "cifar-10-batches-py").is_dir():
            base = base / "cifar-10-batches-py"
        need = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        absent = [n for n in need if not (base / n).is_file()]
        if absent:
            miss.append(f"CIFAR-10: {', '.join(absent)} not found under {base}")
    if not torch.cuda.is_available():
        miss.append("CUDA: no CUDA device visible to torch (the 240-epoch VGG11-BN runs need a GPU)")
    return miss


def run(args):
    miss = _missing(args)
    if miss:
        raise ValueError("--preset paper needs: " + "; ".join(miss))
    import torch
    from ..attacks import make_attack
    from ..data import load_cifar10
    from ..defenses import make_defense
    from ..models import make_model
    from ..training import evaluate, train

    root = Path(args.cifar_root)
    data = load_cifar10(root)
    out = Path(args.out)
    sec = Section("paper", "Paper preset: CIFAR-10, VGG11-BN split, σ = 0.025, λ = 16, 240 epochs")
    rows = []
    for cem in (False, True):
        defs = [make_defense("noise", sigma=0.025)] + ([make_defense("cem", lam=16.0, k_per_class=3)] if cem else [])
        model = make_model("vgg11_bn", num_classes=10, seed=args.seed)
        train(model, data.train, epochs=240, batch_size=128, lr=0.05, optimizer="sgd", defenses=defs,
              seed=args.seed, device=args.device, checkpoint=out / f"vgg11_cem{int(cem)}.pt")
        acc = evaluate(model, data.test)["accuracy"]
        att = make_attack("decoder", epochs=50)
        att.fit(model, data.train, seed=args.seed, device=args.device)
        r = att.evaluate(model, data.test, seed=args.seed)
        rows.append({"cem": cem, "accuracy": acc, "decoder_test_mse": r["mse"], "psnr": r.get("psnr"),
                     "ssim": r.get("ssim")})
    sec.tables["CIFAR-10, VGG11-BN"] = rows
    sec.add("CEM raises decoder MSE", "CIFAR-10", rows[1]["decoder_test_mse"], rows[0]["decoder_test_mse"],
            rows[1]["decoder_test_mse"] - rows[0]["decoder_test_mse"],
            rows[1]["decoder_test_mse"] > rows[0]["decoder_test_mse"])
    return [sec]
