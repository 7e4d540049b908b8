#!/usr/bin/python3
"""PyTorch eager reference for the DETR-R50 benchmark (Debian's python3-torch).

The official DETR architecture written with stock PyTorch modules, the way the
official code runs it: torchvision's ResNet-50 with FrozenBatchNorm2d, and
nn.MultiheadAttention in a post-norm transformer. It loads the same weights
as detr_forward_bench (official key names) and times a forward pass at
800x1066, batch 1, with the given number of threads. With --check it also
writes its outputs for one input so the C++ model can be compared with it.

    pytorch_eager_reference.py WEIGHTS.safetensors [--threads 2] [--runs 5]
"""
import argparse
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "server", "tools"))
import safetensors_io  # noqa: E402


class Body(nn.Module):
    """ResNet-50 up to layer4, frozen batch-norm, named as backbone.0.body."""

    def __init__(self):
        super().__init__()
        resnet = torchvision.models.resnet50(norm_layer=torchvision.ops.FrozenBatchNorm2d)
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(resnet, name))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = Body()


def sine_position(mask, num_feats, temperature=10000.0):
    not_mask = ~mask
    y = not_mask.cumsum(1, dtype=torch.float32)
    x = not_mask.cumsum(2, dtype=torch.float32)
    y = y / (y[:, -1:, :] + 1e-6) * 2 * math.pi
    x = x / (x[:, :, -1:] + 1e-6) * 2 * math.pi
    dim_t = torch.arange(num_feats, dtype=torch.float32)
    dim_t = temperature ** (2 * (dim_t // 2) / num_feats)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)


class EncoderLayer(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, src, pos, padding):
        q = src + pos
        src = self.norm1(src + self.self_attn(q, q, src, key_padding_mask=padding)[0])
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DecoderLayer(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads)
        self.multihead_attn = nn.MultiheadAttention(d, heads)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, tgt, memory, padding, pos, query_pos):
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, q, tgt)[0])
        tgt = self.norm2(tgt + self.multihead_attn(tgt + query_pos, memory + pos, memory,
                                                   key_padding_mask=padding)[0])
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class Stack(nn.Module):
    def __init__(self, layers, norm=None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        if norm is not None:
            self.norm = norm


class Transformer(nn.Module):
    def __init__(self, d=256, heads=8, enc=6, dec=6, ff=2048):
        super().__init__()
        self.encoder = Stack([EncoderLayer(d, heads, ff) for _ in range(enc)])
        self.decoder = Stack([DecoderLayer(d, heads, ff) for _ in range(dec)], nn.LayerNorm(d))

    def forward(self, src, padding, query_embed, pos):
        b, c, h, w = src.shape
        src, pos = src.flatten(2).permute(2, 0, 1), pos.flatten(2).permute(2, 0, 1)
        query_pos = query_embed.unsqueeze(1).repeat(1, b, 1)
        padding = padding.flatten(1)
        memory = src
        for layer in self.encoder.layers:
            memory = layer(memory, pos, padding)
        tgt = torch.zeros_like(query_pos)
        for layer in self.decoder.layers:
            tgt = layer(tgt, memory, padding, pos, query_pos)
        return self.decoder.norm(tgt).transpose(0, 1)


class MLP(nn.Module):
    def __init__(self, d, out, n):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(d, out if i == n - 1 else d) for i in range(n))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class DetrR50(nn.Module):
    def __init__(self, num_classes=91, d=256, queries=100):
        super().__init__()
        self.backbone = nn.ModuleList([Backbone()])
        self.input_proj = nn.Conv2d(2048, d, 1)
        self.query_embed = nn.Embedding(queries, d)
        self.transformer = Transformer(d)
        self.class_embed = nn.Linear(d, num_classes + 1)
        self.bbox_embed = MLP(d, 4, 3)

    def forward(self, pixels, mask):
        features = self.backbone[0].body(pixels)
        mask = F.interpolate(mask[None].float(), size=features.shape[-2:]).to(torch.bool)[0]
        pos = sine_position(mask, self.input_proj.out_channels // 2)
        hs = self.transformer(self.input_proj(features), mask, self.query_embed.weight, pos)
        return self.class_embed(hs), self.bbox_embed(hs).sigmoid()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--check", help="write logits/boxes for the seeded input here (safetensors)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = DetrR50().eval()
    state = safetensors_io.load(args.weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")

    pixels = torch.randn(1, 3, 800, 1066, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 800, 1066, dtype=torch.bool)
    times = []
    with torch.no_grad():
        logits, boxes = model(pixels, mask)  # warm-up
        for _ in range(args.runs):
            start = time.perf_counter()
            model(pixels, mask)
            times.append(time.perf_counter() - start)
    if args.check:
        safetensors_io.save(args.check, {"pixel_values": pixels, "pixel_mask": mask,
                                         "pred_logits": logits, "pred_boxes": boxes})
    print(f"pytorch_eager detr_r50_800x1066/softmax: median {statistics.median(times) * 1e3:.0f} ms, "
          f"min {min(times) * 1e3:.0f} ms over {args.runs} runs, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
