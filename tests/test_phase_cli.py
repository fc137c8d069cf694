#!/usr/bin/python3
"""End-to-end tests of `sgdstab phase` (stability phase diagrams over
(B, eta)) through the CLI.

usage: test_phase_cli.py SGDSTAB

Every expected number comes from engine_reference.py and theory_reference.py
(same directory): the README's mathematics in the full parameter space
with plain NumPy/SciPy (Kronecker matrices of T on the symmetric matrices of
the range, a generalized symmetric-definite eigenproblem for eta*), never
from the tool's own output.  The tool's numbers are compared with each other
only for internal consistency (CSV = JSON, escape rate = ln rho, verdict =
(eta <= the tool's own lr_critical), the batch list = `sgdstab critical`'s
for the same LIST, eta* below its theorem bounds).

Tolerances, with the reason for each:
  RHO_ABS    1e-10 * max(1, rho)  rho_⊥ at every grid point: the engine's
                             documented accuracy (error estimate <= 1e-11
                             rho, as in engine-cli/verify-cli), scaled with
                             rho above 1 because that accuracy is relative
  escape rates               ln rho: the tolerance of rho divided by rho
                             (first order, x1.01); per epoch times n/B.
                             Against the tool's own rho: 1e-13 relative +
                             1e-13 absolute (one log and one product)
  ETA_REL    1e-9 relative   eta*(B): the engine's documented 1e-10, as in
                             engine-cli
  EXACT_REL  1e-12 relative  2/lambda_max(H): one well-conditioned extreme
                             eigenvalue, in two factorizations (SVD vs eigh)
  theory columns (as in verify-cli)
     mulayoff_michaeli_*     SPEC_REL = 1e-9 relative (closed forms of
                             lambda_max, the top eigenvector, moments)
     wu_wang_su              1/(|H|_F sqrt(b mu_min)): mu_min is exact to
                             mu_tol = 1e-9 (mu_min + mu_max), so the column
                             gets 0.5 mu_tol/mu_min + 1e-12 relative
     wu_ma_e                 1/(s sqrt b): s^2 exact to
                             d = 1e-9 (s^2 + (1/n) sum |A_i|_F^2), so
                             |ds| <= d/(s + sqrt d) =: s_tol and the column
                             gets s_tol/(s - s_tol) + 1e-12 relative
  verdict                    stable must equal (eta <= eta*_ref(B)) unless
                             |eta/eta*_ref - 1| <= 2 ETA_REL (then either);
                             it must always equal (eta <= the tool's
                             lr_critical), and stable points have
                             rho <= 1 + 1e-10, unstable ones rho >= 1 - 1e-10
  continuity                 for H = G, A2 = a G⊗G + b Σ is PSD (a, b >= 0),
                             so every Rayleigh quotient of
                             T_eta = I - eta A1 + eta^2 A2 is convex in eta and
                             rho(eta) (their max) is convex.  With rho(eta*) =
                             1, the chord through eta*(1 + D) bounds it on
                             both sides of eta*: for |delta| <= D,
                             |rho(eta*(1+delta)) - 1| <= C |delta|,
                             C = (rho_ref(eta*(1 + D)) - 1)/D, D = 1e-2 (a
                             finite difference of the reference, at a point
                             that is not on the tested grid).  Adding the
                             tool's rho tolerance:
                             |ln rho| <= -ln(1 - C|delta| - 1.01 RHO_ABS).
                             The sign of ln rho must flip exactly between
                             eta*(1 - 1e-5) and eta*(1 + 1e-5); the test
                             first checks that |rho_ref - 1| there exceeds
                             10 RHO_ABS, so that the sign is decidable.
  --lr ranges                endpoints exact to 1e-15 relative (spec);
                             interior points of A:B:N to 4 eps max(|A|, |B|)
                             absolute (np.linspace may round differently
                             from A + i h by an ulp or two), of A:B:N:log to
                             1e-13 relative (exp/pow of logs: a few ulps
                             times |ln A| + |ln B|)
Plots (--plot F.png|F.svg) are decoded here: PNG signature, chunk CRCs,
IHDR size, the IDAT stream inflated with zlib to exactly the size of the
filtered scanlines; SVG parsed with xml.etree, root width/height.  gnuplot
is required: without it the plot tests FAIL (CI installs gnuplot-nox).

Where the spec leaves a detail open the test accepts either reading: the
JSON "file" must name FILE (with --hessian the tool may append where H came
from); a --batch beyond n is a usage (2) or data (1) error.  Errors must
leave no output at all: an output path in a missing directory is a late
error, after the grid is solved, and must not leave the other outputs.

Exit status 0 iff every check passed.
"""

import math
import os
import re
import shutil
import struct
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as harness  # noqa: E402
import engine_reference as ref  # noqa: E402
from cli_harness import (ETA_REL, EXACT_REL, RHO_ABS,  # noqa: E402
                         SAMPLINGS, SPEC_REL, close_abs, close_rel,
                         csv_number, fail, failure_errors, fmt, is_int,
                         is_num, read_csv, report, run, run_json,
                         same_number)
import theory_reference as tref  # noqa: E402

VERDICT_SLACK = 1e-10

TOP_KEYS = ("file", "n", "k", "p", "input", "rank", "sampling", "loss_scale",
            "optimizer", "lr_critical_mean", "batches", "lrs", "grid",
            "boundary", "seconds", "solves", "operator_applications")
GRID_KEYS = ("batch lr spectral_radius escape_rate_per_step "
             "escape_rate_per_epoch stable").split()
BOUNDARY_KEYS = ("batch lr_critical lr_critical_mean wu_ma_e wu_wang_su "
                 "mulayoff_michaeli_top mulayoff_michaeli_trace").split()
THEORY_COLS = ("wu_ma_e", "wu_wang_su", "mulayoff_michaeli_top",
               "mulayoff_michaeli_trace")
GRID_HEADER = ",".join(GRID_KEYS)
BOUNDARY_HEADER = ",".join(BOUNDARY_KEYS)

WORK = None


# ----------------------------------------------------------------- numbers

def json_value(x):
    """What the JSON must hold for the number x: null if not finite."""
    return x if math.isfinite(x) else None


# ----------------------------------------------------------------- problems

class Case(harness.Case):
    """A problem written to disk (.npy, or .npz with H, or .npy plus
    --hessian H.npy), with its reference Problem per loss scale and cached
    reference answers."""

    def __init__(self, name, J, H=None, hessian_file=False):
        super().__init__(WORK, name, J, H, hessian_file)
        self._rho, self._th = {}, {}

    def rho(self, lr, sampling, B, c=1.0):
        key = (lr, sampling, B, c)
        if key not in self._rho:
            self._rho[key] = ref.rho_perp(self.problem(c), lr, sampling, B)
        return self._rho[key]

    def theory(self, c=1.0):
        if c not in self._th:
            self._th[c] = tref.theory(self.problem(c))
        return self._th[c]

    def desc(self):
        return "%s (n=%d k=%d p=%d%s)" % (
            self.name, self.n, self.k, self.p,
            "" if self.H is None else
            (", H via --hessian" if self.extra else ", H in .npz"))


def make_cases():
    rp = ref.random_problem
    return [
        Case("small_n", *rp(601, 5, 12)),                 # n < p, k = 1
        Case("large_n", *rp(602, 24, 6)),                 # n > p, k = 1
        Case("k3_small_n", *rp(603, 4, 14, k=3)),         # nk < p, k = 3
        Case("k3_large_n", *rp(604, 20, 5, k=3)),         # nk > p, k = 3
        Case("null_dir", *rp(605, 10, 7, null_dirs=2)),   # rank J < p
        Case("H_npz", *rp(606, 8, 6, hessian="pd")),      # H in the .npz
        Case("H_file_k2", *rp(607, 6, 5, k=2, hessian="range",
                              null_dirs=1), hessian_file=True),
    ]


def loss_scale(label, k):
    if label is None or label == "half-mean":
        return 1.0
    if label == "mse":
        return 2.0 / k
    return float(label)


# ----------------------------------------------------------------- expected

def boundary_expect(case, sampling, B, c):
    """{column: (value, relative tolerance)} for one boundary row; value nan
    means the column must be nan (JSON null, CSV 'nan'), inf means +inf
    (JSON null, CSV 'inf')."""
    prob = case.problem(c)
    eta = case.eta_star(sampling, B, c)
    out = {"lr_critical": (eta, ETA_REL),
           "lr_critical_mean": (2.0 / prob.sharpness(), EXACT_REL)}
    if case.H is not None:
        for col in THEORY_COLS:
            out[col] = (math.nan, 0.0)
        return out
    th = case.theory(c)
    _, b = ref.ab(sampling, case.n, B)
    top, trace = tref.mm_bounds(prob, sampling, B, th)
    out["mulayoff_michaeli_top"] = (top, SPEC_REL)
    out["mulayoff_michaeli_trace"] = (trace, SPEC_REL)
    _, wws_lr, _ = tref.wws(prob, 1.0, sampling, B, th)
    mu, mu_max = th["alignment_min"], th["alignment_max"]
    mu_tol = SPEC_REL * (abs(mu) + mu_max)
    out["wu_wang_su"] = (wws_lr, 0.5 * mu_tol / mu + EXACT_REL
                         if math.isfinite(wws_lr) else 0.0)
    s = th["nonuniformity"]
    d2 = SPEC_REL * (s * s + th["frobenius_moment"])
    s_tol = d2 / (s + math.sqrt(d2))
    if b == 0 or s == 0:
        out["wu_ma_e"] = (math.inf, 0.0)        # 1/0
    elif s > 2 * s_tol:
        out["wu_ma_e"] = (1.0 / (s * math.sqrt(b)),
                          s_tol / (s - s_tol) + EXACT_REL)
    else:
        out["wu_ma_e"] = (None, None)           # s ~ 0: not decidable
    if 0 < mu <= 1e3 * mu_tol:
        out["wu_wang_su"] = (None, None)        # mu ~ 0: not decidable
    return out


def value_mismatch(got, want, rel):
    """None if the JSON value got matches want (nan/inf: null)."""
    if not math.isfinite(want):
        return None if got is None else "%r, expected null (%r)" % (got, want)
    if close_rel(got, want, rel):
        return None
    return "%r, reference %r (rel %.3g > %.3g)" % (
        got, want, abs(got - want) / abs(want) if is_num(got) and want
        else math.nan, rel)


def check_point(case, c, sampling, g, B, lr, lr_crit_tool):
    """Checks of one grid point g (a JSON object) at (B, lr)."""
    errs = []
    rho_ref = case.rho(lr, sampling, B, c)
    eta = case.eta_star(sampling, B, c)
    rho = g.get("spectral_radius")
    tol = RHO_ABS * max(1.0, rho_ref)
    if not close_abs(rho, rho_ref, tol):
        errs.append("spectral_radius = %r, reference %r (diff %.3g > %.3g)"
                    % (rho, rho_ref, abs(rho - rho_ref) if is_num(rho)
                       else math.nan, tol))
    st, ep = g.get("escape_rate_per_step"), g.get("escape_rate_per_epoch")
    # internal consistency: ln rho and (n/B) ln rho of the tool's own rho
    if is_num(rho) and rho > 0:
        l = math.log(rho)
        if not close_abs(st, l, 1e-13 + 1e-13 * abs(l)):
            errs.append("escape_rate_per_step = %r, ln(spectral_radius) = %r"
                        % (st, l))
        e = case.n / B * l
        if not close_abs(ep, e, 1e-13 + 1e-13 * abs(e)):
            errs.append("escape_rate_per_epoch = %r, (n/B) ln(rho) = %r"
                        % (ep, e))
    elif rho == 0:
        # ln 0 = -inf, written as JSON null
        if st is not None or ep is not None:
            errs.append("spectral_radius 0 but escape rates %r, %r (want "
                        "null = -inf)" % (st, ep))
    # against the reference (where ln rho_ref is finite and meaningful)
    if rho_ref > 10 * tol:
        lr_ = math.log(rho_ref)
        t = tol / rho_ref * 1.01
        if not close_abs(st, lr_, t):
            errs.append("escape_rate_per_step = %r, reference ln(rho) = %r"
                        % (st, lr_))
        if not close_abs(ep, case.n / B * lr_, case.n / B * t):
            errs.append("escape_rate_per_epoch = %r, reference (n/B) ln(rho)"
                        " = %r" % (ep, case.n / B * lr_))
    stable = g.get("stable")
    if not isinstance(stable, bool):
        return errs + ["stable = %r, not a boolean" % stable]
    # verdict against the reference eta*
    if abs(lr - eta) > 2 * ETA_REL * eta and stable is not (lr <= eta):
        errs.append("stable = %r, but eta = %r and reference eta*(%d) = %r "
                    "(rho_ref %r)" % (stable, lr, B, eta, rho_ref))
    # internal consistency: the verdict is eta <= the tool's lr_critical
    if is_num(lr_crit_tool) and stable is not (lr <= lr_crit_tool):
        errs.append("stable = %r, but eta = %r and the boundary's "
                    "lr_critical = %r" % (stable, lr, lr_crit_tool))
    if is_num(rho):
        if stable and rho > 1 + VERDICT_SLACK:
            errs.append("stable, yet spectral_radius = %r > 1 + 1e-10" % rho)
        if not stable and rho < 1 - VERDICT_SLACK:
            errs.append("unstable, yet spectral_radius = %r < 1 - 1e-10"
                        % rho)
    return errs


def check_boundary_row(case, c, sampling, row, B):
    errs = []
    exp = boundary_expect(case, sampling, B, c)
    for col in BOUNDARY_KEYS[1:]:
        want, rel = exp[col]
        if want is None:
            continue
        m = value_mismatch(row.get(col), want, rel)
        if m:
            errs.append("B=%d: %s = %s" % (B, col, m))
    # the bounds are theorems: eta* below each (tool's own numbers)
    eta = row.get("lr_critical")
    if is_num(eta):
        for col, slack in (("lr_critical_mean", 2 * ETA_REL),
                           ("mulayoff_michaeli_top", 2 * SPEC_REL),
                           ("mulayoff_michaeli_trace", 2 * SPEC_REL),
                           ("wu_wang_su", 1e-8)):
            bd = row.get(col)
            if is_num(bd) and eta > bd * (1 + slack):
                errs.append("B=%d: lr_critical %r > %s %r: a theorem broken"
                            % (B, eta, col, bd))
    return errs


def check_phase(case, c, sampling, d, batches, lrs, lr_rel=None):
    """All checks of one `phase --json` answer.  batches: the expected batch
    list; lrs: the expected lr list (exact, or within lr_rel, a function
    i -> absolute tolerance)."""
    errs = []
    missing = [k for k in TOP_KEYS if k not in d]
    if missing:
        return ["missing keys %s" % missing]
    extra = sorted(set(d) - set(TOP_KEYS))
    if extra:
        errs.append("undocumented keys %s" % extra)
    apps = d["operator_applications"]
    if not (isinstance(apps, int) and not isinstance(apps, bool) and
            apps >= 1):
        errs.append("operator_applications %r: not a positive count"
                    % (apps,))
    prob = case.problem(c)
    for key, want in (("n", case.n), ("k", case.k), ("p", case.p),
                      ("rank", case.rank)):
        if not (is_int(d[key]) and d[key] == want):
            errs.append("%s = %r, expected %r" % (key, d[key], want))
    # the spec does not fix the wording of "file": it must name FILE (with
    # --hessian the tool may append where H came from)
    if not (isinstance(d["file"], str) and (
            d["file"] == case.path or
            (case.extra and d["file"].startswith(case.path)))):
        errs.append("file = %r, expected %r" % (d["file"], case.path))
    if d["sampling"] != sampling:
        errs.append("sampling = %r, expected %r" % (d["sampling"], sampling))
    if not close_rel(d["loss_scale"], c, 1e-15):
        errs.append("loss_scale = %r, expected %r" % (d["loss_scale"], c))
    lmean = 2.0 / prob.sharpness()
    if not close_rel(d["lr_critical_mean"], lmean, EXACT_REL):
        errs.append("lr_critical_mean = %r, 2/lambda_max(H) = %r"
                    % (d["lr_critical_mean"], lmean))
    if not (is_num(d["seconds"]) and d["seconds"] >= 0):
        errs.append("seconds = %r" % d["seconds"])
    if not (is_int(d["solves"]) and d["solves"] >= 0):
        errs.append("solves = %r" % d["solves"])
    # batches and lrs
    gb, gl = d["batches"], d["lrs"]
    if not (isinstance(gb, list) and all(is_int(b) for b in gb)):
        return errs + ["batches = %r, not an array of integers" % gb]
    if gb != list(batches):
        return errs + ["batches = %r, expected %r" % (gb, list(batches))]
    if not (isinstance(gl, list) and all(is_num(x) for x in gl)):
        return errs + ["lrs = %r, not an array of numbers" % gl]
    if len(gl) != len(lrs):
        return errs + ["lrs has %d values, expected %d: %r"
                       % (len(gl), len(lrs), gl)]
    for i, (g, w) in enumerate(zip(gl, lrs)):
        tol = 0.0 if lr_rel is None else lr_rel(i)
        if abs(g - w) > tol:
            errs.append("lrs[%d] = %r, expected %r (tolerance %.3g)"
                        % (i, g, w, tol))
    if any(gl[i] >= gl[i + 1] for i in range(len(gl) - 1)):
        errs.append("lrs not strictly increasing: %r" % gl)
    if errs:
        return errs
    lrs = gl                 # the tool's lrs (checked above) from here on
    # boundary
    bd = d["boundary"]
    if not (isinstance(bd, list) and all(isinstance(r, dict) for r in bd)):
        return errs + ["boundary is not an array of objects"]
    if [r.get("batch") for r in bd] != list(batches):
        return errs + ["boundary batches %r, expected %r"
                       % ([r.get("batch") for r in bd], list(batches))]
    crit = {}
    prev = 0.0
    for r in bd:
        if sorted(r) != sorted(BOUNDARY_KEYS):
            errs.append("boundary B=%r: keys %r" % (r.get("batch"), sorted(r)))
            continue
        errs += check_boundary_row(case, c, sampling, r, r["batch"])
        crit[r["batch"]] = r["lr_critical"]
        if is_num(r["lr_critical"]):
            if r["lr_critical"] < prev * (1 - ETA_REL):
                errs.append("B=%d: lr_critical %r < %r at a smaller B: not "
                            "non-decreasing" % (r["batch"], r["lr_critical"],
                                                prev))
            prev = max(prev, r["lr_critical"])
        if r["lr_critical_mean"] != d["lr_critical_mean"]:
            errs.append("B=%d: lr_critical_mean %r differs from the top-level"
                        " %r" % (r["batch"], r["lr_critical_mean"],
                                 d["lr_critical_mean"]))
    # grid
    grid = d["grid"]
    if not (isinstance(grid, list) and all(isinstance(g, dict)
                                           for g in grid)):
        return errs + ["grid is not an array of objects"]
    if len(grid) != len(batches) * len(lrs):
        return errs + ["grid has %d points, expected %d x %d"
                       % (len(grid), len(batches), len(lrs))]
    want_pairs = [(B, lr) for B in batches for lr in lrs]
    got_pairs = [(g.get("batch"), g.get("lr")) for g in grid]
    if not all(is_int(b) and is_num(x) for b, x in got_pairs):
        return errs + ["grid points without an integer batch and a numeric "
                       "lr"]
    if sorted(got_pairs) != want_pairs:
        return errs + ["grid (batch, lr) pairs are not every pair of "
                       "batches x lrs exactly once"]
    for g in grid:
        if sorted(g) != sorted(GRID_KEYS):
            errs.append("grid point %r: keys %r" % ((g.get("batch"),
                                                     g.get("lr")), sorted(g)))
            continue
        e = check_point(case, c, sampling, g, g["batch"], g["lr"],
                        crit.get(g["batch"]))
        errs += ["B=%d lr=%r (%.6g eta*): %s"
                 % (g["batch"], g["lr"],
                    g["lr"] / case.eta_star(sampling, g["batch"], c), m)
                 for m in e]
    return errs


def check_csvs(d, grid_csv, boundary_csv):
    """The two CSV files against the (already checked) JSON: headers, row
    order, number format, the same doubles."""
    errs = []
    if grid_csv is not None:
        text, head, rows = read_csv(grid_csv)
        if head != GRID_HEADER:
            errs.append("--csv header %r, expected %r" % (head, GRID_HEADER))
        if not text.endswith("\n"):
            errs.append("--csv does not end with a newline")
        want = sorted(d["grid"], key=lambda g: (g["batch"], g["lr"]))
        if len(rows) != len(want):
            errs.append("--csv has %d rows, expected %d" % (len(rows),
                                                            len(want)))
        else:
            for i, (row, g) in enumerate(zip(rows, want)):
                if len(row) != 6:
                    errs.append("--csv row %d: %r" % (i + 1, row))
                    continue
                if row[0] != str(g["batch"]):
                    errs.append("--csv row %d: batch %r, expected %d (rows "
                                "ordered by batch, then lr)" % (i + 1, row[0],
                                                                g["batch"]))
                for j, key in ((1, "lr"), (2, "spectral_radius"),
                               (3, "escape_rate_per_step"),
                               (4, "escape_rate_per_epoch")):
                    v, e = csv_number(row[j])
                    if e:
                        errs.append("--csv row %d %s: %s" % (i + 1, key, e))
                    elif not same_number(v, g[key]):
                        errs.append("--csv row %d %s = %s, JSON %r (rows "
                                    "ordered by batch, then lr)"
                                    % (i + 1, key, row[j], g[key]))
                if g["spectral_radius"] == 0 and (row[3], row[4]) != \
                        ("-inf", "-inf"):
                    errs.append("--csv row %d: spectral_radius 0, escape "
                                "rates %r %r, expected -inf" % (i + 1, row[3],
                                                                row[4]))
                if row[5] != ("true" if g["stable"] else "false"):
                    errs.append("--csv row %d stable = %r, JSON %r"
                                % (i + 1, row[5], g["stable"]))
    if boundary_csv is not None:
        text, head, rows = read_csv(boundary_csv)
        if head != BOUNDARY_HEADER:
            errs.append("--boundary-csv header %r, expected %r"
                        % (head, BOUNDARY_HEADER))
        bd = d["boundary"]
        if len(rows) != len(bd):
            errs.append("--boundary-csv has %d rows, expected %d"
                        % (len(rows), len(bd)))
        else:
            for i, (row, r) in enumerate(zip(rows, bd)):
                if len(row) != 7 or row[0] != str(r["batch"]):
                    errs.append("--boundary-csv row %d: %r (batch %d)"
                                % (i + 1, row, r["batch"]))
                    continue
                for j, key in enumerate(BOUNDARY_KEYS[1:], 1):
                    v, e = csv_number(row[j])
                    if e:
                        errs.append("--boundary-csv row %d %s: %s"
                                    % (i + 1, key, e))
                    elif not same_number(v, r[key]):
                        errs.append("--boundary-csv row %d %s = %s, JSON %r"
                                    % (i + 1, key, row[j], r[key]))
    return errs


def boundary_csv_literals(case, sampling, batches, c, boundary_csv):
    """Non-finite theory columns are written literally: 'nan' with H, 'inf'
    for the Wu-Ma-E / Wu-Wang-Su columns when b = 0."""
    errs = []
    _, _, rows = read_csv(boundary_csv)
    for row, B in zip(rows, batches):
        exp = boundary_expect(case, sampling, B, c)
        for j, col in enumerate(BOUNDARY_KEYS[1:], 1):
            want = exp[col][0]
            if j >= len(row):
                break
            if want is None:
                continue
            if math.isnan(want) and row[j] != "nan":
                errs.append("--boundary-csv B=%d %s = %r, expected nan (H "
                            "supplied)" % (B, col, row[j]))
            if math.isinf(want) and row[j] != "inf":
                errs.append("--boundary-csv B=%d %s = %r, expected inf "
                            "(b = 0)" % (B, col, row[j]))
    return errs


def run_phase(case, sampling, batch_arg, lr_arg, c_label=None, files=True,
              extra=()):
    """Run `phase --json` (with --csv and --boundary-csv in a fresh
    directory when files); returns (d, res, errs, csv, bcsv)."""
    args = ["phase", case.path, "--batch", batch_arg, "--lr", lr_arg]
    if sampling is not None:
        args += ["--sampling", sampling]
    if c_label is not None:
        args += ["--loss", c_label]
    args += case.extra + list(extra)
    csv = bcsv = None
    if files:
        cdir = tempfile.mkdtemp(dir=WORK)
        csv = os.path.join(cdir, "grid.csv")
        bcsv = os.path.join(cdir, "boundary.csv")
        args += ["--csv", csv, "--boundary-csv", bcsv]
    d, res, e = run_json(*args)
    if d is not None and files:
        listing = sorted(os.listdir(cdir))
        if listing != ["boundary.csv", "grid.csv"]:
            e.append("output directory holds %r, expected the two CSVs"
                     % listing)
            csv = csv if "grid.csv" in listing else None
            bcsv = bcsv if "boundary.csv" in listing else None
    return d, res, e, csv, bcsv


def full_check(case, sampling, batches, lrs, batch_arg, lr_arg, c_label=None,
               lr_rel=None, extra=()):
    """One run with every output, all checks; returns (errs, res)."""
    c = loss_scale(c_label, case.k)
    d, res, e, csv, bcsv = run_phase(case, sampling, batch_arg, lr_arg,
                                     c_label, True, extra)
    if d is None:
        return e, res
    e += check_phase(case, c, sampling or "without", d, batches, lrs, lr_rel)
    if not e:
        e += check_csvs(d, csv, bcsv)
        if bcsv:
            e += boundary_csv_literals(case, sampling or "without", batches,
                                       c, bcsv)
    return e, res


# ----------------------------------------------------------------- 1, 2, 4, 5

def grid_lrs(case, sampling, batches, c=1.0):
    """A learning-rate list that crosses every batch size's boundary: 0.6
    and 1.4 eta*(B) for each B, and 1.2 * 2/lambda_max."""
    s = set()
    for B in batches:
        eta = case.eta_star(sampling, B, c)
        s.add(float(fmt(0.6 * eta)))
        s.add(float(fmt(1.4 * eta)))
    s.add(1.2 * 2.0 / case.problem(c).sharpness())
    return sorted(s)


def test_grid(cases):
    for case in cases:
        for sampling in SAMPLINGS:
            batches = sorted({1, max(2, case.n // 3), case.n})
            if sampling == "with":
                batches.append(case.n + 2)  # B > n: fine with replacement
            lrs = grid_lrs(case, sampling, batches)
            # the list given unsorted and with a duplicate: sorted, deduped
            given = list(reversed(lrs)) + [lrs[0]]
            e, res = full_check(case, sampling, batches, lrs,
                                ",".join(map(str, batches)),
                                ",".join(map(fmt, given)))
            report("phase %s --sampling %s: %d x %d grid (B in %s; eta/eta* "
                   "0.6, 1.4 and 1.2 * 2/lambda) against the reference, "
                   "verdicts, boundary table, CSV = JSON"
                   % (case.desc(), sampling, len(batches), len(lrs), batches),
                   e, res)


def test_loss_and_defaults(cases):
    # --loss mse on k = 3 and on H via --hessian: lr, eta* and every theory
    # column in the scaled convention
    for case in (cases[2], cases[6]):
        for sampling in ("without", "bernoulli"):
            c = 2.0 / case.k
            batches = [1, 2, case.n]
            lrs = grid_lrs(case, sampling, batches, c)
            e, res = full_check(case, sampling, batches, lrs,
                                ",".join(map(str, batches)),
                                ",".join(map(fmt, lrs)), "mse")
            report("phase %s --loss mse --sampling %s: loss_scale 2/k, grid "
                   "and boundary in the MSE convention"
                   % (case.desc(), sampling), e, res)
    case = cases[3]
    lrs = grid_lrs(case, "with", [3], 0.37)
    e, res = full_check(case, "with", [3], lrs, "3", ",".join(map(fmt, lrs)),
                        "0.37")
    report("phase %s --loss 0.37 --sampling with" % case.desc(), e, res)
    # no --sampling = without
    case = cases[1]
    batches = [2, 5]
    lrs = grid_lrs(case, "without", batches)
    e, res = full_check(case, None, batches, lrs, "2,5",
                        ",".join(map(fmt, lrs)))
    report("phase %s without --sampling = sampling without" % case.desc(),
           e, res)


def test_batch_syntax(cases):
    case = cases[1]                                  # n = 24
    n = case.n
    for spec, want in (("all", list(range(1, n + 1))),
                       ("7:11", [7, 8, 9, 10, 11]),
                       ("13,2,5,2", [2, 5, 13]),
                       ("%d" % n, [n])):
        lrs = [float(fmt(0.5 * case.eta_star("without", want[0]))),
               float(fmt(1.5 * case.eta_star("without", want[-1])))]
        e, res = full_check(case, "without", want, lrs, spec,
                            ",".join(map(fmt, lrs)))
        report("phase %s --batch %s: batches %s" % (case.name, spec,
                                                    want if len(want) < 8
                                                    else "1..%d" % n), e, res)
    # the log forms: the same list as `sgdstab critical --batch` (same
    # syntax; internal consistency), sorted, distinct, within 1..n
    for spec in ("1:%d:log" % n, "1:%d:5:log" % n, "2:20:log"):
        dc, res, e = run_json("critical", case.path, "--batch", spec)
        if dc is None:
            report("critical --batch %s (for phase)" % spec, e, res)
            continue
        want = [x["batch"] for x in dc["critical"]]
        lrs = [float(fmt(0.5 * case.eta_star("without", 1))),
               float(fmt(1.5 * case.eta_star("without", n)))]
        e, res = full_check(case, "without", want, lrs, spec,
                            ",".join(map(fmt, lrs)))
        if not (want == sorted(set(want)) and 1 <= want[0]
                and want[-1] <= n):
            e.append("critical's list %r is not sorted/distinct in 1..n"
                     % want)
        report("phase %s --batch %s: batches %s as for critical"
               % (case.name, spec, want), e, res)


def test_lr_syntax(cases):
    case = cases[0]                                  # n = 5, p = 12
    eps = np.finfo(float).eps
    A, Bv = 0.01, 2.0 * case.eta_star("without", 2)
    Bs = fmt(Bv)
    lin = lambda N: list(np.linspace(A, Bv, N))              # noqa: E731
    geo = lambda N: list(np.geomspace(A, Bv, N))             # noqa: E731

    def lin_tol(N):
        return lambda i: (1e-15 * abs(A if i == 0 else Bv)
                          if i in (0, N - 1) else 4 * eps * max(A, Bv))

    def log_tol(N):
        return lambda i: (1e-15 * abs(A if i == 0 else Bv)
                          if i in (0, N - 1) else 1e-13 * geo(N)[i])

    for spec, want, tol, what in (
            ("%r:%s:7" % (A, Bs), lin(7), lin_tol(7), "7 evenly spaced"),
            ("%r:%s:2" % (A, Bs), lin(2), lin_tol(2), "N = 2: the endpoints"),
            ("%r:%s:6:log" % (A, Bs), geo(6), log_tol(6), "6 log-spaced"),
            ("%r:%s" % (A, Bs), lin(40), lin_tol(40), "A:B = 40 evenly "
             "spaced"),
            ("%r:%s:log" % (A, Bs), geo(40), log_tol(40), "A:B:log = 40 "
             "log-spaced"),
            ("0.5,0.1,%s,0.5,0.1" % Bs, sorted({0.1, 0.5, Bv}), None,
             "list sorted, duplicates removed"),
            ("0.3", [0.3], None, "a single value")):
        e, res = full_check(case, "bernoulli", [1, 2],
                            [float(x) for x in want],
                            "1,2", spec, lr_rel=tol)
        report("phase %s --lr %s: %s" % (case.name, spec, what), e, res)


def test_noiseless():
    """Every A_i = G = 1 (J = ones(4, 1)): T(S) = (1 - eta)^2 S (+ eta^2 b S
    for bernoulli), so rho = 0 exactly at eta = 1 for without/with; s = 0 and
    mu_min = 0 make the Wu-Ma-E and Wu-Wang-Su columns 1/0 = inf.  Where the
    tool's rho is exactly 0, escape rates must be -inf (JSON null, CSV
    '-inf')."""
    case = Case("noiseless", np.ones((4, 1)))
    for sampling in SAMPLINGS:
        lrs = [0.5, 1.0, 1.5, 2.5]
        e, res = full_check(case, sampling, [1, 2, 4], lrs, "1,2,4",
                            "0.5,1,1.5,2.5")
        for B in (1, 2, 4):
            a, b = ref.ab(sampling, 4, B)
            eta = 2.0 / (1 + b) if sampling == "bernoulli" else 2.0
            if abs(case.eta_star(sampling, B) - eta) > 1e-12 * eta:
                e.append("reference eta*(%d) = %r, closed form %r"
                         % (B, case.eta_star(sampling, B), eta))
        report("phase %s --sampling %s: closed forms, rho = 0 at eta = 1, "
               "-inf escape rates, infinite theory columns"
               % (case.desc(), sampling), e, res)


# ----------------------------------------------------------------- 3

def test_continuity(cases):
    D = 1e-2
    for case, sampling, B in ((cases[1], "without", 8),
                              (cases[0], "bernoulli", 2),
                              (cases[2], "with", 1),
                              (cases[3], "with", cases[3].n + 3),
                              (cases[4], "without", 4)):
        assert case.H is None            # convexity argument needs H = G
        eta = case.eta_star(sampling, B)
        deltas = (-1e-3, -1e-5, 1e-5, 1e-3)
        lrs = [eta * (1 + dl) for dl in deltas]
        errs = []
        C = (case.rho(eta * (1 + D), sampling, B) - 1) / D
        # reference self-checks: C > 0, the chord bound holds for the
        # reference, and the sign at 1e-5 is decidable at RHO_ABS
        if not C > 0:
            errs.append("reference: chord slope C = %r not > 0" % C)
        for dl, lr in zip(deltas, lrs):
            r = case.rho(lr, sampling, B)
            if abs(r - 1) > C * abs(dl) * (1 + 1e-6) + 1e-13:
                errs.append("reference: |rho(eta*(1%+g)) - 1| = %.3g > C|d| "
                            "= %.3g (convexity?)" % (dl, abs(r - 1),
                                                     C * abs(dl)))
            if abs(r - 1) < 10 * RHO_ABS:
                errs.append("reference: |rho - 1| = %.3g at eta*(1%+g): "
                            "sign not decidable, choose another case"
                            % (abs(r - 1), dl))
            if (r < 1) != (dl < 0):
                errs.append("reference: rho(eta*(1%+g)) = %r on the wrong "
                            "side of 1" % (dl, r))
        if errs:
            fail("continuity on %s: test/reference problem" % case.name, errs)
            continue
        d, res, e, csv, bcsv = run_phase(case, sampling, str(B),
                                         ",".join(map(fmt, lrs)))
        if d is not None:
            e += check_phase(case, 1.0, sampling, d, [B],
                             [float(fmt(x)) for x in lrs])
            if not e:
                e += check_csvs(d, csv, bcsv)
        if d is not None and not e:
            pts = sorted(d["grid"], key=lambda g: g["lr"])
            rates = [g["escape_rate_per_step"] for g in pts]
            flags = [g["stable"] for g in pts]
            if flags != [True, True, False, False]:
                e.append("stable flags %r at eta*(1 -1e-3, -1e-5, +1e-5, "
                         "+1e-3), expected [T, T, F, F]" % flags)
            for dl, g, rate in zip(deltas, pts, rates):
                if not is_num(rate) or (rate < 0) != (dl < 0) or rate == 0:
                    e.append("escape_rate_per_step %r at eta*(1%+g): wrong "
                             "sign (must change sign exactly at eta*)"
                             % (rate, dl))
                    continue
                bound = -math.log(1 - C * abs(dl) - 1.01 * RHO_ABS)
                if abs(rate) > bound:
                    e.append("|escape_rate_per_step| = %.6g at eta*(1%+g) > "
                             "%.6g = -ln(1 - C|d| - 1e-10), C = %.4g"
                             % (abs(rate), dl, bound, C))
            # the boundary itself is the place of the sign change
            lc = d["boundary"][0]["lr_critical"]
            if not (lrs[1] < lc < lrs[2]):
                e.append("lr_critical %r not between eta*(1 -+ 1e-5) = %r, "
                         "%r" % (lc, lrs[1], lrs[2]))
        report("continuity %s --sampling %s B=%d: escape rate changes sign "
               "exactly at eta*, |ln rho| <= C|eta/eta* - 1| (C = %.3g) at "
               "1 -+ 1e-3, 1e-5" % (case.desc(), sampling, B, C), e, res)


# ----------------------------------------------------------------- text

def test_text(cases):
    case = cases[1]
    lrs = "%s,%s" % (fmt(0.5 * case.eta_star("without", 2)),
                     fmt(2 * case.eta_star("without", 2)))
    for extra in ([], ["--quiet"]):
        res = run("phase", case.path, "--batch", "1,2,4", "--lr", lrs,
                  *extra)
        e = []
        if res.rc != 0:
            e.append("exit status %d, expected 0" % res.rc)
        if res.err:
            e.append("stderr not empty (no progress bar without a terminal)")
        if not res.out.strip():
            e.append("no text on stdout")
        report("phase text output %s: exit 0, text on stdout, empty stderr"
               % " ".join(extra), e, res)
    d, res, e, _, _ = run_phase(case, "without", "1,2,4", lrs, files=False,
                                extra=["--quiet"])
    report("phase --json --quiet: one JSON object, empty stderr", e, res)
    res = run("phase", "--help")
    e = []
    if res.rc != 0 or res.err or "phase" not in res.out:
        e.append("exit status %d, want 0 and the usage on stdout" % res.rc)
    for opt in ("--batch", "--lr", "--sampling", "--csv", "--boundary-csv",
                "--plot", "--plot-size", "--json", "--quiet", "--title",
                "--legend", "--curves", "--color", "--color-range"):
        if opt not in res.out:
            e.append("help does not mention %s" % opt)
    report("phase --help: exit 0, usage on stdout", e, res)


# ----------------------------------------------------------------- 6 plots

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_check(path, W, H):
    """Decode a PNG far enough to trust it: signature, every chunk's CRC,
    IHDR first with width W and height H, IDAT present, IEND last, and the
    concatenated IDAT data inflating to exactly the filtered-scanline size
    (H * (1 + bytes per row), or the Adam7 pass sizes if interlaced)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return ["not a PNG (signature %r)" % data[:8]]
    pos, chunks = 8, []
    while pos < len(data):
        if pos + 8 > len(data):
            return ["truncated chunk header at byte %d" % pos]
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            return ["truncated %r chunk" % ctype]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if zlib.crc32(ctype + body) & 0xffffffff != crc:
            return ["bad CRC in the %r chunk" % ctype]
        chunks.append((ctype, body))
        pos += 12 + length
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        return ["first chunk is not a 13-byte IHDR"]
    if chunks[-1][0] != b"IEND":
        return ["last chunk is not IEND"]
    w, h, depth, ctype, comp, filt, inter = struct.unpack(">IIBBBBB",
                                                          chunks[0][1])
    errs = []
    if (w, h) != (W, H):
        errs.append("PNG is %dx%d pixels, expected %dx%d" % (w, h, W, H))
    if ctype not in PNG_CHANNELS or comp != 0 or filt != 0 or inter > 1:
        return errs + ["IHDR colour type %d / methods %d %d %d invalid"
                       % (ctype, comp, filt, inter)]
    idat = b"".join(body for t, body in chunks if t == b"IDAT")
    if not idat:
        return errs + ["no IDAT chunk"]
    try:
        raw = zlib.decompress(idat)
    except zlib.error as exc:
        return errs + ["IDAT does not inflate: %s" % exc]
    bits = PNG_CHANNELS[ctype] * depth

    def row_bytes(cols):
        return (cols * bits + 7) // 8

    if inter == 0:
        want = h * (1 + row_bytes(w))
    else:
        want = 0
        for x0, y0, dx, dy in ADAM7:
            cols = (w - x0 + dx - 1) // dx if w > x0 else 0
            rows = (h - y0 + dy - 1) // dy if h > y0 else 0
            if cols and rows:
                want += rows * (1 + row_bytes(cols))
    if len(raw) != want:
        errs.append("IDAT inflates to %d bytes, expected %d for %dx%d "
                    "(%d bits per pixel%s)" % (len(raw), want, w, h, bits,
                                               ", interlaced" if inter
                                               else ""))
    return errs


def svg_check(path, W, H):
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        return ["SVG does not parse: %s" % exc]
    errs = []
    if root.tag not in ("svg", "{http://www.w3.org/2000/svg}svg"):
        return ["root element is %r, not svg" % root.tag]
    for attr, want in (("width", W), ("height", H)):
        v = root.get(attr)
        m = re.match(r"\s*([0-9]+(?:\.[0-9]*)?)", v or "")
        if not m:
            errs.append("root %s = %r, no number" % (attr, v))
        elif float(m.group(1)) != want:
            errs.append("root %s = %r, expected %d" % (attr, v, want))
    if len(list(root.iter())) < 5:
        errs.append("SVG has almost no elements: nothing drawn?")
    return errs


def test_plot(cases):
    if shutil.which("gnuplot") is None:
        fail("phase --plot: gnuplot is not installed (required: install "
             "gnuplot-nox); the plot tests cannot run", [])
        return
    case = cases[1]
    batches = [1, 2, 4, 8, 24]
    lr_spec = "%s:%s:12:log" % (fmt(0.2 * case.eta_star("without", 1)),
                                fmt(3 * case.eta_star("without", case.n)))
    for name, size, W, H, check in (
            ("map.png", None, 960, 720, png_check),
            ("map.png", "640,480", 640, 480, png_check),
            ("map.png", "4000,480", 4000, 480, png_check),
            ("map.svg", None, 960, 720, svg_check),
            ("map.svg", "800,600", 800, 600, svg_check),
            ("map.svg", "640,1200", 640, 1200, svg_check)):
        cdir = tempfile.mkdtemp(dir=WORK)
        path = os.path.join(cdir, name)
        args = ["phase", case.path, "--batch", ",".join(map(str, batches)),
                "--lr", lr_spec, "--plot", path]
        if size:
            args += ["--plot-size", size]
        for with_json in (False, True):
            if with_json and size is not None:
                continue
            if os.path.exists(path):
                os.remove(path)
            if with_json:
                d, res, e = run_json(*args)
                if d is not None and len(d.get("grid", [])) != \
                        len(batches) * 12:
                    e.append("--json with --plot: grid of %d points"
                             % len(d.get("grid", [])))
            else:
                res = run(*args)
                e = []
                if res.rc != 0:
                    e.append("exit status %d" % res.rc)
                if res.err:
                    e.append("stderr not empty")
            if not os.path.exists(path):
                e.append("no file %s" % name)
            else:
                e += check(path, W, H)
                if sorted(os.listdir(cdir)) != [name]:
                    e.append("directory holds %r, expected only %s"
                             % (sorted(os.listdir(cdir)), name))
            report("phase --plot %s%s%s: decodes, %dx%d"
                   % (name, " --plot-size " + size if size else " (default "
                      "size)", " --json" if with_json else "", W, H), e, res)


# ----------------------------------------------------------------- 6b figures
#
# The picture's script: with SGDSTAB_PLOT_SCRIPT=DIR the tool keeps a copy
# of every gnuplot script as DIR/NAME.gp.  The checks on it come from what a
# readable figure needs, not from the tool's output: >= 4 labelled tics on
# every log axis, cells centred (geometrically, on log axes) on the grid
# values with the boundary at the solved batch sizes and the reference
# eta*(B), colours that spread over both halves of the palette whatever the
# magnitudes of the rates, eta/eta*(B) colours = ln(eta/eta*_ref)/max.

def plot_script(args, name="map.png"):
    """Run phase ARGS --plot DIR/NAME with the script kept; returns
    (result, script text or None, picture path)."""
    cdir = tempfile.mkdtemp(dir=WORK)
    sdir = tempfile.mkdtemp(dir=WORK)
    path = os.path.join(cdir, name)
    os.environ["SGDSTAB_PLOT_SCRIPT"] = sdir
    try:
        res = run(*(list(args) + ["--plot", path]))
    finally:
        del os.environ["SGDSTAB_PLOT_SCRIPT"]
    gp = os.path.join(sdir, name + ".gp")
    text = open(gp, encoding="utf-8").read() if os.path.exists(gp) else None
    return res, text, path


def script_block(text, name):
    """The rows of the data block $NAME, as lists of floats."""
    m = re.search(r"^\$%s << EOD\n(.*?)^EOD$" % name, text or "", re.S | re.M)
    if not m:
        return None
    return [[float(v) for v in line.split()]
            for line in m.group(1).splitlines()]


def script_tics(text, axis):
    """(label, position) of `set AXIStics (...)`, or None."""
    m = re.search(r"^set %stics \((.*)\)$" % axis, text or "", re.M)
    if not m:
        return None
    return [(lab, float(pos)) for lab, pos in
            re.findall(r"[\"']([^\"']*)[\"'] ([-+0-9.eE]+)", m.group(1))]


def labelled(tics):
    return [t for t in tics or [] if t[0]]


def test_plot_axes(cases):
    """Irregular batch sizes and a short log lr axis: >= 4 labelled tics on
    both log axes; every cell centred on its (B, eta); cells do not overlap;
    the boundary's points at the solved B and the reference eta*(B)."""
    case = cases[1]
    batches = [1, 2, 3, 4, 5, 8, 12]
    e1 = case.eta_star("without", 1)
    lrs_arg = "%s:%s:7:log" % (fmt(0.8 * e1), fmt(2.4 * e1))   # factor 3
    res, text, path = plot_script(["phase", case.path, "--batch",
                                   ",".join(map(str, batches)),
                                   "--lr", lrs_arg])
    e = [] if res.rc == 0 else ["exit status %d" % res.rc]
    if text is None:
        report("phase --plot keeps its script (SGDSTAB_PLOT_SCRIPT)",
               ["no script written"], res)
        return
    for axis in ("x", "y"):
        if "set logscale %s" % axis not in text:
            e.append("%s axis not logarithmic" % axis)
        n = len(labelled(script_tics(text, axis)))
        if n < 4:
            e.append("%s axis: %d labelled tics, need >= 4" % (axis, n))
    cells = script_block(text, "cells")
    if not cells or len(cells) != len(batches) * 7:
        e.append("$cells: %s rows, want %d"
                 % (None if cells is None else len(cells), len(batches) * 7))
    else:
        for x, y, xl, xh, yl, yh, _ in cells:
            if not (xl < x < xh and yl < y < yh):
                e.append("cell (%g, %g) does not contain its point" % (x, y))
            elif not (close_rel(math.sqrt(xl * xh), x, 1e-9) and
                      close_rel(math.sqrt(yl * yh), y, 1e-9)):
                e.append("cell (%g, %g) not centred: [%g, %g] x [%g, %g]"
                         % (x, y, xl, xh, yl, yh))
        xs = sorted({(c[2], c[3]) for c in cells})
        for (l0, h0), (l1, h1) in zip(xs, xs[1:]):
            if h0 > l1 * (1 + 1e-12):
                e.append("batch cells overlap: %g > %g" % (h0, l1))
    bd = script_block(text, "boundary")
    if not bd or [int(r[0]) for r in bd] != batches:
        e.append("$boundary not at the solved batch sizes")
    else:
        for r in bd:
            want = case.eta_star("without", int(r[0]))
            if not close_rel(r[1], want, ETA_REL):
                e.append("boundary at B = %d: %r, reference %r"
                         % (r[0], r[1], want))
    report("phase --plot: log axes with >= 4 labelled tics, cells centred "
           "on (B, eta), boundary through the centres at eta*(B)", e, res)


def colour_spread(name, cols, side):
    """The colours of one side's cells use that half of the palette."""
    e = []
    if not cols:
        return ["%s: no %s cells" % (name, side)]
    a = [abs(c) for c in cols]
    if side == "stable" and max(cols) > 0 or \
            side == "unstable" and min(cols) < 0:
        e.append("%s: %s cells on the wrong side of white" % (name, side))
    if max(a) < 0.5:
        e.append("%s: %s colours all within %.3g of white (degenerate)"
                 % (name, side, max(a)))
    if len(cols) > 2 and max(a) - min(a) < 0.3:
        e.append("%s: %s colours span only %.3g" % (name, side,
                                                    max(a) - min(a)))
    return e


def test_plot_colour(cases):
    """Escape rates all within 1e-7 of 0 on the stable side beside O(1)
    rates on the unstable side (and, at B = n around eta*, within 1e-6 on
    both sides): both sides' colours spread over their half of the palette
    (the asinh scale of the median made every stable cell white)."""
    case = cases[1]
    lmax = float(np.linalg.eigvalsh(case.problem().G)[-1])
    en = case.eta_star("without", case.n)
    small = [c * 1e-7 / (2 * lmax) for c in (0.1, 0.3, 1.0)]
    big = [f * en for f in (1.5, 2, 3, 4, 6)]
    near = [en * (1 + k * 1e-8) for k in (-8, -4, -2, -1, 1, 2, 4, 8)]
    for name, batch, lrs, bound in (
            ("-1e-7 beside O(1)", "1,4,%d" % case.n, small + big, None),
            ("all within 1e-6 of 0", "%d" % case.n, near, 1e-6)):
        args = ["phase", case.path, "--batch", batch, "--lr",
                ",".join(fmt(x) for x in lrs)]
        res, text, _ = plot_script(args)
        d, _, e = run_json(*args)
        cells = script_block(text, "cells")
        if d is None or not cells or len(cells) != len(d["grid"]):
            report("phase --plot colours: %s" % name,
                   e + ["no cells or no JSON grid"], res)
            continue
        st = [c[6] for c, g in zip(cells, d["grid"]) if g["stable"]]
        un = [c[6] for c, g in zip(cells, d["grid"]) if not g["stable"]]
        rates = [g["escape_rate_per_step"] for g in d["grid"]]
        if bound is None:
            if not all(-1e-7 <= r < 0 for r, g in zip(rates, d["grid"])
                       if g["stable"]) or min(
                           r for r, g in zip(rates, d["grid"])
                           if not g["stable"]) < 1e-3:
                e.append("precondition: the grid's rates are not -1e-7 and "
                         "O(1): %r" % rates)
        elif max(abs(r) for r in rates) > bound:
            e.append("precondition: rates beyond %g: %r" % (bound, rates))
        e += colour_spread(name, st, "stable")
        e += colour_spread(name, un, "unstable")
        cb = script_tics(text, "cb")
        if not cb or sum(p < 0 for _, p in cb) < 2 or \
                sum(p > 0 for _, p in cb) < 2:
            e.append("colour bar: fewer than 2 labels per side: %r" % cb)
        report("phase --plot colours not degenerate: %s" % name, e, res)


def test_plot_relative(cases):
    """--color relative: colour = ln(eta/eta*_ref(B)) / max |ln(...)| over
    the grid (white at eta*, symmetric ends); with --color-range LO:HI the
    ends are ln LO and ln HI, beyond them the colour saturates; rate
    colours with --color-range LO:HI saturate beyond LO and HI."""
    case = cases[1]
    batches = [1, 4, case.n]
    e1 = case.eta_star("without", 1)
    lrs = [e1 * f for f in (0.3, 0.6, 0.9, 1.2, 2, 5, 9)]
    for rng in (None, (0.5, 2.0)):
        args = ["phase", case.path, "--batch", ",".join(map(str, batches)),
                "--lr", ",".join(fmt(x) for x in lrs), "--color", "relative"]
        if rng:
            args += ["--color-range", "%g:%g" % rng]
        res, text, _ = plot_script(args)
        e = [] if res.rc == 0 else ["exit status %d" % res.rc]
        cells = script_block(text, "cells") or []
        q = {(B, lr): math.log(lr / case.eta_star("without", B))
             for B in batches for lr in lrs}
        top = max(abs(v) for v in q.values())
        if len(cells) != len(q):
            e.append("%d cells, want %d" % (len(cells), len(q)))
        for c in cells:
            v = q[(int(c[0]), min(lrs, key=lambda x: abs(x - c[1])))]
            if rng:
                end = math.log(rng[1]) if v > 0 else -math.log(rng[0])
                want = max(-1, min(1, v / end))
            else:
                want = v / top
            if abs(c[6] - want) > 1e-6:
                e.append("B = %d, lr = %g: colour %r, want %r"
                         % (c[0], c[1], c[6], want))
        report("phase --plot --color relative%s: colour = ln(eta/eta*)/end"
               % (" --color-range %g:%g" % rng if rng else ""), e, res)
    args = ["phase", case.path, "--batch", ",".join(map(str, batches)),
            "--lr", ",".join(fmt(x) for x in lrs), "--color-range",
            "-0.001:0.01"]
    res, text, _ = plot_script(args)
    d, _, e = run_json(*args[:-2])
    cells = script_block(text, "cells") or []
    if d is None or len(cells) != len(d["grid"]):
        e.append("no cells or grid")
    else:
        for c, g in zip(cells, d["grid"]):
            r = g["escape_rate_per_step"]
            if (r > 0.01 and c[6] != 1) or (r < -0.001 and c[6] != -1) or \
                    (-0.001 <= r <= 0.01 and abs(c[6]) > 1):
                e.append("rate %r: colour %r" % (r, c[6]))
        if not any(g["escape_rate_per_step"] > 0.01 for g in d["grid"]):
            e.append("precondition: no rate beyond 0.01")
    report("phase --plot --color-range -0.001:0.01: saturated beyond", e,
           res)


def test_plot_options(cases):
    """--title (escaped; default: FILE's base name, no directory),
    --curves, --legend in the script; every --legend and --color draws a
    picture at 640x480 and at the default size."""
    case, hcase = cases[1], cases[5]
    lr = "%s:%s:5:log" % (fmt(0.3 * case.eta_star("without", 1)),
                          fmt(3 * case.eta_star("without", case.n)))
    base = ["phase", case.path, "--batch", "1,2,4,8,24", "--lr", lr]
    theory = ("$theory using 1:2 ", "$theory using 1:3 ",
              "$theory using 1:4 ", "$theory using 1:5 ")
    runs = [
        ("default title", [], ["set label 1 \"%s: n = %d, p = %d, sampling "
                               "without, loss half-mean\""
                               % (os.path.basename(case.path), case.n,
                                  case.p)],
         ["set label 1 \"" + os.path.dirname(case.path)]),
        ("--title with quotes", ["--title", 'A "quoted" \\ title'],
         ['set label 1 "A \\"quoted\\" \\\\ title"'], []),
        ("--curves exact,mean", ["--curves", "exact,mean"],
         ["$boundary using 1:2 ", "$boundary using 1:3 "], theory),
        ("--curves wu-wang-su", ["--curves", "wu-wang-su"],
         ["$theory using 1:2 "], ("$boundary using",) + theory[1:]),
        ("--curves none", ["--curves", "none"], ["unset key"],
         (" title '",)),
        ("--legend none", ["--legend", "none"], ["unset key"], ()),
        ("--legend top-left", ["--legend", "top-left"],
         ["set key inside top left"], ("set bmargin",)),
        ("--legend below", ["--legend", "below"],
         ["set bmargin", "set key at screen 0.5"], ()),
    ]
    for name, extra, want, unwanted in runs:
        res, text, path = plot_script(base + extra)
        e = [] if res.rc == 0 else ["exit status %d" % res.rc]
        for w in want:
            if w not in (text or ""):
                e.append("script lacks %r" % w)
        for u in unwanted:
            if u in (text or ""):
                e.append("script has %r" % u)
        report("phase --plot %s: in the script" % name, e, res)
    res, text, _ = plot_script(["phase", hcase.path, "--batch", "1,2,4",
                                "--lr", "0.1:1:4:log", "--curves", "all"]
                               + hcase.extra)
    report("phase --plot --curves all with H: no theory curves",
           ["script has %r" % t for t in theory if t in (text or "")] +
           ([] if res.rc == 0 else ["exit status %d" % res.rc]), res)
    for legend in ("below", "top-left", "top-right", "bottom-left",
                   "bottom-right", "none"):
        for color in ("rate", "relative"):
            for size, W, H in ((None, 960, 720), ("640,480", 640, 480)):
                args = base + ["--legend", legend, "--color", color]
                if size:
                    args += ["--plot-size", size]
                res, _, path = plot_script(args)
                e = [] if res.rc == 0 else ["exit status %d" % res.rc]
                e += png_check(path, W, H) if os.path.exists(path) \
                    else ["no picture"]
                report("phase --plot --legend %s --color %s: %dx%d PNG"
                       % (legend, color, W, H), e, res)


def test_plot_option_errors(cases):
    """Bad values of the picture's options: exit 2, one line naming the
    option, no files."""
    case = cases[1]
    base = ["phase", case.path, "--batch", "1,2", "--lr",
            fmt(0.5 * case.eta_star("without", 1))]
    for opt, args in (
            ("--legend", ["--legend", "middle"]),
            ("--legend", ["--legend", ""]),
            ("--curves", ["--curves", "exact,foo"]),
            ("--curves", ["--curves", ""]),
            ("--curves", ["--curves", "exact,"]),
            ("--curves", ["--curves", "none,exact"]),
            ("--color", ["--color", "hue"]),
            ("--color-range", ["--color-range", "1:2"]),
            ("--color-range", ["--color-range", "-1:0"]),
            ("--color-range", ["--color-range", "0.5"]),
            ("--color-range", ["--color-range", "a:b"]),
            ("--color-range", ["--color-range", "-1:1", "--color",
                               "relative"]),
            ("--color-range", ["--color", "relative", "--color-range",
                               "0.5:0.9"]),
            ("--title", ["--title", "two\nlines"]),
            ("--title", ["--title", "x" * 401])):
        expect_error("%s" % " ".join(a if a else "''" for a in args).replace(
            "\n", "\\n")[:60], (2,), base + args)
        res = run(*(base + args))
        report("phase error %s: the message names %s" % (opt, opt),
               [] if opt in res.err else ["stderr %r" % res.err], res)


# ----------------------------------------------------------------- 7 errors

def error_prefix(rc):
    """Usage errors (exit 2) name the subcommand, 'sgdstab phase: ...';
    data errors (exit 1) name the file, 'sgdstab: FILE: ...', as for every
    subcommand (README, Commands)."""
    return "sgdstab phase:" if rc == 2 else "sgdstab: "


def expect_error(name, status, args, files=True, keep=False):
    """The command fails with a status in status, empty stdout, one stderr
    line (error_prefix), and writes none of its --csv,
    --boundary-csv, --plot files (keep: the --csv path exists beforehand
    and must be left untouched)."""
    cdir = tempfile.mkdtemp(dir=WORK)
    csv = os.path.join(cdir, "grid.csv")
    extra = []
    if files:
        extra = ["--csv", csv, "--boundary-csv",
                 os.path.join(cdir, "boundary.csv")]
        if "--plot" not in args:
            extra += ["--plot", os.path.join(cdir, "map.png")]
    if keep:
        with open(csv, "w") as fh:
            fh.write("old\n")
    res = run(*(list(args) + extra))
    e = failure_errors(res, status)
    if not res.err.startswith(error_prefix(res.rc)):
        e.append("stderr does not start with %r" % error_prefix(res.rc))
    left = sorted(os.listdir(cdir))
    if keep:
        if left != ["grid.csv"]:
            e.append("files left beside the existing --csv: %r" % left)
        with open(csv) as fh:
            if fh.read() != "old\n":
                e.append("the existing --csv file was modified")
    elif left:
        e.append("output files created: %r" % left)
    report("phase error: %s -> exit %s, one line, no files%s"
           % (name, "/".join(map(str, status)),
              " (existing --csv untouched)" if keep else ""), e, res)


def test_errors(cases):
    case = cases[1]                                    # n = 24, p = 6
    f, n = case.path, case.n
    U, D = (2,), (1,)
    ok_lr = fmt(0.5 * case.eta_star("without", 1))
    base = ["phase", f, "--batch", "1,2"]
    pdir = tempfile.mkdtemp(dir=WORK)
    badH = os.path.join(WORK, "H_wrong_shape.npy")
    np.save(badH, np.eye(case.p + 1))
    errors = [
        ("missing file", D, ["phase", os.path.join(WORK, "nope.npy"),
                             "--batch", "1,2", "--lr", ok_lr]),
        ("no FILE", U, ["phase", "--batch", "1,2", "--lr", ok_lr]),
        ("missing --lr", U, base),
        ("missing --batch", U, ["phase", f, "--lr", ok_lr]),
        ("--lr 1:0:5 (A > B)", U, base + ["--lr", "1:0:5"]),
        ("--lr abc", U, base + ["--lr", "abc"]),
        ("--lr 0:1:5 (A = 0)", U, base + ["--lr", "0:1:5"]),
        ("--lr -1:1:5", U, base + ["--lr", "-1:1:5"]),
        ("--lr 0.1:1:1 (N < 2)", U, base + ["--lr", "0.1:1:1"]),
        ("--lr 0.1:1:1:log (N < 2)", U, base + ["--lr", "0.1:1:1:log"]),
        ("--lr 0.5:0.5:3 (A = B)", U, base + ["--lr", "0.5:0.5:3"]),
        ("--lr 0.1:1:5:lin", U, base + ["--lr", "0.1:1:5:lin"]),
        ("--lr 0.1,-0.2", U, base + ["--lr", "0.1,-0.2"]),
        ("--lr nan", U, base + ["--lr", "nan"]),
        ("--batch 0", U, ["phase", f, "--batch", "0,1", "--lr", ok_lr]),
        ("--batch n+1 (without)", (1, 2), ["phase", f, "--batch",
                                           "1,%d" % (n + 1), "--lr", ok_lr]),
        ("--batch n+1 (bernoulli)", (1, 2), ["phase", f, "--batch",
                                             "%d" % (n + 1), "--lr", ok_lr,
                                             "--sampling", "bernoulli"]),
        ("--batch 5:2", U, ["phase", f, "--batch", "5:2", "--lr", ok_lr]),
        ("--batch abc", U, ["phase", f, "--batch", "abc", "--lr", ok_lr]),
        ("--sampling foo", U, base + ["--lr", ok_lr, "--sampling", "foo"]),
        ("--loss -1", U, base + ["--lr", ok_lr, "--loss", "-1"]),
        ("unknown option", U, base + ["--lr", ok_lr, "--frobnicate"]),
        ("--hessian of the wrong shape", D, base + ["--lr", ok_lr,
                                                    "--hessian", badH]),
        ("--plot F.pdf", U, base + ["--lr", ok_lr, "--plot",
                                    os.path.join(pdir, "map.pdf")]),
        ("--plot F (no extension)", U, base + ["--lr", ok_lr, "--plot",
                                               os.path.join(pdir, "map")]),
        ("--plot-size 639,720", U, base + ["--lr", ok_lr, "--plot-size",
                                           "639,720"]),
        ("--plot-size 960,479", U, base + ["--lr", ok_lr, "--plot-size",
                                           "960,479"]),
        ("--plot-size 960,4001", U, base + ["--lr", ok_lr, "--plot-size",
                                            "960,4001"]),
        ("--plot-size 960", U, base + ["--lr", ok_lr, "--plot-size", "960"]),
        ("--plot-size 960,720,3", U, base + ["--lr", ok_lr, "--plot-size",
                                             "960,720,3"]),
        ("--plot-size a,b", U, base + ["--lr", ok_lr, "--plot-size", "a,b"]),
    ]
    for name, st, args in errors:
        expect_error(name, st, args)
        if os.listdir(pdir):
            fail("phase error %s: wrote %r" % (name, os.listdir(pdir)), [])
            for x in os.listdir(pdir):
                os.remove(os.path.join(pdir, x))
    # a pre-existing --csv file is left untouched, for a usage error and
    # for a data error
    expect_error("--lr 1:0:5", U, base + ["--lr", "1:0:5"], keep=True)
    expect_error("--plot F.pdf", U, base + ["--lr", ok_lr, "--plot",
                                            os.path.join(pdir, "m.pdf")],
                 keep=True)
    expect_error("--hessian of the wrong shape", D,
                 base + ["--lr", ok_lr, "--hessian", badH], keep=True)
    expect_error("missing file", D, ["phase", os.path.join(WORK, "nope.npy"),
                                     "--batch", "1,2", "--lr", ok_lr],
                 keep=True)


def test_output_errors(cases):
    """An output that cannot be created (its directory does not exist) is an
    error found late, after the grid is solved: still exit non-zero with one
    'sgdstab phase:' line, and none of the OTHER outputs written (all or
    nothing), an existing --csv file left as it was."""
    case = cases[1]
    lr = "%s,%s" % (fmt(0.5 * case.eta_star("without", 1)),
                    fmt(2 * case.eta_star("without", 1)))
    for bad in ("--csv", "--boundary-csv", "--plot"):
        for keep in (False, True):
            if keep and bad == "--csv":
                continue
            cdir = tempfile.mkdtemp(dir=WORK)
            paths = {"--csv": os.path.join(cdir, "grid.csv"),
                     "--boundary-csv": os.path.join(cdir, "boundary.csv"),
                     "--plot": os.path.join(cdir, "map.png")}
            paths[bad] = os.path.join(cdir, "no_such_dir",
                                      os.path.basename(paths[bad]))
            if keep:
                with open(paths["--csv"], "w") as fh:
                    fh.write("old\n")
            args = ["phase", case.path, "--batch", "1,2", "--lr", lr]
            for opt in ("--csv", "--boundary-csv", "--plot"):
                args += [opt, paths[opt]]
            res = run(*args)
            e = failure_errors(res, (1, 2))
            if not res.err.startswith(error_prefix(res.rc)):
                e.append("stderr does not start with %r"
                         % error_prefix(res.rc))
            left = sorted(os.listdir(cdir))
            if left != (["grid.csv"] if keep else []):
                e.append("output files left behind: %r" % left)
            if keep:
                with open(paths["--csv"]) as fh:
                    if fh.read() != "old\n":
                        e.append("the existing --csv file was overwritten")
            report("phase error: %s in a missing directory -> exit 1, one "
                   "line, no other output written%s"
                   % (bad, " (existing --csv untouched)" if keep else ""),
                   e, res)


def test_interrupt():
    """SIGINT or SIGTERM during a long run: the tool dies of that signal and
    leaves nothing behind (no --csv, --boundary-csv, --plot, no temporary
    files) in the output directory."""
    import signal
    import subprocess
    rng = np.random.default_rng(7)
    n, p = 600, 300
    J = rng.standard_normal((n, p)) / math.sqrt(p)
    path, _ = harness.write_problem(WORK, "interrupt", J)
    for sig in (signal.SIGINT, signal.SIGTERM):
        cdir = tempfile.mkdtemp(dir=WORK)
        cmd = [harness.SGDSTAB, "phase", path, "--batch", "1:600:40:log",
               "--lr", "0.1:100:40:log",
               "--csv", os.path.join(cdir, "grid.csv"),
               "--boundary-csv", os.path.join(cdir, "boundary.csv"),
               "--plot", os.path.join(cdir, "map.png")]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        e = []
        running = proc.poll() is None
        if running:
            proc.send_signal(sig)
        else:
            e.append("the run finished within 1 s, before the signal: the "
                     "test needs a larger job")
        out, err = proc.communicate(timeout=120)
        res = harness.Result(cmd, proc.returncode, out, err)
        if running and proc.returncode != -sig:
            e.append("exit status %d, expected death by signal %d"
                     % (proc.returncode, sig))
        left = sorted(os.listdir(cdir))
        if left:
            e.append("files left behind: %r" % left)
        report("phase interrupted by %s: no output files, no temporaries"
               % signal.Signals(sig).name, e, res)


# ----------------------------------------------------------------- main

def body(work):
    global WORK
    WORK = work
    res = run("phase", "--help")
    if res.rc != 0:
        fail("sgdstab phase --help exits %d: is `phase` implemented?"
             % res.rc, [], res)
    cases = make_cases()
    test_grid(cases)
    test_loss_and_defaults(cases)
    test_batch_syntax(cases)
    test_lr_syntax(cases)
    test_noiseless()
    test_continuity(cases)
    test_text(cases)
    test_plot(cases)
    test_plot_axes(cases)
    test_plot_colour(cases)
    test_plot_relative(cases)
    test_plot_options(cases)
    test_plot_option_errors(cases)
    test_errors(cases)
    test_output_errors(cases)
    test_interrupt()


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, "phase", body))
