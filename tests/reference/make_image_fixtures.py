#!/usr/bin/python3
"""Image decoding/preprocessing fixtures for tests/vision, referenced against PIL + torchvision.

Regenerate (Debian python3 with PIL 9.4, numpy, torchvision 0.14; cjpeg from libjpeg-turbo-progs):
    /usr/bin/python3 tests/reference/make_image_fixtures.py tests/fixtures/vision

Writes, into the output directory:
  inputs (*.png, *.jpg) of many sizes, aspect ratios and modes (synthetic: smooth gradients, hard
  edges and noise, so resampling errors show);
  cases.txt: one line per preprocessing case:
      input color resize rw rh filter crop expected
    color rgb = open_clip order (resize, crop, convert('RGB')); gray = hi-ml order (convert('L')
    first, replicated at the end); resize shortest|exact|none; expected = 8-bit RGB (HWC) of the
    PIL image right before ToTensor, computed with torchvision.transforms on the PIL image;
  *.f32: for a few cases, the full torchvision float32 tensor (ToTensor + Normalize, CHW), listed
    in floats.txt as: case_expected_rgb f32_file;
  gray16.txt: input expected_gray sbit for 16-bit gray PNGs, expected = numpy of medvlp's documented
    16-bit -> 8-bit mapping (image.h), the reference for the rest of the pipeline;
  bad.txt: bad inputs: file status_name message_substring.
"""
import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image
import torch
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
FILTERS = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR,
           "nearest": InterpolationMode.NEAREST}

out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/vision"
os.makedirs(out_dir, exist_ok=True)


def path(name):
    return os.path.join(out_dir, name)


def pattern(h, w, c, seed):
    """Smooth waves + a checker of hard edges + gaussian noise, clipped to 0..255."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for ch in range(c):
        base = 127 + 90 * np.sin(x / (w / 3 + 1) * (ch + 1) + y / (h / 2 + 1) + ch)
        edges = ((x // max(w // 5, 1) + y // max(h // 4, 1)) % 2) * 70 - 35
        chans.append(base + edges + rng.normal(0, 10, (h, w)))
    return np.clip(np.stack(chans, -1), 0, 255).round().astype(np.uint8)


# ---- a minimal PNG writer, for what PIL cannot write (sBIT, Adam7, 2/4-bit gray, 16-bit colour)
def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def pack_row(samples, bit_depth):
    samples = np.asarray(samples).reshape(-1)
    if bit_depth == 16:
        return samples.astype(">u2").tobytes()
    if bit_depth == 8:
        return samples.astype(np.uint8).tobytes()
    per_byte = 8 // bit_depth
    padded = np.zeros(-(-len(samples) // per_byte) * per_byte, np.uint8)
    padded[: len(samples)] = samples
    padded = padded.reshape(-1, per_byte)
    packed = np.zeros(len(padded), np.uint8)
    for i in range(per_byte):
        packed |= padded[:, i] << (8 - bit_depth * (i + 1))
    return packed.tobytes()


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(name, samples, bit_depth, color_type, interlace=False, pre_idat=b""):
    """samples: (h, w, channels) integer array of raw sample values."""
    h, w = samples.shape[:2]
    raw = b""
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for xs, ys, dx, dy in passes:
        sub = samples[ys::dy, xs::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw += b"\0" + pack_row(row, bit_depth)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0,
                                                                int(interlace)))
    data += pre_idat + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path(name), "wb") as f:
        f.write(data)
    return data


def window16(v, sbit):
    """medvlp's documented 16-bit gray -> 8-bit mapping, in float64 numpy."""
    v = v.astype(np.float64)
    if sbit:
        v = np.floor(v / 2 ** (16 - sbit))
        return np.floor(v * 255 / (2 ** sbit - 1) + 0.5).astype(np.uint8)
    lo, hi = v.min(), v.max()
    if hi == lo:
        return np.zeros(v.shape, np.uint8)
    return np.floor((v - lo) * 255 / (hi - lo) + 0.5).astype(np.uint8)


def reference(img, color, resize, rw, rh, filt, crop):
    if color == "gray":
        img = img.convert("L")
    if resize == "shortest":
        img = T.Resize(rw, interpolation=FILTERS[filt])(img)
    elif resize == "exact":
        img = T.Resize((rh, rw), interpolation=FILTERS[filt])(img)
    if crop:
        img = T.CenterCrop(crop)(img)
    return img.convert("RGB")


cases = []
floats = []


def case(input_name, img, color="rgb", resize="shortest", rw=64, rh=0, filt="bicubic", crop=64, tag="",
         with_float=False):
    stem = os.path.splitext(input_name)[0]
    expected_name = f"{stem}.{color}_{resize}{rw}x{rh}_{filt}_c{crop}{tag}.rgb"
    ref = reference(img, color, resize, rw, rh, filt, crop)
    np.asarray(ref, np.uint8).tofile(path(expected_name))
    cases.append(f"{input_name} {color} {resize} {rw} {rh} {filt} {crop} {expected_name}")
    if with_float:
        tensor = T.ToTensor()(ref)
        if color == "rgb":
            tensor = T.Normalize(OPENAI_MEAN, OPENAI_STD)(tensor)
        float_name = expected_name[:-4] + ".f32"
        tensor.numpy().astype("<f4").tofile(path(float_name))
        floats.append(f"{expected_name} {float_name}")


def save_pil(name, img, **kw):
    img.save(path(name), **kw)
    return Image.open(path(name))


# ---- 8-bit PNGs through PIL
rgb = {}
for (w, h), seed in zip([(300, 200), (17, 300), (640, 97), (225, 224), (224, 224), (50, 40), (1, 1),
                         (64, 64), (65, 64), (97, 131)], range(100, 200)):
    rgb[(w, h)] = save_pil(f"rgb_{w}x{h}.png", Image.fromarray(pattern(h, w, 3, seed), "RGB"))
for size in [(300, 200), (17, 300), (640, 97), (50, 40), (1, 1), (64, 64), (65, 64), (97, 131)]:
    case(f"rgb_{size[0]}x{size[1]}.png", rgb[size])
case("rgb_300x200.png", rgb[(300, 200)], with_float=True)
case("rgb_225x224.png", rgb[(225, 224)], rw=224, crop=224)
case("rgb_224x224.png", rgb[(224, 224)], rw=224, crop=224)
case("rgb_50x40.png", rgb[(50, 40)], rw=224, crop=224)
case("rgb_300x200.png", rgb[(300, 200)], filt="bilinear")
case("rgb_300x200.png", rgb[(300, 200)], filt="nearest")
case("rgb_97x131.png", rgb[(97, 131)], filt="nearest")
case("rgb_97x131.png", rgb[(97, 131)], resize="exact", rw=50, rh=40, crop=64)    # zero padding
case("rgb_640x97.png", rgb[(640, 97)], resize="exact", rw=80, rh=50, crop=64)    # crop w, pad h
case("rgb_300x200.png", rgb[(300, 200)], resize="none", rw=0, crop=64)           # crop only

gray = save_pil("L_200x150.png", Image.fromarray(pattern(150, 200, 1, 1)[:, :, 0], "L"))
case("L_200x150.png", gray)
la_arr = pattern(120, 160, 2, 2)
la_arr[:30, :40, 1] = 0
la_arr[-30:, -40:, 1] = 255
la = save_pil("LA_160x120.png", Image.fromarray(la_arr, "LA"))
case("LA_160x120.png", la)
rgba_arr = pattern(220, 150, 4, 3)
rgba_arr[:50, :60, 3] = 0
rgba_arr[-50:, :, 3] = 255
rgba = save_pil("RGBA_150x220.png", Image.fromarray(rgba_arr, "RGBA"))
case("RGBA_150x220.png", rgba)
case("RGBA_150x220.png", rgba, resize="exact", rw=40, rh=50, crop=64)
pal = Image.fromarray(pattern(90, 130, 3, 4), "RGB").quantize(200)
p8 = save_pil("P_130x90.png", pal, transparency=5)
case("P_130x90.png", p8)
case("P_130x90.png", p8, resize="exact", rw=50, rh=40, crop=64)  # padding shows palette[0]
p4 = save_pil("P4_70x110.png", Image.fromarray(pattern(110, 70, 3, 5), "RGB").quantize(16), bits=4)
case("P4_70x110.png", p4)
bit1 = save_pil("1_120x80.png", Image.fromarray(pattern(80, 120, 1, 6)[:, :, 0] > 128))
assert bit1.mode == "1"
case("1_120x80.png", bit1)

# ---- PNGs PIL cannot write
g2 = pattern(70, 90, 1, 7) >> 6
write_png("L2_90x70.png", g2, 2, 0)
case("L2_90x70.png", Image.open(path("L2_90x70.png")))
g4 = pattern(70, 90, 1, 8) >> 4
write_png("L4_90x70.png", g4, 4, 0)
case("L4_90x70.png", Image.open(path("L4_90x70.png")))
write_png("rgb_adam7_101x77.png", pattern(77, 101, 3, 9), 8, 2, interlace=True)
case("rgb_adam7_101x77.png", Image.open(path("rgb_adam7_101x77.png")))
rgb16 = pattern(80, 100, 3, 10).astype(np.uint16) * 257 + np.random.default_rng(11).integers(0, 257, (80, 100, 3))
write_png("rgb16_100x80.png", rgb16, 16, 2)
im = Image.open(path("rgb16_100x80.png"))
assert im.mode == "RGB", im.mode
case("rgb16_100x80.png", im)
trns = write_png("rgb_trns_60x90.png", pattern(90, 60, 3, 12), 8, 2, pre_idat=chunk(b"tRNS", b"\0\1\0\2\0\3"))
case("rgb_trns_60x90.png", Image.open(path("rgb_trns_60x90.png")))

# ---- 16-bit gray: medvlp's mapping (numpy) is the reference, PIL does the rest
gray16_lines = []


def gray16_case(name, values, sbit, alpha=None, interlace=False):
    pre = chunk(b"sBIT", bytes([sbit] if alpha is None else [sbit, 8])) if sbit else b""
    samples = values[:, :, None] if alpha is None else np.dstack([values, alpha])
    write_png(name, samples.astype(np.uint16), 16, 0 if alpha is None else 4, interlace=interlace, pre_idat=pre)
    mapped = window16(values, sbit)
    stem = os.path.splitext(name)[0]
    mapped.tofile(path(stem + ".gray"))
    gray16_lines.append(f"{name} {stem}.gray {sbit}")
    if alpha is None:
        img = Image.fromarray(mapped, "L")
    else:
        img = Image.fromarray(np.dstack([mapped, (alpha >> 8).astype(np.uint8)]), "LA")
    case(name, img)


rng = np.random.default_rng(13)
v12 = (pattern(150, 120, 1, 14)[:, :, 0].astype(np.int64) * 16 + rng.integers(0, 16, (150, 120)))
gray16_case("gray16_sbit12_120x150.png", (v12 << 4) | (v12 >> 8), 12)
v_raw = 300 + pattern(110, 140, 1, 15)[:, :, 0].astype(np.int64) * 14 + rng.integers(0, 14, (110, 140))
gray16_case("gray16_minmax_140x110.png", v_raw, 0)
gray16_case("gray16_minmax_adam7_67x45.png", 1000 + pattern(45, 67, 1, 16)[:, :, 0].astype(np.int64) * 3, 0,
            interlace=True)
gray16_case("gray16_const_30x20.png", np.full((20, 30), 4000, np.int64), 0)
gray16_case("gray16_full_80x60.png", pattern(60, 80, 1, 17)[:, :, 0].astype(np.int64) * 257, 16)
gray16_case("gray16_alpha_70x50.png", 2000 + pattern(50, 70, 1, 18)[:, :, 0].astype(np.int64) * 9, 0,
            alpha=pattern(50, 70, 1, 19)[:, :, 0].astype(np.int64) * 257)

# ---- JPEGs
jrgb = Image.fromarray(pattern(260, 300, 3, 20), "RGB")
base = save_pil("jpeg_base_300x260.jpg", jrgb, quality=90)
case("jpeg_base_300x260.jpg", base)
case("jpeg_base_300x260.jpg", base, rw=224, crop=224)
prog = save_pil("jpeg_prog_150x230.jpg", Image.fromarray(pattern(230, 150, 3, 21), "RGB"), quality=85,
                progressive=True)
case("jpeg_prog_150x230.jpg", prog)
s444 = save_pil("jpeg_444_123x77.jpg", Image.fromarray(pattern(77, 123, 3, 22), "RGB"), quality=95, subsampling=0)
case("jpeg_444_123x77.jpg", s444)
jgray = save_pil("jpeg_gray_180x140.jpg", Image.fromarray(pattern(140, 180, 1, 23)[:, :, 0], "L"), quality=90)
case("jpeg_gray_180x140.jpg", jgray)
cmyk = save_pil("jpeg_cmyk_110x90.jpg", Image.fromarray(pattern(90, 110, 4, 24), "CMYK"), quality=90)
assert cmyk.mode == "CMYK"
case("jpeg_cmyk_110x90.jpg", cmyk)
ppm = io.BytesIO()
Image.fromarray(pattern(100, 130, 3, 25), "RGB").save(ppm, "PPM")
restart = subprocess.run(["cjpeg", "-restart", "1", "-quality", "90"], input=ppm.getvalue(),
                         stdout=subprocess.PIPE, check=True).stdout
assert b"\xff\xdd" in restart  # DRI marker present
with open(path("jpeg_restart_130x100.jpg"), "wb") as f:
    f.write(restart)
case("jpeg_restart_130x100.jpg", Image.open(path("jpeg_restart_130x100.jpg")))

# ---- BioViL order: gray first, bilinear, no mean/std
case("rgb_300x200.png", rgb[(300, 200)], color="gray", rw=72, filt="bilinear", crop=64, with_float=True)
case("L_200x150.png", gray, color="gray", rw=72, filt="bilinear", crop=64)
case("RGBA_150x220.png", rgba, color="gray", rw=72, filt="bilinear", crop=64)
case("P_130x90.png", p8, color="gray", rw=72, filt="bilinear", crop=64)
case("jpeg_cmyk_110x90.jpg", cmyk, color="gray", rw=72, filt="bilinear", crop=64)
case("gray16_sbit12_120x150.png", Image.fromarray(window16((v12 << 4) | (v12 >> 8), 12), "L"), color="gray",
     rw=72, filt="bilinear", crop=64)

# ---- bad inputs
bad = []


def bad_file(name, data, status, message):
    with open(path(name), "wb") as f:
        f.write(data)
    bad.append(f"{name} {status} {message}")


jpeg_bytes = open(path("jpeg_base_300x260.jpg"), "rb").read()
png_bytes = open(path("rgb_97x131.png"), "rb").read()
bad_file("bad_truncated.jpg", jpeg_bytes[: len(jpeg_bytes) // 2], "invalid_input", "Premature end of JPEG file")
bad_file("bad_header_only.jpg", jpeg_bytes[:200], "invalid_input", "corrupt JPEG")
bad_file("bad_garbage.bin", np.random.default_rng(30).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
         "unsupported", "unknown image format")
bad_file("bad_empty.png", b"", "invalid_input", "empty image")
bad_png_crc = bytearray(png_bytes)
idat = bad_png_crc.find(b"IDAT")
idat_length = struct.unpack(">I", bad_png_crc[idat - 4: idat])[0]
bad_png_crc[idat + 4 + idat_length] ^= 0xFF  # first byte of the IDAT CRC
bad_file("bad_crc.png", bytes(bad_png_crc), "invalid_input", "CRC error")
bad_file("bad_truncated.png", png_bytes[: len(png_bytes) * 2 // 3], "invalid_input", "truncated")
bad_file("bad_zlib.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40, 30, 8, 2, 0, 0, 0))
         + chunk(b"IDAT", b"\x78\x9c" + bytes(range(200))) + chunk(b"IEND", b""), "invalid_input", "corrupt PNG")
bad_file("bad_huge_header.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2,
         0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""), "too_large", "over the limit")
bomb_rows = (b"\0" + b"\0" * 1250) * 10000  # 10000 x 10000 1-bit, all black: 100 MP in a few kB
bad_file("bad_bomb.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10000, 10000, 1, 0, 0, 0, 0))
         + chunk(b"IDAT", zlib.compress(bomb_rows, 9)) + chunk(b"IEND", b""), "too_large", "over the limit")
huge_jpeg = bytearray(jpeg_bytes)
sof = huge_jpeg.find(b"\xff\xc0")
huge_jpeg[sof + 5: sof + 9] = struct.pack(">HH", 65000, 65000)
bad_file("bad_huge_dims.jpg", bytes(huge_jpeg), "too_large", "over the limit")
bad_file("bad_wrong_magic.png", b"\x89PNX" + png_bytes[4:], "unsupported", "unknown image format")
for fmt, ext in [("GIF", "gif"), ("BMP", "bmp"), ("WEBP", "webp"), ("TIFF", "tiff")]:
    buf = io.BytesIO()
    Image.fromarray(pattern(20, 20, 3, 31), "RGB").save(buf, fmt)
    bad_file(f"bad_format.{ext}", buf.getvalue(), "unsupported", f"{ext} images are not supported")

with open(path("cases.txt"), "w") as f:
    f.write("\n".join(cases) + "\n")
with open(path("floats.txt"), "w") as f:
    f.write("\n".join(floats) + "\n")
with open(path("gray16.txt"), "w") as f:
    f.write("\n".join(gray16_lines) + "\n")
with open(path("bad.txt"), "w") as f:
    f.write("\n".join(bad) + "\n")
total = sum(os.path.getsize(path(n)) for n in os.listdir(out_dir))
print(f"{len(cases)} cases, {len(floats)} float tensors, {len(gray16_lines)} 16-bit, {len(bad)} bad inputs; "
      f"{total / 1e6:.2f} MB in {out_dir}")
