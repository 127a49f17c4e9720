"""Memory: peak resident memory of one epoch on 60,000 28x28 images (linear 784->10,
batch 256), descent vs the usual float32 TensorDataset + DataLoader loop.

Each run is its own process reading the same .npz (uint8 images, int64 labels), so
one's memory cannot hide in another's. Reported: peak RSS (ru_maxrss) and the part
of it the run adds to a process that has already imported torch and numpy (the
interpreter and libraries weigh the same in both). The verdict uses the added part.

- descent train: the CLI job end to end (`descent train data.npz --epochs 1`),
  plots and run directory included; images stay uint8, converted per batch.
- descent Learner: the library loop alone (Batches + PixelClassifier + Learner).
- float32 baseline: x = torch.from_numpy(npz["x"]).float() / 255, TensorDataset,
  DataLoader(batch 256, shuffle), nn.Linear, torch.optim.SGD.

    python bench/memory.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import header, mnist_60k, table, verdict  # noqa: E402

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np, torch

    def rss_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    kind, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset
    if kind == "descent train":
        from descent.cli import main
        import descent.commands.train, matplotlib.figure  # imported before the baseline is taken
    else:
        from descent import Batches, Learner
        from descent.models import PixelClassifier
    base = rss_mb()
    if kind == "descent train":
        code = main(["train", path, "--epochs", "1", "--batch-size", "256", "--optimizer",
                     "sgd", "--lr", "0.1", "--patience", "0", "--quiet", "--out", out])
        assert code == 0
    elif kind == "descent Learner":
        d = np.load(path)
        x, y = torch.from_numpy(d["x"]), torch.from_numpy(d["y"])
        Learner(PixelClassifier(784, 10), Batches(x, y, 256), loss="cross_entropy",
                lr=0.1, progress=False).fit(1)
    else:
        d = np.load(path)
        x = torch.from_numpy(d["x"]).float() / 255
        y = torch.from_numpy(d["y"])
        net = torch.nn.Linear(784, 10)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for xb, yb in DataLoader(TensorDataset(x.reshape(len(x), -1), y), batch_size=256,
                                 shuffle=True):
            loss = F.cross_entropy(net(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
    print(json.dumps({"base": base, "peak": rss_mb()}))
    """
)

KINDS = ("descent train", "descent Learner", "float32 TensorDataset baseline")


def measure(kind: str, data: Path, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(data), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="(the same: one run each)")
    ap.parse_args(argv)
    x8, y = mnist_60k()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mnist60k.npz"
        np.savez(data, x=x8.numpy(), y=y.numpy())
        res = {k: measure(k, data, Path(tmp) / "run") for k in KINDS}
    base = res["float32 TensorDataset baseline"]
    added_base = base["peak"] - base["base"]
    rows = [
        [k, r["peak"], r["peak"] - r["base"], (r["peak"] - r["base"]) / added_base]
        for k, r in res.items()
    ]
    lines = header("Memory: peak RSS of one epoch on 60,000 images (MB)")
    lines += [
        f"data: {len(x8):,} x 28 x 28 uint8 = {x8.numel() / 2**20:.1f} MB "
        f"(float32: {4 * x8.numel() / 2**20:.1f} MB); each run in its own process.",
        "",
        table(["run", "peak RSS MB", "added by the run MB", "added / baseline's"], rows),
        "",
        verdict(
            "descent train / float32 baseline (memory added by the run)",
            rows[0][3],
            0.6,
            higher_is_better=False,
        ),
        verdict(
            "descent Learner / float32 baseline (memory added by the run)",
            rows[1][3],
            0.6,
            higher_is_better=False,
        ),
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
