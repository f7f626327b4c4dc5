#!/usr/bin/env python3
"""onnxruntime as the reference for the tract parity test and the benchmark.

    ort_run.py MODEL INPUT.f32 ROWS OUTPUT.f32
        runs MODEL on ROWS x features (little-endian f32) and writes its output (the logits).
    ort_run.py --with-softmax MODEL OUT.onnx
        writes MODEL with a Softmax(axis 1) appended to its output, the graph as trained, for
        the benchmark's comparison of the two runtimes on it.
    ort_run.py --bench MODEL INPUT.f32 ROWS_PER_SCAN SCANS REPEAT THREADS
        times per-scan latency on one thread (intra_op_num_threads=1) and throughput with
        THREADS Python threads each running its own single-threaded session (onnxruntime
        releases the GIL while running), plus one session using THREADS intra-op threads;
        prints JSON.
"""
import json
import sys
import threading
import time

import numpy as np
import onnxruntime as ort


def session(model, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def features_of(path, model):
    width = session(model, 1).get_inputs()[0].shape[1]
    return np.fromfile(path, dtype="<f4").reshape(-1, width)


def run(model, inp, rows, out):
    x = features_of(inp, model)
    if x.shape[0] != rows:
        sys.exit(f"{inp}: {x.shape[0]} rows, expected {rows}")
    y = session(model, 1).run(None, {"features": x})[0]
    y.astype("<f4").tofile(out)


def bench(model, inp, rows_per_scan, scans, repeat, threads):
    x = features_of(inp, model)
    batches = [x[i * rows_per_scan:(i + 1) * rows_per_scan] for i in range(scans)]
    s1 = session(model, 1)
    for b in batches:
        s1.run(None, {"features": b})
    lat = []
    for _ in range(repeat):
        for b in batches:
            t = time.perf_counter()
            s1.run(None, {"features": b})
            lat.append(time.perf_counter() - t)
    lat = np.array(lat)

    def throughput_threads():
        sessions = [session(model, 1) for _ in range(threads)]
        done = [0] * threads

        def work(k):
            for _ in range(repeat):
                for b in batches:
                    sessions[k].run(None, {"features": b})
                    done[k] += 1
        t = time.perf_counter()
        ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        return sum(done) / (time.perf_counter() - t)

    def throughput_intra():
        s = session(model, threads)
        t = time.perf_counter()
        n = 0
        for _ in range(repeat):
            for b in batches:
                s.run(None, {"features": b})
                n += 1
        return n / (time.perf_counter() - t)

    print(json.dumps({
        "onnxruntime": ort.__version__,
        "latency_mean_s": float(lat.mean()),
        "latency_median_s": float(np.median(lat)),
        "latency_p99_s": float(np.quantile(lat, 0.99)),
        "throughput_threads_scans_per_s": throughput_threads(),
        "throughput_intra_op_scans_per_s": throughput_intra(),
    }))


def with_softmax(model, out):
    import onnx
    from onnx import helper
    m = onnx.load(model)
    g = m.graph
    probabilities = onnx.ValueInfoProto()
    probabilities.CopyFrom(g.output[0])
    g.node.append(helper.make_node("Softmax", [probabilities.name], ["probabilities"], axis=1))
    probabilities.name = "probabilities"
    del g.output[:]
    g.output.append(probabilities)
    onnx.checker.check_model(m)
    onnx.save(m, out)


if __name__ == "__main__":
    if sys.argv[1] == "--with-softmax":
        with_softmax(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "--bench":
        m, i, r, s, rep, th = sys.argv[2:8]
        bench(m, i, int(r), int(s), int(rep), int(th))
    else:
        run(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
