#!/usr/bin/python3
"""The whole path PyTorch training -> export -> sgdstab on real data, in the
tiny --quick size of problems/fashion_mnist.py.

usage: test_fashion_mnist_quick.py SGDSTAB

Runs the experiment into a scratch directory and checks what it wrote
against what must hold: every file present; every minimum interpolating
(RMS residual < 1% of the RMS target), stable or at the edge of stability
(eta <= (1 + 1e-3) eta*(B)), and its verdict consistent with eta <= eta*(B); no theorem of `verify` failed (and |H|_F below the Wu-Wang-Su
bound where stable); the derived columns recomputed; the escape batch
unstable by the exact eta*(B), with a positive predicted rate, and the
measured PyTorch growth rate of the mean loss agreeing with the linearized
Monte Carlo of the same size within their jackknife standard errors, and
with the exact ln rho within the finite-sample bias the linearized runs
show; the minima trained with momentum + weight decay and with Adam
analyzed at the optimizer the file carries (its kind, the verdict
consistent with eta <= eta*(B), eta* different from the plain-SGD
analysis of the same file).  Needs python3-torch, python3-matplotlib and
dataset-fashion-mnist.
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

SCRIPT = os.path.join(HERE, "..", "problems", "fashion_mnist.py")
FILES = ("runs.csv", "checks.csv", "escape.csv", "escape-fit.json",
         "optimizers.csv", "frobenius.png", "escape.png", "optimizers.png",
         "report.md")


def body(work):
    out = os.path.join(work, "out")
    p, msgs = harness.run_quick_script(SCRIPT, out, FILES)
    report("fashion_mnist.py --quick runs and writes every file", msgs)
    if msgs:
        return 1
    if p.stderr.strip():
        report("no notes (every minimum interpolates)", [p.stderr.strip()])

    with open(os.path.join(out, "runs.csv")) as f:
        runs = list(csv.DictReader(f))
    for r in runs:
        lr, B = float(r["lr"]), int(r["batch"])
        crit = float(r["lr_critical"])
        msgs = []
        if r["interpolating"] != "True" or float(r["residual_rel"]) >= 0.01:
            msgs.append("not interpolating: residual/target %s"
                        % r["residual_rel"])
        if (r["stable"] == "True") != (lr <= crit):
            msgs.append("verdict %s but eta %g vs eta* %g"
                        % (r["stable"], lr, crit))
        if (r["stable"] == "True") != (float(r["spectral_radius"]) <= 1):
            msgs.append("verdict %s but rho %s" % (r["stable"],
                                                   r["spectral_radius"]))
        for key, want in (("lr_over_critical", lr / crit),
                          ("sqrt_batch_over_lr", math.sqrt(B) / lr)):
            if abs(float(r[key]) - want) > 1e-8 * want:
                msgs.append("%s %s, expected %r" % (key, r[key], want))
        if int(r["theorems_failed"]) != 0:
            msgs.append("%s theorems failed" % r["theorems_failed"])
        # no bound at B = n (b = 0: the empty field)
        if r["stable"] == "True" and r["frobenius_bound"] and \
                float(r["hessian_frobenius"]) > float(r["frobenius_bound"]):
            msgs.append("|H|_F above the Wu-Wang-Su bound while stable")
        # SGD converged here: stable, or at the edge of stability (where
        # large learning rates drive the curvature, the report explains)
        if lr > crit * (1 + 1e-3):
            msgs.append("SGD converged at eta = %.6g eta*(B)" % (lr / crit))
        report("run %s (eta %g, B %d): interpolating, stable or at the "
               "edge, consistent" % (r["run"], lr, B), msgs)

    with open(os.path.join(out, "checks.csv")) as f:
        checks = list(csv.DictReader(f))
    bad = ["run %s: %s" % (c["run"], c["name"]) for c in checks
           if c["theorem"] == "True" and c["holds"] != "True"]
    report("every theorem of verify holds on every minimum (%d rows)"
           % len(checks), bad if checks else ["checks.csv is empty"])

    with open(os.path.join(out, "escape-fit.json")) as f:
        esc = json.load(f)
    n = max(int(r["batch"]) for r in runs)
    msgs = []
    if not (esc["batch"] < n and esc["lr"] > esc["lr_critical"]
            and esc["predicted_rate"] > 0):
        msgs.append("escape batch %d not unstable: eta %g, eta* %g, rate %g"
                    % (esc["batch"], esc["lr"], esc["lr_critical"],
                       esc["predicted_rate"]))
    se = math.hypot(esc["pytorch_mean_rate_stderr"],
                    esc["linearized_mean_rate_stderr"])
    gap = esc["pytorch_mean_rate"] - esc["linearized_mean_rate"]
    if abs(gap) > 4 * se:
        msgs.append("PyTorch mean rate %.4g vs linearized %.4g: %.1f s.e."
                    % (esc["pytorch_mean_rate"], esc["linearized_mean_rate"],
                       gap / se))
    # finite runs bias the mean's rate down (rare fast runs missing); the
    # linearized runs measure that bias, and the exact rate must lie within
    # it (plus 4 s.e.) above the PyTorch one
    bias = max(0.0, esc["predicted_rate"] - esc["linearized_mean_rate"])
    lo = esc["pytorch_mean_rate"] - 4 * esc["pytorch_mean_rate_stderr"]
    hi = esc["pytorch_mean_rate"] + bias + 4 * esc["pytorch_mean_rate_stderr"]
    if not lo <= esc["predicted_rate"] <= hi:
        msgs.append("exact ln rho %.4g outside [%.4g, %.4g]"
                    % (esc["predicted_rate"], lo, hi))
    with open(os.path.join(out, "escape.csv")) as f:
        rows = list(csv.DictReader(f))
    if len(rows) != esc["steps"] + 1:
        msgs.append("escape.csv has %d rows for %d steps"
                    % (len(rows), esc["steps"]))
    report("escape: PyTorch growth rate = linearized SGD = sgdstab's ln rho",
           msgs)

    with open(os.path.join(out, "optimizers.csv")) as f:
        trained = list(csv.DictReader(f))
    kinds = sorted(r["kind"] for r in trained)
    report("optimizers.csv: one minimum trained with momentum, one with Adam",
           [] if kinds == ["adam", "sgd"] else ["kinds %r" % kinds])
    for r in trained:
        lr = float(r["lr"])
        own, plain = float(r["lr_critical"]), float(r["plain_lr_critical"])
        msgs = []
        if (r["stable"] == "True") != (lr <= own):
            msgs.append("verdict %s but eta %g vs eta* %g"
                        % (r["stable"], lr, own))
        for key, want in (("lr_over_critical", lr / own),
                          ("plain_lr_over_critical", lr / plain)):
            if abs(float(r[key]) - want) > 1e-8 * want:
                msgs.append("%s %s, expected %r" % (key, r[key], want))
        if not abs(own / plain - 1) > 1e-3:
            msgs.append("eta* %g equals the plain-SGD analysis' %g: the "
                        "file's optimizer was not taken" % (own, plain))
        report("trained with %s: analyzed at its own optimizer"
               % r["optimizer"], msgs)


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, "fmnist", body))
