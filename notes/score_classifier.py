#!/usr/bin/env python3
"""Train the small Fashion-MNIST classifier whose features notes/score.py scores samples in; write
data/fmnist_classifier.bin. Deterministic: fixed seeds, one thread, torch.use_deterministic_algorithms.
usage: /usr/bin/python3 notes/score_classifier.py [--epochs 5] [--out data/fmnist_classifier.bin]
needs numpy and python3-torch; reads Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/*.gz).

Pixels are mapped as diffusion.c maps them: byte / 127.5 - 1, in [-1, 1].
Network (BatchNorm is folded into the convolutions when the weights are written):
  conv 3x3 1->16, ReLU, maxpool 2   (28 -> 14)
  conv 3x3 16->32, ReLU, maxpool 2  (14 -> 7)
  conv 3x3 32->64, ReLU, maxpool 2  (7 -> 3, floor)
  flatten 576, linear 576->128, ReLU     <- the 128 features notes/score.py uses
  linear 128->10                          (dropout 0.3 before it, in training only)

File format of data/fmnist_classifier.bin (little-endian throughout):
  8 bytes  magic b"FMNCLS01"
  u32      number of records
  each record: u32 name length, the name (ASCII), u32 ndim, ndim x u32 dims, then prod(dims) float32 values
               (row-major, as torch stores them; a scalar has ndim 0 and one value)
Records: conv1.weight conv1.bias conv2.weight conv2.bias conv3.weight conv3.bias fc1.weight fc1.bias fc2.weight
fc2.bias (conv weights (out, in, 3, 3), linear weights (out, in)); then scalars test_accuracy (measured here on the
10,000 test images) and nearcopy_l2 (the near-copy threshold of notes/score.py: the 1st percentile, over the 10,000
test images, of the L2 distance in [-1, 1] pixel units from a test image to its nearest training image).
"""
import os
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
import argparse, gzip, struct, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FASHION = "/usr/share/datasets/fashion-mnist"
MAGIC = b"FMNCLS01"
ORDER = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight", "conv3.bias",
         "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def read_idx(path):
    """An idx file (gzip or not): magic 0x0801 (labels, uint8) or 0x0803 (images, uint8), big-endian counts."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 8 or raw[:2] != b"\0\0" or raw[2] != 8 or raw[3] not in (1, 3):
        raise ValueError(f"{path}: not an idx file of unsigned bytes")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    count = int(np.prod(dims))
    if len(raw) - 4 - 4 * ndim < count:
        raise ValueError(f"{path}: header claims {dims} but the file is shorter")
    return np.frombuffer(raw, np.uint8, count, 4 + 4 * ndim).reshape(dims)


def load_fashion(split):  # split "train" or "t10k" -> (uint8 images (n, 28, 28), uint8 labels (n,))
    return (read_idx(f"{FASHION}/{split}-images-idx3-ubyte.gz"), read_idx(f"{FASHION}/{split}-labels-idx1-ubyte.gz"))


def to_unit(images_u8):  # bytes -> [-1, 1] float32, (n, 1, 28, 28), as diffusion.c's load_dataset
    return torch.from_numpy(images_u8.astype(np.float32) / 127.5 - 1.0).reshape(-1, 1, 28, 28)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
        self.conv3, self.bn3 = nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64)
        self.fc1, self.fc2, self.drop = nn.Linear(576, 128), nn.Linear(128, 10), nn.Dropout(0.3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.max_pool2d(F.relu(self.bn3(self.conv3(x))), 2)
        return self.fc2(self.drop(F.relu(self.fc1(x.flatten(1)))))


def folded(net):
    """Eval-mode BatchNorm folded into the bias-free conv before it: w' = w g/sqrt(v + eps), b' = beta - m g/sqrt(v + eps)."""
    out = {}
    for i in (1, 2, 3):
        conv, bn = getattr(net, f"conv{i}"), getattr(net, f"bn{i}")
        s = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        out[f"conv{i}.weight"] = conv.weight.detach() * s.reshape(-1, 1, 1, 1)
        out[f"conv{i}.bias"] = bn.bias.detach() - bn.running_mean * s
    for name in ("fc1", "fc2"):
        out[f"{name}.weight"], out[f"{name}.bias"] = getattr(net, name).weight.detach(), getattr(net, name).bias.detach()
    return out


def write_bin(path, tensors, scalars):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<I", len(tensors) + len(scalars)))
        for name, arr in list(tensors.items()) + [(k, np.float32(v)) for k, v in scalars.items()]:
            a = np.ascontiguousarray(np.asarray(arr, dtype="<f4"))
            f.write(struct.pack("<I", len(name)) + name.encode() + struct.pack("<I", a.ndim))
            f.write(struct.pack("<" + "I" * a.ndim, *a.shape) + a.tobytes())
    os.replace(tmp, path)


def pool4(x):  # (n, 784) -> (n, 49): the means of the 4x4 blocks of each 28x28 image
    return x.reshape(-1, 7, 4, 7, 4).mean((2, 4)).reshape(-1, 49)


def nearest_below(q, train, limit, exclude=None, block=1000, pair_chunk=4096):
    """Exact L2 distances (float64, [-1, 1] pixel units) from each row of q (n, 784) to its nearest row of train
    (m, 784), for the rows whose nearest distance is below `limit`; inf for the others. exclude[i] >= 0: a row of
    train that query i must not match (itself). Pruned by a lower bound: on each 4x4 block, Cauchy-Schwarz gives
    sum d^2 >= 16 mean(d)^2, so |a - b| >= 4 |P a - P b| with P the 4x4 block means (49 numbers); only the pairs whose
    bound is below `limit` are compared in full. (A plain 784-wide product against 60,000 images costs ~20x more.)"""
    q, train = torch.as_tensor(q, dtype=torch.float32), torch.as_tensor(train, dtype=torch.float32)
    pq, pt = pool4(q), pool4(train)
    ptn = (pt * pt).sum(1)
    lim2 = (float(limit) / 4) ** 2 * 1.0001 + 1e-4  # slack for float32 rounding: the bound must not exclude a true pair
    best = np.full(len(q), np.inf)
    for i in range(0, len(q), block):
        a = pq[i:i + block]
        lb2 = (a * a).sum(1, keepdim=True) + ptn[None, :] - 2 * a @ pt.T
        if exclude is not None:
            ex = torch.as_tensor(exclude[i:i + block], dtype=torch.int64)
            rows = torch.nonzero(ex >= 0).flatten()
            lb2[rows, ex[rows]] = float("inf")
        qi, tj = torch.nonzero(lb2 < lim2, as_tuple=True)
        for c in range(0, len(qi), pair_chunk):
            qs, ts = qi[c:c + pair_chunk], tj[c:c + pair_chunk]
            d = (q[i + qs].double() - train[ts].double()).pow(2).sum(1).sqrt()
            np.minimum.at(best, (i + qs).numpy(), d.numpy())
    best[best >= limit] = np.inf
    return best


def nearcopy_threshold(test, train, pct=1.0):
    """The pct-th percentile (numpy's linear interpolation) of the nearest-training-image distances of the test
    images, exactly: only the smallest ceil(pct% of n) + 1 distances enter it, so search below a limit, doubled
    until that many are found."""
    need = int(np.ceil(pct / 100 * (len(test) - 1))) + 1
    limit = 2.0
    while True:
        d = nearest_below(test, train, limit)
        if np.isfinite(d).sum() >= need:
            return float(np.percentile(d, pct))
        limit *= 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "fmnist_classifier.bin"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.RandomState(args.seed)
    t0 = time.time()

    tr_img, tr_lab = load_fashion("train")
    te_img, te_lab = load_fashion("t10k")
    xtr, ytr = to_unit(tr_img), torch.from_numpy(tr_lab.astype(np.int64))
    xte, yte = to_unit(te_img), torch.from_numpy(te_lab.astype(np.int64))

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    steps_per_epoch = len(xtr) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=args.epochs * steps_per_epoch)
    for epoch in range(args.epochs):
        net.train()
        perm = torch.from_numpy(rng.permutation(len(xtr)))
        flip = torch.from_numpy(rng.rand(len(xtr)) < 0.5)  # horizontal flips: the garments are near mirror-symmetric
        total = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            xb = xtr[idx]
            xb = torch.where(flip[idx].reshape(-1, 1, 1, 1), xb.flip(3), xb)
            loss = F.cross_entropy(net(xb), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        print(f"epoch {epoch + 1}/{args.epochs}: mean loss {total / steps_per_epoch:.4f} ({time.time() - t0:.0f} s)", flush=True)

    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(xte[i:i + 1000]).argmax(1) for i in range(0, len(xte), 1000)])
        acc = (pred == yte).double().mean().item()
        # check the folded weights give the same predictions as the BatchNorm network
        w = folded(net)
        h = xte[:1000]
        for i in (1, 2, 3):
            h = F.max_pool2d(F.relu(F.conv2d(h, w[f"conv{i}.weight"], w[f"conv{i}.bias"], padding=1)), 2)
        logits = F.linear(F.relu(F.linear(h.flatten(1), w["fc1.weight"], w["fc1.bias"])), w["fc2.weight"], w["fc2.bias"])
        agree = (logits.argmax(1) == pred[:1000]).double().mean().item()
        thr = nearcopy_threshold(xte.reshape(-1, 784), xtr.reshape(-1, 784))
    nparams = sum(v.numel() for v in w.values())
    write_bin(args.out, {k: w[k].numpy() for k in ORDER}, {"test_accuracy": acc, "nearcopy_l2": thr})
    print(f"test accuracy: {acc * 100:.2f}% on 10000 test images (folded weights agree on {agree * 100:.1f}% of 1000)")
    print(f"near-copy threshold: L2 < {thr:.4f} in [-1,1] pixel units (1st percentile of test-to-train nearest distances)")
    print(f"wrote {args.out}: {nparams} parameters, {os.path.getsize(args.out)} bytes ({time.time() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
