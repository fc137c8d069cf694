#!/usr/bin/python3
"""End-to-end tests of `sgdstab synth` and of the files it writes.

usage: test_synth_cli.py SGDSTAB

Each file is read with np.load and checked against the definitions of
include/sgdstab/synth.h evaluated here in NumPy: the members and their
shapes, meta.json (and the --json summary), the model at theta reproducing Y,
the Jacobian rebuilt by the chain rule from theta and X; then `sgdstab info`
reads it.  Also: byte-for-byte determinism (seed, time zone, the "command"
in meta.json), the rescaling families, and usage errors (status 2, one line
on stderr, nothing written) and write errors (status 1).
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as harness  # noqa: E402
from cli_harness import failure_errors, report, run  # noqa: E402

WORK = None
REL = 1e-12  # NumPy against the tool: both evaluate the same formulas


def path(name):
    return os.path.join(WORK, name)


def max_rel(a, b):
    return float(np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b))))


# ------------------------------------------------------- the model in NumPy

def layers(meta, theta):
    return [theta[b["offset"]:b["offset"] + b["rows"] * b["cols"]]
            .reshape(b["rows"], b["cols"]) for b in meta["theta_blocks"]]


def forward(meta, theta, X, F=None):
    """h_0 .. h_L (columns are samples) as synth.h defines the families."""
    h = X.T
    if meta["family"] == "rfm":
        z = F @ X.T
        act = np.tanh(z) if meta["activation"] == "tanh" else np.maximum(z, 0)
        h = act / np.sqrt(meta["width"])
    hs = [h]
    Ws = layers(meta, theta)
    for l, W in enumerate(Ws):
        h = W @ h
        if meta["family"] == "two-layer" and l + 1 < len(Ws):
            h = np.maximum(h, 0)
        hs.append(h)
    return hs, Ws


def jacobian(meta, theta, X, F=None):
    """J_i by the chain rule: block of W_l = B_l ⊗ h_lᵀ, B_top = I_k,
    B_{l-1} = B_l W_l diag(act'(z_l))."""
    hs, Ws = forward(meta, theta, X, F)
    n, k = X.shape[0], meta["k"]
    J = np.zeros((n, k, theta.size))
    for i in range(n):
        B = np.eye(k)
        for l in reversed(range(len(Ws))):
            b = meta["theta_blocks"][l]
            J[i, :, b["offset"]:b["offset"] + b["rows"] * b["cols"]] = \
                np.kron(B, hs[l][:, i][None, :])
            B = B @ Ws[l]
            if meta["family"] == "two-layer" and l > 0:
                B = B * (hs[l][:, i] > 0)[None, :]
    return J


# ----------------------------------------------------------------- cases

CASES = [
    ["linear", "--samples", 12, "--inputs", 5],
    ["linear", "--samples", 10, "--inputs", 4, "--outputs", 3,
     "--spectrum", "power:1.5", "--seed", 7],
    ["rfm", "--samples", 11, "--inputs", 4, "--width", 9],
    ["rfm", "--samples", 9, "--inputs", 5, "--outputs", 3, "--width", 6,
     "--activation", "tanh", "--spectrum", "power:0.5"],
    ["deep-linear", "--samples", 10, "--inputs", 5, "--width", 4,
     "--depth", 2],
    ["deep-linear", "--samples", 8, "--inputs", 4, "--outputs", 3,
     "--width", 5, "--depth", 3, "--rescale", 0.5],
    ["two-layer", "--samples", 12, "--inputs", 5, "--width", 4],
    ["two-layer", "--samples", 9, "--inputs", 4, "--outputs", 3,
     "--width", 3, "--extra", 2, "--rescale", 3, "--seed", 4],
]


def option(case, name, default):
    return case[case.index(name) + 1] if name in case else default


def check_file(case, out, summary):
    """The .npz against the options, meta.json and the model."""
    msgs = []
    fam = case[0]
    n, d = option(case, "--samples", 200), option(case, "--inputs", 20)
    k = option(case, "--outputs", 1)
    with np.load(out, allow_pickle=False) as z:
        want = {"J", "X", "Y", "theta", "meta.json"} | \
            ({"F"} if fam == "rfm" else set())
        if set(z.files) != want:
            return ["members %s, want %s" % (sorted(z.files), sorted(want))]
        arrays = {name: z[name] for name in want - {"meta.json"}}
        raw = z["meta.json"]
    if not isinstance(raw, bytes):
        return ["meta.json is not returned as bytes"]
    meta = json.loads(raw)
    p = meta["p"]
    shapes = {"J": (n, p) if k == 1 else (n, k, p), "X": (n, d),
              "Y": (n, k), "theta": (p,), "F": (option(case, "--width", 64), d)}
    for name, a in arrays.items():
        if a.shape != shapes[name] or a.dtype != np.dtype("<f8"):
            msgs.append("%s: %s %s, want %s <f8" % (name, a.shape, a.dtype,
                                                     shapes[name]))
    if msgs:
        return msgs
    summary = dict(summary)
    if summary.pop("file", None) != out:
        msgs.append("--json 'file' is not %s" % out)
    if summary != meta:
        msgs.append("--json summary differs from meta.json")
    expect = {"family": fam, "n": n, "k": k, "d": d, "loss": "half-mean",
              "seed": option(case, "--seed", 0),
              "spectrum": option(case, "--spectrum", "iso")}
    for key, value in expect.items():
        if meta.get(key) != value:
            msgs.append("meta %s = %r, want %r" % (key, meta.get(key), value))
    used = {"linear": set(), "rfm": {"width", "activation"},
            "deep-linear": {"width", "depth", "rescale"},
            "two-layer": {"width", "rescale", "extra"}}[fam]
    for key in ("width", "depth", "activation", "rescale", "extra"):
        if (key in meta) != (key in used):
            msgs.append("meta has %s: %s" % (key, key in meta))
        elif key in meta and "--" + key in case and \
                meta[key] != option(case, "--" + key, None):
            msgs.append("meta %s = %r" % (key, meta[key]))

    X, Y, theta = arrays["X"], arrays["Y"], arrays["theta"]
    J = arrays["J"].reshape(n, k, p)
    F = arrays.get("F")
    hs, _ = forward(meta, theta, X, F)
    scale = max(1.0, float(np.max(np.abs(Y))))
    resid = float(np.max(np.abs(hs[-1].T - Y)))
    if resid > REL * scale or meta["max_residual"] > REL * scale:
        msgs.append("residual %g (meta %g) is not zero" %
                    (resid, meta["max_residual"]))
    err = max_rel(J, jacobian(meta, theta, X, F))
    if err > REL:
        msgs.append("J differs from the chain rule by %g (relative)" % err)
    if fam == "linear":  # J_i = I_k ⊗ x_iᵀ, exactly
        if not np.array_equal(J, np.stack([np.kron(np.eye(k), x[None, :])
                                           for x in X])):
            msgs.append("linear J is not I_k ⊗ x_iᵀ")
    return msgs


def test_families():
    for case in CASES:
        out = path("%s-%d.npz" % (case[0], CASES.index(case)))
        res = run("synth", *case, "-o", out, "--json")
        name = "synth " + " ".join(str(a) for a in case)
        if res.rc != 0 or res.err:
            report(name, ["status %d" % res.rc], res)
            continue
        try:
            summary = json.loads(res.out)
        except ValueError as exc:
            report(name, ["stdout is not JSON: %s" % exc], res)
            continue
        report(name + " (npz checked with NumPy)",
               check_file(case, out, summary), res)

        info = run("info", out, "--json")
        msgs = ["info status %d" % info.rc] if info.rc else []
        if not msgs:
            d = json.loads(info.out)
            with np.load(out) as z:
                J = z["J"].reshape(summary["n"] * summary["k"], -1)
            G = J.T @ J / summary["n"]
            for key in ("n", "k", "p"):
                if d[key] != summary[key]:
                    msgs.append("info %s = %s" % (key, d[key]))
            if abs(d["trace_G"] - np.trace(G)) > 1e-10 * np.trace(G):
                msgs.append("info trace_G %r, NumPy %r" % (d["trace_G"],
                                                          np.trace(G)))
            if d["has_hessian"]:
                msgs.append("info sees an H")
        report("info on " + os.path.basename(out), msgs, info)

        # The command recorded in meta.json writes the same bytes.
        again = path("again.npz")
        cmd = summary["command"].split()
        if cmd[:2] != ["sgdstab", "synth"] or cmd[-2:] != ["-o", "OUT.npz"]:
            report("meta command", ["unexpected form %r" % summary["command"]])
            continue
        res = run(*cmd[1:-1], again)
        same = res.rc == 0 and open(out, "rb").read() == \
            open(again, "rb").read()
        report("meta command regenerates %s" % os.path.basename(out),
               [] if same else ["different bytes"], res)


def test_text_and_forms():
    out = path("text.npz")
    res = run("synth", "rfm", "--samples", 5, "--inputs", 3, "--output", out)
    msgs = []
    if res.rc or res.err or res.out.count("\n") != 1 or out not in res.out:
        msgs.append("want one line naming the file, status 0")
    report("human summary", msgs, res)
    for flag, target in (("-o", path("short.npz")),
                         ("--output=", path("long.npz"))):
        res = run("synth", "linear", "--samples", 4, "--inputs", 2,
                  flag + target)
        report("output option %sFILE" % flag,
               [] if res.rc == 0 and os.path.exists(target)
               else ["not written"], res)
    res = run("synth", "--help")
    msgs = [] if res.rc == 0 and "Usage: sgdstab synth" in res.out and \
        not res.err else ["status %d" % res.rc]
    for opt in ("--samples", "--inputs", "--outputs", "--width", "--depth",
                "--activation", "--spectrum", "--rescale", "--extra",
                "--seed", "--output", "--json"):
        if opt not in res.out:
            msgs.append("help does not mention " + opt)
    report("synth --help", msgs, res)
    res = run("--help")
    report("sgdstab --help lists synth",
           [] if "synth" in res.out else ["missing"], res)


def test_determinism():
    args = ["synth", "two-layer", "--samples", 8, "--inputs", 3, "--width", 3,
            "--extra", 1, "--rescale", 2]
    files = {}
    for label, seed, tz in (("a", 3, "UTC"), ("b", 3, "Pacific/Auckland"),
                            ("c", 4, "UTC")):
        env = dict(os.environ, TZ=tz)
        res = run(*args, "--seed", seed, "-o", path(label + ".npz"), env=env)
        if res.rc:
            report("determinism run " + label, ["status %d" % res.rc], res)
            return
        files[label] = open(path(label + ".npz"), "rb").read()
    report("same seed, other time zone: same bytes",
           [] if files["a"] == files["b"] else ["bytes differ"])
    report("other seed: other bytes",
           [] if files["a"] != files["c"] else ["bytes equal"])


def test_rescaling():
    """deep-linear and two-layer members: same X, Y and predictions, the
    documented relation of theta to C = 1, a different ‖G‖_F."""
    for fam, extra in (("deep-linear", ["--depth", 3]),
                       ("two-layer", ["--extra", 2])):
        loaded = {}
        for C in (1, 0.5, 3):
            out = path("%s-C%g.npz" % (fam, C))
            res = run("synth", fam, "--samples", 10, "--inputs", 4,
                      "--outputs", 2, "--width", 3, *extra, "--rescale", C,
                      "-o", out)
            if res.rc:
                report("rescaling %s C=%g" % (fam, C), ["status"], res)
                return
            with np.load(out) as z:
                loaded[C] = {key: z[key] for key in z.files}
        base = loaded[1]
        meta = json.loads(base["meta.json"])
        W = layers(meta, base["theta"])
        for C in (0.5, 3):
            cur = loaded[C]
            msgs = []
            for key in ("X", "Y"):
                if not np.array_equal(cur[key], base[key]):
                    msgs.append(key + " changed")
            Wc = layers(meta, cur["theta"])
            if fam == "deep-linear":
                want = [C * W[0]] + W[1:-1] + [W[-1] / C]
            else:
                want = [W[0] / C, C * W[1]]
            if max(max_rel(a, b) for a, b in zip(Wc, want)) > 1e-15:
                msgs.append("theta is not the documented member C = %g" % C)
            Xn = np.random.default_rng(1).normal(size=(7, 4))
            f0 = forward(meta, base["theta"], Xn)[0][-1]
            fc = forward(meta, cur["theta"], Xn)[0][-1]
            if max_rel(fc, f0) > REL:
                msgs.append("a different function")
            g = [np.linalg.norm(x["J"].reshape(20, -1).T @
                                x["J"].reshape(20, -1) / 10)
                 for x in (base, cur)]
            if abs(g[1] - g[0]) <= 1e-3 * g[0]:
                msgs.append("|G|_F unchanged: %g" % g[1])
            report("%s member C = %g: same function, |G|_F %.4g -> %.4g" %
                   (fam, C, g[0], g[1]), msgs)


def expect_usage(name, needles, *args):
    before = sorted(os.listdir(WORK))
    res = run(*args)
    msgs = failure_errors(res, (2,))
    for needle in needles:
        if needle not in res.err:
            msgs.append("stderr does not mention %r" % needle)
    if sorted(os.listdir(WORK)) != before:
        msgs.append("files appeared: %s" %
                    sorted(set(os.listdir(WORK)) - set(before)))
    report("usage error: " + name, msgs, res)


def test_usage_errors():
    out = path("never.npz")
    expect_usage("unknown family", ["bogus", "linear"], "synth", "bogus",
                 "-o", out)
    expect_usage("missing family", ["FAMILY"], "synth", "-o", out)
    expect_usage("two families", ["rfm"], "synth", "linear", "rfm", "-o", out)
    expect_usage("missing -o", ["-o"], "synth", "linear")
    expect_usage("-o without a value", ["-o"], "synth", "linear", "-o")
    inapplicable = {
        "linear": [("--width", 4), ("--depth", 3), ("--activation", "relu"),
                   ("--rescale", 2), ("--extra", 1)],
        "rfm": [("--depth", 3), ("--rescale", 2), ("--extra", 0)],
        "deep-linear": [("--activation", "tanh"), ("--extra", 1)],
        "two-layer": [("--depth", 2), ("--activation", "relu")],
    }
    for fam, opts in inapplicable.items():
        for opt, value in opts:
            expect_usage("%s %s" % (fam, opt), [opt, fam], "synth", fam, opt,
                         value, "-o", out)
    for bad in ("power", "power:", "power:-1", "power:x", "power:inf", "Iso",
                "iso:1"):
        expect_usage("--spectrum %s" % bad, ["--spectrum", bad], "synth",
                     "linear", "--spectrum", bad, "-o", out)
    for opt, value in (("--samples", 0), ("--inputs", -3), ("--outputs", "x"),
                       ("--seed", -1), ("--width", 0)):
        expect_usage("%s %s" % (opt, value), [opt], "synth", "rfm", opt,
                     value, "-o", out)
    expect_usage("--depth 1", ["--depth"], "synth", "deep-linear", "--depth",
                 1, "-o", out)
    for value in (0, -1, "nan", "inf", "1e999"):
        expect_usage("--rescale %s" % value, ["--rescale"], "synth",
                     "two-layer", "--rescale", value, "-o", out)
    expect_usage("--activation sigmoid", ["--activation", "sigmoid"],
                 "synth", "rfm", "--activation", "sigmoid", "-o", out)
    expect_usage("deep-linear width below the teacher's rank",
                 ["width 2", "min(outputs, inputs) = 3"], "synth",
                 "deep-linear", "--outputs", 3, "--inputs", 5, "--width", 2,
                 "-o", out)
    expect_usage("J too large", ["J would hold", "limit"], "synth", "linear",
                 "--samples", 100000, "--inputs", 10000, "-o", out)
    expect_usage("width overflows", ["theta would hold"], "synth",
                 "two-layer", "--width", 2**64 - 1, "--extra", 5, "-o", out)
    expect_usage("unknown option", ["--bogus"], "synth", "linear", "--bogus",
                 "-o", out)
    expect_usage("--json takes no value", [], "synth", "linear", "--json=1",
                 "-o", out)


def test_write_errors():
    target = path("missing-dir/out.npz")
    res = run("synth", "linear", "--samples", 3, "--inputs", 2, "-o", target)
    msgs = []
    if res.rc != 1 or res.out or res.err.count("\n") != 1 or \
            "out.npz" not in res.err:
        msgs.append("want status 1, one line naming the file")
    report("write into a missing directory", msgs, res)
    keep = path("keep.npz")
    with open(keep, "wb") as f:
        f.write(b"old")
    res = run("synth", "linear", "--depth", 3, "-o", keep)
    report("usage error leaves an existing file alone",
           [] if res.rc == 2 and open(keep, "rb").read() == b"old"
           else ["changed"], res)


def body(work):
    global WORK
    WORK = work
    test_families()
    test_text_and_forms()
    test_determinism()
    test_rescaling()
    test_usage_errors()
    test_write_errors()


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, "synth", body))
