"""Derive the digits decoder-attack PSNR threshold of ``invlimits attack --dataset digits`` from
its spread over seeds.

For each seed 0..19 the exact configuration the command runs (``--quick`` and full size, no
defense, no truncation experiment) is executed through the record store, and the held-out decoder
PSNR recorded.  The check's threshold is ``mean − 4·sd`` (sample sd over the 20 seeds): under a
normal model of the seed-to-seed spread a correct implementation fails it with probability
3·10⁻⁵ per run, while a broken attack (or model) that loses 4 sd of PSNR fails.  Prints both
tables and the thresholds to paste into ``empirics/sections/attack_section.py::PSNR_THRESHOLD``.

Run from the repository root: ``python benchmarks/attack_threshold.py [--quick-only] [--out DIR]``
(about 6 min for --quick-only on 2 cores; records are reused on a rerun).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from types import SimpleNamespace


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/attack-threshold")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--quick-only", action="store_true")
    a = ap.parse_args()

    from empirics.experiments import RunContext, execute
    from empirics.sections.attack_section import _dataset_config
    from empirics.store import RecordStore
    from empirics.threads import configure_threads

    configure_threads()
    store = RecordStore(Path(a.out) / "records")
    for quick in ((True,) if a.quick_only else (True, False)):
        psnr = []
        for seed in range(a.seeds):
            args = SimpleNamespace(dataset="digits", epochs=None, attacks=None, noise=0.0, model_epochs=None,
                                   no_truncation=True, seed=seed)
            rec = execute(_dataset_config(args, quick), store, RunContext(device="cpu"))
            p = next(r["psnr"] for r in rec.result["attacks"] if r["attack"] == "decoder")
            psnr.append(p)
            print(f"quick={quick} seed {seed:2d}: accuracy {rec.result['accuracy']:.3f}  decoder PSNR {p:.3f} dB",
                  flush=True)
        m, sd = statistics.fmean(psnr), statistics.stdev(psnr)
        thr = m - 4 * sd
        print(f"quick={quick}: PSNR mean {m:.3f} dB, sd {sd:.3f} dB over {len(psnr)} seeds, min {min(psnr):.3f}; "
              f"threshold mean − 4 sd = {thr:.2f} dB; seeds passing: {sum(p >= thr for p in psnr)}/{len(psnr)}")


if __name__ == "__main__":
    main()
