#!/usr/bin/python3
"""`sgdstab run SPEC.json` end to end.

A small spec runs; its tables must agree with the individual commands on the
same synthetic problem (`synth` then `critical` and `verify`), with the
theory reference (theory_reference.py: full-space NumPy, DESIGN §3) for the
bounds, and with themselves (η*(B) non-decreasing, cases = the product of the
sweep).  Bad specs must fail with exit 1 and one line naming the key, and
leave no output behind.

Usage: test_run_cli.py SGDSTAB
"""

import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_reference as ref  # noqa: E402

EXE = sys.argv[1]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def run(*args):
    return subprocess.run([EXE, *args], capture_output=True, text=True)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def close(a, b, rel):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def test_success(tmp):
    spec = {
        "description": "test spec",
        "family": "rfm",
        "params": {"samples": 30, "inputs": 4, "outputs": 2, "seed": 7},
        "sweep": {"width": [5, 9], "activation": ["relu", "tanh"]},
        "batch": "1:n:4:log",
        "sampling": "without",
        "lr_factors": [0.5, 2.0],
    }
    path = os.path.join(tmp, "exp.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    out = os.path.join(tmp, "out")
    r = run("run", path, "--out", out, "--quiet")
    check(r.returncode == 0, f"run exit {r.returncode}: {r.stderr}")
    if r.returncode:
        return
    names = sorted(os.listdir(out))
    check(names == ["cases.csv", "critical.csv", "report.md", "summary.json",
                    "verify.csv"], f"files {names}")
    cases = read_csv(os.path.join(out, "cases.csv"))
    crit = read_csv(os.path.join(out, "critical.csv"))
    ver = read_csv(os.path.join(out, "verify.csv"))
    check(len(cases) == 4, f"{len(cases)} cases, want 2 x 2")
    # First sweep key slowest.
    want = [("5", "relu"), ("5", "tanh"), ("9", "relu"), ("9", "tanh")]
    got = [(c["width"], c["activation"]) for c in cases]
    check(got == want, f"case order {got}")
    check(len(crit) == 4 * 4, f"{len(crit)} critical rows")
    check(len(ver) == 4 * 4 * 2, f"{len(ver)} verify rows")
    summary = json.load(open(os.path.join(out, "summary.json")))
    check(summary["theorems_failed"] == 0, "theorems failed in summary")
    check(summary["lr_critical_nondecreasing"] is True, "monotone flag")
    report = open(os.path.join(out, "report.md")).read()
    check(f"sgdstab run {path} --out {out}" in report,
          "report lacks the regenerating command")

    for c in cases:
        # The same problem through synth + critical + verify.
        npz = os.path.join(tmp, f"case{c['case']}.npz")
        r = run("synth", "rfm", "-o", npz, "--samples", "30", "--inputs",
                "4", "--outputs", "2", "--seed", "7", "--width", c["width"],
                "--activation", c["activation"])
        check(r.returncode == 0, f"synth: {r.stderr}")
        rows = [x for x in crit if x["case"] == c["case"]]
        batches = [int(x["batch"]) for x in rows]
        check(batches == [1, 3, 10, 30], f"batches {batches}")
        etas = [float(x["lr_critical"]) for x in rows]
        check(all(b >= a * (1 - 1e-9) for a, b in zip(etas, etas[1:])),
              f"eta* not non-decreasing: {etas}")
        r = run("critical", npz, "--batch", ",".join(map(str, batches)),
                "--json")
        d = json.loads(r.stdout)
        for x, y in zip(rows, d["critical"]):
            check(close(float(x["lr_critical"]), y["lr_critical"], 1e-12),
                  f"case {c['case']} B {x['batch']}: run {x['lr_critical']}"
                  f" vs critical {y['lr_critical']}")
        # Theory columns against the full-space reference.
        z = np.load(npz)
        prob = ref.Problem(z["J"])
        A, G = prob.A, prob.G
        lam, vecs = np.linalg.eigh(G)
        hmax, v = lam[-1], vecs[:, -1]
        frob = np.linalg.norm(G)
        check(close(float(c["sharpness"]), hmax, 1e-9), "sharpness")
        check(close(float(c["hessian_frobenius"]), frob, 1e-9), "frobenius")
        check(close(float(c["hessian_trace"]), np.trace(G), 1e-9), "trace")
        for x in rows:
            B = int(x["batch"])
            a, b = ref.ab("without", prob.n, B)
            top = np.mean([(v @ Ai @ v) ** 2 for Ai in A])
            fm = np.mean([np.sum(Ai * Ai) for Ai in A])
            mm_top = 2 * hmax / (a * hmax ** 2 + b * top)
            mm_tr = 2 * np.trace(G) / (a * frob ** 2 + b * fm)
            check(close(float(x["mulayoff_michaeli_top"]), mm_top, 1e-8),
                  f"MM top B {B}: {x['mulayoff_michaeli_top']} vs {mm_top}")
            check(close(float(x["mulayoff_michaeli_trace"]), mm_tr, 1e-8),
                  f"MM trace B {B}: {x['mulayoff_michaeli_trace']} vs {mm_tr}")
            eta = float(x["lr_critical"])
            check(close(eta, ref.lr_critical(prob, "without", B), 1e-8),
                  f"eta* B {B} vs dense reference")
            check(eta <= mm_top * (1 + 1e-8) and eta <= mm_tr * (1 + 1e-8),
                  f"MM bound broken at B {B}")
            check(close(float(x["stable_sharpness"]), eta * frob / B ** 0.5,
                        1e-9), "stable_sharpness")
        # verify rows: stable exactly below eta*.
        for x in (x for x in ver if x["case"] == c["case"]):
            f = float(x["lr_factor"])
            check((x["stable"] == "true") == (f <= 1), f"verdict {x}")
            check(x["theorems_failed"] == "0", "theorem failed in a row")


def test_errors(tmp):
    base = {"family": "linear", "batch": [1, 2],
            "params": {"samples": 10, "inputs": 3}}
    cases = [
        ("unknown key", dict(base, colour="red"), "colour"),
        ("missing family", {k: v for k, v in base.items() if k != "family"},
         "family"),
        ("missing batch", {k: v for k, v in base.items() if k != "batch"},
         "batch"),
        ("bad family", dict(base, family="cnn"), "family"),
        ("wrong type", dict(base, params={"samples": "ten"}),
         "params.samples"),
        ("not whole", dict(base, params={"samples": 10.5}), "params.samples"),
        ("inapplicable", dict(base, params={"depth": 3}), "params.depth"),
        ("unknown param", dict(base, params={"widht": 3}), "params.widht"),
        ("sweep not list", dict(base, sweep={"outputs": 3}), "sweep.outputs"),
        ("sweep bad value", dict(base, sweep={"outputs": [3, -1]}),
         "sweep.outputs[1]"),
        ("both", dict(base, sweep={"samples": [10, 20]}), "samples"),
        ("bad sampling", dict(base, sampling="shuffle"), "sampling"),
        ("bad loss", dict(base, loss=-1), "loss"),
        ("bad lr", dict(base, lr=[0.1, 0]), "lr[1]"),
        ("batch too big", dict(base, batch=[1, 11]), "batch"),
        ("batch order", dict(base, batch=[2, 1]), "batch"),
    ]
    for name, spec, key in cases:
        path = os.path.join(tmp, "bad.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        out = os.path.join(tmp, "bad-out")
        r = run("run", path, "--out", out, "--quiet")
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 1, f"{name}: exit {r.returncode}")
        check(len(lines) == 1 and key in lines[0] and path in lines[0],
              f"{name}: stderr {r.stderr!r} should be one line naming "
              f"{key!r} and the file")
        left = os.listdir(out) if os.path.isdir(out) else []
        check(not any(n.endswith(".csv") or ".tmp" in n for n in left),
              f"{name}: left {left}")
    path = os.path.join(tmp, "broken.json")
    with open(path, "w") as f:
        f.write('{"family": "linear",\n "batch": [1,}')
    r = run("run", path, "--quiet")
    check(r.returncode == 1 and "not valid JSON (line 2" in r.stderr,
          f"invalid JSON: {r.returncode} {r.stderr!r}")
    r = run("run")
    check(r.returncode == 2, "no spec: usage error")
    r = run("run", os.path.join(tmp, "missing.json"))
    check(r.returncode == 1 and "missing.json" in r.stderr, "missing file")
    r = run("run", "--help")
    check(r.returncode == 0 and "lr_factors" in r.stdout, "--help")


with tempfile.TemporaryDirectory() as tmp:
    test_success(tmp)
    test_errors(tmp)
if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("ok")
