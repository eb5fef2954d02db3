#!/usr/bin/env python3
"""Reference pool3 features of pytorch-fid's FID Inception-v3, to check
mmvae's port (crates/mmvae-model/src/inception.rs) against.

The real FID weights cannot be downloaded everywhere, so this builds
pytorch-fid's exact network (pytorch_fid.inception.InceptionV3 with the FID
blocks) with seeded random weights and random batch-norm statistics, saves
them as a PyTorch state dict, and writes the features of deterministic test
images (28x28 grey and 32x32 RGB) to JSON. Then:

    MMVAE_INCEPTION_REF=DIR cargo test --release -p mmvae-model inception

loads the same weights through burn's PyTorch reader and compares.

Needs: torch, torchvision, pytorch-fid (pip install pytorch-fid).
Usage: scripts/inception-reference.py DIR
"""
import json
import math
import os
import sys

import torch
import pytorch_fid.inception as pf


def fid_inception_random():
    # pytorch_fid.inception.fid_inception_v3 without the weight download.
    inc = pf._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    inc.Mixed_5b = pf.FIDInceptionA(192, pool_features=32)
    inc.Mixed_5c = pf.FIDInceptionA(256, pool_features=64)
    inc.Mixed_5d = pf.FIDInceptionA(288, pool_features=64)
    inc.Mixed_6b = pf.FIDInceptionC(768, channels_7x7=128)
    inc.Mixed_6c = pf.FIDInceptionC(768, channels_7x7=160)
    inc.Mixed_6d = pf.FIDInceptionC(768, channels_7x7=160)
    inc.Mixed_6e = pf.FIDInceptionC(768, channels_7x7=192)
    inc.Mixed_7b = pf.FIDInceptionE_1(1280)
    inc.Mixed_7c = pf.FIDInceptionE_2(2048)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in inc.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
            elif isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return inc


def test_images(channels, side, count):
    """Image k: value ((7x + 13y + 5c + 11k) mod 17) / 16, planar [c, y, x]."""
    x = torch.zeros(count, channels, side, side)
    for k in range(count):
        for c in range(channels):
            for y in range(side):
                for xx in range(side):
                    x[k, c, y, xx] = ((7 * xx + 13 * y + 5 * c + 11 * k) % 17) / 16.0
    return x


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "inception-ref"
    os.makedirs(out, exist_ok=True)
    pf.fid_inception_v3 = fid_inception_random
    net = pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]],
                         resize_input=True, normalize_input=True,
                         use_fid_inception=True).eval()
    # The state dict as pytorch-fid's weight file has it (the network's own
    # names, without the wrapper's block prefixes).
    inc = fid_inception_random()
    inc.eval()
    # Copy the same weights into the wrapper's blocks.
    blocks = [m for b in net.blocks for m in b]
    names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", None,
             "Conv2d_3b_1x1", "Conv2d_4a_3x3", None,
             "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
             "Mixed_6c", "Mixed_6d", "Mixed_6e",
             "Mixed_7a", "Mixed_7b", "Mixed_7c", None]
    assert len(blocks) == len(names), (len(blocks), len(names))
    for b, name in zip(blocks, names):
        if name is not None:
            b.load_state_dict(getattr(inc, name).state_dict())
    torch.save(inc.state_dict(), os.path.join(out, "inception-random.pth"))
    result = {}
    with torch.no_grad():
        for channels, side in [(1, 28), (3, 32)]:
            x = test_images(channels, side, 3)
            if channels == 1:
                x3 = x.repeat(1, 3, 1, 1)
            else:
                x3 = x
            f = net(x3)[0].reshape(3, 2048)
            result[f"{channels}x{side}"] = f.tolist()
    with open(os.path.join(out, "features.json"), "w") as fh:
        json.dump(result, fh)
    print("wrote", out)


if __name__ == "__main__":
    main()
