#!/usr/bin/env python3
"""Train the X-ray tile classifier and export it as inspect/models/xray_tiles.onnx.

Data comes from the Rust generator (the same feature code the tract inference uses):

    python inspect/train/train_xray.py     # generates the dataset if missing, trains, exports

which runs `cargo run --release -p mizugiwa-inspect --example xray_dataset -- DIR SCANS SEED P`
when inspect/train/data/train/ is missing or was made with other settings (6000 scans: about a
minute, 450 MB). Training: CPU only, about 5 minutes on 2 cores. After retraining, recalibrate
the scan-level alert (`--example xray_calibrate`, see src/xray/model.rs).

Model: Gemm(64) -> ReLU -> Gemm(32) -> ReLU -> Gemm(7) -> logits (softmax by the caller), trained
on standardised features with scikit-learn's MLPClassifier (the standardisation is folded into the first Gemm on export),
written directly as an ONNX graph (opset 13, plain ops that both tract and onnxruntime run).
Input "features" float32 [N, 34]; output "logits" float32 [N, 7].
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)
CLASSES = ["clear", "organic", "inorganic", "metal", "cigarettes", "drugs", "weapon"]
CONTRABAND = [4, 5, 6]


def load(dir_):
    meta = json.load(open(os.path.join(dir_, "meta.json")))
    f = np.fromfile(os.path.join(dir_, "features.f32"), dtype="<f4").reshape(-1, meta["features"])
    y = np.fromfile(os.path.join(dir_, "labels.u8"), dtype=np.uint8).astype(np.int64)
    scan = np.fromfile(os.path.join(dir_, "scan.u32"), dtype="<u4")
    return meta, f, y, scan


def generate(dir_, scans, seed, p_hidden):
    cmd = ["cargo", "run", "-q", "--release", "-p", "mizugiwa-inspect", "--example", "xray_dataset",
           "--", dir_, str(scans), str(seed), str(p_hidden)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=CRATE)


def detection_at_far(scores, positive, far):
    neg = np.sort(scores[~positive])[::-1]
    k = max(int(np.floor(far * len(neg))) - 1, 0)
    threshold = neg[k] if len(neg) else np.inf
    return float(np.mean(scores[positive] > threshold)), float(threshold)


def softmax(logits):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def export(mean, std, clf, path):
    """Writes the MLP as ONNX with the standardisation folded into the first layer.

    `(x - mean) / std @ W0 + b0 == x @ (W0 / std[:, None]) + (b0 - (mean / std) @ W0)`: one Gemm
    instead of a broadcast Sub and Mul over every row, which runtimes (tract in particular) run
    far slower than the matrix product itself.
    """
    inp = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", mean.shape[0]])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(CLASSES)])
    layers = list(zip(clf.coefs_, clf.intercepts_))
    w0, b0 = layers[0]
    layers[0] = (w0 / std[:, None], b0 - (mean / std) @ w0)
    inits, nodes = [], []
    last = "features"
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"W{i}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        final = i == len(layers) - 1
        nodes.append(helper.make_node("Gemm", [last, f"W{i}", f"b{i}"], ["logits" if final else f"z{i}"]))
        if not final:
            nodes.append(helper.make_node("Relu", [f"z{i}"], [f"a{i}"]))
            last = f"a{i}"
    graph = helper.make_graph(nodes, "xray_tiles", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="mizugiwa-inspect train_xray.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(HERE, "data", "train"))
    ap.add_argument("--scans", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=1_000_000)
    ap.add_argument("--p-hidden", type=float, default=0.8)
    ap.add_argument("--out", default=os.path.join(CRATE, "models", "xray_tiles.onnx"))
    ap.add_argument("--hidden", default="64,32", help="hidden layer widths")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--rare-floor", type=float, default=0.03,
                    help="oversample each rare class to at least this share of the training tiles")
    args = ap.parse_args()
    meta_path = os.path.join(args.data, "meta.json")
    wanted = {"scans": args.scans, "seed": args.seed, "p_hidden": args.p_hidden}
    have = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    if any(have.get(k) != v for k, v in wanted.items()):
        generate(args.data, args.scans, args.seed, args.p_hidden)
    meta, x, y, scan = load(args.data)
    print(f"{len(y)} tiles from {meta['scans']} scans, class counts {np.bincount(y, minlength=7)}")

    # Hold out whole scans: tiles of one scan are correlated.
    rng = np.random.default_rng(0)
    scans = np.unique(scan)
    val_scans = set(rng.choice(scans, size=len(scans) // 6, replace=False).tolist())
    val = np.array([s in val_scans for s in scan])
    xt, yt, xv, yv = x[~val], y[~val], x[val], y[val]

    # Oversample the rare classes (hidden items cover few tiles) to a floor of --rare-floor each.
    counts = np.bincount(yt, minlength=7)
    idx = [np.arange(len(yt))]
    for c in range(7):
        need = int(args.rare_floor * len(yt)) - counts[c]
        if need > 0 and counts[c] > 0:
            idx.append(rng.choice(np.flatnonzero(yt == c), size=need, replace=True))
    idx = np.concatenate(idx)
    mean = xt.mean(axis=0)
    std = xt.std(axis=0) + 1e-6
    t0 = time.time()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    clf = MLPClassifier(hidden_layer_sizes=hidden, alpha=1e-4, batch_size=256,
                        learning_rate_init=1e-3, max_iter=args.epochs, random_state=0, verbose=False)
    clf.fit((xt[idx] - mean) / std, yt[idx])
    print(f"trained in {time.time() - t0:.0f} s ({clf.n_iter_} epochs)")
    if list(clf.classes_) != list(range(7)):
        sys.exit(f"training set lacks classes: {clf.classes_}")

    export(mean, std, clf, args.out)
    sess = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    p = softmax(sess.run(None, {"features": xv.astype(np.float32)})[0])
    p_skl = clf.predict_proba((xv - mean) / std)
    print(f"onnxruntime vs scikit-learn max abs diff {np.abs(p - p_skl).max():.2e}")

    pred = p.argmax(axis=1)
    per_class = {CLASSES[c]: float(np.mean(pred[yv == c] == c)) for c in range(7) if np.any(yv == c)}
    contraband = np.isin(yv, CONTRABAND)
    score = p[:, CONTRABAND].sum(axis=1)
    auc = roc_auc_score(contraband, score)
    det1, _ = detection_at_far(score, contraband, 0.01)
    metrics = {
        "train_tiles": int(len(yt)), "validation_tiles": int(len(yv)),
        "validation_accuracy": float(np.mean(pred == yv)),
        "per_class_recall": per_class,
        "contraband_tile_auc": float(auc),
        "contraband_tile_detection_at_1pct_far": det1,
        "epochs": int(clf.n_iter_),
        "dataset": {"scans": meta["scans"], "seed": meta["seed"], "p_hidden": meta["p_hidden"]},
        "size_bytes": os.path.getsize(args.out),
    }
    json.dump(metrics, open(os.path.join(os.path.dirname(args.out), "xray_tiles.metrics.json"), "w"), indent=2)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
