"""`sgdstab phase --lyapunov`: the Monte Carlo top Lyapunov exponent at
every grid point and the boundary where it turns positive, against
independent references: on a one-parameter problem the closed form
lambda_1 = E ln|1 - eta A_xi| with every batch enumerated (all three
samplings), point by point (z-scores) and the boundary found by the same
rule on the closed form; on random problems, also with momentum and Adam,
the theorem lambda_1 <= (1/2) ln rho at every point; the outputs (CSV, JSON,
text, the gnuplot script), thread-count independence and usage errors.

Usage: test_phase_lyapunov_cli.py SGDSTAB"""

import itertools
import math
import os
import sys

import numpy as np

import cli_harness as h

Z_MAX = 4.5   # with 32 runs, P(|t_31| > 4.5) is about 1e-4 per point


def batch_means(a, B, sampling):
    """(probability, batch curvature A_xi) of every batch of the
    one-parameter problem with per-sample curvatures a."""
    n = len(a)
    if sampling == "without":
        combos = list(itertools.combinations(range(n), B))
        return [(1 / len(combos), a[list(c)].mean()) for c in combos]
    if sampling == "with":
        return [(n ** -B, a[list(c)].mean())
                for c in itertools.product(range(n), repeat=B)]
    q = B / n
    out = []
    for mask in itertools.product((0, 1), repeat=n):
        m = np.array(mask, bool)
        out.append((q ** m.sum() * (1 - q) ** (n - m.sum()), a[m].sum() / B))
    return out


def closed_form(a, B, sampling, lr):
    """E ln|1 - eta A_xi|."""
    return sum(p * math.log(abs(1 - lr * A))
               for p, A in batch_means(a, B, sampling) if p > 0)


def crossing(lrs, lam, lr_critical):
    """The boundary rule of phase.h: the first grid point with lambda >= 0,
    interpolated in ln eta from the one before, not below eta*; (side,
    eta_L)."""
    for j, y1 in enumerate(lam):
        if y1 >= 0:
            if j == 0:
                return "below", None
            y0 = lam[j - 1]
            t = y0 / (y0 - y1) if y0 < 0 else 0.0
            lr = math.exp(math.log(lrs[j - 1]) +
                          t * (math.log(lrs[j]) - math.log(lrs[j - 1])))
            return "inside", min(max(lr, lr_critical), lrs[j])
    return "above", None


def one_parameter(work):
    a = np.array([0.2, 0.5, 1.0, 2.0, 5.0, 9.0])
    path, _ = h.write_problem(work, "oned", np.sqrt(a).reshape(-1, 1))
    spec = "0.11:1.4:24:log"
    lrs = np.exp(np.linspace(math.log(0.11), math.log(1.4), 24))
    spacing = (math.log(1.4) - math.log(0.11)) / 23
    for sampling in h.SAMPLINGS:
        d, res, e = h.run_json("phase", path, "--batch", "1,2,3", "--lr", spec,
                               "--sampling", sampling, "--lyapunov", "--runs",
                               32, "--steps", 4000, "--quiet")
        if d is None:
            h.report("one parameter, %s" % sampling, e, res)
            continue
        worst = 0.0
        for pt in d["grid"]:
            want = closed_form(a, pt["batch"], sampling, pt["lr"])
            z = abs(pt["lyapunov_exponent"] - want) / max(
                pt["lyapunov_stderr"], 1e-300)
            worst = max(worst, z)
            if not z <= Z_MAX:
                e.append("B %d eta %.4g: lambda_1 %.6g +- %.2g, closed form "
                         "%.6g (z %.3g)" % (pt["batch"], pt["lr"],
                                            pt["lyapunov_exponent"],
                                            pt["lyapunov_stderr"], want, z))
        h.report("one parameter, %s: every point against E ln|1 - eta A| "
                 "(max |z| %.2f)" % (sampling, worst), e, res)
        e = []
        for row in d["boundary"]:
            B = row["batch"]
            lam = [closed_form(a, B, sampling, lr) for lr in lrs]
            side, want = crossing(list(lrs), lam, row["lr_critical"])
            got = row["lr_lyapunov"]
            if row["lyapunov_crossing"] != side:
                e.append("B %d: crossing %r, closed form %r"
                         % (B, row["lyapunov_crossing"], side))
            elif side == "inside" and not (
                    h.is_num(got) and
                    abs(math.log(got / want)) <= 1.01 * spacing):
                e.append("B %d: eta_L %r, closed form on the grid %r"
                         % (B, got, want))
            elif side == "inside" and not got >= row["lr_critical"]:
                e.append("B %d: eta_L %r below eta* %r"
                         % (B, got, row["lr_critical"]))
        h.report("one parameter, %s: the boundary against the closed "
                 "form's" % sampling, e, res)


def below_half_log_rho(name, d, e):
    """lambda_1 <= (1/2) ln rho within Z_MAX standard errors at every
    point, and each boundary at or above eta*."""
    for pt in d["grid"]:
        bound = 0.5 * math.log(pt["spectral_radius"])
        lam, se = pt["lyapunov_exponent"], pt["lyapunov_stderr"]
        if not (h.is_num(lam) and lam <= bound + Z_MAX * se + 1e-12):
            e.append("%s: B %d eta %.4g: lambda_1 %r +- %r above (1/2) ln "
                     "rho %r" % (name, pt["batch"], pt["lr"], lam, se, bound))
    for row in d["boundary"]:
        if row["lyapunov_crossing"] == "inside" and not (
                row["lr_lyapunov"] >= row["lr_critical"]):
            e.append("%s: eta_L %r below eta* %r" % (name, row["lr_lyapunov"],
                                                     row["lr_critical"]))


def random_problems(work, rng):
    J = rng.standard_normal((10, 2, 4)) / 2
    path, _ = h.write_problem(work, "rand", J)
    v = os.path.join(work, "v.npy")
    np.save(v, rng.uniform(0.2, 2.0, 4))
    cases = [("plain, %s" % s, ["--batch", "1,2,5", "--sampling", s])
             for s in h.SAMPLINGS]
    cases += [("momentum rows", ["--batch", 2, "--momentum", "0,0.5,0.9"]),
              ("adam", ["--batch", "1,3", "--optimizer", "adam",
                        "--second-moment", v])]
    for name, opts in cases:
        d, res, e = h.run_json("phase", path, "--lr", "0.05:3:16:log",
                               "--lyapunov", "--runs", 32, "--steps", 1500,
                               "--quiet", *opts)
        if d is not None:
            below_half_log_rho(name, d, e)
        h.report("random J, %s: lambda_1 <= (1/2) ln rho" % name, e, res)
    return path


def outputs(work, path):
    grid_csv = os.path.join(work, "grid.csv")
    bd_csv = os.path.join(work, "bd.csv")
    common = ["--batch", "1,2,5", "--lr", "0.05:3:10:log", "--lyapunov",
              "--runs", 4, "--steps", 200, "--quiet"]
    d, res, e = h.run_json("phase", path, *common, "--csv", grid_csv,
                           "--boundary-csv", bd_csv)
    if d is not None:
        _, head, rows = h.read_csv(grid_csv)
        if not head.endswith(",stable,lyapunov_exponent,lyapunov_stderr"):
            e.append("grid CSV header %r" % head)
        for row, pt in zip(rows, d["grid"]):
            if float(row[6]) != pt["lyapunov_exponent"] or \
                    float(row[7]) != pt["lyapunov_stderr"]:
                e.append("grid CSV %r, JSON %r" % (row, pt))
                break
        _, head, rows = h.read_csv(bd_csv)
        if not head.endswith(",lr_lyapunov,lyapunov_crossing"):
            e.append("boundary CSV header %r" % head)
        for row, b in zip(rows, d["boundary"]):
            if row[8] != b["lyapunov_crossing"] or not h.same_number(
                    float(row[7]), b["lr_lyapunov"]):
                e.append("boundary CSV %r, JSON %r" % (row, b))
        ly = d.get("lyapunov", {})
        if (ly.get("runs"), ly.get("steps"), ly.get("seed")) != (4, 200, 1):
            e.append("JSON lyapunov %r" % ly)
    h.report("CSV and JSON agree, with the Monte Carlo columns", e, res)

    one, res1, e1 = h.run_json("phase", path, *common, "--threads", 1)
    two, res2, e2 = h.run_json("phase", path, *common, "--threads", 2)
    e = e1 + e2
    if one is not None and two is not None and [
            p["lyapunov_exponent"] for p in one["grid"]] != [
            p["lyapunov_exponent"] for p in two["grid"]]:
        e.append("1 and 2 threads differ")
    h.report("the same numbers on 1 and 2 threads", e, res2)

    res = h.run("phase", path, *common)
    e = h.failure_errors(res, (0,)) if res.rc else []
    if "eta_L (lambda_1 = 0)" not in res.out:
        e.append("the text table lacks the eta_L column")
    if "'o' unstable in mean square" not in res.out:
        e.append("the map's legend lacks 'o'")
    h.report("text: the eta_L column and the map's 'o'", e, res)

    scripts = os.path.join(work, "scripts")
    os.mkdir(scripts)
    res = h.run("phase", path, *common, "--plot",
                os.path.join(work, "ly.png"),
                env=dict(os.environ, SGDSTAB_PLOT_SCRIPT=scripts))
    e = h.failure_errors(res, (0,)) if res.rc else []
    text = "".join(open(os.path.join(scripts, f)).read()
                   for f in os.listdir(scripts))
    if "Monte Carlo λ_1 = 0" not in text:
        e.append("the plot has no Monte Carlo boundary")
    res2 = h.run("phase", path, "--batch", "1,2", "--lr", "0.1:1:4",
                 "--plot", os.path.join(work, "plain.png"), "--quiet",
                 env=dict(os.environ, SGDSTAB_PLOT_SCRIPT=scripts))
    e += h.failure_errors(res2, (0,)) if res2.rc else []
    if "Monte Carlo" in open(os.path.join(scripts, "plain.png.gp")).read():
        e.append("a plot without --lyapunov draws the Monte Carlo curve")
    h.report("the plot draws the Monte Carlo boundary (only with it)", e, res)

    res = h.run("phase", path, "--batch", 2, "--lr", "0.1:1:4", "--lyapunov",
                "--runs", 100000, "--steps", 100000000, "--quiet")
    e = h.failure_errors(res, (1,))
    if "floating-point operations" not in res.err:
        e.append("stderr lacks the work")
    h.report("refused before any work: a Monte Carlo beyond the bound", e,
             res)

    for args, needle in ((["--runs", 4], "--lyapunov"),
                         (["--lyapunov", "--runs", 1], "--runs"),
                         (["--lyapunov", "--steps", 5], "--steps"),
                         (["--lyapunov", "--seed", 2 ** 32], "2^32")):
        res = h.run("phase", path, "--batch", 2, "--lr", "0.1:1:4", *args)
        e = h.failure_errors(res, (2,))
        if needle not in res.err:
            e.append("stderr lacks %r" % needle)
        h.report("refused: %s" % " ".join(map(str, args)), e, res)


def vanishing(work):
    """Four equal samples: every batch's step is 1 - eta, so at eta = 1
    the state vanishes (lambda_1 NaN, passed over) and the crossing of
    ln|1 - eta| is at eta = 2 = eta*."""
    path, _ = h.write_problem(work, "equal", np.ones((4, 1)))
    for lrs, crossing, want in (("1", "unknown", None),
                                ("0.5,1,1.5", "above", None),
                                ("0.5,1,3", "inside", 2.0)):
        d, res, e = h.run_json("phase", path, "--batch", 2, "--lr", lrs,
                               "--lyapunov", "--runs", 2, "--steps", 20,
                               "--quiet")
        if d is not None:
            row = d["boundary"][0]
            if row["lyapunov_crossing"] != crossing or (
                    want is not None and
                    not h.close_rel(row["lr_lyapunov"], want, 1e-12)):
                e.append("crossing %r at %r, want %r at %r"
                         % (row["lyapunov_crossing"], row["lr_lyapunov"],
                            crossing, want))
        h.report("a state that vanishes: --lr %s, crossing %s" % (lrs,
                                                                  crossing),
                 e, res)


def body(work):
    rng = np.random.default_rng(291)
    one_parameter(work)
    path = random_problems(work, rng)
    outputs(work, path)
    vanishing(work)
    return None


if __name__ == "__main__":
    sys.exit(h.main(__doc__, "phase-lyapunov", body))
