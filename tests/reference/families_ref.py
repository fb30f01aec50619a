"""families_ref.py — reference pieces shared by the GLoRIA and MedCLIP fixture scripts, written from
/work/shared/MODELS.md sections 3 and 5 in plain numpy/torch/PIL (no OpenCV, transformers or flax).

- opencv_resize_area: OpenCV's cv2.resize(..., interpolation=INTER_AREA) on an 8-bit single-channel
  image, from the algorithm OpenCV documents and implements in imgproc/src/resize.cpp:
    * both scale factors >= 1 and both integers ("area fast"): box average of each iscale_x × iscale_y
      block; the 2×2 case rounds (sum + 2) >> 2 (its SIMD kernel and scalar tail), other factors
      round sum · (1/area) (float) half-to-even (cvRound);
    * both scale factors >= 1 otherwise: area-weighted average. Per axis a table of (dst, src, weight):
      the destination cell [d·s, d·s + s) (s = src/dst) clipped to the image, weights = overlapped length /
      cell length (computed in double, stored as float32); rows are accumulated in float32 (a row's
      horizontal sums times its vertical weight), rounded half-to-even;
    * otherwise (enlarging): bilinear with INTER_AREA's coefficients fx = (d+1) - (sx+1)/s, 0 if <= 0
      else its fractional part, sx = floor(d·s), clamped at the borders; 11-bit fixed-point weights and
      the scalar rounding (v + 2^21) >> 22.
  Not modelled: OpenCV builds that route INTER_AREA to Intel IPP, and the SIMD rounding of the
  enlarging path (both can change a pixel by one level).
- DictConfig: a class pickled as omegaconf.dictconfig.DictConfig, like Lightning's hyper_parameters.
- flax_ext: a numpy array as flax.serialization writes it (msgpack ExtType 1 of (shape, dtype, bytes)).
"""
import math
import sys
import types

import numpy as np
import torch


def save_raw(path, array):
    np.asarray(array, dtype="<f4").tofile(path)


# --- OpenCV INTER_AREA -----------------------------------------------------------------------------
def _area_table(src_size, dst_size):
    scale = src_size / dst_size
    table = []
    for d in range(dst_size):
        fs1 = d * scale
        fs2 = fs1 + scale
        cell = min(scale, src_size - fs1)
        s1 = min(math.ceil(fs1), src_size)
        s2 = min(math.floor(fs2), src_size - 1)
        s1 = min(s1, s2)
        if s1 - fs1 > 1e-3:
            table.append((d, s1 - 1, np.float32((s1 - fs1) / cell)))
        for s in range(s1, s2):
            table.append((d, s, np.float32(1.0 / cell)))
        if fs2 - s2 > 1e-3:
            table.append((d, s2, np.float32(min(min(fs2 - s2, 1.0), cell) / cell)))
    return table


def _resize_area_general(img, dst_w, dst_h):
    src_h, src_w = img.shape
    xtab, ytab = _area_table(src_w, dst_w), _area_table(src_h, dst_h)
    out = np.zeros((dst_h, dst_w), np.uint8)
    acc = None
    prev_dy = -1
    for dy, sy, beta in ytab:
        row = img[sy].astype(np.float32)
        buf = np.zeros(dst_w, np.float32)
        for dx, sx, alpha in xtab:
            buf[dx] = np.float32(buf[dx] + np.float32(row[sx] * alpha))
        if dy != prev_dy:
            if prev_dy >= 0:
                out[prev_dy] = np.clip(np.rint(acc), 0, 255)
            acc = (np.float32(beta) * buf).astype(np.float32)
            prev_dy = dy
        else:
            acc = (acc + np.float32(beta) * buf).astype(np.float32)
    out[prev_dy] = np.clip(np.rint(acc), 0, 255)
    return out


def _resize_area_fast(img, dst_w, dst_h, sx, sy):
    blocks = img[:dst_h * sy, :dst_w * sx].astype(np.int64).reshape(dst_h, sy, dst_w, sx).sum(axis=(1, 3))
    if sx == 2 and sy == 2:
        return ((blocks + 2) >> 2).astype(np.uint8)
    scaled = blocks.astype(np.float32) * np.float32(1.0 / (sx * sy))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _linear_coefficients(src_size, dst_size):
    scale = src_size / dst_size
    inv_scale = dst_size / src_size
    src0, weights = [], []
    for d in range(dst_size):
        s = math.floor(d * scale)
        f = np.float32((d + 1) - (s + 1) * inv_scale)
        f = np.float32(0.0) if f <= 0 else np.float32(f - math.floor(f))
        if s < 0:
            s, f = 0, np.float32(0.0)
        if s >= src_size - 1:
            s, f = src_size - 1, np.float32(0.0)
        w0 = int(np.rint(np.float32((np.float32(1.0) - f) * 2048)))
        w1 = int(np.rint(np.float32(f * 2048)))
        src0.append(s)
        weights.append((w0, w1))
    return src0, weights


def _resize_area_enlarge(img, dst_w, dst_h):
    src_h, src_w = img.shape
    xs, xw = _linear_coefficients(src_w, dst_w)
    ys, yw = _linear_coefficients(src_h, dst_h)
    rows = img.astype(np.int64)
    horizontal = np.zeros((src_h, dst_w), np.int64)
    for dx in range(dst_w):
        s = xs[dx]
        s1 = min(s + 1, src_w - 1)
        horizontal[:, dx] = rows[:, s] * xw[dx][0] + (rows[:, s1] * xw[dx][1] if s + 1 < src_w else 0)
    out = np.zeros((dst_h, dst_w), np.uint8)
    for dy in range(dst_h):
        s = ys[dy]
        s1 = min(s + 1, src_h - 1)
        value = horizontal[s] * yw[dy][0] + horizontal[s1] * yw[dy][1]
        out[dy] = np.clip((value + (1 << 21)) >> 22, 0, 255)
    return out


def opencv_resize_area(img, dst_w, dst_h):
    """cv2.resize(img, (dst_w, dst_h), interpolation=cv2.INTER_AREA) for a uint8 [h, w] image."""
    src_h, src_w = img.shape
    if (src_w, src_h) == (dst_w, dst_h):
        return img.copy()
    scale_x, scale_y = src_w / dst_w, src_h / dst_h
    if scale_x >= 1 and scale_y >= 1:
        if src_w % dst_w == 0 and src_h % dst_h == 0:
            return _resize_area_fast(img, dst_w, dst_h, src_w // dst_w, src_h // dst_h)
        return _resize_area_general(img, dst_w, dst_h)
    return _resize_area_enlarge(img, dst_w, dst_h)


# --- pickled OmegaConf stand-in ----------------------------------------------------------------------
def _fake_module(name):
    module = sys.modules.get(name) or types.ModuleType(name)
    sys.modules[name] = module
    return module


class DictConfig:
    """Pickles as omegaconf.dictconfig.DictConfig (NEWOBJ + BUILD), which a safe reader must not run."""

    def __init__(self, content):
        self._content = content


DictConfig.__module__ = "omegaconf.dictconfig"
_fake_module("omegaconf")
_fake_module("omegaconf.dictconfig").DictConfig = DictConfig


def lightning_checkpoint(state_dict, hyper_parameters):
    return {"epoch": 3, "global_step": 1234, "pytorch-lightning_version": "1.1.4",
            "state_dict": state_dict, "hyper_parameters": DictConfig(hyper_parameters),
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 5e-5}]}], "lr_schedulers": []}


def torch_save(path, obj):
    torch.save(obj, path)
