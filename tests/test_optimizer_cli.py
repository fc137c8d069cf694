"""`sgdstab analyze`, `critical`, `evolve`, `simulate`, `phase`, `verify`
and `run` with an optimizer (--momentum, --nesterov, --optimizer adam --second-moment, ...):
the full-batch closed forms of the noise-free limits from NumPy's
eigenvalues, momentum 0 equal to plain SGD, Monte Carlo runs of the real
update against the exact lifted evolution (z-scores), the (beta, eta) phase
diagram and `run`'s momentum sweep against `critical`, the JSON "optimizer"
object, and bad settings refused in one line.

Usage: test_optimizer_cli.py SGDSTAB"""

import json
import os
import sys

import numpy as np

import cli_harness as h


def body(work):
    rng = np.random.default_rng(5)
    n, p = 12, 5
    J = rng.standard_normal((n, p))
    path, _ = h.write_problem(work, "tiny", J)
    lmax = np.linalg.eigvalsh(J.T @ J / n)[-1]
    v = rng.uniform(0.1, 2.0, p)
    vpath = os.path.join(work, "v.npy")
    np.save(vpath, v)
    pinv = 1 / np.sqrt(np.sqrt(v) + 1e-8)
    pmax = np.linalg.eigvalsh((J * pinv).T @ (J * pinv) / n)[-1]
    beta = 0.9
    closed = [
        ("heavy ball", ["--momentum", beta], 2 * (1 + beta) / lmax),
        ("nesterov", ["--momentum", beta, "--nesterov"],
         2 * (1 + beta) / ((1 + 2 * beta) * lmax)),
        ("dampening", ["--momentum", beta, "--dampening", 0.5],
         2 * (1 + beta) / (0.5 * lmax)),
        ("adam", ["--optimizer", "adam", "--betas", "%g,0.99" % beta,
                  "--second-moment", vpath],
         (2 + 2 * beta) / ((1 - beta) * pmax)),
    ]
    for name, opts, want in closed:
        d, res, e = h.run_json("critical", path, "--batch", n, *opts)
        if d is not None:
            got = d["critical"][0]["lr_critical"]
            if not h.close_rel(got, want, 1e-9):
                e.append("eta*(n) %r, closed form %r" % (got, want))
            if "optimizer" not in d:
                e.append("no optimizer object")
        h.report("full batch closed form: " + name, e, res)

    d0, res0, e0 = h.run_json("analyze", path, "--lr", 0.5, "--batch", 3)
    d1, res1, e1 = h.run_json("analyze", path, "--lr", 0.5, "--batch", 3,
                              "--momentum", 0, "--dampening", 0.3)
    e = e0 + e1
    if d0 is not None and d1 is not None:
        for key in ("spectral_radius", "lr_critical"):
            if not h.close_rel(d0[key], d1[key], 1e-12):
                e.append("%s: %r with momentum 0, %r plain" %
                         (key, d1[key], d0[key]))
        if d1["optimizer"]["kind"] != "sgd":
            e.append("optimizer kind %r" % d1["optimizer"]["kind"])
    h.report("momentum 0 is plain SGD (dampening ignored)", e, res1)

    d, res, e = h.run_json("analyze", path, "--lr", 0.2, "--batch", 3,
                           "--momentum", 0.9)
    if d is not None:
        stable = d["lr"] <= d["lr_critical"]
        if stable != (d["spectral_radius"] <= 1):
            e.append("verdict and rho disagree: eta %r eta* %r rho %r" %
                     (d["lr"], d["lr_critical"], d["spectral_radius"]))
        if d["optimizer"]["momentum"] != 0.9:
            e.append("optimizer.momentum %r" % d["optimizer"]["momentum"])
    h.report("momentum 0.9: rho and eta* agree on the verdict", e, res)

    # Monte Carlo of torch.optim's update against the exact evolution:
    # 20000 runs, 12 steps, at 0.8 eta*; |z| <= 4 at every step (the runs
    # are fixed by the seed; a wrong buffer rule shows up as |z| in the
    # tens).  ‖delta_t‖² is heavy-tailed under multiplicative noise: with few
    # runs over long horizons the sample mean and its error bar fall short
    # together, so the horizon is short and the runs many.
    # The preconditioned optimizers run on a problem with directions J never
    # moves (p > n): in parameter space they are not orthogonal to the rest.
    wide, _ = h.write_problem(work, "wide", rng.standard_normal((4, 8)))
    vwide = os.path.join(work, "vwide.npy")
    np.save(vwide, rng.uniform(0.05, 3.0, 8))
    adam = ["--second-moment", vwide, "--optimizer"]
    optimizers = [("heavy ball 0.9", path, 3, ["--momentum", 0.9]),
                  ("dampening 0.3, wd 0.05", path, 3,
                   ["--momentum", 0.7, "--dampening", 0.3,
                    "--weight-decay", 0.05]),
                  ("nesterov 0.8", path, 3, ["--momentum", 0.8, "--nesterov"]),
                  ("adam", wide, 2, adam + ["adam"]),
                  ("adamw, wd 0.2", wide, 2,
                   adam + ["adamw", "--weight-decay", 0.2]),
                  ("rmsprop, momentum 0.5, wd 0.1", wide, 2,
                   adam + ["sgd", "--momentum", 0.5, "--weight-decay", 0.1])]
    for name, problem, batch, opts in optimizers:
        for sampling in h.SAMPLINGS:
            d, res, e = h.run_json("critical", problem, "--batch", batch,
                                   "--sampling", sampling, *opts)
            if d is None:
                h.report("simulate %s %s" % (name, sampling), e, res)
                continue
            lr = 0.8 * d["critical"][0]["lr_critical"]
            d, res, e = h.run_json("simulate", problem, "--lr", lr, "--batch",
                                   batch, "--sampling", sampling, "--steps",
                                   12, "--runs", 20000, "--seed", 11,
                                   "--compare", "--quiet", *opts)
            if d is not None:
                worst = max(abs(z) for z in d["z_score"])
                if not worst <= 4:
                    e.append("max |z| %.3g over 12 steps" % worst)
            h.report("simulate %s (%s) against the exact evolution" %
                     (name, sampling), e, res)

    # The (beta, eta) diagram: every row's eta* equals `critical` at that
    # momentum, every point's verdict follows it, the tables' first column
    # is the momentum; usage errors.
    betas = [0, 0.5, 0.9]
    grid_csv = os.path.join(work, "bm.csv")
    d, res, e = h.run_json("phase", path, "--batch", 3, "--momentum",
                           ",".join(map(str, betas)), "--lr", "0.01:3:5:log",
                           "--csv", grid_csv, "--quiet")
    if d is not None:
        if d.get("momenta") != betas:
            e.append("momenta %r" % d.get("momenta"))
        for row in d["boundary"]:
            c, _, ce = h.run_json("critical", path, "--batch", 3,
                                  "--momentum", row["momentum"])
            e += ce
            if c and not h.close_rel(row["lr_critical"],
                                     c["critical"][0]["lr_critical"], 1e-9):
                e.append("beta %g: eta* %r, critical says %r" %
                         (row["momentum"], row["lr_critical"],
                          c["critical"][0]["lr_critical"]))
        for pt in d["grid"]:
            star = [r["lr_critical"] for r in d["boundary"]
                    if r["momentum"] == pt["momentum"]][0]
            if pt["stable"] != (pt["lr"] <= star):
                e.append("point %r: stable %r, eta* %r" %
                         (pt, pt["stable"], star))
        with open(grid_csv) as f:
            head = f.readline()
        if not head.startswith("momentum,lr,"):
            e.append("grid CSV header %r" % head)
    h.report("phase over momenta: rows against critical, verdicts", e, res)
    for opts, needle in (
            (["--batch", "2,3", "--momentum", "0,0.5"], "one batch size"),
            (["--batch", 3, "--momentum", "0,1"], "not in [0, 1)"),
            (["--batch", 3, "--momentum", "0,0.5,"], "not a list"),
            (["--batch", 3, "--momentum", "0.5:0.1:3"], "A < B")):
        res = h.run("phase", path, "--lr", "0.1:1:3", *opts)
        e = [] if res.rc == 2 else ["exit %d, expected 2" % res.rc]
        if needle not in res.err or not h.one_line(res.err):
            e.append("stderr lacks %r in one line" % needle)
        h.report("phase refuses: %s" % " ".join(map(str, opts)), e, res)

    # run: a momentum sweep; every case's eta*(B) equals `critical` on the
    # same synthetic problem at that momentum; the report's momentum section;
    # plain-SGD-only keys refused.
    spec = os.path.join(work, "mom.json")
    with open(spec, "w") as f:
        json.dump({"family": "rfm", "batch": [1, 4, 24],
                   "params": {"samples": 24, "inputs": 4, "width": 12,
                              "seed": 9},
                   "optimizer": {"dampening": 0.1},
                   "sweep": {"momentum": [0, 0.9]}}, f)
    out = os.path.join(work, "momrun")
    res = h.run("run", spec, "--out", out, "--quiet")
    e = [] if res.rc == 0 else ["exit %d" % res.rc]
    syn = os.path.join(work, "syn.npz")
    h.run("synth", "rfm", "--samples", 24, "--inputs", 4, "--width", 12,
          "--seed", 9, "-o", syn)
    if res.rc == 0:
        _, head, cells = h.read_csv(os.path.join(out, "critical.csv"))
        rows = [dict(zip(head.split(","), c)) for c in cells]
        for beta, case in ((0, "0"), (0.9, "1")):
            c, _, ce = h.run_json("critical", syn, "--batch", "1,4,24",
                                  "--momentum", beta, "--dampening", 0.1)
            e += ce
            got = [float(r["lr_critical"]) for r in rows
                   if r["case"] == case]
            want = [x["lr_critical"] for x in c["critical"]] if c else []
            if len(got) != 3 or not all(h.close_rel(g, w, 1e-9)
                                        for g, w in zip(got, want)):
                e.append("beta %g: run %r, critical %r" % (beta, got, want))
        with open(os.path.join(out, "report.md")) as f:
            if "## Momentum: the stable sharpness" not in f.read():
                e.append("report has no momentum section")
    h.report("run with a momentum sweep against critical", e, res)
    for extra, needle in (({"lr": [0.1]}, "key 'lr'"),
                          ({"optimizer": {"kind": "adam"}},
                           "unknown key 'optimizer.kind'"),
                          ({"sweep": {"momentum": [1]}},
                           "need a number in [0, 1)")):
        d = {"family": "rfm", "batch": [1], "optimizer": {"momentum": 0.5}}
        d.update(extra)
        with open(spec, "w") as f:
            json.dump(d, f)
        res = h.run("run", spec, "--out", out + "x", "--quiet")
        e = [] if res.rc == 1 else ["exit %d, expected 1" % res.rc]
        if needle not in res.err or not h.one_line(res.err):
            e.append("stderr lacks %r in one line" % needle)
        h.report("run refuses %s" % json.dumps(extra), e, res)

    # An .npz with the optimizer in meta.json and V: wrong length, and a
    # zero entry Adam cannot take, are data errors naming the file.
    for name, V, needle in (("vlen", v[:3], "the second moment V has 3 values"),
                            ("vzero", np.concatenate([[0.0], v[1:]]),
                             "must be finite and > 0")):
        f = h.npz_with_meta(os.path.join(work, name + ".npz"), J,
                            {"optimizer": {"kind": "adam", "momentum": 0.9}},
                            V=V)
        res = h.run("analyze", f, "--lr", 0.1, "--batch", 3)
        e = [] if res.rc == 1 else ["exit %d, expected 1" % res.rc]
        if needle not in res.err or f not in res.err or \
                not h.one_line(res.err):
            e.append("stderr lacks %r and the file in one line" % needle)
        h.report("the file's V refused: %s" % name, e, res)

    # verify with an optimizer checks that optimizer's theorems: all hold,
    # at a stable and an unstable rate, for heavy ball with weight decay,
    # Nesterov, and Adam.
    for name, opts in (("heavy ball, wd", ["--momentum", 0.9,
                                           "--weight-decay", 0.01]),
                       ("nesterov", ["--momentum", 0.8, "--nesterov"]),
                       ("adam", ["--optimizer", "adam", "--second-moment",
                                 vpath])):
        c, _, e = h.run_json("critical", path, "--batch", 3, *opts)
        star = c["critical"][0]["lr_critical"] if c else 1
        for f in (0.7, 1.3):
            d, res, e2 = h.run_json("verify", path, "--lr", f * star,
                                    "--batch", 3, *opts)
            e3 = e + e2
            if d is not None:
                names = sorted(ch["name"] for ch in d["checks"])
                if names[:3] != ["noise_free_limit", "radius_at_critical",
                                 "radius_at_critical_low"] or \
                        d["theorems_failed"] or "optimizer" not in d:
                    e3.append("checks %r, failed %r" %
                              (names, d["theorems_failed"]))
            h.report("verify %s at %g eta*: the optimizer's theorems hold" %
                     (name, f), e3, res)

    bad = [
        (["--momentum", 1], 2, "momentum must lie in [0, 1)"),
        (["--momentum", 0.9, "--dampening", 0.1, "--nesterov"], 2,
         "zero dampening"),
        (["--optimizer", "adam"], 2, "needs the frozen second moment"),
        (["--optimizer", "nadam"], 2, "is not one of sgd, adam, adamw"),
        (["--weight-decay", -1], 2, "weight decay"),
        (["--optimizer", "adam", "--second-moment", path], 1, path),
    ]
    for cmd, extra, needle in (
            ("simulate", ["--steps", 3, "--clip", 1], "for plain SGD"),
            ("simulate", ["--steps", 3, "--momentum", 0.9, "--clip", 1],
             "for plain SGD")):
        res = h.run(cmd, path, "--lr", 0.1, "--batch", 3, *extra,
                    *([] if "--momentum" in extra else
                      ["--optimizer", "adam", "--second-moment", vpath]))
        e = [] if res.rc in (1, 2) else ["exit %d" % res.rc]
        if needle not in res.err or not h.one_line(res.err):
            e.append("stderr lacks %r in one line" % needle)
        h.report("%s refuses: %s" % (cmd, needle), e, res)
    np.save(os.path.join(work, "short.npy"), v[:3])
    bad.append((["--optimizer", "adam", "--second-moment",
                 os.path.join(work, "short.npy")], 1, "has 3 values"))
    for opts, status, needle in bad:
        res = h.run("analyze", path, "--lr", 0.1, "--batch", 3, *opts)
        e = [] if res.rc == status else ["exit %d, expected %d" %
                                         (res.rc, status)]
        if needle not in res.err or not h.one_line(res.err):
            e.append("stderr lacks %r in one line" % needle)
        if res.out:
            e.append("stdout not empty")
        h.report("refused: %s" % " ".join(map(str, opts)), e, res)
    return None


if __name__ == "__main__":
    sys.exit(h.main(__doc__, "optimizer", body))
