"""Training-time augmentation of image batches: random shifts (crop of a padded image) and flips.

A transform is drawn once per batch and applied to two views of the same rows: the student's
(normalised) inputs and the teacher's (normalised, or as the user gave them). Both must see the
same augmented image, or the teacher's soft labels would answer an image the student never saw;
so with augmentation the teacher's logits are computed per batch, not cached
(``tempdistill.tasks.classification``).

``crop: p`` pads each image with p zeros on every side and cuts out an H×W window at a random
offset in [0, 2p] (the standard "pad and random crop" of CIFAR training); ``flip`` mirrors an
image left to right with probability 1/2. Draws come from the loop's seeded generator, so an
augmented run repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class ImageTransform:
    """Per-sample offsets (B, 2) into the padded image and flips (B,), for one batch."""

    pad: int
    offsets: Optional[torch.Tensor]
    flips: Optional[torch.Tensor]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` (B, C, H, W) → the transformed batch, same shape; a new tensor."""
        out = images
        if self.offsets is not None and self.pad > 0:
            _, _, h, w = images.shape
            padded = torch.nn.functional.pad(images, (self.pad,) * 4)
            offsets = self.offsets.to(images.device)
            rows = offsets[:, 0:1] + torch.arange(h, device=images.device)  # (B, H)
            cols = offsets[:, 1:2] + torch.arange(w, device=images.device)  # (B, W)
            batch = torch.arange(images.shape[0], device=images.device)[:, None, None]
            # advanced indexing on dims 0, 2, 3 puts the channel dim last: (B, H, W, C)
            out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if self.flips is not None:
            flipped = self.flips.to(images.device)[:, None, None, None]
            out = torch.where(flipped, out.flip(-1), out)
        return out.contiguous()


def draw_transform(batch: int, crop: int, flip: bool, generator: torch.Generator) -> ImageTransform:
    """One batch's random shifts and flips, drawn from ``generator``."""
    offsets = torch.randint(0, 2 * crop + 1, (batch, 2), generator=generator) if crop > 0 else None
    flips = torch.rand(batch, generator=generator) < 0.5 if flip else None
    return ImageTransform(crop, offsets, flips)
