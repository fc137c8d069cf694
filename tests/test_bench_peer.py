#!/usr/bin/python3
"""Tests of the benchmark peer problems/bench_peer.py.

usage: test_bench_peer.py SGDSTAB

- peer_critical and peer_rho on tiny problems (n <= 6, p <= 5, k = 1 and 2,
  full rank, rank below n*k and p, p = 1, directions J never moves), every
  batch size, every sampling, against engine_reference.py's dense
  Kronecker reference: eta* and rho (at 0.6 and 1.4 eta*) to 1e-9;
- the command line on a small problem against this SGDSTAB: exit status 0
  (eta* and rho agree within 1e-6), the table printed, the agreement it
  prints within 1e-8, and bench-peer.json written with every timing.
"""

import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "problems"))
import bench_peer as peer  # noqa: E402
import cli_harness as harness  # noqa: E402
import engine_reference as ref  # noqa: E402
from cli_harness import SAMPLINGS, report  # noqa: E402

SCRIPT = os.path.join(HERE, "..", "problems", "bench_peer.py")
TOL = 1e-9

TINY = [  # (seed, n, p, k, null_dirs)
    (201, 6, 4, 1, 0), (202, 3, 5, 1, 0), (203, 5, 5, 1, 2),
    (204, 6, 1, 1, 0), (205, 4, 5, 2, 0), (206, 6, 3, 2, 0),
    (207, 2, 5, 2, 0), (208, 5, 4, 2, 1),
]


def test_tiny(work):
    for seed, n, p, k, null in TINY:
        J, _ = ref.random_problem(seed, n, p, k=k, null_dirs=null)
        path = os.path.join(work, "tiny%d.npy" % seed)
        np.save(path, J)
        prob = ref.Problem(J)
        for sampling in SAMPLINGS:
            msgs = []
            for B in range(1, n + 1):
                eta = ref.lr_critical(prob, sampling, B)
                got = peer.peer_critical(path, B, sampling)
                if got["rank"] != prob.rank_J():
                    msgs.append("rank %d, expected %d"
                                % (got["rank"], prob.rank_J()))
                if abs(got["lr_critical"] - eta) > TOL * eta:
                    msgs.append("B = %d: eta* %r, reference %r"
                                % (B, got["lr_critical"], eta))
                for f in (0.6, 1.4):
                    rho = ref.rho_perp(prob, f * eta, sampling, B)
                    g = peer.peer_rho(path, f * eta, B, sampling)
                    if abs(g["spectral_radius"] - rho) > TOL * rho:
                        msgs.append("B = %d, %g eta*: rho %r, reference %r"
                                    % (B, f, g["spectral_radius"], rho))
            report("peer = dense reference: n %d, p %d, k %d, %d null "
                   "directions, %s" % (n, p, k, null, sampling), msgs)


def test_command_line(work):
    out = os.path.join(work, "out")
    cmd = [sys.executable, SCRIPT, "--samples", "200", "--params", "150",
           "--batch", "8", "--seed", "3", "--tool", harness.SGDSTAB,
           "--out", out]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=120)
    res = harness.Result(cmd, p.returncode, p.stdout, p.stderr)
    msgs = [] if p.returncode == 0 else ["exit status %d" % p.returncode]
    for needle in ("peer/sgdstab", "eta*(B)", "rho at 0.5 eta*",
                   "eta*: sgdstab", "rho:  sgdstab"):
        if needle not in p.stdout:
            msgs.append("table lacks %r" % needle)
    report("bench_peer.py runs and prints the table", msgs, res)

    msgs = []
    try:
        with open(os.path.join(out, "bench-peer.json")) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        report("bench-peer.json written", [str(e)])
        return
    for key in ("rel_diff_lr_critical", "rel_diff_spectral_radius"):
        if not d[key] <= 1e-8:
            msgs.append("%s = %r" % (key, d[key]))
    if d["problem"]["n"] != 200 or d["problem"]["rank"] != 150:
        msgs.append("problem %r" % d["problem"])
    for side, keys in (("sgdstab", ("critical_seconds", "analyze_seconds")),
                       ("peer", ("critical_seconds", "rho_seconds"))):
        for key in keys:
            runs = d[side][key.replace("seconds", "runs")]
            if len(runs) != d["repeats"] or d[side][key] != min(runs):
                msgs.append("%s %s: %r is not the best of %r"
                            % (side, key, d[side][key], runs))
    if not (isinstance(d["machine"]["cores"], int)
            and d["machine"]["cores"] >= 1):
        msgs.append("cores %r" % d["machine"]["cores"])
    if d["sgdstab"]["lr"] != 0.5 * d["sgdstab"]["lr_critical"]:
        msgs.append("lr is not 0.5 eta*")
    report("bench-peer.json: agreement within 1e-8, timings, cores", msgs)


def body(work):
    test_tiny(work)
    test_command_line(work)


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, "bench-peer", body))
