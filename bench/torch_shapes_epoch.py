#!/usr/bin/env python3
"""PyTorch twin of one epoch of `configs/shapes-l3.toml`, for a side-by-side
comparison with `mmvae train --config configs/shapes-l3.toml` (its first
epoch) on the same machine (not run in CI).

The model and objective are the config's: 64x64 RGB images through four
stride-2 4x4 convolutions (16, 32, 64, 128 channels), a 256-unit hidden layer
and latent 32, the mirror-image decoder with transposed convolutions and
Bernoulli logits; a GRU caption encoder and decoder (embedding 32, hidden
64); a product of experts with a prior expert, the sum of the joint and both
single-modality ELBOs (each reconstructing both modalities), text weight 50,
beta 0.02 annealed over 4,000 steps, Adam at 1e-3, batch 32; 25,000 training
items and a 2,000-item validation pass. The items are random pixels and
three-word captions: the time of a step does not depend on what the images
show.

    python3 bench/torch_shapes_epoch.py
    python3 bench/torch_shapes_epoch.py --device cuda

Each batch is drawn on the CPU and moved to the device, as a data loader's
would be. Prints one JSON line: seconds for the epoch (training and
validation), training samples per second and peak memory (resident, and on
CUDA the allocator's peak).
"""
import argparse
import json
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_bench import TextDecoder, TextEncoder, poe_elbos

SIDE, COLOURS, LATENT, HIDDEN = 64, 3, 32, 256
WIDTHS = [16, 32, 64, 128]


class ConvEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        chans = [COLOURS] + WIDTHS
        self.convs = nn.ModuleList([nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1) for i in range(4)])
        self.fc = nn.Linear(WIDTHS[-1] * 16, HIDDEN)
        self.out = nn.Linear(HIDDEN, 2 * LATENT)

    def forward(self, x):
        h = x.view(-1, COLOURS, SIDE, SIDE)
        for c in self.convs:
            h = F.relu(c(h))
        o = self.out(F.relu(self.fc(h.flatten(1))))
        return o[:, :LATENT], o[:, LATENT:]


class ConvDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        chans = [COLOURS] + WIDTHS
        self.fc1, self.fc2 = nn.Linear(LATENT, HIDDEN), nn.Linear(HIDDEN, WIDTHS[-1] * 16)
        self.deconvs = nn.ModuleList(
            [nn.ConvTranspose2d(chans[i + 1], chans[i], 4, 2, 1) for i in reversed(range(4))]
        )

    def forward(self, z):
        h = self.fc2(F.relu(self.fc1(z))).view(-1, WIDTHS[-1], 4, 4)
        for d in self.deconvs:
            h = d(F.relu(h))
        return h.flatten(1)


class Model(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.ie, self.id = ConvEncoder(), ConvDecoder()
        self.te, self.td = TextEncoder(vocab, 32, 64, LATENT), TextDecoder(vocab, 32, 64, LATENT)

    def loss(self, x, tokens, last, beta):
        return poe_elbos(self, x, tokens, last, beta)


def batch(b, g):
    x = torch.rand(b, COLOURS * SIDE * SIDE, generator=g)
    words = torch.randint(4, 17, (b, 3), generator=g)
    tokens = torch.cat([torch.ones(b, 1, dtype=torch.long), words,
                        torch.full((b, 1), 2), torch.zeros(b, 5, dtype=torch.long)], 1)
    return x, tokens, torch.full((b,), 4)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=25000)
    ap.add_argument("--val-size", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    torch.manual_seed(1)
    dev = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    m = Model(vocab=17).to(dev)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-8)
    b = a.batch_size
    t0 = time.perf_counter()
    steps = a.items // b
    for step in range(steps):
        x, tokens, last = (t.to(dev) for t in batch(b, g))
        opt.zero_grad(set_to_none=True)
        loss = m.loss(x, tokens, last, 0.02 * min(1.0, step / 4000.0))
        loss.backward()
        opt.step()
        loss.item()
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        for _ in range(0, a.val_size, b):
            m.loss(*(t.to(dev) for t in batch(b, g)), 0.02).item()
    secs = time.perf_counter() - t0
    print(json.dumps({
        "framework": f"pytorch-{torch.__version__}",
        "workload": "configs/shapes-l3.toml, one epoch",
        "steps": steps,
        "train_seconds": train_s,
        "epoch_seconds": secs,
        "samples_per_s": steps * b / train_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "peak_device_mib": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
