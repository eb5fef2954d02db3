#!/usr/bin/env python3
"""PyTorch twin of one epoch of `configs/mnist.toml`, for a side-by-side
comparison with `mmvae train --config configs/mnist.toml --epochs 1` on the
same machine (not run in CI).

The model and objective are those of `bench/torch_bench.py --model mvae-mlp`,
which are the config's: a 784-512-512 MLP image expert and decoder, a GRU
caption encoder and decoder (embedding 64, hidden 128), latent 64, a product
of experts with a prior expert, the sum of the joint and both single-modality
ELBOs (each reconstructing both modalities), text weight 50, beta annealed
over 2,000 steps, Adam at 1e-3, batch 100. Data: the MNIST training images
(the last 5,000 held out for validation) with captions drawn from the same
eight templates, shuffled every epoch; one validation pass ends the epoch,
as in `mmvae train`.

    python3 bench/torch_mnist_epoch.py --data ~/data/mnist

Prints one JSON line: seconds for the epoch (training and validation),
training samples per second and peak resident memory.
"""
import argparse
import gzip
import json
import os
import random
import resource
import struct
import time

import torch

from torch_bench import Mvae

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATES = [
    "{c}",
    "a handwritten {c}",
    "the digit {c}",
    "this is the digit {c}",
    "an image of the number {c}",
    "a picture of {a} {c}",
    "{a} {c} written by hand",
    "the number {c} in white ink",
]
PAD, BOS, EOS = 0, 1, 2
MAX_LEN = 10


def idx(path):
    with gzip.open(path, "rb") as f:
        body = f.read()
    dims = body[3]
    shape = struct.unpack(">" + "I" * dims, body[4 : 4 + 4 * dims])
    data = torch.frombuffer(bytearray(body[4 + 4 * dims :]), dtype=torch.uint8)
    return data.reshape(shape)


def caption(label, rng):
    c = DIGITS[label]
    a = "an" if c[0] in "aeiou" else "a"
    return rng.choice(TEMPLATES).format(a=a, c=c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.environ.get("MMVAE_DATA", "data"), "mnist"))
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=100)
    a = ap.parse_args()
    torch.manual_seed(1)
    rng = random.Random(0)
    images = idx(os.path.join(a.data, "train-images-idx3-ubyte.gz")).reshape(-1, 784).float() / 255.0
    labels = idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz")).long().tolist()
    words = sorted({w for l in range(10) for t in TEMPLATES for w in t.format(a="an", c=DIGITS[l]).split()}
                   | {"a"})
    vocab = {w: 4 + i for i, w in enumerate(words)}

    def tokens_of(idxs):
        toks, last = [], []
        for i in idxs:
            ids = [BOS] + [vocab[w] for w in caption(labels[i], rng).split()] + [EOS]
            last.append(len(ids) - 1)
            toks.append(ids + [PAD] * (MAX_LEN - len(ids)))
        return torch.tensor(toks), torch.tensor(last)

    n = images.shape[0] - a.val_size
    b = a.batch_size
    m = Mvae(vocab=4 + len(words))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-8)
    t0 = time.perf_counter()
    order = torch.randperm(n).tolist()
    step = 0
    for s in range(0, n - b + 1, b):
        idxs = order[s : s + b]
        x = images[idxs]
        tokens, last = tokens_of(idxs)
        opt.zero_grad(set_to_none=True)
        beta = min(1.0, step / 2000.0)
        loss = m.loss(x, tokens, last, beta)
        loss.backward()
        opt.step()
        loss.item()
        step += 1
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        val = 0.0
        for s in range(n, images.shape[0], b):
            idxs = list(range(s, min(s + b, images.shape[0])))
            tokens, last = tokens_of(idxs)
            val += m.loss(images[idxs], tokens, last).item() * len(idxs)
    secs = time.perf_counter() - t0
    print(json.dumps({
        "framework": f"pytorch-{torch.__version__}",
        "workload": "configs/mnist.toml, one epoch",
        "steps": step,
        "train_seconds": train_s,
        "epoch_seconds": secs,
        "samples_per_s": step * b / train_s,
        "val_loss": val / a.val_size,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
