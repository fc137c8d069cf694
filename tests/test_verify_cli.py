#!/usr/bin/python3
"""End-to-end tests of `sgdstab verify` (README, The theory checks; theory.h)
through the CLI.

usage: test_verify_cli.py SGDSTAB

Every expected number comes from theory_reference.py and engine_reference.py
(same directory): the README's mathematics in the full parameter space
with plain NumPy/SciPy (Kronecker matrices, eigh on range(G), no SVD of J),
never from the tool's own output.

Tolerances, with the reason for each:
  RHO_ABS   1e-10 absolute  rho_⊥: the engine's documented accuracy (error
                            estimate <= 1e-11 rho; same as engine-cli)
  ETA_REL   1e-9  relative  eta*(B): the engine's documented 1e-10 (same as
                            engine-cli); quantities derived from eta* (check
                            values, ratios) get the propagated sum of the
                            tolerances of their inputs, i.e. ~1e-8 at most
  EXACT_REL 1e-12 relative  lambda_max, |H|_F, tr H, 2/lambda_max: one
                            well-conditioned eigenvalue / a sum, in two
                            different factorizations (SVD vs eigh)
  SPEC_REL  1e-9            mu_min and s: extreme eigenvalues of small
                            symmetric matrices.  A backward-stable solver is
                            exact to ~eps |K|_2, and forming K adds errors of
                            the same order, so mu_min gets
                            1e-9 (|mu_min| + mu_max) (mu_max: the top of the
                            same generalized spectrum), s^2 gets
                            d = 1e-9 (s^2 + (1/n) sum |A_i|_F^2) and s
                            d/(s + sqrt d); quantities derived from mu_min
                            inherit its relative tolerance
  alignment_top             mu at the top eigenmatrix S* of T: the engine's
                            eigenvector is converged to a residual
                            |R| <= 1e-10 rho (stability.h), so by Davis-Kahan
                            |dS*|_F <= |R|/gap and
                            |d mu| <= |N - mu G|_F |dS*|_F / |tr(G S*)|,
                            N = M/|G|_F^2; the tolerance is twice that
                            (observed: about 1/80 of it at worst), plus
                            1e-9 relative
Exit status 0 iff every check passed.
"""

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as harness  # noqa: E402
import engine_reference as ref  # noqa: E402
from cli_harness import (ETA_REL, EXACT_REL, RHO_ABS,  # noqa: E402
                         SAMPLINGS, SPEC_REL, failure_errors, fmt, is_num,
                         report, run, run_json)
import theory_reference as tref  # noqa: E402

EIGVEC_RESIDUAL = 1e-10

KEYS = ("file n k p input rank lr batch sampling optimizer loss_scale a b stable "
        "verdict "
        "spectral_radius escape_rate_per_step escape_rate_per_epoch "
        "lr_critical lr_critical_mean sharpness hessian_frobenius "
        "hessian_trace nonuniformity alignment_min alignment_top "
        "frobenius_bound growth_bound escape_rate_lower_bound "
        "theorems_failed operator_applications residual_rms max_residual "
        "target_rms interpolating checks").split()
CHECK_KEYS = ("name", "description", "value", "bound", "relation", "theorem",
              "holds", "ratio")

# The keys of nums (expectations) that hold the expected value and bound of
# a check: a check not in CHECK_VALUE has the value nonuniformity; the bounds
# of the checks not in CHECK_BOUND are computed in expectations.
CHECK_VALUE = {
    "mean_stability": "lr_critical",
    "mulayoff_michaeli_top": "lr_critical",
    "mulayoff_michaeli_trace": "lr_critical",
    "wu_wang_su_lr": "lr_critical",
    "wu_wang_su_frobenius": "hessian_frobenius",
    "wu_wang_su_escape": "spectral_radius",
    "alignment_top": "alignment_top",
    "wu_ma_e_sharpness": "sharpness",
}
CHECK_BOUND = {
    "mean_stability": "lr_critical_mean",
    "wu_wang_su_frobenius": "frobenius_bound",
    "wu_wang_su_escape": "growth_bound",
    "alignment_top": "alignment_min",
}

WORK = None


# ----------------------------------------------------------------- numbers

class Num:
    """An expected number with its absolute tolerance; inf means the JSON
    must hold null."""

    def __init__(self, x, tol):
        self.x, self.tol = float(x), float(tol)

    @staticmethod
    def rel(x, r, floor=0.0):
        return Num(x, r * abs(x) + floor)


def mismatch(got, want):
    """None if the JSON value got matches want (a Num), else a message."""
    if math.isinf(want.x):
        return None if got is None else "%r, expected null (infinite)" % got
    if not (is_num(got) and math.isfinite(got)):
        return "%r, expected %r" % (got, want.x)
    if abs(got - want.x) <= want.tol:
        return None
    return "%r, reference %r (difference %.3g > tolerance %.3g)" % (
        got, want.x, abs(got - want.x), want.tol)


def ratio_num(value, bound, relation):
    """Expected tightness ratio, with the tolerance propagated from the
    tolerances of value and bound (relative errors add)."""
    if relation == "<=":
        num, den = value, bound
    else:
        num, den = bound, value
    if math.isinf(den.x):
        return Num(0.0, 0.0)
    q = num.x / den.x
    rel = (num.tol / abs(num.x) if num.x else 0) + den.tol / abs(den.x)
    tol = abs(q) * rel + (num.tol / abs(den.x) if num.x == 0 else 0)
    return Num(q, tol + 1e-14 * abs(q))


def expectations(prob, lr, sampling, B):
    """The reference for one run: (r, nums, checks) where nums maps JSON keys
    to Num, checks maps a check name to (value Num, bound Num, relation,
    theorem flag: True/False, or None = either is acceptable)."""
    r = tref.verify(prob, lr, sampling, B)
    eta, rho = r["lr_critical"], r["spectral_radius"]
    b = r["b"]
    mu, mu_max = r["alignment_min"], r["alignment_max"]
    f, lam = r["hessian_frobenius"], r["sharpness"]
    mu_tol = SPEC_REL * (abs(mu) + mu_max)
    # s^2 is an extreme eigenvalue of a difference, exact to
    # d = SPEC_REL (s^2 + (1/n) sum |A_i|_F^2); hence |ds| <= d / (s + sqrt d)
    s = r["nonuniformity"]
    d2 = SPEC_REL * (s * s + r["frobenius_moment"])
    s_tol = d2 / (s + math.sqrt(d2))
    # mu at the top eigenmatrix (see the module docstring)
    S = r["top_eigenmatrix"]
    N = tref.alignment_operator(prob) / float(np.sum(prob.G * prob.G))
    kappa = float(np.linalg.norm(N - r["alignment_top"] * prob.G)) / \
        abs(float(np.sum(prob.G * S)))
    gap = r["spectral_gap"]
    top_tol = (2 * kappa * EIGVEC_RESIDUAL * rho / gap if gap > 0
               else math.inf) + SPEC_REL * abs(r["alignment_top"])

    def mu_derived(x, power):
        """x proportional to mu^power: relative tolerance |power| mu_tol/mu,
        or absolute when mu is (near) zero."""
        if math.isinf(x):
            return Num(x, 0)
        if mu > 1e3 * mu_tol:
            return Num.rel(x, abs(power) * mu_tol / mu + EXACT_REL)
        return Num(x, abs(x) + 1e-300)          # mu ~ 0: anything near

    growth = r["growth_bound"]
    nums = {
        "a": Num(r["a"], 1e-15), "b": Num(b, 1e-15),
        "loss_scale": Num.rel(prob.c, 1e-15),
        "spectral_radius": Num(rho, RHO_ABS),
        "escape_rate_per_step": Num(math.log(rho), RHO_ABS / rho * 1.01),
        "escape_rate_per_epoch": Num(prob.n / B * math.log(rho),
                                     prob.n / B * RHO_ABS / rho * 1.01),
        "lr_critical": Num.rel(eta, ETA_REL),
        "lr_critical_mean": Num.rel(2 / lam, EXACT_REL),
        "sharpness": Num.rel(lam, EXACT_REL),
        "hessian_frobenius": Num.rel(f, EXACT_REL),
        "hessian_trace": Num.rel(r["hessian_trace"], EXACT_REL),
        "nonuniformity": Num(s, s_tol),
        "alignment_min": Num(mu, mu_tol),
        "alignment_top": Num(r["alignment_top"], top_tol),
        "frobenius_bound": mu_derived(r["frobenius_bound"], -0.5),
        "growth_bound": mu_derived(growth, 1),
    }
    if growth > 0 and mu > 1e3 * mu_tol:
        nums["escape_rate_lower_bound"] = Num(math.log(growth),
                                              mu_tol / mu + 1e-12)
    elif b == 0:
        nums["escape_rate_lower_bound"] = Num(-math.inf, 0)
    # else: ln of a number ~0, no meaningful expectation
    # MM bounds: closed forms of lambda_max, v, the moments (well-conditioned
    # eigenvalues and sums; v enters squared): SPEC_REL relative
    checks = {}
    rc = r["checks"]
    for name, (value, bound, rel, theorem) in rc.items():
        v = nums[CHECK_VALUE.get(name, "nonuniformity")]
        if name in CHECK_BOUND:
            bd = nums[CHECK_BOUND[name]]
        elif name.startswith("mulayoff_michaeli"):
            bd = Num.rel(bound, SPEC_REL)
        elif name == "wu_wang_su_lr":
            bd = mu_derived(bound, -0.5)
        else:
            bd = Num(bound, 1e-15 * abs(bound)) if math.isfinite(bound) \
                else Num(bound, 0)
        if name == "alignment_top":
            # a theorem when S* is semidefinite, which it is when the top
            # eigenvalue is simple (Krein-Rutman); with a tiny gap, either
            theorem = True if gap > 1e-6 * rho else None
        checks[name] = (v, bd, rel, theorem)
    return r, nums, checks


def check_json(d, case, prob, lr, B, sampling, loss_label=None):
    """All checks of one `verify --json` answer; returns (errors, r)."""
    errs = []
    missing = [k for k in KEYS if k not in d]
    if missing:
        return ["missing keys %s" % missing], None
    extra = sorted(set(d) - set(KEYS))
    if extra:
        errs.append("undocumented keys %s" % extra)
    apps = d["operator_applications"]
    if not (isinstance(apps, int) and not isinstance(apps, bool) and apps >= 0):
        errs.append("operator_applications %r: not a count" % (apps,))
    r, nums, checks = expectations(prob, lr, sampling, B)
    for key, want in (("n", prob.n), ("k", prob.k), ("p", prob.p),
                      ("batch", B), ("rank", prob.rank_J()),
                      ("theorems_failed", 0)):
        v = d[key]
        if not (isinstance(v, int) and not isinstance(v, bool) and v == want):
            errs.append("%s = %r, expected %r" % (key, v, want))
    if d["file"] != case.path:
        errs.append("file = %r, expected %r" % (d["file"], case.path))
    if d["lr"] != lr:
        errs.append("lr = %r, expected %r" % (d["lr"], lr))
    if d["sampling"] != sampling:
        errs.append("sampling = %r" % d["sampling"])
    if d["stable"] is not r["stable"]:
        errs.append("stable = %r, but eta = %r and reference eta* = %r"
                    % (d["stable"], lr, r["lr_critical"]))
    if d["verdict"] != ("stable" if r["stable"] else "unstable"):
        errs.append("verdict = %r at eta = %r, reference eta* = %r"
                    % (d["verdict"], lr, r["lr_critical"]))
    for key, want in nums.items():
        m = mismatch(d[key], want)
        if m:
            errs.append("%s = %s" % (key, m))
    # alignment_top >= alignment_min, directly on the tool's own numbers
    if is_num(d["alignment_top"]) and is_num(d["alignment_min"]) and \
            d["alignment_top"] < d["alignment_min"] - nums["alignment_top"].tol:
        errs.append("alignment_top %r < alignment_min %r"
                    % (d["alignment_top"], d["alignment_min"]))
    # the checks array
    ch = d["checks"]
    if not isinstance(ch, list) or not all(isinstance(c, dict) for c in ch):
        return errs + ["checks is not an array of objects"], r
    names = [c.get("name") for c in ch]
    want_names = [c[0] for c in tref.CHECKS]
    if sorted(names) != sorted(want_names):
        errs.append("check names %r, expected %r" % (names, want_names))
    nfailed = 0
    for c in ch:
        name = c.get("name")
        if name not in checks:
            continue
        if sorted(c) != sorted(CHECK_KEYS):
            errs.append("%s: keys %r" % (name, sorted(c)))
            continue
        v, bd, rel, theorem = checks[name]
        if not (isinstance(c["description"], str) and c["description"]):
            errs.append("%s: empty description" % name)
        if c["relation"] != rel:
            errs.append("%s: relation %r, expected %r"
                        % (name, c["relation"], rel))
        if theorem is not None and c["theorem"] is not theorem:
            errs.append("%s: theorem = %r, expected %r"
                        % (name, c["theorem"], theorem))
        if not isinstance(c["theorem"], bool) or \
                not isinstance(c["holds"], bool):
            errs.append("%s: theorem/holds are not booleans" % name)
            continue
        for what, got, want in (("value", c["value"], v),
                                ("bound", c["bound"], bd),
                                ("ratio", c["ratio"], ratio_num(v, bd, rel))):
            m = mismatch(got, want)
            if m:
                errs.append("%s: %s = %s" % (name, what, m))
        # the inequality on the reference numbers; its margin must exceed
        # the tolerances for a verdict to be demanded
        margin = (bd.x - v.x) if rel == "<=" else (v.x - bd.x)
        slack = v.tol + bd.tol + 1e-8 * abs(bd.x if math.isfinite(bd.x)
                                             else 0)
        if c["theorem"]:
            if margin < -slack:
                errs.append("%s: a theorem, yet it fails on the reference "
                            "numbers (value %r, bound %r): reference or test "
                            "bug" % (name, v.x, bd.x))
            if not c["holds"]:
                errs.append("%s: holds = false for a theorem (value %r, "
                            "bound %r)" % (name, c["value"], c["bound"]))
        elif abs(margin) > slack and c["holds"] is not (margin > 0):
            errs.append("%s: holds = %r, but on the reference numbers value "
                        "%r %s bound %r is %r" % (name, c["holds"], v.x, rel,
                                                  bd.x, margin > 0))
        if c["theorem"] and not c["holds"]:
            nfailed += 1
    if d["theorems_failed"] != nfailed:
        errs.append("theorems_failed = %r, but %d theorem checks do not hold"
                    % (d["theorems_failed"], nfailed))
    return errs, r


# ----------------------------------------------------------------- problems

class Case(harness.Case):
    """J written to disk as .npy, with its reference Problem per loss."""

    def __init__(self, name, J):
        super().__init__(WORK, name, J)


LOSSES = (("half-mean", None), ("mse", None), ("0.37", 0.37))


def loss_scale(label, k):
    if label == "half-mean":
        return 1.0
    if label == "mse":
        return 2.0 / k
    return float(label)


def verify_run(case, sampling, B, factor, loss=None, extra=()):
    """One `verify --json` run at eta = factor * eta*(B) (in the loss
    convention), checked against the reference; returns (errs, res, d, r)."""
    c = 1.0 if loss is None else loss_scale(loss, case.k)
    lr = factor * case.eta_star(sampling, B, c)
    args = ["verify", case.path, "--lr", fmt(lr), "--batch", B,
            "--sampling", sampling] + list(extra)
    if loss is not None:
        args += ["--loss", loss]
    d, res, e = run_json(*args)
    r = None
    if d is not None:
        e, r = check_json(d, case, case.problem(c), lr, B, sampling)
    return e, res, d, r


def test_grid():
    rp = ref.random_problem
    cases = [
        Case("small_n", rp(301, 5, 12)[0]),          # n < p, k = 1
        Case("large_n", rp(302, 40, 6)[0]),          # n > p, k = 1
        Case("k3_small_n", rp(303, 3, 16, k=3)[0]),  # n k < p, k = 3
        Case("k3_large_n", rp(304, 30, 5, k=3)[0]),  # n k > p, k = 3
        Case("null_dir", rp(305, 12, 7, null_dirs=2)[0]),  # rank J < p
    ]
    for case in cases:
        for sampling in SAMPLINGS:
            bs = sorted({1, max(2, case.n // 3), case.n})
            if sampling == "with":
                bs.append(case.n + 2)       # B > n is fine with replacement
            errs, bad, nrun = [], None, 0
            for B in bs:
                for factor in (0.5, 1.5):
                    for loss, _ in LOSSES:
                        e, res, _, _ = verify_run(case, sampling, B, factor,
                                                  None if loss == "half-mean"
                                                  else loss)
                        nrun += 1
                        if e:
                            errs += ["B=%d eta=%.1f eta* --loss %s: %s"
                                     % (B, factor, loss, m) for m in e]
                            bad = bad or res
            report("verify %s (n=%d k=%d p=%d) --sampling %s: %d runs, B in "
                   "%s, eta/eta* in 0.5 1.5, --loss half-mean/mse/0.37"
                   % (case.name, case.n, case.k, case.p, sampling, nrun, bs),
                   errs, bad)
    # the default sampling is 'without', the default loss half-mean, and
    # `--loss half-mean` is the same as no --loss
    case = cases[1]
    e, res, d, _ = verify_run(case, "without", 5, 0.8)
    d2, res2, e2 = run_json("verify", case.path, "--lr",
                            fmt(0.8 * case.eta_star("without", 5)),
                            "--batch", 5)
    if d is not None and d2 is not None and d2 != d:
        e.append("no --sampling differs from --sampling without")
    report("verify without --sampling/--loss = without, half-mean", e + e2,
           res2 if e2 else res)
    # text output: exit 0, the verdict and every check name
    lr = 1.5 * case.eta_star("with", 3)
    res = run("verify", case.path, "--lr", fmt(lr), "--batch", 3,
              "--sampling", "with")
    e = []
    if res.rc != 0 or res.err:
        e.append("exit status %d / stderr %r" % (res.rc, res.err))
    if "UNSTABLE" not in res.out:
        e.append("no UNSTABLE verdict at 1.5 eta*")
    for name, _, _ in tref.CHECKS:
        if name not in res.out:
            e.append("check %s not in the text" % name)
    report("verify text output", e, res)


def test_random_many():
    """Many small random problems: every number against the reference,
    exit 0 and theorems_failed = 0."""
    rng = np.random.default_rng(4242)
    errs, bad, nrun = [], None, 0
    for t in range(40):
        n = int(rng.integers(2, 9))
        k = int(rng.choice([1, 1, 2, 3]))
        p = int(rng.integers(1, 7))
        J = rng.standard_normal((n, k, p)) * rng.uniform(0.2, 3.0)
        case = Case("rand%02d" % t, J if k > 1 else J[:, 0, :])
        sampling = SAMPLINGS[t % 3]
        B = int(rng.integers(1, n + 1))
        loss = (None, "mse", "0.37", "5")[int(rng.integers(0, 4))]
        factor = float(rng.choice([0.3, 0.9, 1.1, 2.5]))
        e, res, d, _ = verify_run(case, sampling, B, factor, loss)
        nrun += 1
        if e:
            errs += ["%s (n=%d k=%d p=%d) %s B=%d eta=%.1f eta* --loss %s: %s"
                     % (case.name, n, k, p, sampling, B, factor, loss, m)
                     for m in e]
            bad = bad or res
    report("verify on %d random problems (n 2..8, k 1..3, p 1..6, every "
           "sampling, 4 losses): reference numbers, exit 0, "
           "theorems_failed 0" % nrun, errs, bad)


def test_closed_forms():
    """Rank-one J (p = 1, or all J_i parallel): mu_min = m4/m2^2 - 1,
    s = sqrt(m4 - m2^2), both Mulayoff-Michaeli bounds equal eta* (tight,
    ratio 1), mu at the top eigenmatrix = mu_min (r = 1)."""
    rng = np.random.default_rng(77)
    cases = [Case("p1", rng.standard_normal((6, 1))),
             Case("p1_k3", rng.standard_normal((5, 3, 1))),
             Case("rank1", tref.rank_one_problem(31, 7, 4)),
             Case("rank1_k3", tref.rank_one_problem(32, 4, 5, k=3))]
    for case in cases:
        errs, bad = [], None
        for sampling in SAMPLINGS:
            for B in (1, 2, case.n):
                for loss in (None, "mse"):
                    c = 1.0 if loss is None else 2.0 / case.k
                    x = c * np.sum(case.J.reshape(case.n, case.k, case.p) ** 2,
                                   axis=(1, 2))
                    cf = tref.scalar_closed_form(x, sampling, case.n, B)
                    e, res, d, _ = verify_run(case, sampling, B, 0.7, loss)
                    if d is not None:
                        e = e + closed_form_errors(d, cf)
                    if e:
                        errs += ["%s B=%d --loss %s: %s" % (sampling, B, loss,
                                                            m) for m in e]
                        bad = bad or res
        report("verify closed forms on %s (n=%d k=%d p=%d, rank 1): mu_min, "
               "s, tight Mulayoff-Michaeli bounds, every sampling"
               % (case.name, case.n, case.k, case.p), errs, bad)


def closed_form_errors(d, cf):
    e = []
    for key, want, tol in (("sharpness", cf["lambda"], 1e-12),
                           ("hessian_frobenius", cf["lambda"], 1e-12),
                           ("hessian_trace", cf["lambda"], 1e-12),
                           ("nonuniformity", cf["s"], 1e-9),
                           ("alignment_min", cf["mu_min"], 1e-9),
                           ("alignment_top", cf["mu_min"], 1e-9),
                           ("lr_critical", cf["eta"], 1e-9)):
        m = mismatch(d[key], Num.rel(want, tol))
        if m:
            e.append("%s (closed form) = %s" % (key, m))
    for c in d["checks"]:
        if c.get("name") in ("mulayoff_michaeli_top",
                             "mulayoff_michaeli_trace", "alignment_top"):
            m = mismatch(c.get("ratio"), Num(1.0, 1e-8))
            if m:
                e.append("%s: ratio = %s (tight in rank one)" % (c["name"], m))
            m = mismatch(c.get("bound"), Num.rel(
                cf["eta"] if c["name"] != "alignment_top" else cf["mu_min"],
                1e-9))
            if m:
                e.append("%s: bound (closed form) = %s" % (c["name"], m))
    return e


def test_edges():
    # B = n without replacement (and bernoulli): b = 0, full-batch GD.  eta*
    # = 2/lambda_max, mean stability and the top MM bound are tight, the
    # Wu-Wang-Su bounds infinite (null), growth bound 0.
    case = Case("full_batch", ref.random_problem(401, 9, 5)[0])
    for sampling in ("without", "bernoulli"):
        errs, bad = [], None
        for factor in (0.5, 1.5):
            e, res, d, _ = verify_run(case, sampling, case.n, factor)
            if d is not None:
                for key, want in (("frobenius_bound", None),
                                  ("escape_rate_lower_bound", None),
                                  ("growth_bound", 0), ("b", 0), ("a", 1)):
                    if d[key] != want:
                        e.append("%s = %r, expected %r" % (key, d[key], want))
                byname = {c.get("name"): c for c in d["checks"]}
                for name in ("mean_stability", "mulayoff_michaeli_top"):
                    m = mismatch(byname.get(name, {}).get("ratio"),
                                 Num(1.0, 1e-8))
                    if m:
                        e.append("%s: ratio = %s (tight at b = 0)" % (name, m))
                for name in ("wu_wang_su_lr", "wu_wang_su_frobenius",
                             "wu_ma_e_nonuniformity"):
                    cc = byname.get(name, {})
                    if cc.get("bound", 0) is not None or cc.get("ratio") != 0:
                        e.append("%s: bound %r ratio %r, expected null and 0"
                                 % (name, cc.get("bound"), cc.get("ratio")))
            if e:
                errs += ["eta=%.1f eta*: %s" % (factor, m) for m in e]
                bad = bad or res
        report("verify --batch n --sampling %s: b = 0, eta* = 2/lambda_max "
               "tight, Wu-Wang-Su bounds null" % sampling, errs, bad)
    # one sample (A_1 = G) and n copies of one sample (every A_i = G): no
    # gradient noise at all, mu_min = 0 and eta* = 2/lambda_max
    J1 = np.random.default_rng(402).standard_normal((1, 2, 4))
    for case, runs in (
            (Case("one_sample", J1),
             (("with", 2), ("without", 1), ("bernoulli", 1))),
            (Case("copies", np.repeat(J1, 3, axis=0)),
             (("with", 2), ("without", 2), ("bernoulli", 1)))):
        test_noiseless(case, runs)


def test_noiseless(case, runs):
    """mu_min = 0: no Wu-Wang-Su bound, and no false theorem failure from
    comparing two numbers that are both zero up to rounding.  eta* =
    2/lambda_max except for bernoulli with B < n, where the random batch
    size alone is noise (a = 1: eta* = 2/((1 + b) lambda_max))."""
    errs, bad = [], None
    lam = case.problem().sharpness()
    for sampling, B in runs:
        _, b = ref.ab(sampling, case.n, B)
        eta = 2 / lam / (1 + b if sampling == "bernoulli" else 1)
        if abs(case.eta_star(sampling, B) - eta) > 1e-10 * eta:
            errs.append("reference eta* %r, closed form %r"
                        % (case.eta_star(sampling, B), eta))
        for factor in (0.5, 1.5):
            lr = factor * eta
            d, res, e = run_json("verify", case.path, "--lr", fmt(lr),
                                 "--batch", B, "--sampling", sampling)
            if d is not None:
                for key, want, tol in (("alignment_min", 0.0, 1e-10),
                                       ("lr_critical", eta, ETA_REL * eta),
                                       ("theorems_failed", 0, 0)):
                    m = mismatch(d[key], Num(want, tol))
                    if m:
                        e.append("%s = %s" % (key, m))
                g = d["growth_bound"]
                if not (is_num(g) and abs(g) <= 1e-10 * lr * lr * lam * lam):
                    e.append("growth_bound = %r, expected ~0" % g)
                fb = d["frobenius_bound"]
                if fb is not None and not fb > 1e4 / lr:
                    e.append("frobenius_bound = %r, expected null or huge" % fb)
            if e:
                errs += ["%s B=%d eta=%.1f eta*: %s"
                         % (sampling, B, factor, m) for m in e]
                bad = bad or res
    report("verify on %s (n=%d, every A_i = G): mu_min = 0, eta* in closed "
           "form, exit 0, theorems_failed 0" % (case.name, case.n), errs, bad)


# ----------------------------------------------------------------- errors

def expect_error(name, status, args, want_in_err=None):
    res = run(*args)
    e = failure_errors(res, status)
    if want_in_err and want_in_err not in res.err:
        e.append("stderr does not name %r" % want_in_err)
    report(name, e, res)


def test_errors():
    J, H = ref.random_problem(501, 8, 4, hessian="pd")
    npz = os.path.join(WORK, "with_hessian.npz")
    np.savez(npz, J=J, H=H)
    Hg = ref.Problem(J).G
    npz_g = os.path.join(WORK, "with_hessian_G.npz")
    np.savez(npz_g, J=J, H=Hg)          # even H = G exactly: H is refused
    Hpath = os.path.join(WORK, "H.npy")
    np.save(Hpath, H)
    f = os.path.join(WORK, "plain.npy")
    np.save(f, J)
    U, D = (2,), (1,)
    for path in (npz, npz_g):
        for extra in ([], ["--json"]):
            expect_error("verify %s %s-> exit 1, one line naming the file"
                         % (os.path.basename(path), " ".join(extra)), D,
                         ["verify", path, "--lr", "0.1", "--batch", 2] + extra,
                         os.path.basename(path))
    base = ["verify", f]
    for name, st, extra in (
            ("missing --lr", U, ["--batch", 2]),
            ("missing --batch", U, ["--lr", "0.1"]),
            ("missing --lr --json", U, ["--batch", 2, "--json"]),
            ("missing --batch --json", U, ["--lr", "0.1", "--json"]),
            ("--hessian is not an option", U, ["--lr", "0.1", "--batch", 2,
                                               "--hessian", Hpath]),
            ("--batch 0", U, ["--lr", "0.1", "--batch", 0]),
            ("--batch n+1", (1, 2), ["--lr", "0.1", "--batch", 9]),
            ("--sampling foo", U, ["--lr", "0.1", "--batch", 2,
                                   "--sampling", "foo"]),
            ("--loss -1", U, ["--lr", "0.1", "--batch", 2, "--loss", "-1"]),
            ("--lr nan", U, ["--lr", "nan", "--batch", 2])):
        expect_error("verify error: %s -> %s" % (name, st), st,
                     base + [str(a) for a in extra])
    expect_error("verify error: no FILE -> 2", U,
                 ["verify", "--lr", "0.1", "--batch", 2])
    expect_error("verify error: missing file -> 1", D,
                 ["verify", os.path.join(WORK, "nope.npy"), "--lr", "0.1",
                  "--batch", 2], "nope.npy")
    res = run("verify", "--help")
    e = []
    if res.rc != 0 or res.err or not res.out.startswith("Usage: sgdstab "
                                                         "verify"):
        e.append("exit status %d, want 0 and the usage on stdout" % res.rc)
    for name, _, _ in tref.CHECKS:
        if name not in res.out:
            e.append("help does not list %s" % name)
    report("verify --help: exit 0, usage, every check listed", e, res)


# ----------------------------------------------------------------- main

def body(work):
    global WORK
    WORK = work
    test_grid()
    test_random_many()
    test_closed_forms()
    test_edges()
    test_errors()


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, "verify", body, selfcheck=(
        tref.selfcheck, "theory reference self-check", "closed forms = "
        "Kronecker Rayleigh ratios = published forms, mu_min by two solvers, "
        "brute force, rank-one closed forms")))
