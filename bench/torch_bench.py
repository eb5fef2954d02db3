#!/usr/bin/env python3
"""PyTorch reference of the models timed by `mmvae bench`, for a side-by-side
comparison on the same machine (not run in CI).

    python3 bench/torch_bench.py --model mvae-mlp --steps 50
    python3 bench/torch_bench.py --model conv-vae --steps 20
    python3 bench/torch_bench.py --model conv-vae --device cuda

On CUDA, peak memory is the allocator's peak (`torch.cuda.max_memory_allocated`),
and every step ends in `loss.item()`, which waits for the GPU.

Prints one JSON line in the same format as `mmvae bench`.
"""
import argparse
import json
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Expert(nn.Module):
    """784-512-512-(mu, logvar)"""

    def __init__(self, d_in, hidden, latent):
        super().__init__()
        self.l1, self.l2 = nn.Linear(d_in, hidden), nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 2 * latent)
        self.latent = latent

    def forward(self, x):
        o = self.out(F.relu(self.l2(F.relu(self.l1(x)))))
        return o[:, : self.latent], o[:, self.latent :]


class ImageDecoder(nn.Module):
    def __init__(self, pixels, hidden, latent):
        super().__init__()
        self.l1, self.l2, self.out = nn.Linear(latent, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, pixels)

    def forward(self, z):
        return self.out(F.relu(self.l2(F.relu(self.l1(z)))))


class TextEncoder(nn.Module):
    def __init__(self, vocab, embed, hidden, latent):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 2 * latent)
        self.latent = latent

    def forward(self, tokens, last):
        hs, _ = self.gru(self.embed(tokens))
        h = hs[torch.arange(tokens.shape[0], device=tokens.device), last]
        o = self.out(h)
        return o[:, : self.latent], o[:, self.latent :]


class TextDecoder(nn.Module):
    def __init__(self, vocab, embed, hidden, latent):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.init = nn.Linear(latent, hidden)
        self.gru = nn.GRU(embed + latent, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def nll(self, z, tokens):
        inp, tgt = tokens[:, :-1], tokens[:, 1:]
        h0 = torch.tanh(self.init(z)).unsqueeze(0)
        x = torch.cat([self.embed(inp), z.unsqueeze(1).expand(-1, inp.shape[1], -1)], 2)
        hs, _ = self.gru(x, h0)
        logp = F.log_softmax(self.out(hs), -1)
        picked = logp.gather(2, tgt.unsqueeze(2)).squeeze(2)
        return -(picked * (tgt != 0).float()).sum(1)


def poe(experts):
    prec = torch.ones_like(experts[0][0])
    wmu = torch.zeros_like(experts[0][0])
    for mu, lv in experts:
        p = torch.exp(-lv.clamp(-10, 10))
        wmu = wmu + mu * p
        prec = prec + p
    var = 1.0 / prec
    return wmu * var, torch.log(var)


def kl(mu, lv):
    return 0.5 * (mu.pow(2) + lv.exp() - lv - 1).sum(1)


def rsample(mu, lv):
    return mu + torch.exp(0.5 * lv) * torch.randn_like(mu)


class Mvae(nn.Module):
    def __init__(self, vocab=32, latent=64, hidden=512):
        super().__init__()
        self.ie, self.id = Expert(784, hidden, latent), ImageDecoder(784, hidden, latent)
        self.te, self.td = TextEncoder(vocab, 64, 128, latent), TextDecoder(vocab, 64, 128, latent)

    def loss(self, x, tokens, last, beta=1.0):
        return poe_elbos(self, x, tokens, last, beta)


def poe_elbos(m, x, tokens, last, beta=1.0):
    """The joint and both single-modality ELBOs of a product of experts (each
    reconstructing both modalities), text weight 50, the KL scaled by beta;
    `m` holds the experts `ie`, `te` and decoders `id`, `td`."""
    b = x.shape[0]
    qx, qy = m.ie(x), m.te(tokens, last)
    qs = [poe([qx, qy]), poe([qx]), poe([qy])]
    klv = torch.cat([kl(*q) for q in qs])
    z = torch.cat([rsample(*q) for q in qs])
    img = F.binary_cross_entropy_with_logits(m.id(z), x.repeat(3, 1), reduction="none").sum(1)
    txt = m.td.nll(z, tokens.repeat(3, 1))
    return (img + 50.0 * txt + beta * klv).sum() / b


class ConvVae(nn.Module):
    def __init__(self, c=32, hidden=256, latent=64):
        super().__init__()
        chans = [1, c, 2 * c, 4 * c, 8 * c]
        self.convs = nn.ModuleList([nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1) for i in range(4)])
        self.fc = nn.Linear(8 * c * 16, hidden)
        self.out = nn.Linear(hidden, 2 * latent)
        self.fc1, self.fc2 = nn.Linear(latent, hidden), nn.Linear(hidden, 8 * c * 16)
        self.deconvs = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 4, 2, 1) for i in reversed(range(4))])
        self.c, self.latent = c, latent

    def loss(self, x):
        b = x.shape[0]
        h = x.view(b, 1, 64, 64)
        for conv in self.convs:
            h = F.relu(conv(h))
        o = self.out(F.relu(self.fc(h.flatten(1))))
        mu, lv = o[:, : self.latent], o[:, self.latent :]
        z = rsample(mu, lv)
        h = self.fc2(F.relu(self.fc1(z))).view(b, 8 * self.c, 4, 4)
        for d in self.deconvs:
            h = d(F.relu(h))
        nll = F.binary_cross_entropy_with_logits(h.view(b, -1), x, reduction="none").sum(1)
        return (nll + kl(mu, lv)).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mvae-mlp", choices=["mvae-mlp", "conv-vae"])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device(a.device)
    b = a.batch_size
    if a.model == "mvae-mlp":
        m = Mvae().to(dev)
        x = torch.rand(b, 784, device=dev)
        toks = []
        for i in range(b):
            toks.append([1] + [4 + (i * 7 + j) % 28 for j in range(7)] + [2, 0])
        tokens = torch.tensor(toks, device=dev)
        last = torch.full((b,), 8, device=dev)
        step = lambda: m.loss(x, tokens, last)
    else:
        m = ConvVae().to(dev)
        x = torch.rand(b, 64 * 64, device=dev)
        step = lambda: m.loss(x)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-8)
    warmup = 3
    for s in range(warmup + a.steps):
        if s == warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = step()
        loss.backward()
        opt.step()
        loss.item()
    secs = time.perf_counter() - t0
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
        name = torch.cuda.get_device_name(dev)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        name = "cpu"
    print(json.dumps({
        "framework": f"pytorch-{torch.__version__}",
        "model": a.model,
        "batch_size": b,
        "steps": a.steps,
        "seconds": secs,
        "samples_per_s": a.steps * b / secs,
        "device": name,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "peak_device_mib": peak if dev.type == "cuda" else None,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
