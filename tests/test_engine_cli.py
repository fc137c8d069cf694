#!/usr/bin/python3
"""End-to-end tests of the exact stability engine through the sgdstab CLI:
`analyze`, `critical`, `evolve` (and a smoke run of `bench`), and what the
commands make of a file's meta.json (its loss convention, its residuals).

usage: test_engine_cli.py SGDSTAB

Every expected number comes from engine_reference.py (same directory): the
README's mathematics written with plain NumPy/SciPy in the full parameter
space, and brute-force enumeration of every minibatch for the evolution.
Nothing is taken from the tool's own output except to check its internal
consistency (CSV = JSON, escape rate = ln rho, ...).

Tolerances (issue 3): rho_⊥ 1e-10 absolute, eta* 1e-9 relative, evolution
1e-10 relative.  The meta.json checks compare with the numbers written into
the file, 2/k, and the same J without metadata.  Exit status 0 iff every
check passed.
"""

import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as harness  # noqa: E402
import engine_reference as ref  # noqa: E402
from cli_harness import (ETA_REL, RHO_ABS, SAMPLINGS,  # noqa: E402
                         close_abs, close_rel, failure_errors, fmt, is_num,
                         npz_with_meta, one_line, read_csv, report, run,
                         run_json)

EVOLVE_REL = 1e-10

WORK = None


# ----------------------------------------------------------------- problems

class Case(harness.Case):
    """A problem written into WORK, with its reference Problem."""

    def __init__(self, name, J, H=None, hessian_file=False):
        super().__init__(WORK, name, J, H, hessian_file)


def make_cases():
    rp = ref.random_problem
    cases = [
        # n < p and n > p, k = 1 and k = 3, H = G
        Case("small_n", *rp(101, 5, 12)),
        Case("large_n", *rp(102, 40, 6)),
        Case("k3_small_n", *rp(103, 4, 15, k=3)),
        Case("k3_large_n", *rp(104, 30, 5, k=3)),
        Case("null_dir", *rp(105, 12, 7, null_dirs=2)),
        # with H in the .npz: positive definite, and inside range(G) only
        Case("H_pd_large_n", *rp(106, 40, 6, hessian="pd")),
        Case("H_pd_small_n", *rp(107, 5, 9, hessian="pd")),
        Case("H_range_small_n", *rp(108, 5, 10, hessian="range")),
        Case("H_range_k3", *rp(109, 6, 8, k=3, hessian="range",
                              null_dirs=2)),
        # H given with --hessian H.npy
        Case("Hfile_k3", *rp(110, 4, 8, k=3, hessian="pd"),
             hessian_file=True),
    ]
    return cases


# ----------------------------------------------------------------- analyze

ANALYZE_KEYS = ("n k p rank lr batch sampling stable spectral_radius "
                "escape_rate_per_step escape_rate_per_epoch lr_critical "
                "lr_critical_mean sharpness hessian_frobenius "
                "hessian_trace").split()


def check_analyze_json(d, case, prob, lr, B, sampling, c):
    """All checks of one `analyze --json` answer against the reference."""
    errs = []
    missing = [k for k in ANALYZE_KEYS if k not in d]
    if missing:
        return ["missing keys %s" % missing]
    for key, want in (("n", case.n), ("k", case.k), ("p", case.p),
                      ("batch", B), ("rank", prob.rank_J())):
        v = d[key]
        if not (isinstance(v, int) and not isinstance(v, bool) and v == want):
            errs.append("%s = %r, expected %r" % (key, v, want))
    if "null_dim" in d:
        want = case.p - prob.range_basis().shape[1]
        if d["null_dim"] != want:
            errs.append("null_dim = %r, expected %d" % (d["null_dim"], want))
    if d["lr"] != lr:
        errs.append("lr = %r, expected %r" % (d["lr"], lr))
    if d["sampling"] != sampling:
        errs.append("sampling = %r" % d["sampling"])
    if "loss_scale" in d and not close_rel(d["loss_scale"], c, 1e-15):
        errs.append("loss_scale = %r, expected %r" % (d["loss_scale"], c))

    rho = ref.rho_perp(prob, lr, sampling, B)
    eta = ref.lr_critical(prob, sampling, B)
    lam = prob.sharpness()
    got_rho = d["spectral_radius"]
    if not close_abs(got_rho, rho, RHO_ABS):
        errs.append("spectral_radius = %r, reference %r (diff %.3g; the "
                    "tool's error estimate %r, converged %r)"
                    % (got_rho, rho, abs(got_rho - rho)
                       if is_num(got_rho) else float("nan"),
                       d.get("spectral_radius_error_estimate"),
                       d.get("converged")))
    if eta is None or not math.isfinite(eta):
        errs.append("reference eta* is %r: test problem is wrong" % eta)
    elif not close_rel(d["lr_critical"], eta, ETA_REL):
        errs.append("lr_critical = %r, reference %r (rel %.3g)"
                    % (d["lr_critical"], eta,
                       abs(d["lr_critical"] - eta) / eta
                       if is_num(d["lr_critical"]) else float("nan")))
    # rates: ln rho per step, (n/B) ln rho per epoch (consistent with the
    # tool's rho, and with the reference's)
    if is_num(got_rho) and got_rho > 0:
        lr_ = math.log(got_rho)
        if not close_abs(d["escape_rate_per_step"], lr_,
                         1e-13 + 1e-13 * abs(lr_)):
            errs.append("escape_rate_per_step = %r, ln(rho) = %r"
                        % (d["escape_rate_per_step"], lr_))
        ep = case.n / B * lr_
        if not close_abs(d["escape_rate_per_epoch"], ep,
                         1e-13 + 1e-13 * abs(ep)):
            errs.append("escape_rate_per_epoch = %r, (n/B) ln(rho) = %r"
                        % (d["escape_rate_per_epoch"], ep))
        if "rms_efold_steps" in d and lr_ != 0 and \
                not close_rel(d["rms_efold_steps"], 2 / abs(lr_), 1e-12):
            errs.append("rms_efold_steps = %r, 2/|ln rho| = %r"
                        % (d["rms_efold_steps"], 2 / abs(lr_)))
    if not close_abs(d["escape_rate_per_step"], math.log(rho),
                     RHO_ABS / rho * 1.01):
        errs.append("escape_rate_per_step = %r, reference ln(rho) = %r"
                    % (d["escape_rate_per_step"], math.log(rho)))
    # verdict
    if eta is not None:
        want = lr <= eta
        if d["stable"] is not want:
            errs.append("stable = %r, but eta = %r and reference eta* = %r"
                        % (d["stable"], lr, eta))
        if (rho <= 1) != want:
            errs.append("reference inconsistent: rho %r, eta* %r" % (rho, eta))
    if d.get("not_a_minimum") is not False:
        errs.append("not_a_minimum = %r" % d.get("not_a_minimum"))
    # Hessian summaries in the user's loss convention (H scaled by c)
    for key, want, rel in (
            ("lr_critical_mean", 2 / lam, 1e-12),
            ("sharpness", lam, 1e-12),
            ("hessian_frobenius", float(np.linalg.norm(prob.H)), 1e-12),
            ("hessian_trace", float(np.trace(prob.H)), 1e-12)):
        if not close_rel(d[key], want, rel):
            errs.append("%s = %r, reference %r" % (key, d[key], want))
    return errs


def batch_sizes(n):
    return sorted({1, max(2, n // 3), n})


def test_analyze(cases):
    for case in cases:
        for sampling in SAMPLINGS:
            bs = batch_sizes(case.n)
            if sampling == "with":
                bs = bs + [case.n + 3]          # B > n is fine with replacement
            nrun, errs, bad = 0, [], None
            for B in bs:
                eta = case.eta_star(sampling, B)
                for f in (0.5, 0.999, 1.001, 2.0):
                    lr = eta * f
                    d, res, e = run_json("analyze", case.path, "--lr",
                                         fmt(lr), "--batch", B, "--sampling",
                                         sampling, *case.extra)
                    if d is not None:
                        e = check_analyze_json(d, case, case.problem(), lr, B,
                                               sampling, 1.0)
                    nrun += 1
                    if e:
                        errs += ["B=%d eta=%.4g eta*: %s" % (B, f, m)
                                 for m in e]
                        bad = bad or res
            report("analyze %s (n=%d k=%d p=%d) --sampling %s: %d runs, "
                   "B in %s, eta/eta* in 0.5 0.999 1.001 2"
                   % (case.name, case.n, case.k, case.p, sampling, nrun, bs),
                   errs, bad)
    # the default sampling is 'without'
    case = cases[1]
    lr = 0.8 * case.eta_star("without", 5)
    d, res, e = run_json("analyze", case.path, "--lr", fmt(lr),
                         "--batch", 5)
    if d is not None:
        e = check_analyze_json(d, case, case.problem(), lr, 5, "without", 1.0)
    report("analyze without --sampling = sampling without", e, res)
    # human-readable text
    res = run("analyze", case.path, "--lr", fmt(lr), "--batch", 5)
    e = []
    if res.rc != 0 or res.err or "stable" not in res.out.lower():
        e.append("status %d; want 0 and a text verdict" % res.rc)
    report("analyze text output", e, res)


def test_loss(cases):
    """--loss mse == --loss 2/k == J scaled by sqrt(c) (and H by c), all
    against the reference with scale c; a free numeric scale too."""
    for case in cases:
        if case.name not in ("large_n", "k3_small_n", "H_pd_large_n",
                             "Hfile_k3"):
            continue
        c = 2.0 / case.k
        sc = math.sqrt(c)
        prob_c = case.problem(c)
        Js = case.J * sc
        Hs = None if case.H is None else case.H * c
        scaled = Case(case.name + "_scaled", Js, Hs,
                      hessian_file=bool(case.extra))
        errs, bad = [], None
        for sampling in SAMPLINGS:
            B = 2
            eta = case.eta_star(sampling, B, c)
            for f in (0.5, 1.001, 2.0):
                lr = f * eta
                outs = []
                for label, path, extra in (
                        ("--loss mse", case.path, case.extra +
                         ["--loss", "mse"]),
                        ("--loss %r" % c, case.path, case.extra +
                         ["--loss", fmt(c)]),
                        ("J*sqrt(c)", scaled.path, scaled.extra)):
                    d, res, e = run_json("analyze", path, "--lr", fmt(lr),
                                         "--batch", B, "--sampling", sampling,
                                         *extra)
                    if d is not None:
                        want_c = 1.0 if label == "J*sqrt(c)" else c
                        e = check_analyze_json(d, case, prob_c, lr, B,
                                               sampling, want_c)
                        # rank of the scaled J is the rank of J
                    if e:
                        errs += ["%s %s eta=%.4g eta*: %s"
                                 % (label, sampling, f, m) for m in e]
                        bad = bad or res
                    outs.append(d)
                if all(outs) and not errs:
                    for key in ("spectral_radius", "lr_critical",
                                "sharpness", "hessian_trace"):
                        a, b = outs[0][key], outs[1][key]
                        if not close_rel(b, a, 1e-12):
                            errs.append("%s: mse %r vs 2/k %r" % (key, a, b))
        report("--loss mse = --loss 2/k = J*sqrt(2/k) on %s (k=%d)"
               % (case.name, case.k), errs, bad)
    # --loss half-mean is the default; a free scale c = 0.37
    case = cases[3]
    errs, bad = [], None
    for loss, c in (("half-mean", 1.0), ("0.37", 0.37), ("12.5", 12.5)):
        prob_c = case.problem(c)
        eta = case.eta_star("with", 3, c)
        for f in (0.5, 2.0):
            d, res, e = run_json("analyze", case.path, "--lr",
                                 fmt(f * eta), "--batch", 3, "--sampling",
                                 "with", "--loss", loss)
            if d is not None:
                e = check_analyze_json(d, case, prob_c, f * eta, 3, "with", c)
            if e:
                errs += ["--loss %s: %s" % (loss, m) for m in e]
                bad = bad or res
    report("--loss half-mean / 0.37 / 12.5 on %s" % case.name, errs, bad)


def test_negative(cases):
    """H with a negative eigenvalue: not a minimum, unstable at any eta."""
    J, H = ref.random_problem(120, 10, 5, hessian="negative")
    case = Case("H_negative", J, H)
    assert np.linalg.eigvalsh(H)[0] < 0
    lam = float(np.abs(np.linalg.eigvalsh(H)).max())
    for sampling in SAMPLINGS:
        errs, bad = [], None
        for lr in (1e-6 / lam, 1e-3 / lam, 0.5 / lam):
            d, res, e = run_json("analyze", case.path, "--lr", fmt(lr),
                                 "--batch", 3, "--sampling", sampling)
            if d is not None:
                rho = ref.rho_perp(case.problem(), lr, sampling, 3)
                assert rho > 1
                if d.get("stable") is not False:
                    e.append("stable = %r" % d.get("stable"))
                if d.get("not_a_minimum") is not True:
                    e.append("not_a_minimum = %r" % d.get("not_a_minimum"))
                g = d.get("spectral_radius")
                if not (is_num(g) and g > 1):
                    e.append("spectral_radius = %r, not > 1" % g)
                if not close_abs(g, rho, RHO_ABS):
                    e.append("spectral_radius = %r, reference %r" % (g, rho))
                lc = d.get("lr_critical")
                if is_num(lc) and lc >= lr:
                    e.append("lr_critical = %r >= eta = %r" % (lc, lr))
                if not close_rel(d.get("sharpness"),
                                 case.problem().sharpness(), 1e-12):
                    e.append("sharpness = %r" % d.get("sharpness"))
            if e:
                errs += ["eta=%.3g: %s" % (lr, m) for m in e]
                bad = bad or res
        report("negative eigenvalue of H, sampling %s: exit 0, unstable, "
               "not_a_minimum, rho > 1 = reference" % sampling, errs, bad)


# ----------------------------------------------------------------- critical

def check_critical(case, sampling, d, batches, c=1.0):
    errs = []
    if d.get("n") != case.n:
        errs.append("n = %r" % d.get("n"))
    if d.get("sampling") != sampling:
        errs.append("sampling = %r" % d.get("sampling"))
    crit = d.get("critical")
    if not isinstance(crit, list):
        return errs + ["no 'critical' list"]
    got_b = [e.get("batch") if isinstance(e, dict) else None for e in crit]
    if batches is not None and got_b != batches:
        return errs + ["batches %r, expected %r" % (got_b, batches)]
    lam = case.problem(c).sharpness()
    if "lr_critical_mean" in d and not close_rel(d["lr_critical_mean"],
                                                 2 / lam, 1e-12):
        errs.append("lr_critical_mean = %r, 2/lambda_max = %r"
                    % (d["lr_critical_mean"], 2 / lam))
    prev = 0.0
    for e in crit:
        B, eta = e.get("batch"), e.get("lr_critical")
        want = case.eta_star(sampling, B, c)
        if not close_rel(eta, want, ETA_REL):
            errs.append("B=%r: lr_critical = %r, reference %r (rel %.3g)"
                        % (B, eta, want, abs(eta - want) / want
                           if is_num(eta) else float("nan")))
        if is_num(eta) and eta < prev * (1 - 1e-12):
            errs.append("B=%r: lr_critical %r < %r at the previous B: "
                        "not non-decreasing" % (B, eta, prev))
        if is_num(eta):
            prev = max(prev, eta)
        # the residual interval holds the reference's eta* (up to rounding)
        lo, hi = e.get("lr_lower"), e.get("lr_upper")
        if not (is_num(lo) and is_num(hi) and
                lo <= want * (1 + 1e-12) and want <= hi * (1 + 1e-12)):
            errs.append("B=%r: reference eta* %r outside [lr_lower, lr_upper]"
                        " = [%r, %r]" % (B, want, lo, hi))
    if sampling in ("without", "bernoulli") and got_b and got_b[-1] == case.n:
        # b = 0 at B = n: full-batch GD, eta* = 2/lambda_max(H)
        eta = crit[-1].get("lr_critical")
        if not close_rel(eta, 2 / lam, ETA_REL):
            errs.append("eta*(n) = %r, 2/lambda_max(H) = %r" % (eta, 2 / lam))
    return errs


def test_critical(cases):
    for case in cases:
        for sampling in SAMPLINGS:
            d, res, e = run_json("critical", case.path, "--batch", "all",
                                 "--sampling", sampling, *case.extra)
            if d is not None:
                e = check_critical(case, sampling, d,
                                   list(range(1, case.n + 1)))
            report("critical %s --batch all --sampling %s (n=%d)"
                   % (case.name, sampling, case.n), e, res)
    # explicit list with CSV; log-spaced; ranges
    case = cases[1]                                    # n = 40
    for sampling in SAMPLINGS:
        cdir = tempfile.mkdtemp(dir=WORK)
        csv = os.path.join(cdir, "crit.csv")
        lst = [1, 2, 3, 5, 8, 13, 40]
        d, res, e = run_json("critical", case.path, "--batch",
                             ",".join(map(str, lst)), "--sampling", sampling,
                             "--csv", csv)
        if d is not None:
            e = check_critical(case, sampling, d, lst)
            if not e:
                if sorted(os.listdir(cdir)) != ["crit.csv"]:
                    e.append("directory holds %r" % sorted(os.listdir(cdir)))
                _, head, rows = read_csv(csv)
                if head != ("batch,lr_critical,lr_critical_mean,"
                            "rel_accuracy,lr_lower,lr_upper"):
                    e.append("CSV header %r" % head)
                elif len(rows) != len(lst):
                    e.append("CSV has %d rows, want %d" % (len(rows), len(lst)))
                else:
                    for row, j in zip(rows, d["critical"]):
                        if (len(row) != 6 or int(row[0]) != j["batch"]
                                or not close_rel(float(row[1]),
                                                 j["lr_critical"], 1e-15)
                                or not close_rel(float(row[2]),
                                                 d["lr_critical_mean"], 1e-15)
                                or not (float(row[3]) >= 0)
                                or not close_rel(float(row[4]),
                                                 j["lr_lower"], 1e-15)
                                or not close_rel(float(row[5]),
                                                 j["lr_upper"], 1e-15)):
                            e.append("CSV row %r vs JSON %r" % (row, j))
        report("critical --batch %s --sampling %s --csv: JSON and CSV agree "
               "with the reference" % (",".join(map(str, lst)), sampling),
               e, res)
    for spec, check in (
            ("1:40:6:log", lambda b: len(b) <= 6 and b[0] == 1 and b[-1] == 40),
            ("2:33:log", lambda b: b == [2, 4, 8, 16, 32] or
             b == [2, 4, 8, 16, 32, 33]),
            ("7:11", lambda b: b == [7, 8, 9, 10, 11]),
            ("13,2,5,2", lambda b: b == [2, 5, 13]),
            # n stands for the number of samples, as in run's specs
            ("1:n:6:log", lambda b: len(b) <= 6 and b[0] == 1 and b[-1] == 40),
            ("8,n", lambda b: b == [8, 40]),
            ("n", lambda b: b == [40]),
            ("30:n", lambda b: b == list(range(30, 41)))):
        d, res, e = run_json("critical", case.path, "--batch", spec)
        if d is not None:
            e = check_critical(case, "without", d, None)
            b = [x.get("batch") for x in d.get("critical", [])]
            if not (b and b == sorted(set(b)) and check(b)):
                e.append("batches %r for --batch %s" % (b, spec))
        report("critical --batch %s" % spec, e, res)
    # --loss mse through critical (k = 3)
    case = cases[2]
    c = 2.0 / case.k
    d, res, e = run_json("critical", case.path, "--batch", "all",
                         "--loss", "mse", "--sampling", "with")
    if d is not None:
        e = check_critical(case, "with", d, list(range(1, case.n + 1)), c)
    report("critical %s --loss mse --sampling with" % case.name, e, res)


def test_threshold(case):
    """At eta = eta*(B) as `critical` printed it, `analyze` (which solves
    eta* again) says "threshold", not a verdict decided by rounding; a
    little to either side, beyond the band, stable and unstable."""
    d, res, e = run_json("critical", case.path, "--batch", "all")
    errs, bad = list(e), None if d else res
    for entry in (d or {}).get("critical", []):
        B, eta = entry["batch"], entry["lr_critical"]
        want = case.eta_star("without", B)
        for factor, verdict in ((1.0, "threshold"), (1 - 1e-6, "stable"),
                                (1 + 1e-6, "unstable")):
            a, res, e = run_json("analyze", case.path, "--lr",
                                 fmt(eta * factor), "--batch", B)
            if a is not None and a.get("verdict") != verdict:
                e.append("verdict %r at %r eta*, want %r (reference eta* %r, "
                         "rel %.2g)" % (a.get("verdict"), factor, verdict,
                                        want, eta * factor / want - 1))
            if a is not None and factor != 1.0 and \
                    a.get("stable") is not (verdict == "stable"):
                e.append("stable = %r beside verdict %r"
                         % (a.get("stable"), verdict))
            if e:
                errs += ["B=%d: %s" % (B, m) for m in e]
                bad = bad or res
    text = run("analyze", case.path, "--lr", fmt(d["critical"][3]["lr_critical"]
                                                 if d else 1), "--batch", 4)
    if d and "AT THE THRESHOLD (within accuracy)" not in text.out:
        errs.append("text verdict at eta* does not say AT THE THRESHOLD")
        bad = bad or text
    report("analyze at eta*(B) from critical: verdict threshold for every B "
           "of %s; stable / unstable 1e-6 to either side" % case.name,
           errs, bad)


def hessian_with(J, h_rel, at_null):
    """H = G with one eigenvalue replaced by h_rel * lambda_max: on a
    direction J never moves (at_null) or on G's smallest positive one.
    Returns (H, H with that eigenvalue 0, the eigenvalue)."""
    n, p = J.shape[0], J.shape[-1]
    # G's eigenvectors from the SVD of J, so that J's null directions are
    # null to rounding (eigh of JᵀJ would leave them moved by √ε).
    _, s, Vt = np.linalg.svd(J.reshape(-1, p))
    w = np.zeros(p)
    w[:len(s)] = s * s / n
    w[w < 1e-12 * w[0]] = 0
    w, V = w[::-1], Vt[::-1].T                      # ascending
    i = 0 if at_null else int(np.argmax(w > 0))
    h, h0 = w.copy(), w.copy()
    h[i], h0[i] = h_rel * w[-1], 0.0
    return V @ np.diag(h) @ V.T, V @ np.diag(h0) @ V.T, h[i]


def test_curvature():
    """Negative curvature of a supplied H: flat within the tolerance (the
    answer is that of H with it set to 0, by the reference), not a minimum
    beyond it or with --negative-curvature strict; and an exact zero on a
    direction J moves next to a negative eigenvalue, solved first at full
    batch (the shared basis once reported rho = 1 there)."""
    J, _ = ref.random_problem(140, 12, 16, null_dirs=3)
    H, H0, lam = hessian_with(J, -5e-8, True)
    flat, zero = Case("H_flat", J, H), ref.Problem(J, H0)
    lr, B = 0.8 * ref.lr_critical(zero, "without", 4), 4
    d, res, e = run_json("analyze", flat.path, "--lr", fmt(lr), "--batch", B)
    if d is not None:
        steps = 1 / math.log1p(lr * -lam)
        for key, want in (("not_a_minimum", False), ("verdict", "stable"),
                          ("flat_negative_count", 1), ("flat_moved_count", 0)):
            if d.get(key) != want:
                e.append("%s = %r, want %r" % (key, d.get(key), want))
        for key, want, rel in (
                ("flat_negative_min", lam, 1e-6),
                ("flat_negative_steps", steps, 1e-6),
                ("negative_curvature_tolerance", 1e-6, 1e-15),
                ("lr_critical", ref.lr_critical(zero, "without", B), ETA_REL)):
            if not close_rel(d.get(key), want, rel):
                e.append("%s = %r, want %r" % (key, d.get(key), want))
        if not close_abs(d.get("spectral_radius"),
                         ref.rho_perp(zero, lr, "without", B), RHO_ABS):
            e.append("spectral_radius = %r, reference (eigenvalue 0) %r"
                     % (d.get("spectral_radius"),
                        ref.rho_perp(zero, lr, "without", B)))
    text = run("analyze", flat.path, "--lr", fmt(lr), "--batch", B)
    if "flat curvature   1 negative eigenvalue of H" not in text.out:
        e.append("the text does not report the flat eigenvalue")
        res = res or text
    report("H with eigenvalue -5e-8 lambda_max on null(J): flat (reference "
           "with 0 there), reported with its steps", e, res)
    for opt, want in (("strict", True), ("0", True), ("1e-8", True),
                      ("1e-6", False)):
        d, res, e = run_json("analyze", flat.path, "--lr", fmt(lr),
                             "--batch", B, "--negative-curvature", opt)
        if d is not None:
            if d.get("not_a_minimum") is not want:
                e.append("not_a_minimum = %r" % d.get("not_a_minimum"))
            rho = d.get("spectral_radius")
            if want and not (is_num(rho) and
                             rho >= (1 - lr * lam) ** 2 - RHO_ABS):
                e.append("spectral_radius %r below (1 - eta lambda_min)^2"
                         % rho)
        report("--negative-curvature %s on the flat eigenvalue: not a "
               "minimum %s" % (opt, want), e, res)
    H, _, lam = hessian_with(J, -1e-4, True)
    beyond = Case("H_beyond", J, H)
    d, res, e = run_json("critical", beyond.path, "--batch", "1,4")
    if d is not None and [x.get("not_a_minimum") for x in
                          d.get("critical", [])] != [True, True]:
        e.append("critical: %r" % d.get("critical"))
    d2, res2, e2 = run_json("critical", beyond.path, "--batch", "1,4",
                            "--negative-curvature", "1e-3")
    if d2 is not None and [x.get("not_a_minimum") for x in
                           d2.get("critical", [])] != [False, False]:
        e2.append("critical at 1e-3: %r" % d2.get("critical"))
    report("eigenvalue -1e-4 lambda_max: not a minimum at the default "
           "tolerance, flat at --negative-curvature 1e-3", e + e2, res or res2)
    for bad_value in ("-1", "1", "abc", "strictly"):
        r = run("analyze", flat.path, "--lr", 1, "--batch", 2,
                "--negative-curvature", bad_value)
        e = [] if (r.rc == 2 and len(r.err.splitlines()) == 1 and
                   "--negative-curvature" in r.err) else ["rc %d" % r.rc]
        report("--negative-curvature %s: one-line usage error" % bad_value,
               e, r)
    # an exact zero on a direction J moves, and -2e-3 lambda_max beside it
    J, _ = ref.random_problem(141, 30, 8)
    Jm = J.reshape(30, 8)
    w, V = np.linalg.eigh(Jm.T @ Jm / 30)
    h = w.copy()
    h[0], h[1] = 0.0, -2e-3 * w[-1]
    case = Case("H_zero_and_negative", J, V @ np.diag(h) @ V.T)
    for lr in (0.8 / w[-1], 3 / w[-1]):
        d, res, e = run_json("analyze", case.path, "--lr", fmt(lr),
                             "--batch", 30)
        if d is not None:
            want = ref.rho_perp(case.problem(), lr, "without", 30)
            if not close_abs(d.get("spectral_radius"), want, RHO_ABS):
                e.append("spectral_radius = %r, reference %r"
                         % (d.get("spectral_radius"), want))
        report("H with 0 on a moved direction and -2e-3 lambda_max, full "
               "batch, eta = %.3g: rho = reference" % lr, e, res)


def test_extreme_scales():
    """Extreme but finite numbers: within the admitted curvature range the
    answers scale exactly (eta* by 1/s^2, rho unchanged at eta/s^2); beyond
    it, and for learning rates or loss scales whose products overflow, one
    line naming the file and the quantity, exit 1, no output file."""
    J, _ = ref.random_problem(150, 16, 6)
    base = Case("scale_1", J)
    d0, res, e = run_json("critical", base.path, "--batch", "1,4,16")
    for s in (1e-20, 1e20):
        case = Case("scale_%g" % s, J * s)
        d, res, e = run_json("critical", case.path, "--batch", "1,4,16")
        if d is not None and d0 is not None:
            for a, b in zip(d["critical"], d0["critical"]):
                if not close_rel(a["lr_critical"] * s * s, b["lr_critical"],
                                 1e-9):
                    e.append("B=%d: eta* s^2 = %r, unscaled %r"
                             % (a["batch"], a["lr_critical"] * s * s,
                                b["lr_critical"]))
            lr = 1.3 * d0["critical"][1]["lr_critical"]
            a, r1, e1 = run_json("analyze", case.path, "--lr", fmt(lr / s / s),
                                 "--batch", 4)
            b, r2, e2 = run_json("analyze", base.path, "--lr", fmt(lr),
                                 "--batch", 4)
            e += e1 + e2
            if a and b and not close_abs(a["spectral_radius"],
                                         b["spectral_radius"], RHO_ABS):
                e.append("rho %r at eta/s^2, %r unscaled"
                         % (a["spectral_radius"], b["spectral_radius"]))
        report("J x %g: eta* x 1/s^2 and the same rho (scale invariance)" % s,
               e, res)
    outdir = tempfile.mkdtemp(dir=WORK)
    csv = os.path.join(outdir, "x.csv")
    tiny, huge = Case("scale_tiny", J * 1e-300), Case("scale_huge", J * 1e160)
    for what, args, words in (
            ("J x 1e-300", ("critical", tiny.path, "--batch", 4),
             "out of range"),
            ("J x 1e160", ("evolve", huge.path, "--lr", 1, "--batch", 4,
                           "--steps", 3, "--csv", csv), "out of range"),
            ("--lr 1e308", ("analyze", base.path, "--lr", "1e308", "--batch",
                            4), "out of range"),
            ("--loss 1e308", ("critical", base.path, "--batch", 4, "--loss",
                              "1e308"), "loss scale"),
            ("evolve far above eta*", ("evolve", base.path, "--lr", "1e20",
                                       "--batch", 4, "--steps", 400, "--csv",
                                       csv), "overflows"),
            ("simulate far above eta*", ("simulate", base.path, "--lr", "1e20",
                                         "--batch", 4, "--steps", 400,
                                         "--runs", 10, "--quiet", "--csv",
                                         csv), "overflows")):
        r = run(*args)
        lines = r.err.strip().splitlines()
        e = [] if (r.rc == 1 and len(lines) == 1 and words in r.err and
                   os.path.basename(args[1]) in r.err) else \
            ["exit %d, stderr %r" % (r.rc, r.err)]
        if os.listdir(outdir):
            e.append("left %r" % os.listdir(outdir))
        report("%s: one line naming the file and the quantity, exit 1, no "
               "output" % what, e, r)


def test_thread_independence():
    """Every number is the same whatever OPENBLAS_NUM_THREADS says (the
    factorization and the theory hold BLAS at one thread, the engine's
    parallel parts are fixed); phase's wall-clock "seconds" aside."""
    J, _ = ref.random_problem(160, 300, 40)
    case = Case("threads", J)
    runs = (("analyze", "--lr", 1, "--batch", 8),
            ("verify", "--lr", 1, "--batch", 8),
            ("critical", "--batch", "1:n:6:log"),
            ("phase", "--batch", "1:n:4:log", "--lr", "0.2:3:4:log"),
            ("info",))
    for args in runs:
        outs = []
        for threads in ("1", "2"):
            env = dict(os.environ, OPENBLAS_NUM_THREADS=threads)
            p = subprocess.run([harness.SGDSTAB, args[0], case.path] +
                               [str(a) for a in args[1:]] + ["--json"],
                               capture_output=True, text=True, env=env,
                               timeout=120)
            d = json.loads(p.stdout) if p.returncode == 0 else None
            if d is not None:
                d.pop("seconds", None)
            outs.append(d)
        e = [] if outs[0] is not None and outs[0] == outs[1] else \
            ["OPENBLAS_NUM_THREADS=1 and =2 differ"]
        report("%s: the same JSON with 1 and 2 BLAS threads" % args[0], e,
               None)


# ----------------------------------------------------------------- evolve
# ----------------------------------------------------------------- evolve
# ----------------------------------------------------------------- evolve

def evolve_cases():
    rp = ref.random_problem
    return [
        Case("ev_null", *rp(201, 5, 4, null_dirs=1)),        # null direction
        Case("ev_k2", *rp(202, 6, 5, k=2)),
        Case("ev_small_n", *rp(203, 3, 5, k=1)),              # n < p
        Case("ev_H_pd", *rp(204, 4, 3, hessian="pd")),
        Case("ev_H_range", *rp(205, 5, 5, hessian="range", null_dirs=1)),
        Case("ev_Hfile_k2", *rp(206, 4, 4, k=2, hessian="pd"),
             hessian_file=True),
    ]


def check_evolve(case, sampling, B, lr, steps, c, init, want_m2, want_loss,
                 use_csv):
    args = ["evolve", case.path, "--lr", fmt(lr), "--batch", B, "--steps",
            steps, "--sampling", sampling] + case.extra
    if c != 1.0:
        args += ["--loss", fmt(c)]
    if init is not None:
        args += ["--init", init]
    errs = []
    if use_csv:
        cdir = tempfile.mkdtemp(dir=WORK)
        csv = os.path.join(cdir, "ev.csv")
        res = run(*(args + ["--csv", csv]))
        if res.rc != 0 or res.err:
            return ["exit status %d" % res.rc], res
        if sorted(os.listdir(cdir)) != ["ev.csv"]:
            errs.append("directory holds %r" % sorted(os.listdir(cdir)))
        _, head, rows = read_csv(csv)
        if head != "step,second_moment,loss":
            return errs + ["CSV header %r" % head], res
        if len(rows) != steps + 1:
            return errs + ["CSV has %d rows, want %d" % (len(rows),
                                                         steps + 1)], res
        if [r[0] for r in rows] != [str(t) for t in range(steps + 1)]:
            errs.append("step column is not 0..%d" % steps)
        m2 = [float(r[1]) for r in rows]
        loss = [float(r[2]) for r in rows]
    else:
        d, res, e = run_json(*args)
        if d is None:
            return e, res
        if d.get("steps") != steps:
            errs.append("steps = %r" % d.get("steps"))
        m2, loss = d.get("second_moment"), d.get("loss")
        if not (isinstance(m2, list) and isinstance(loss, list)
                and len(m2) == steps + 1 and len(loss) == steps + 1):
            return errs + ["second_moment/loss are not arrays of %d"
                           % (steps + 1)], res
    for t in range(steps + 1):
        if not close_rel(m2[t], want_m2[t], EVOLVE_REL):
            errs.append("t=%d: second_moment %r, reference %r (rel %.3g)"
                        % (t, m2[t], want_m2[t],
                           abs(m2[t] - want_m2[t]) / want_m2[t]))
        if not close_rel(loss[t], want_loss[t], EVOLVE_REL):
            errs.append("t=%d: loss %r, reference %r (rel %.3g)"
                        % (t, loss[t], want_loss[t],
                           abs(loss[t] - want_loss[t]) / want_loss[t]))
    return errs, res


def test_evolve():
    steps = 25
    for case in evolve_cases():
        init_path = os.path.join(WORK, case.name + "_S0.npy")
        S0 = ref.random_psd(300 + case.p, case.p)
        np.save(init_path, S0)
        lowrank_path = os.path.join(WORK, case.name + "_S0_rank2.npy")
        S0r = ref.random_psd(400 + case.p, case.p, rank=2)
        np.save(lowrank_path, S0r)
        for sampling in SAMPLINGS:
            errs, bad, nrun = [], None, 0
            bs = [1, 2] if sampling == "with" else [1, 2, case.n]
            for B in bs:
                eta = case.eta_star(sampling, B)
                for f, init, S, c, use_csv in (
                        (0.5, None, None, 1.0, True),
                        (1.5, None, None, 1.0, False),
                        (0.9, init_path, S0, 1.0, True),
                        (1.2, lowrank_path, S0r, 1.0, False),
                        (0.7, None, None, 0.37, True)):
                    prob = case.problem(c)
                    lr = f * (case.eta_star(sampling, B, c) if c != 1 else eta)
                    m2, loss = ref.evolve(prob, lr, sampling, B, steps, S)
                    e, res = check_evolve(case, sampling, B, lr, steps, c,
                                          init, m2, loss, use_csv)
                    nrun += 1
                    if e:
                        errs += ["B=%d eta=%.3g eta*%s%s%s: %s"
                                 % (B, f, " --init" if init else "",
                                    " --loss %g" % c if c != 1 else "",
                                    " csv" if use_csv else " json", m)
                                 for m in e]
                        bad = bad or res
            report("evolve %s (n=%d k=%d p=%d) --sampling %s: %d runs of %d "
                   "steps against enumeration of every batch"
                   % (case.name, case.n, case.k, case.p, sampling, nrun,
                      steps), errs, bad)
    # CSV and JSON of one run are the same numbers
    case = evolve_cases()[1]
    cdir = tempfile.mkdtemp(dir=WORK)
    csv = os.path.join(cdir, "both.csv")
    d, res, e = run_json("evolve", case.path, "--lr", "0.3", "--batch", 2,
                         "--steps", 7, "--csv", csv)
    if d is not None:
        _, head, rows = read_csv(csv)
        if [float(r[1]) for r in rows] != d["second_moment"] or \
                [float(r[2]) for r in rows] != d["loss"]:
            e.append("CSV %r differs from JSON" % rows)
    report("evolve --csv F --json: same numbers", e, res)
    # --steps 0: just S_0
    d, res, e = run_json("evolve", case.path, "--lr", "0.3", "--batch", 2,
                         "--steps", 0)
    if d is not None:
        want = 0.5 * float(np.trace(case.problem().G)) / case.p
        m2 = d.get("second_moment")
        if not (isinstance(m2, list) and len(m2) == 1
                and close_rel(m2[0], 1.0, 1e-14)):
            e.append("second_moment %r, want [1]" % m2)
        if not (isinstance(d.get("loss"), list) and len(d["loss"]) == 1
                and close_rel(d["loss"][0], want, 1e-13)):
            e.append("loss %r, want %r" % (d.get("loss"), want))
    report("evolve --steps 0", e, res)


# ----------------------------------------------------------------- errors

def expect_error(name, status, args, csv_dir=None):
    res = run(*args)
    e = failure_errors(res, status)
    if csv_dir is not None and os.listdir(csv_dir):
        e.append("left files in the --csv directory: %r"
                 % sorted(os.listdir(csv_dir)))
    report(name, e, res)


def test_errors(cases):
    case = cases[1]                                  # n = 40, p = 6
    f = case.path
    n = case.n
    U, D = (2,), (1,)
    ev_init = os.path.join(WORK, "init_bad_shape.npy")
    np.save(ev_init, np.eye(case.p + 1))
    ev_notpsd = os.path.join(WORK, "init_not_psd.npy")
    np.save(ev_notpsd, ref.not_psd(7, case.p))

    analyze = [
        ("missing --lr", U, ["--batch", 2]),
        ("missing --batch", U, ["--lr", "0.1"]),
        ("--batch 0", U, ["--lr", "0.1", "--batch", 0]),
        # B > n depends on the data: a data error (1); usage (2) accepted
        ("--batch n+1 (without)", (1, 2), ["--lr", "0.1", "--batch", n + 1]),
        ("--batch n+1 (bernoulli)", (1, 2), ["--lr", "0.1", "--batch", n + 1,
                                             "--sampling", "bernoulli"]),
        ("--sampling foo", U, ["--lr", "0.1", "--batch", 2, "--sampling",
                               "foo"]),
        ("--loss -1", U, ["--lr", "0.1", "--batch", 2, "--loss", "-1"]),
        ("--loss bogus", U, ["--lr", "0.1", "--batch", 2, "--loss", "abc"]),
        ("--lr nan", U, ["--lr", "nan", "--batch", 2]),
        ("--lr -1", U, ["--lr", "-1", "--batch", 2]),
        ("unknown option", U, ["--lr", "0.1", "--batch", 2, "--frobnicate"]),
        ("nonexistent file", D, None),
    ]
    for name, st, extra in analyze:
        if extra is None:
            args = ["analyze", os.path.join(WORK, "nope.npy"), "--lr", "0.1",
                    "--batch", 2]
        else:
            args = ["analyze", f] + [str(a) for a in extra]
        expect_error("analyze error: %s -> %s" % (name, st), st, args)
        if extra is not None:
            expect_error("analyze error: %s --json -> %s" % (name, st), st,
                         args + ["--json"])

    critical = [
        ("missing --batch", U, []),
        ("--batch 0", U, ["--batch", "0,1"]),
        ("--batch n+1", (1, 2), ["--batch", "1,%d" % (n + 1)]),
        ("--batch bad range", U, ["--batch", "5:2"]),
        ("--sampling foo", U, ["--batch", "1,2", "--sampling", "foo"]),
        ("--loss -1", U, ["--batch", "1,2", "--loss", "-1"]),
        ("unknown option", U, ["--batch", "1,2", "--frobnicate"]),
    ]
    for name, st, extra in critical:
        cdir = tempfile.mkdtemp(dir=WORK)
        args = ["critical", f] + extra + ["--csv", os.path.join(cdir, "c.csv")]
        expect_error("critical error: %s -> %s (no CSV left)" % (name, st),
                     st, args, cdir)

    base = ["--lr", "0.1", "--batch", 2, "--steps", 3]
    evolve = [
        ("missing --lr", U, ["--batch", 2, "--steps", 3]),
        ("missing --batch", U, ["--lr", "0.1", "--steps", 3]),
        ("missing --steps", U, ["--lr", "0.1", "--batch", 2]),
        ("--batch 0", U, ["--lr", "0.1", "--batch", 0, "--steps", 3]),
        ("--batch n+1", (1, 2), ["--lr", "0.1", "--batch", n + 1,
                                 "--steps", 3]),
        ("--steps -1", U, ["--lr", "0.1", "--batch", 2, "--steps", -1]),
        ("--sampling foo", U, base + ["--sampling", "foo"]),
        ("--loss -1", U, base + ["--loss", "-1"]),
        ("--lr nan", U, ["--lr", "nan", "--batch", 2, "--steps", 3]),
        ("unknown option", U, base + ["--frobnicate"]),
        ("--init wrong shape", D, base + ["--init", ev_init]),
        ("--init not PSD", D, base + ["--init", ev_notpsd]),
        ("--init missing file", D, base + ["--init",
                                           os.path.join(WORK, "none.npy")]),
    ]
    for name, st, extra in evolve:
        cdir = tempfile.mkdtemp(dir=WORK)
        args = ["evolve", f] + [str(a) for a in extra] + \
            ["--csv", os.path.join(cdir, "e.csv")]
        expect_error("evolve error: %s -> %s (no CSV left)" % (name, st),
                     st, args, cdir)
        expect_error("evolve error: %s --json -> %s" % (name, st), st,
                     ["evolve", f] + [str(a) for a in extra] + ["--json"])

    # a failing run leaves an existing CSV untouched
    cdir = tempfile.mkdtemp(dir=WORK)
    csv = os.path.join(cdir, "keep.csv")
    with open(csv, "w") as fh:
        fh.write("old\n")
    res = run("evolve", f, *base, "--init", ev_notpsd, "--csv", csv)
    e = []
    if res.rc != 1:
        e.append("exit status %d" % res.rc)
    if open(csv).read() != "old\n" or os.listdir(cdir) != ["keep.csv"]:
        e.append("existing CSV modified or temporary files left: %r"
                 % sorted(os.listdir(cdir)))
    report("evolve error keeps an existing --csv file intact", e, res)
    harness.expect_not_psd("evolve --init not PSD: the message names the file "
                           "and the eigenvalue", ["evolve", f] + base +
                           ["--init", ev_notpsd], ev_notpsd)


# ----------------------------------------------------------------- meta.json

def write_meta_npz(name, J, meta, H=None):
    """WORK/NAME.npz with J, H and meta.json (cli_harness.npz_with_meta)."""
    return npz_with_meta(os.path.join(WORK, name + ".npz"), J, meta, H)


def provenance_errs(d, meta, interpolating):
    """The JSON keys that report meta.json, against the numbers written."""
    errs = []
    for key in ("residual_rms", "max_residual", "target_rms"):
        if d.get(key) != meta.get(key):
            errs.append("%s = %r, the file has %r" % (key, d.get(key),
                                                      meta.get(key)))
    if d.get("interpolating", "missing") is not interpolating:
        errs.append("interpolating = %r, expected %r"
                    % (d.get("interpolating", "missing"), interpolating))
    return errs


def test_meta():
    n, k, p, B = 12, 3, 5, 3
    J, _ = ref.random_problem(140, n, p, k=k)
    prob = ref.Problem(J)
    lr = 0.8 * ref.lr_critical(prob, "without", B)
    plain = write_meta_npz("meta_none", J, None)
    commands = (("info", []), ("analyze", ["--lr", fmt(lr), "--batch", B]),
                ("verify", ["--lr", fmt(lr), "--batch", B]))

    # (a) an interpolating minimum: no note, the file's numbers in JSON
    meta = {"residual_rms": 2.5e-7, "max_residual": 1e-6, "target_rms": 0.75,
            "n": n, "k": k, "p": p, "train_lr": 0.1, "train_batch": 4,
            "train_sampling": "without", "source": "test", "model": "MLP",
            "unknown_key": [1, {"x": None}]}
    path = write_meta_npz("meta_interp", J, meta)
    for cmd, args in commands:
        d, res, e = run_json(cmd, path, *args)
        if d is not None:
            e = provenance_errs(d, meta, True)
        res_t = run(cmd, path, *args)
        if res_t.rc != 0 or res_t.err or \
                "an interpolating minimum" not in res_t.out:
            e.append("text: status %d, stderr %r, no 'an interpolating "
                     "minimum' line" % (res_t.rc, res_t.err))
        report("%s: interpolating meta.json: no note, the residuals in JSON "
               "and text" % cmd, e, res)
    for cmd, args in commands:
        d, res, e = run_json(cmd, plain, *args)
        if d is not None:
            e = provenance_errs(d, {}, None)
        report("%s: no meta.json: residual keys null" % cmd, e, res)

    # sgdstab synth writes the RMS residual and target: interpolating
    path = os.path.join(WORK, "meta_synth.npz")
    res = run("synth", "rfm", "--samples", 9, "--inputs", 4, "--outputs", 2,
              "--width", 6, "--seed", 3, "-o", path)
    d, res, e = run_json("info", path) if res.rc == 0 else \
        (None, res, ["synth failed"])
    if d is not None:
        with np.load(path) as z:
            Y = z["Y"]
            written = json.loads(z["meta.json"])
        target = math.sqrt(float((Y ** 2).sum(axis=1).mean()))
        if not close_rel(d["target_rms"], target, 1e-14):
            e.append("target_rms %r, NumPy's %r" % (d["target_rms"], target))
        if not (is_num(d["residual_rms"]) and
                0 <= d["residual_rms"] <= 1e-12 * target):
            e.append("residual_rms %r is not ~0" % d["residual_rms"])
        e += provenance_errs(d, written, True)
    report("synth's meta.json: RMS residual ~0, RMS target = NumPy's, "
           "interpolating", e, res)

    # (b) residual 5% of the target: one note, exit 0, the same analysis of
    # the Gauss-Newton surrogate
    meta = {"residual_rms": 0.05, "max_residual": 0.2, "target_rms": 1.0}
    path = write_meta_npz("meta_noisy", J, meta)
    for cmd, args in commands + (("critical", ["--batch", "1,%d" % B]),
                                 ("evolve", ["--lr", fmt(lr), "--batch", B,
                                             "--steps", 3])):
        for extra in ([], ["--json"]):
            res = run(cmd, path, *(args + extra))
            e = []
            if res.rc != 0:
                e.append("exit status %d" % res.rc)
            if not one_line(res.err) or "not an interpolating minimum" not in \
                    res.err or path not in res.err or "0.05" not in res.err \
                    or " 5% " not in res.err or "Gauss-Newton" not in res.err:
                e.append("want one note naming the file, 0.05 and 5%%: %r"
                         % res.err)
            if not res.out:
                e.append("nothing on stdout")
            reports = cmd in ("info", "analyze", "verify")
            if reports and extra and res.rc == 0:
                e += provenance_errs(json.loads(res.out), meta, False)
            elif reports and not extra and \
                    "not an interpolating minimum, so the analysis is of " \
                    "the Gauss-Newton surrogate" not in res.out:
                e.append("no text line about the residual")
            report("%s: meta.json residual 5%% of the target: one note, "
                   "exit 0" % " ".join([cmd] + extra), e, res)
    an = ["--lr", fmt(lr), "--batch", B]
    d0, res0, e = run_json("analyze", plain, *an)
    res = run("analyze", path, *an, "--json")
    if d0 is not None and res.rc == 0:
        d = json.loads(res.out)
        for key in ("spectral_radius", "lr_critical", "sharpness"):
            if d[key] != d0[key]:
                e.append("%s %r, without meta.json %r" % (key, d[key],
                                                          d0[key]))
        if not close_abs(d["spectral_radius"],
                         ref.rho_perp(prob, lr, "without", B), RHO_ABS):
            e.append("spectral_radius is not G's (reference)")
    report("analyze: a non-interpolating meta.json leaves the analysis of G "
           "unchanged", e, res)
    # with H the note says H is used without the additive noise
    JH, H = ref.random_problem(141, n, p, k=k, hessian="pd")
    res = run("analyze", write_meta_npz("meta_noisy_H", JH, meta, H), *an)
    e = [] if res.rc == 0 and one_line(res.err) and "H is used" in res.err \
        and "additive noise" in res.err else ["note %r" % res.err]
    report("analyze: non-interpolating meta.json with H: the note names H",
           e, res)

    # (c) "loss" in meta.json is the default of --loss
    errs, bad = [], None
    for loss, c in (("mse", 2.0 / k), (0.37, 0.37), ("half-mean", 1.0)):
        path = write_meta_npz("meta_loss", J, {"loss": loss})
        d, res, e = run_json("analyze", path, *an)
        d_opt, res_opt, e_opt = run_json("analyze", plain, *an, "--loss",
                                         str(loss))
        d_over, res_over, e_over = run_json("analyze", path, *an, "--loss",
                                            "half-mean")
        d_half, _, e_half = run_json("analyze", plain, *an)
        e += e_opt + e_over + e_half
        if not e:
            if d["loss_scale"] != c:
                e.append("loss_scale %r, want %r" % (d["loss_scale"], c))
            if d["spectral_radius"] != d_opt["spectral_radius"]:
                e.append("rho %r, with --loss %s %r"
                         % (d["spectral_radius"], loss,
                            d_opt["spectral_radius"]))
            if not close_abs(d["spectral_radius"], ref.rho_perp(
                    ref.Problem(J, c=c), lr, "without", B), RHO_ABS):
                e.append("rho is not the reference's with c = %r" % c)
            if d_over["loss_scale"] != 1 or \
                    d_over["spectral_radius"] != d_half["spectral_radius"]:
                e.append("--loss half-mean does not override: loss_scale %r"
                         % d_over["loss_scale"])
            res_t = run("analyze", path, *an)
            if "loss %s from the file's metadata" % loss not in res_t.out:
                e.append("text does not say the loss came from the file")
        if e:
            errs += ["loss %r: %s" % (loss, m) for m in e]
            bad = bad or res
    report("analyze: meta.json \"loss\" mse (k = 3) / 0.37 / half-mean = "
           "--loss, and --loss overrides it", errs, bad)

    # (d) bad metadata: one line naming the file and meta.json, exit 1
    bad = (("invalid JSON", '{"n": 12,'), ("not an object", "[1, 2]"),
           ("n mismatch", {"n": n + 1}), ("k mismatch", {"k": 1}),
           ("p mismatch", {"n": n, "p": p + 2}),
           ("loss bogus", {"loss": "bogus"}),
           ("loss negative", {"loss": -1}),
           ("residual_rms -1", {"residual_rms": -1}),
           ("target_rms 0", {"target_rms": 0}),
           ("n 1.5", {"n": 1.5}), ("train_batch 0", {"train_batch": 0}),
           ("larger than 1 MiB", "{}" + " " * (1 << 20)))
    for name, meta in bad:
        path = write_meta_npz("meta_bad", J, meta)
        errs, bad_res = [], None
        for cmd, args in commands:
            for extra in ([], ["--json"]):
                res = run(cmd, path, *(args + extra))
                e = failure_errors(res, (1,))
                if path not in res.err or "meta.json" not in res.err:
                    e.append("stderr does not name the file and meta.json")
                if e:
                    errs += ["%s: %s" % (" ".join([cmd] + extra), m)
                             for m in e]
                    bad_res = bad_res or res
        report("info/analyze/verify (text, --json): meta.json %s -> exit 1, "
               "one line naming the file" % name, errs, bad_res)


# ----------------------------------------------------------------- bench

def test_bench():
    d, res, e = run_json("bench", "--samples", 60, "--params", 40,
                         "--curve", 5, "--phase", 3)
    if d is not None:
        for key in ("dgemm_gflops", "apply_fraction_of_dgemm",
                    "critical_applications", "curve_over_critical",
                    "phase_solves_per_second", "phase_applications_per_solve",
                    "simulate_steps_per_second"):
            v = d.get(key)
            if not (is_num(v) and math.isfinite(v) and v > 0):
                e.append("%s = %r, want a positive finite number" % (key, v))
        if d.get("phase_solves") != 3 * (3 + 1):
            e.append("phase_solves = %r, want 12 (3 x 3 grid + 3 boundary "
                     "solves)" % d.get("phase_solves"))
    report("bench --samples 60 --params 40 --curve 5 --phase 3 --json", e, res)


# ----------------------------------------------------------------- main

def body(work):
    global WORK
    WORK = work
    cases = make_cases()
    test_analyze(cases)
    test_loss(cases)
    test_negative(cases)
    test_critical(cases)
    test_threshold(cases[0])
    test_curvature()
    test_extreme_scales()
    test_thread_independence()
    test_evolve()
    test_errors(cases)
    test_meta()
    test_bench()


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, "engine", body, selfcheck=(
        ref.selfcheck, "reference self-check", "Kronecker T = enumeration "
        "of every batch, (a, b) table, rho(eta*) = 1")))
