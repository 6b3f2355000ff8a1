#!/usr/bin/env python3
"""Reference for the inpainting mask blur: A1111's `StableDiffusionProcessingImg2Img.init`
blurs the binary mask with OpenCV, x then y:

    kernel_size = 2 * int(2.5 * blur + 0.5) + 1
    np_mask = cv2.GaussianBlur(np_mask, (kernel_size, 1), blur)   # then (1, kernel_size)

run here with the real `cv2` (opencv-python-headless, pinned in requirements.txt) on masks
of several shapes (a disc, a rectangle touching the border, scattered dots, a thin line) and
blur radii, 8-bit in and out.

Usage:
    python tools/mask_blur_reference.py   # writes fixtures/mask_blur/
"""

import json
import os

import cv2
import numpy as np
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "mask_blur")


def masks():
    h, w = 48, 40
    y, x = np.mgrid[0:h, 0:w]
    disc = (((x - 22) ** 2 + (y - 20) ** 2) < 12 ** 2).astype(np.uint8) * 255
    rect = np.zeros((h, w), np.uint8)
    rect[0:20, 25:40] = 255
    rng = np.random.default_rng(7)
    dots = (rng.random((h, w)) < 0.08).astype(np.uint8) * 255
    line = np.zeros((h, w), np.uint8)
    line[:, 17] = 255
    return {"disc": disc, "rect": rect, "dots": dots, "line": line}


def a1111_blur(mask, blur):
    kernel_size = 2 * int(2.5 * blur + 0.5) + 1
    out = cv2.GaussianBlur(mask, (kernel_size, 1), blur)
    return cv2.GaussianBlur(out, (1, kernel_size), blur)


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors = {}
    cases = []
    for name, mask in masks().items():
        tensors[f"{name}.mask"] = mask
        for blur in (1, 2, 4, 7, 16):
            tensors[f"{name}.blur{blur}"] = a1111_blur(mask, blur)
            cases.append({"mask": name, "blur": blur})
    save_file(tensors, os.path.join(OUT, "mask_blur.safetensors"))
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"opencv": cv2.__version__, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
