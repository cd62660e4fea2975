"""Same configurations, same keys, same numbers: evidence that a refactor changed no result.

Three steps, each a subcommand (run from the repository root, with the package installed)::

    python benchmarks/hash_stability.py run OLD      # on the old commit: a fixed set of commands into OLD/
    python benchmarks/hash_stability.py run NEW      # on the new commit: the same commands into NEW/
    python benchmarks/hash_stability.py compare OLD NEW
    python benchmarks/hash_stability.py reuse OLD    # on the new commit: rerun into OLD/, nothing recomputed

``run`` executes :data:`COMMANDS` (``verify --quick``, a check-defense, two trainings — CEM's
paper and released-code objectives —, a dataset attack and two small sweeps: a defense table and
an entropy-vs-MSE grid), each into its own folder.  ``compare`` reads every record of both trees
and prints, per command, the keys only one side has and the largest difference of any number in
the results of the keys both have (``seconds``, host, time and package version are provenance,
not results, and are skipped).  ``reuse`` fingerprints every record file, reruns the commands
into the same folders and reports the records written, changed or added (a reused record is not
rewritten).  Timings are not measured here.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

ENCODER_FILE = Path("/tmp/invlimits_hash_stability_encoder.py")
ENCODER_SOURCE = '''"""A fixed affine encoder for benchmarks/hash_stability.py (its content hash is part of the key)."""
from torch import nn


def make():
    return nn.Sequential(nn.Linear(16, 4))
'''

TINY_TABLE = """[sweep]
experiment = "defense-table"
name = "hash-table"
[grid]
baseline = ["noise", "dropout"]
[settings]
dataset = "digits"
seed = 0
lam = 0.005
epochs = 2
lr = 0.003
attacks = ["decoder"]
attack_epochs = 1
eval_train = false
cem_params = {objective = "code"}
"""

TINY_FIG3 = """[sweep]
experiment = "entropy-vs-mse"
name = "hash-fig3"
[grid]
sigma = [0.1, 0.3]
lam = [0.0, 0.002]
[settings]
dataset = "digits"
seed = 0
epochs = 2
attack_epochs = 1
"""

#: name -> invlimits arguments (``{out}`` = the command's folder, ``{dir}`` = the tree's root)
COMMANDS = {
    "verify": ["verify", "--quick", "--out", "{out}"],
    "check-defense": ["check-defense", f"{ENCODER_FILE}:make", "--dataset", "synthetic-mixture", "--noise", "0.3",
                      "--quick", "--out", "{out}"],
    "train-paper": ["train", "--dataset", "digits", "--epochs", "2", "--defense", "noise:sigma=0.1",
                    "--defense", "cem:lam=0.01", "--out", "{out}"],
    "train-code": ["train", "--dataset", "digits", "--epochs", "2", "--defense", "noise:sigma=0.1",
                   "--defense", "cem:lam=1,objective=code", "--out", "{out}"],
    "dataset-attack": ["attack", "--dataset", "digits", "--model-epochs", "2", "--epochs", "2", "--no-truncation",
                       "--out", "{out}"],
    "sweep-table": ["sweep", "{dir}/hash-table.toml", "--workers", "1", "--out", "{out}"],
    "sweep-fig3": ["sweep", "{dir}/hash-fig3.toml", "--workers", "1", "--out", "{out}"],
}

PROVENANCE = {"seconds", "created", "host", "package", "device"}


def run(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    ENCODER_FILE.write_text(ENCODER_SOURCE)
    (root / "hash-table.toml").write_text(TINY_TABLE)
    (root / "hash-fig3.toml").write_text(TINY_FIG3)
    for name, args in COMMANDS.items():
        argv = [a.format(out=root / name, dir=root) for a in args]
        print(f"== invlimits {' '.join(argv)}", flush=True)
        rc = subprocess.run(["invlimits", *argv], stdout=subprocess.DEVNULL).returncode
        print(f"   exit status {rc}", flush=True)


def _records(root: Path) -> dict:
    out = {}
    for p in sorted(root.glob("*/records/*.json")):
        d = json.loads(p.read_text())
        out[(p.parent.parent.name, d["key"])] = d
    return out


def _numbers(x, path=""):
    """Flatten to (path, value) pairs: every number and string of a result."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _numbers(v, f"{path}[{i}]")
    else:
        yield path, x


def compare(old: Path, new: Path) -> int:
    a, b = _records(old), _records(new)
    bad = 0
    for cmd in COMMANDS:
        ka = {k for c, k in a if c == cmd}
        kb = {k for c, k in b if c == cmd}
        worst, where, differ = 0.0, "", 0
        for k in sorted(ka & kb):
            ra, rb = a[(cmd, k)], b[(cmd, k)]
            same_cfg = ra["config"] == rb["config"] and ra["status"] == rb["status"]
            fa, fb = dict(_numbers(ra["result"])), dict(_numbers(rb["result"]))
            if not same_cfg or set(fa) != set(fb):
                differ += 1
                continue
            for p, va in fa.items():
                vb = fb[p]
                if p.rsplit(".", 1)[-1] in PROVENANCE:
                    continue
                if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and not isinstance(va, bool):
                    d = abs(va - vb) if math.isfinite(va) and math.isfinite(vb) else (0.0 if va == vb else math.inf)
                    if d > worst:
                        worst, where = d, f"{k}{p}"
                elif va != vb:
                    differ += 1
        bad += len(ka ^ kb) + differ + (worst > 0)
        print(f"{cmd:<15} keys old {len(ka):>3}  new {len(kb):>3}  shared {len(ka & kb):>3}  only old "
              f"{len(ka - kb)}  only new {len(kb - ka)}  records differing in config/fields {differ}  "
              f"largest numeric difference {worst:.3g}" + (f" at {where}" if where else ""))
    print("IDENTICAL: same keys, same numbers" if bad == 0 else f"DIFFERENT ({bad} problems)")
    return 0 if bad == 0 else 1


def _fingerprints(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.glob("*/records/*.json"))}


def reuse(root: Path) -> int:
    before = _fingerprints(root)
    run(root)
    after = _fingerprints(root)
    changed = [p for p in before if p in after and before[p] != after[p]]
    added = sorted(set(after) - set(before))
    gone = sorted(set(before) - set(after))
    print(f"records before {len(before)}, after {len(after)}: rewritten {len(changed)}, added {len(added)}, "
          f"missing {len(gone)}")
    for p in changed + added + gone:
        print(f"  {p}")
    return 0 if not (changed or added or gone) else 1


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 2 and argv[0] == "run":
        run(Path(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return compare(Path(argv[1]), Path(argv[2]))
    if len(argv) == 2 and argv[0] == "reuse":
        return reuse(Path(argv[1]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
