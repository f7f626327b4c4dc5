"""SNAP's two-parameter CFAR (Adaptive Thresholding) in numpy/scipy: the anchor of the CFAR
benchmark (satellite/examples/cfar_bench.rs runs ours on the same GeoTIFF in the same run).

The same definition as satellite/src/sar/cfar.rs: windows of 2h+1 pixels with
h = floor(size_m / (2 * spacing)), the background ring is the background window minus the guard
window, nodata (0) pixels are left out of every window, a pixel is decided when at least half
of its ring is valid, and it is a hit when the target window's mean exceeds mu + t * sigma of
the ring, t = Phi^-1(1 - PFA). Box sums come from scipy.ndimage.uniform_filter (a separable
running mean, the idiomatic numpy way), in float64.

Usage: cfar_snap.py SCENE.tif SPACING_M PFA HITS_OUT.bin
Prints one JSON line: {"seconds": ..., "cpu_seconds": ..., "read_seconds": ..., "hits": ...,
"pixels": ...} (times include reading the file, as ours do);
writes the hits' flat indices (uint64, ascending) to HITS_OUT.bin.
"""

import json
import math
import sys
import time
from statistics import NormalDist

import numpy as np
import scipy.ndimage as ndi
import tifffile


def box_sum(a, h):
    size = 2 * h + 1
    # mode="constant" counts outside pixels as 0: the sum over the window clipped to the image.
    return ndi.uniform_filter(a, size=size, mode="constant", cval=0.0) * (size * size)


def cfar(img, spacing, pfa, target_m=75.0, guard_m=400.0, background_m=1000.0, min_fraction=0.5):
    half = lambda m: int(math.floor(m / (2.0 * spacing)))
    ht = half(target_m)
    hg = max(half(guard_m), ht + 1)
    hb = max(half(background_m), hg + 1)
    t = NormalDist().inv_cdf(1.0 - pfa)
    valid = (img != 0).astype(np.float64)
    x = img * valid
    x2 = x * x
    n = box_sum(valid, hb) - box_sum(valid, hg)
    s = box_sum(x, hb) - box_sum(x, hg)
    q = box_sum(x2, hb) - box_sum(x2, hg)
    n_safe = np.maximum(n, 1.0)
    mu = s / n_safe
    var = np.maximum(q / n_safe - mu * mu, 0.0)
    mean_t = box_sum(x, ht) / np.maximum(box_sum(valid, ht), 1.0)
    ring_area = (2 * hb + 1) ** 2 - (2 * hg + 1) ** 2
    decided = (valid > 0) & (n >= math.ceil(ring_area * min_fraction))
    return decided & (mean_t > mu + t * np.sqrt(var))


def main():
    path, spacing, pfa, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    start, cpu_start = time.perf_counter(), time.process_time()
    img = tifffile.imread(path).astype(np.float64)
    read = time.perf_counter() - start
    hits = cfar(img, spacing, pfa)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    idx = np.flatnonzero(hits).astype(np.uint64)
    idx.tofile(out)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "read_seconds": read, "hits": int(idx.size), "pixels": int(img.size),
                      "numpy": np.__version__, "scipy": __import__("scipy").__version__,
                      "tifffile": tifffile.__version__}))


if __name__ == "__main__":
    main()
