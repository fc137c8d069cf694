#!/usr/bin/python3
"""The convolutional network end to end (problems/fashion_mnist_cnn.py) in
its tiny --quick size.

usage: test_fashion_mnist_cnn_quick.py SGDSTAB

Runs it into a scratch directory, keeping its minimum, and checks: every
file written; summary.json's keys, the stages of stages.csv with their
times and memory, momentum 0.9 taken from the file, the minimum
interpolating, the verdict on eta's side of eta*(B); the Gram export
against the exporter's J mode on the same trained model (checkpoint.pt):
K = J J' to 1e-10 relative, and eta*(B) of the K file equal to that of the
J file to 1e-8 relative, an independent check of the whole Gram path on a
real CNN.  Needs python3-torch and dataset-fashion-mnist.
"""

import csv
import json
import math
import os
import sys
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cli_harness as harness  # noqa: E402
from cli_harness import report  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "problems"))
import fashion_mnist_cnn as cnn  # noqa: E402
import sgdstab_export  # noqa: E402  (on the path fashion_mnist_cnn set)

SCRIPT = os.path.join(HERE, "..", "problems", "fashion_mnist_cnn.py")
FILES = ("stages.csv", "summary.json", "report.md")
STAGES = ["data", "train", "export", "info", "critical", "analyze"]
KEYS = ("n", "k", "p", "r", "train_steps", "train_mse", "residual_rel",
        "interpolating", "lr", "batch", "momentum", "eta_star", "rho",
        "verdict", "stable", "escape_rate_per_step", "memory_required",
        "export_gram", "stages", "total_seconds")


def eta_star(path, B):
    """(eta*(B) of sgdstab critical on path, failures)."""
    q = harness.run("critical", path, "--batch", B, "--loss", "mse",
                    "--json")
    if q.rc != 0:
        return None, ["%s: exit %d: %s" % (path, q.rc, q.err)]
    return json.loads(q.out)["critical"][0]["lr_critical"], []


def body(work):
    out = os.path.join(work, "out")
    minima = os.path.join(work, "minima")
    p, msgs = harness.run_quick_script(SCRIPT, out, FILES, "--minima",
                                       minima)
    report("fashion_mnist_cnn.py --quick runs and writes every file", msgs)
    if msgs:
        return 1

    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    with open(os.path.join(out, "stages.csv")) as f:
        rows = list(csv.DictReader(f))
    msgs = ["summary.json has no %r" % key for key in KEYS if key not in s]
    if [r["stage"] for r in rows] != STAGES:
        msgs.append("stages %s, expected %s" % ([r["stage"] for r in rows],
                                                 STAGES))
    for r in rows:
        if not (float(r["seconds"]) > 0 and int(r["peak_rss_bytes"]) > 0):
            msgs.append("stage %s: %s s, %s bytes" % (
                r["stage"], r["seconds"], r["peak_rss_bytes"]))
    report("summary.json's keys, stages.csv's stages", msgs)
    if msgs:
        return 1

    msgs = []
    if s["momentum"] != 0.9:
        msgs.append("momentum %r, not the file's 0.9" % s["momentum"])
    if not (s["interpolating"] and s["residual_rel"] <= 0.01):
        msgs.append("not interpolating: residual/target %r"
                    % s["residual_rel"])
    # at the threshold the side of 1 means nothing
    if s["verdict"] != "threshold" and not \
            s["stable"] == (s["lr"] <= s["eta_star"]) == (s["rho"] <= 1):
        msgs.append("stable %r, but eta %r against eta* %r, rho %r"
                    % (s["stable"], s["lr"], s["eta_star"], s["rho"]))
    params = sum(q.numel() for q in cnn.make_model(cnn.QUICK).parameters())
    if s["p"] != params or s["n"] * s["k"] != s["nk"] or \
            not s["r"] <= s["nk"]:
        msgs.append("p %r (the model's %d), n %r, k %r, r %r"
                    % (s["p"], params, s["n"], s["k"], s["r"]))
    report("momentum 0.9 from the file, interpolating, p, r, verdict "
           "consistent", msgs)

    # the same trained model exported with J
    kfile = os.path.join(minima, "minimum.npz")
    jfile = os.path.join(work, "jacobian.npz")
    cfg = cnn.QUICK
    X, Y = cnn.load_images("/usr/share/datasets/fashion-mnist", cfg)
    model = cnn.make_model(cfg)
    ckpt = torch.load(os.path.join(minima, "checkpoint.pt"))
    model.load_state_dict(ckpt["model"])
    sgdstab_export.export(model, X, Y, jfile, loss="mse",
                          train_lr=cfg["lr"], train_batch=cfg["batch"],
                          train_sampling="without",
                          optimizer=ckpt["optimizer"])
    with zipfile.ZipFile(kfile) as z:
        names = sorted(z.namelist())
        meta = json.loads(z.read("meta.json"))
    msgs = []
    if "J.npy" in names or "K.npy" not in names or "R.npy" not in names:
        msgs.append("members %s" % names)
    opt = meta.get("optimizer", {})
    if (opt.get("kind"), opt.get("momentum"), opt.get("lr")) != \
            ("sgd", 0.9, cfg["lr"]) or meta.get("train_batch") != \
            cfg["batch"] or meta.get("train_sampling") != "without":
        msgs.append("meta.json: optimizer %r, batch %r, sampling %r"
                    % (opt, meta.get("train_batch"),
                       meta.get("train_sampling")))
    K = np.load(kfile)["K"]
    J = np.load(jfile)["J"]
    J = J.reshape(-1, J.shape[2])
    err = np.abs(K - J @ J.T).max() / np.abs(K).max()
    if not err <= 1e-10:
        msgs.append("max|K - J J'| / max|K| = %.3g" % err)
    report("K of the Gram export = J J' of the J export (%.1g relative)"
           % err, msgs)

    eta_k, msgs = eta_star(kfile, cfg["batch"])
    eta_j, more = eta_star(jfile, cfg["batch"])
    msgs += more
    rel = math.nan
    if not msgs:
        rel = abs(eta_k - eta_j) / eta_j
        if not rel <= 1e-8:
            msgs.append("eta* %r from K, %r from J" % (eta_k, eta_j))
        if not math.isclose(eta_k, s["eta_star"], rel_tol=1e-10):
            msgs.append("eta* %r from K, %r in summary.json"
                        % (eta_k, s["eta_star"]))
    report("eta*(B) of the K file = that of the J file (%.1g relative)"
           % rel, msgs)
    return None


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, "fashion-mnist-cnn", body))
