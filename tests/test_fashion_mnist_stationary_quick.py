#!/usr/bin/python3
"""The stationary-state experiment on real data (problems/
fashion_mnist_stationary.py) in its tiny --quick size.

usage: test_fashion_mnist_stationary_quick.py SGDSTAB

Runs it into a scratch directory and checks what it wrote: every file; the
label-noise minimum interpolates and the residual minimum does not; the
exported minima are read back by `sgdstab stationary` with the same
numbers as points.csv; directions.csv lists, per point, every direction of
sgdstab's basis once with the curvature and variance of its --csv; the
z-scores recomputed; and where the linearization holds, PyTorch agrees
with the exact answer: at the interpolating minimum with label noise, in
the directions that settled (|z| <= 4, and the excess loss's quadratic
form), and at the residual minimum at 0.1 eta*, E|delta|^2 within 15%.
Needs python3-torch, python3-matplotlib and dataset-fashion-mnist.
"""

import csv
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cli_harness as harness  # noqa: E402
from cli_harness import report  # noqa: E402

SCRIPT = os.path.join(HERE, "..", "problems", "fashion_mnist_stationary.py")
FILES = ("points.csv", "directions.csv", "variance.png", "report.md")


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def body(work):
    out = os.path.join(work, "out")
    minima = os.path.join(work, "minima")
    os.mkdir(minima)
    p, msgs = harness.run_quick_script(SCRIPT, out, FILES, "--minima", minima)
    report("fashion_mnist_stationary.py --quick runs and writes every file",
           msgs)
    if msgs:
        return 1

    points = read(os.path.join(out, "points.csv"))
    dirs = read(os.path.join(out, "directions.csv"))
    for r in points:
        name, B, lr = r["minimum"], int(r["batch"]), float(r["lr"])
        path = os.path.join(minima, name + ".npz")
        args = ["stationary", path, "--lr", repr(lr), "--batch", str(B),
                "--label-noise", r["label_noise"], "--json"]
        csv_path = os.path.join(work, "dirs.csv")
        q = harness.run(*args, "--csv", csv_path)
        msgs = [] if q.rc == 0 else ["exit %d: %s" % (q.rc, q.err)]
        if not msgs:
            st = json.loads(q.out)
            for key in ("second_moment", "excess_loss", "gradient_norm_sq"):
                want = st[key]
                got = float(r[("stationary_second_moment" if key ==
                               "second_moment" else key) + "_exact"])
                if not math.isclose(got, want, rel_tol=1e-8):
                    msgs.append("%s %r, sgdstab now %r" % (key, got, want))
            mine = [d for d in dirs if d["point"] == r["point"]]
            ref = read(csv_path)
            if sorted(int(d["index"]) for d in mine) != list(range(len(ref))):
                msgs.append("directions.csv lists %d directions, the basis "
                            "has %d" % (len(mine), len(ref)))
            for d in mine:
                row = ref[int(d["index"])]
                if not (math.isclose(float(d["curvature"]),
                                     float(row["curvature"]), rel_tol=1e-9)
                        and math.isclose(float(d["variance_exact"]),
                                         float(row["variance"]),
                                         rel_tol=1e-8, abs_tol=1e-300)):
                    msgs.append("direction %s: %r, sgdstab's --csv %r"
                                % (d["index"], d, row))
                    break
            for key in ("second_moment", "settled", "excess_quadratic"):
                z = (float(r[key + "_pytorch"]) - float(r[key + "_exact"])) \
                    / float(r[key + "_stderr"])
                if not math.isclose(z, float(r[key + "_z"]), rel_tol=1e-6,
                                    abs_tol=1e-6):
                    msgs.append("%s z %s, recomputed %r" % (key, r[key + "_z"],
                                                            z))
        report("%s, B %d, eta %.3g: points.csv and directions.csv against "
               "sgdstab" % (name, B, lr), msgs, q)

    meta = {}
    for name in ("label-noise", "residuals"):
        q = harness.run("info", os.path.join(minima, name + ".npz"),
                        "--json")
        meta[name] = json.loads(q.out) if q.rc == 0 else {}
    msgs = []
    if meta["label-noise"].get("interpolating") is not True:
        msgs.append("label-noise.npz does not interpolate")
    if meta["residuals"].get("interpolating") is not False:
        msgs.append("residuals.npz interpolates")
    report("the label-noise minimum interpolates, the residual one not", msgs)

    msgs = []
    for r in points:
        if r["minimum"] == "label-noise":
            for key in ("settled", "excess_quadratic"):
                if not abs(float(r[key + "_z"])) <= 4:
                    msgs.append("label noise: %s z %s" % (key, r[key + "_z"]))
            settled = [d for d in dirs if d["point"] == r["point"] and
                       d["settled"] == "yes"]
            bad = [d for d in settled
                   if abs(float(d["variance_pytorch"]) -
                          float(d["variance_exact"])) >
                   4 * float(d["variance_stderr"])]
            if not settled or len(bad) > len(settled) // 20:
                msgs.append("label noise: %d of %d settled directions off "
                            "by more than 4 s.e." % (len(bad), len(settled)))
        elif float(r["lr_over_critical"]) <= 0.1:
            rel = float(r["second_moment_pytorch"]) / \
                float(r["second_moment_exact"]) - 1
            if not abs(rel) <= 0.15:
                msgs.append("residuals at 0.1 eta*: E|delta|^2 off by %.3g"
                            % rel)
    report("where the linearization holds, PyTorch agrees with sgdstab",
           msgs)
    return None


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, "fashion-mnist-stationary", body))
