"""A problem given by its Gram matrix K = J J' (the empirical NTK) in place
of J, end to end through the command line.

  * J and K agree: random J (k = 1 and 3, p below and above n*k) written
    as J.npz and as K.npz (2-D K with meta.json n, k, p; 4-D (n, k, n, k)
    K without meta.json; 2-D K without p, given by --params); info,
    analyze (three samplings), critical, phase, verify, evolve (I/p and
    zero starts, residuals, label noise), stationary and simulate (its
    exact columns; the Monte Carlo within its confidence intervals) give
    the same numbers to the engine's accuracy (1e-9 relative on eta*,
    1e-10 on rho ~ 1; the reported accuracy fields are checked below
    that); momentum, Nesterov, coupled weight decay and, for Adam, AdamW
    and RMSprop, the file's V beside J against the preconditioned Gram
    KP = J P^-1 J' (P = diag(sqrt(V) + eps)) beside K.
  * K against the independent dense reference (engine_reference.py) on
    tiny problems (n <= 6, p <= 5, k = 1 and 2): rho and eta*.
  * Bad input refused in one line naming the file, exit status 1: shapes,
    symmetry, NaN, n*k against meta.json, a clearly negative eigenvalue
    (and a rounding-size one accepted), J or V or H beside K, --hessian,
    --params against J's and meta.json's p, Adam without KP, KP's eps,
    coupled decay with Adam, --second-moment, a start that needs p or J.
  * The memory plan: info's memory_required; at r = 600 a --max-memory
    that forces a smaller eigensolver basis (a note, the same eta*) and
    one too small for any (a one-line refusal naming the r that fits).

Run by meson as `test_gram_cli.py SGDSTAB` (a plain runner below, no
pytest needed) or with pytest: `python3 -m pytest tests/test_gram_cli.py`
(the binary from $SGDSTAB, else build/src/sgdstab of this checkout)."""

import atexit
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402
import engine_reference as ref  # noqa: E402

h.SGDSTAB = os.environ.get("SGDSTAB") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "build", "src", "sgdstab")

# One BLAS thread per run (as meson's test environment sets it): the
# problems are small, and threads only contend on two cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

EPS = np.finfo(float).eps
RHO_ABS = h.RHO_ABS          # rho ~ 1 (scaled by rho when it is larger)
ETA_REL = h.ETA_REL          # eta*, relative
EXACT_REL = 1e-9             # evolutions, sums, closed-form quantities
SAMPLINGS = h.SAMPLINGS


# ----------------------------------------------------------------- files

_work = []


def work():
    """The scratch directory of this run (removed at exit)."""
    if not _work:
        _work.append(tempfile.mkdtemp(prefix="sgdstab-gram-"))
        atexit.register(shutil.rmtree, _work[0], True)
    return _work[0]


def npz(name, meta=None, **arrays):
    """NAME.npz in the scratch directory written with zipfile, as an
    exporter would: the arrays as .npy members in the order given and,
    unless meta is None, meta.json.  Returns its path."""
    path = os.path.join(work(), name + ".npz")
    with zipfile.ZipFile(path, "w") as z:
        for key, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(a))
            z.writestr(key + ".npy", buf.getvalue())
        if meta is not None:
            z.writestr("meta.json", json.dumps(meta))
    return path


def centred_residuals(A, rng, scale=0.3):
    """Residuals r (n*k) with A' r = 0 (a stationary point): r projected
    off range(A)."""
    r = scale * rng.standard_normal(A.shape[0])
    Q, _ = np.linalg.qr(A)
    return r - Q @ (Q.T @ r)


class Pair:
    """One random J written as J.npz and as the Gram-matrix files:
    variants = [(label, path, extra options, p known)]; jacR and variantsR
    the same with the residuals R, only where p < n*k (else A' r = 0
    forces r = 0)."""

    def __init__(self, name, seed, n, k, p):
        rng = np.random.default_rng(seed)
        self.name, self.n, self.k, self.p = name, n, k, p
        self.J = rng.standard_normal((n, k, p))
        self.A = self.J.reshape(n * k, p)
        self.K = self.A @ self.A.T
        Jfile = self.J[:, 0, :] if k == 1 else self.J
        full = {"n": n, "k": k, "p": p}
        part = {"n": n} if k == 1 else {"k": k}   # the other one follows
        self.jac = npz(name + "_J", full, J=Jfile)
        self.variants = [
            ("K 2-D, meta n k p", npz(name + "_K2", full, K=self.K), [], True),
            ("K 4-D, no meta", npz(name + "_K4", None,
                                   K=self.K.reshape(n, k, n, k)), [], False),
            ("K 2-D, --params", npz(name + "_Kp", part, K=self.K),
             ["--params", p], True),
        ]
        self.R = None
        if p < n * k:
            self.R = centred_residuals(self.A, rng).reshape(n, k)
            self.jacR = npz(name + "_JR", full, J=Jfile, R=self.R)
            self.variantsR = [
                ("K 2-D + R", npz(name + "_K2R", full, K=self.K, R=self.R),
                 [], True),
                ("K 4-D + R", npz(name + "_K4R", None,
                                  K=self.K.reshape(n, k, n, k), R=self.R),
                 [], False),
            ]
        self.lmax = float(np.linalg.eigvalsh(self.A.T @ self.A / n)[-1])

    def lr(self, frac):
        """frac times the full-batch limit 2/lambda_max(G)."""
        return frac * 2.0 / self.lmax


_pairs = {}
PAIR_SPECS = [("n20k1p12", 11, 20, 1, 12), ("n12k1p30", 12, 12, 1, 30),
              ("n15k3p20", 13, 15, 3, 20), ("n12k3p60", 14, 12, 3, 60)]


def pairs():
    if not _pairs:
        for spec in PAIR_SPECS:
            _pairs[spec[0]] = Pair(*spec)
    return list(_pairs.values())


# ----------------------------------------------------------------- checks

def run_json(*args):
    """h.run_json that raises on failure (the command and its output)."""
    d, res, e = h.run_json(*args)
    assert not e, "%s: %s\nstderr: %s" % (" ".join(res.cmd), e, res.err)
    return d


def agree(where, a, b, rel, abs_=0.0):
    """[] if a and b are the same number within rel * max(|a|, |b|) +
    abs_ (or equal non-numbers), else one message."""
    if h.is_num(a) and h.is_num(b):
        if math.isfinite(a) and math.isfinite(b) and \
                abs(a - b) <= rel * max(abs(a), abs(b)) + abs_:
            return []
        if a == b:
            return []
        return ["%s: %r (J) vs %r (K), |diff| %.3g" %
                (where, a, b, abs(a - b) if math.isfinite(a - b) else a)]
    return [] if a == b else ["%s: %r (J) vs %r (K)" % (where, a, b)]


def agree_keys(where, dJ, dK, keys, rel, abs_=0.0):
    e = []
    for key in keys:
        if key not in dJ or key not in dK:
            e.append("%s: key %r missing (J %s, K %s)" %
                     (where, key, key in dJ, key in dK))
        else:
            e += agree("%s %s" % (where, key), dJ[key], dK[key], rel, abs_)
    return e


def agree_rho(where, a, b, err=0.0):
    """Spectral radii: RHO_ABS at rho ~ 1, relative above, or within twice
    the solver's own error estimates."""
    return agree(where, a, b, RHO_ABS, max(RHO_ABS, 2 * err))


def agree_list(where, a, b, rel, abs_=0.0):
    if not isinstance(a, list) or not isinstance(b, list) or \
            len(a) != len(b):
        return ["%s: %r vs %r" % (where, a, b)]
    e = []
    for i, (x, y) in enumerate(zip(a, b)):
        e += agree("%s[%d]" % (where, i), x, y, rel, abs_)
    return e


def analyze_errors(where, dJ, dK, n, B):
    """Every number analyze reports, J against K."""
    e = []
    err = dJ["spectral_radius_error_estimate"] + \
        dK["spectral_radius_error_estimate"]
    e += agree_rho(where + " spectral_radius", dJ["spectral_radius"],
                   dK["spectral_radius"], err)
    rho = max(dJ["spectral_radius"], 1e-300)
    e += agree(where + " escape_rate_per_step", dJ["escape_rate_per_step"],
               dK["escape_rate_per_step"], 0, 2 * (RHO_ABS + err) / rho)
    e += agree(where + " escape_rate_per_epoch",
               dJ["escape_rate_per_epoch"], dK["escape_rate_per_epoch"], 0,
               2 * (RHO_ABS + err) / rho * n / B)
    for d, which in ((dJ, "J"), (dK, "K")):
        if not d["lr_critical_rel_accuracy"] <= ETA_REL / 2:
            e.append("%s: %s's eta* accuracy %r above %g" %
                     (where, which, d["lr_critical_rel_accuracy"],
                      ETA_REL / 2))
        if not d["spectral_radius_error_estimate"] <= RHO_ABS * \
                max(1.0, d["spectral_radius"]):
            e.append("%s: %s's rho error estimate %r" %
                     (where, which, d["spectral_radius_error_estimate"]))
    e += agree_keys(where, dJ, dK, ["lr_critical"], ETA_REL)
    e += agree_keys(where, dJ, dK,
                    ["lr_critical_mean", "sharpness", "hessian_frobenius",
                     "hessian_trace"], EXACT_REL)
    e += agree_keys(where, dJ, dK, ["verdict", "stable", "not_a_minimum",
                                    "rank", "n", "k", "lr", "batch",
                                    "sampling", "loss_scale"], 0)
    if "null_space_decay_rate" in dK and "null_space_decay_rate" not in dJ \
            and dK["p"] is None:
        pass    # r < p unknown without p: reported in case there is one
    elif ("null_space_decay_rate" in dJ) != ("null_space_decay_rate" in dK):
        e.append("%s: null_space_decay_rate in J %s, in K %s" %
                 (where, "null_space_decay_rate" in dJ,
                  "null_space_decay_rate" in dK))
    elif "null_space_decay_rate" in dJ:
        e += agree_keys(where, dJ, dK, ["null_space_decay_rate"], EXACT_REL,
                        1e-13)
    if dJ.get("optimizer") != dK.get("optimizer"):
        e.append("%s: optimizer %r (J) vs %r (K)" %
                 (where, dJ.get("optimizer"), dK.get("optimizer")))
    return e


def critical_errors(where, dJ, dK):
    e = []
    cJ, cK = dJ["critical"], dK["critical"]
    if [c["batch"] for c in cJ] != [c["batch"] for c in cK]:
        return ["%s: batches %r vs %r" % (where, cJ, cK)]
    for a, b in zip(cJ, cK):
        w = "%s B=%d" % (where, a["batch"])
        for c, which in ((a, "J"), (b, "K")):
            if not c["rel_accuracy"] <= ETA_REL / 2:
                e.append("%s: %s's rel_accuracy %r" %
                         (w, which, c["rel_accuracy"]))
        e += agree(w + " lr_critical", a["lr_critical"], b["lr_critical"],
                   ETA_REL)
        e += agree(w + " not_a_minimum", a["not_a_minimum"],
                   b["not_a_minimum"], 0)
    e += agree_keys(where, dJ, dK, ["lr_critical_mean"], EXACT_REL)
    e += agree_keys(where, dJ, dK, ["n", "sampling", "loss_scale",
                                    "optimizer"], 0)
    return e


def assert_no_errors(e):
    assert not e, "\n".join(e[:40]) + \
        ("\n... %d more" % (len(e) - 40) if len(e) > 40 else "")


# ----------------------------------------------------------------- 1. J = K

def test_info_jacobian_equals_gram():
    e = []
    for P in pairs():
        dJ = run_json("info", P.jac)
        if dJ["input"] != "jacobian":
            e.append("%s J: input %r" % (P.name, dJ["input"]))
        for label, path, opts, p_known in P.variants:
            w = "%s %s" % (P.name, label)
            dK = run_json("info", path, *opts)
            e += agree_keys(w, dJ, dK, ["sigma_max", "lambda_max_G",
                                        "trace_G", "sharpness",
                                        "hessian_trace"], EXACT_REL)
            e += agree_keys(w, dJ, dK, ["n", "k", "rank", "has_hessian",
                                        "loss", "loss_scale"], 0)
            if dK["input"] != "gram":
                e.append("%s: input %r" % (w, dK["input"]))
            want_p = P.p if p_known else None
            want_null = P.p - dJ["rank"] if p_known else None
            if dK["p"] != want_p or dK["null_dim"] != want_null:
                e.append("%s: p %r null_dim %r, expected %r %r" %
                         (w, dK["p"], dK["null_dim"], want_p, want_null))
            if not p_known:   # --params supplies it
                dP = run_json("info", path, "--params", P.p)
                if dP["p"] != P.p or dP["null_dim"] != dJ["null_dim"]:
                    e.append("%s --params: p %r null_dim %r" %
                             (w, dP["p"], dP["null_dim"]))
            # the documented default rank tolerance of K: sqrt(n k eps)
            if not h.close_rel(dK["rank_rtol"], math.sqrt(P.n * P.k * EPS),
                               1e-12):
                e.append("%s: rank_rtol %r, expected sqrt(n k eps) = %r" %
                         (w, dK["rank_rtol"], math.sqrt(P.n * P.k * EPS)))
        if dJ["rank"] != min(P.n * P.k, P.p):
            e.append("%s: rank %r" % (P.name, dJ["rank"]))
        # a 2-D K without meta.json: k = 1, every row a sample
        d = run_json("info", npz(P.name + "_K2bare", None, K=P.K))
        if (d["n"], d["k"], d["p"]) != (P.n * P.k, 1, None):
            e.append("%s bare 2-D K: n k p = %r %r %r, expected %d 1 None" %
                     (P.name, d["n"], d["k"], d["p"], P.n * P.k))
        e += agree_keys(P.name + " bare 2-D K", dJ, d, ["sigma_max", "rank"],
                        EXACT_REL)
        for key in ("lambda_max_G", "trace_G"):    # G = J'J / (n k) there
            e += agree("%s bare 2-D K %s * k" % (P.name, key), dJ[key],
                       d[key] * P.k, EXACT_REL)
    assert_no_errors(e)


def test_analyze_jacobian_equals_gram():
    e = []
    for P in pairs():
        for frac, B in ((0.3, 1), (0.6, 3), (0.9, P.n // 2 + 1),
                        (1.1, P.n)):
            for s in SAMPLINGS:
                args = ("--lr", P.lr(frac), "--batch", B, "--sampling", s)
                dJ = run_json("analyze", P.jac, *args)
                for label, path, opts, _ in P.variants:
                    dK = run_json("analyze", path, *args, *opts)
                    e += analyze_errors("%s %s lr=%g B=%d %s" %
                                        (P.name, label, frac, B, s),
                                        dJ, dK, P.n, B)
    assert_no_errors(e)


def test_critical_jacobian_equals_gram():
    e = []
    for P in pairs():
        for s in SAMPLINGS:
            args = ("--batch", "1,2,5,n", "--sampling", s)
            dJ = run_json("critical", P.jac, *args)
            for label, path, opts, _ in P.variants:
                dK = run_json("critical", path, *args, *opts)
                e += critical_errors("%s %s %s" % (P.name, label, s), dJ, dK)
    assert_no_errors(e)


def test_phase_jacobian_equals_gram():
    e = []
    for P in pairs()[::3]:
        lrs = ",".join("%.17g" % P.lr(f) for f in (0.1, 0.5, 1.2))
        args = ("--batch", "1,4", "--lr", lrs, "--quiet")
        dJ = run_json("phase", P.jac, *args)
        for label, path, opts, _ in P.variants[:2]:
            w = "%s %s" % (P.name, label)
            dK = run_json("phase", path, *args, *opts)
            if len(dJ["grid"]) != len(dK["grid"]) or len(dJ["grid"]) != 6:
                e.append("%s: grids of %d and %d points" %
                         (w, len(dJ["grid"]), len(dK["grid"])))
                continue
            for a, b in zip(dJ["grid"], dK["grid"]):
                wp = "%s B=%r lr=%r" % (w, a["batch"], a["lr"])
                e += agree_keys(wp, a, b, ["batch", "lr", "stable"], 0)
                e += agree_rho(wp + " spectral_radius", a["spectral_radius"],
                               b["spectral_radius"])
                e += agree(wp + " escape_rate_per_step",
                           a["escape_rate_per_step"],
                           b["escape_rate_per_step"], 0,
                           4 * RHO_ABS / a["spectral_radius"])
            for a, b in zip(dJ["boundary"], dK["boundary"]):
                wb = "%s boundary B=%r" % (w, a["batch"])
                e += agree_keys(wb, a, b, ["lr_critical"], ETA_REL)
                e += agree_keys(wb, a, b,
                                [k for k in a if k not in
                                 ("lr_critical", "batch")
                                 and h.is_num(a[k])], EXACT_REL)
            if dK["input"] != "gram" or dJ["input"] != "jacobian":
                e.append("%s: input %r / %r" % (w, dJ["input"], dK["input"]))
    assert_no_errors(e)


VERIFY_KEYS = ["lr_critical_mean", "sharpness", "hessian_frobenius",
               "hessian_trace", "nonuniformity", "alignment_top",
               "frobenius_bound", "growth_bound", "a", "b"]


def test_verify_jacobian_equals_gram():
    e = []
    for P in pairs():
        for frac, B, s in ((0.4, 2, "without"), (0.8, 4, "bernoulli")):
            args = ("--lr", P.lr(frac), "--batch", B, "--sampling", s)
            dJ = run_json("verify", P.jac, *args)
            for label, path, opts, _ in P.variants:
                w = "%s %s verify lr=%g B=%d" % (P.name, label, frac, B)
                dK = run_json("verify", path, *args, *opts)
                e += agree_rho(w + " spectral_radius",
                               dJ["spectral_radius"], dK["spectral_radius"])
                e += agree_keys(w, dJ, dK, ["lr_critical"], ETA_REL)
                e += agree_keys(w, dJ, dK, VERIFY_KEYS, EXACT_REL)
                # mu_min: the minimum of a Rayleigh-type quotient
                e += agree_keys(w, dJ, dK, ["alignment_min"], 1e-7)
                e += agree_keys(w, dJ, dK, ["stable", "verdict",
                                            "theorems_failed"], 0)
                if dK["theorems_failed"] != 0:
                    e.append("%s: theorems_failed %r" %
                             (w, dK["theorems_failed"]))
    assert_no_errors(e)


def test_evolve_jacobian_equals_gram():
    """The I/p start (p known or --params) and, with residuals and label
    noise, the zero start (the approach to the stationary state)."""
    e = []
    for P in pairs():
        for frac, B, s in ((0.5, 3, "without"), (0.9, 2, "with")):
            args = ("--lr", P.lr(frac), "--batch", B, "--sampling", s,
                    "--steps", 12)
            runs = [("I/p", P.jac, P.variants, ())]
            runs.append(("zero, label noise", P.jac, P.variants,
                         ("--init", "zero", "--label-noise", 0.3)))
            if P.R is not None:
                runs.append(("zero, R", P.jacR, P.variantsR,
                             ("--init", "zero")))
            for start, jac, variants, more in runs:
                dJ = run_json("evolve", jac, *args, *more)
                for label, path, opts, p_known in variants:
                    w = "%s %s evolve %s lr=%g B=%d" % (P.name, label,
                                                        start, frac, B)
                    popts = [] if p_known or more else ["--params", P.p]
                    dK = run_json("evolve", path, *args, *more, *opts,
                                  *popts)
                    for key in ("second_moment", "loss"):
                        scale = max(abs(x) for x in dJ[key])
                        e += agree_list(w + " " + key, dJ[key], dK[key],
                                        EXACT_REL, 1e-13 * scale)
                    if start != "I/p" and dJ["second_moment"][-1] <= 0:
                        e.append("%s: no growth from zero" % w)
    assert_no_errors(e)


STATIONARY_KEYS = ["second_moment", "excess_loss", "gradient_norm_sq",
                   "relaxation_steps", "gradient_spread"]


def test_stationary_jacobian_equals_gram():
    e = []
    for P in pairs():
        cases = [("label noise", P.jac, P.variants, ("--label-noise", 0.2))]
        if P.R is not None:
            cases += [("R", P.jacR, P.variantsR, ()),
                      ("R + label noise", P.jacR, P.variantsR,
                       ("--label-noise", 0.2))]
        for what, jac, variants, more in cases:
            for frac, B, s in ((0.3, 2, "without"), (0.8, 5, "bernoulli")):
                eta = run_json("critical", P.jac, "--batch", B, "--sampling",
                               s)["critical"][0]["lr_critical"]
                args = ("--lr", frac * eta, "--batch", B, "--sampling", s)
                dJ = run_json("stationary", jac, *args, *more)
                for label, path, opts, _ in variants:
                    w = "%s %s stationary %s lr=%g B=%d" % (
                        P.name, label, what, frac, B)
                    dK = run_json("stationary", path, *args, *more, *opts)
                    if not (dJ["stable"] and dK["stable"]):
                        e.append("%s: not stable" % w)
                        continue
                    for d, which in ((dJ, "J"), (dK, "K")):
                        if not (d["converged"] and
                                d["relative_residual"] <= 1e-11):
                            e.append("%s: %s relative_residual %r" %
                                     (w, which, d["relative_residual"]))
                    e += agree_rho(w + " spectral_radius",
                                   dJ["spectral_radius"],
                                   dK["spectral_radius"])
                    e += agree_keys(w, dJ, dK, ["lr_critical"], ETA_REL)
                    e += agree_keys(w, dJ, dK, STATIONARY_KEYS, EXACT_REL)
                    e += agree_keys(w, dJ, dK, ["null_space_directions",
                                                "null_space_drift_rate"], 0)
                    # zero up to rounding: both at the level of the spread
                    e += agree(w + " mean_gradient_norm",
                               dJ["mean_gradient_norm"],
                               dK["mean_gradient_norm"], 0,
                               1e-12 * dJ["gradient_spread"])
    assert_no_errors(e)


SIM_EXACT = ["exact_second_moment", "exact_spectral_radius",
             "exact_rate_per_step", "stationary_second_moment",
             "exact_time_average"]


def simulate_errors(w, dJ, dK):
    e = []
    for key in SIM_EXACT:
        if (key in dJ) != (key in dK):
            e.append("%s: %s in J %s, in K %s" % (w, key, key in dJ,
                                                   key in dK))
        elif key in dJ and isinstance(dJ[key], list):
            e += agree_list(w + " " + key, dJ[key], dK[key], EXACT_REL,
                            1e-14 * max(dJ[key]))
        elif key in dJ:
            e += agree(w + " " + key, dJ[key], dK[key], EXACT_REL, 1e-15)
    # the Monte Carlo means: each within its 95% interval's reach of the
    # exact curve (z-scores; 11 steps, |z| <= 4.5) and of each other
    for d, which in ((dJ, "J"), (dK, "K")):
        z = [abs(x) for x in d["z_score"] if x is not None]
        if z and max(z) > 4.5:
            e.append("%s: %s z-scores up to %.2f" % (w, which, max(z)))
    for i, (a, b, ca, cb) in enumerate(zip(dJ["second_moment"],
                                           dK["second_moment"],
                                           dJ["second_moment_ci"],
                                           dK["second_moment_ci"])):
        if abs(a - b) > 2.5 * (ca + cb) + 1e-15:
            e.append("%s: step %d Monte Carlo means %r and %r (ci %r %r)" %
                     (w, i, a, b, ca, cb))
    return e


def test_simulate_jacobian_equals_gram():
    e = []
    for P in pairs()[1:3]:
        lr = P.lr(0.25)
        base = ("--lr", lr, "--batch", 3, "--steps", 10, "--runs", 1500,
                "--seed", 7, "--compare", "--threads", 2, "--quiet")
        runs = [("I/p", P.jac, P.variants, ())]
        runs.append(("zero, label noise", P.jac, P.variants[:2],
                     ("--init", "zero", "--label-noise", 0.3)))
        if P.R is not None:
            runs.append(("zero, R", P.jacR, P.variantsR, ("--init", "zero")))
        for start, jac, variants, more in runs:
            dJ = run_json("simulate", jac, *base, *more)
            for label, path, opts, p_known in variants:
                w = "%s %s simulate %s" % (P.name, label, start)
                popts = [] if p_known or more else ["--params", P.p]
                dK = run_json("simulate", path, *base, *more, *opts, *popts)
                e += simulate_errors(w, dJ, dK)
                want_p = P.p if p_known or popts else None
                if dK.get("p", "missing") != want_p:
                    e.append("%s: p %r, expected %r" %
                             (w, dK.get("p", "missing"), want_p))
    assert_no_errors(e)


def test_json_input_every_command():
    """The JSON of every command tells "input": jacobian or gram."""
    P = pairs()[0]
    lr = P.lr(0.3)
    cmds = [["info"], ["analyze", "--lr", lr, "--batch", 2],
            ["critical", "--batch", 2],
            ["phase", "--batch", 2, "--lr", "%r,%r" % (lr, 2 * lr)],
            ["verify", "--lr", lr, "--batch", 2],
            ["evolve", "--lr", lr, "--batch", 2, "--steps", 2, "--init",
             "zero"],
            ["stationary", "--lr", lr, "--batch", 2, "--label-noise", 0.1],
            ["simulate", "--lr", lr, "--batch", 2, "--steps", 2, "--runs",
             10, "--init", "zero"],
            ["simulate", "--epoch", "--lr", lr, "--batch", 2, "--runs", 10]]
    e = []
    for cmd in cmds:
        for path, want in ((P.jac, "jacobian"), (P.variants[0][1], "gram")):
            d = run_json(cmd[0], path, *cmd[1:])
            if d.get("input") != want:
                e.append("%s: input %r, expected %r" %
                         (" ".join(map(str, cmd[:2])),
                          d.get("input", "(missing)"), want))
    assert_no_errors(e)


def test_simulate_without_start_needs_no_p():
    """simulate --epoch and --threshold sample products of steps, with no
    start S0: a Gram matrix of unknown p is enough, and they agree with
    the same file given --params (same seed)."""
    P = pairs()[1]
    path = P.variants[1][1]       # 4-D K, no meta.json
    lr = P.lr(0.3)
    e = []
    for mode in (["--epoch", "--lr", lr], ["--threshold"]):
        args = ("simulate", path, *mode, "--batch", 3, "--runs", 200,
                "--seed", 3)
        want = run_json(*args, "--params", P.p)
        d, res, m = h.run_json(*args)
        if m:
            e += ["simulate %s without --params: %s (stderr %r)" %
                  (mode[0], x, res.err) for x in m]
            continue
        for key in want:
            if key not in ("p", "null_dim", "seconds") and \
                    h.is_num(want[key]):
                e += agree("simulate %s %s" % (mode[0], key), want[key],
                           d.get(key), 1e-12)
    assert_no_errors(e)


# ------------------------------------------------------- 1b. optimizers

def optimizer_files(P, kind, V, eps, **settings):
    """J + V and K + KP with the same meta.json optimizer object."""
    opt = dict(kind=kind, eps=eps, **settings)
    meta = {"n": P.n, "k": P.k, "p": P.p, "optimizer": opt}
    KP = (P.A / (np.sqrt(V) + eps)) @ P.A.T
    Jf = P.J[:, 0, :] if P.k == 1 else P.J
    jac = npz("%s_J_%s" % (P.name, kind), meta, J=Jf, V=V)
    gram = npz("%s_K_%s" % (P.name, kind), meta, K=P.K, KP=KP)
    return jac, gram


def test_optimizers_jacobian_equals_gram():
    e = []
    for P in (pairs()[1], pairs()[2]):
        rng = np.random.default_rng(99)
        V = rng.uniform(0.1, 2.0, P.p)
        eps = 1e-8
        cases = [("momentum", P.jac, P.variants[0][1],
                  ("--momentum", 0.9)),
                 ("momentum 4-D", P.jac, P.variants[1][1],
                  ("--momentum", 0.9, "--dampening", 0.3)),
                 ("nesterov", P.jac, P.variants[0][1],
                  ("--momentum", 0.9, "--nesterov")),
                 ("weight decay", P.jac, P.variants[0][1],
                  ("--weight-decay", 0.05 * P.lmax)),
                 ("weight decay + momentum", P.jac, P.variants[2][1],
                  ("--weight-decay", 0.05 * P.lmax, "--momentum", 0.5,
                   "--params", P.p))]
        files = {
            "adam": optimizer_files(P, "adam", V, eps, momentum=0.9,
                                    beta2=0.999, weight_decay=0),
            "adamw": optimizer_files(P, "adamw", V, eps, momentum=0.9,
                                     beta2=0.999, weight_decay=0.01),
            "rmsprop": optimizer_files(P, "rmsprop", V, eps, momentum=0.5,
                                       beta2=0.99, weight_decay=0)}
        for kind, (jac, gram) in files.items():
            cases.append((kind + " (meta.json)", jac, gram, ()))
        # options given replace the file's: Adam named, with its file's V/KP
        jac, gram = files["adam"]
        cases.append(("--optimizer adam --betas", jac, gram,
                      ("--optimizer", "adam", "--betas", "0.8,0.99")))
        jac, gram = files["adamw"]
        cases.append(("--optimizer adamw --weight-decay", jac, gram,
                      ("--optimizer", "adamw", "--weight-decay", 0.1)))
        pre = 1 / np.sqrt(np.sqrt(V) + eps)
        lmax_pre = np.linalg.eigvalsh((P.A * pre).T @ (P.A * pre) / P.n)[-1]
        for what, jac, gram, opts in cases:
            args = ("--batch", "1,3,n")
            cJ = run_json("critical", jac, *args, *opts)
            e += critical_errors("%s %s" % (P.name, what), cJ,
                                 run_json("critical", gram, *args, *opts))
            lr = 0.6 * cJ["critical"][-1]["lr_critical"]
            for B, s in ((2, "without"), (4, "bernoulli")):
                args = ("--lr", lr, "--batch", B, "--sampling", s)
                dJ = run_json("analyze", jac, *args, *opts)
                dK = run_json("analyze", gram, *args, *opts)
                w = "%s %s B=%d %s" % (P.name, what, B, s)
                e += analyze_errors(w, dJ, dK, P.n, B)
                pre_J = dJ["optimizer"]["preconditioned"]
                if pre_J != (what.split()[0] in ("adam", "adamw", "rmsprop",
                                                 "--optimizer")):
                    e.append("%s: preconditioned %r" % (w, pre_J))
        # the preconditioned full-batch closed form of Adam (beta1 0.9)
        jac, gram = files["adam"]
        d = run_json("critical", gram, "--batch", P.n)
        want = (2 + 2 * 0.9) / ((1 - 0.9) * lmax_pre)
        e += agree("%s adam eta*(n) closed form" % P.name,
                   want, d["critical"][0]["lr_critical"], ETA_REL)
    assert_no_errors(e)


# ------------------------------------------------------- 2. the reference

TINY = [("n6k1p4", 21, 6, 1, 4), ("n5k1p5", 22, 5, 1, 5),
        ("n3k2p5", 23, 3, 2, 5), ("n2k2p5", 24, 2, 2, 5),
        ("n4k2p3", 25, 4, 2, 3)]


def test_gram_against_dense_reference():
    e = []
    for name, seed, n, k, p in TINY:
        rng = np.random.default_rng(seed)
        J = rng.standard_normal((n, k, p))
        A = J.reshape(n * k, p)
        s = np.linalg.svd(A, compute_uv=False)
        assert s[-1] > 1e-3 * s[0], "ill-conditioned test data " + name
        K = A @ A.T
        files = [npz(name + "_K2", {"n": n, "k": k}, K=K),
                 npz(name + "_K4", None, K=K.reshape(n, k, n, k))]
        prob = ref.Problem(J)
        for B in sorted({1, 2, n}):
            for smp in SAMPLINGS:
                eta = ref.lr_critical(prob, smp, B)
                if eta is None or not math.isfinite(eta):
                    # full batch without replacement: 2/lambda_max
                    eta = prob.lr_critical_mean()
                for frac in (0.7, 1.3):
                    lr = frac * eta
                    rho = ref.rho_perp(prob, lr, smp, B)
                    for path in files[:1 if frac > 1 else 2]:
                        w = "%s %s B=%d %s lr=%g eta*" % (
                            name, os.path.basename(path), B, smp, frac)
                        d = run_json("analyze", path, "--lr", lr, "--batch",
                                     B, "--sampling", smp)
                        if d["rank"] != min(n * k, p):
                            e.append("%s: rank %r" % (w, d["rank"]))
                        if not h.close_abs(d["spectral_radius"], rho,
                                           RHO_ABS * max(1, rho)):
                            e.append("%s: rho %r, reference %r" %
                                     (w, d["spectral_radius"], rho))
                        if not h.close_rel(d["lr_critical"], eta, ETA_REL):
                            e.append("%s: eta* %r, reference %r" %
                                     (w, d["lr_critical"], eta))
                        if d["stable"] != (frac < 1):
                            e.append("%s: stable %r" % (w, d["stable"]))
    assert_no_errors(e)


# ------------------------------------------------------- 3. bad input

def refused(args, needles, status=(1,), name_file=None):
    """Messages for a command that must fail: exit status in status, empty
    stdout, one stderr line containing every needle and the file name
    (name_file, default the first argument after the command)."""
    res = h.run(*args)
    w = " ".join(str(a) for a in args)
    e = ["%s: %s (stderr %r)" % (w, m, res.err)
         for m in h.failure_errors(res, status)]
    if "Traceback" in res.err or res.rc < 0:
        e.append("%s: crashed (status %d)" % (w, res.rc))
    fname = name_file if name_file is not None else str(args[1])
    for needle in list(needles) + ([fname] if fname else []):
        if needle not in res.err:
            e.append("%s: stderr %r lacks %r" % (w, res.err, needle))
    return e


def bad_problem():
    rng = np.random.default_rng(31)
    n, k, p = 10, 2, 7
    J = rng.standard_normal((n, k, p))
    A = J.reshape(n * k, p)
    return n, k, p, J, A, A @ A.T


def test_bad_gram_files():
    n, k, p, J, A, K = bad_problem()
    meta = {"n": n, "k": k, "p": p}
    lam = np.linalg.eigvalsh(K)[-1]
    Kasym = K.copy()
    Kasym[0, 1] += 1e-8 * np.abs(K).max()
    Knan = K.copy()
    Knan[3, 3] = np.nan
    # K from a rank-7 J with its zero eigenvalue moved clearly below zero
    w, Q = np.linalg.eigh(K)
    w[0] = -1e-3 * lam
    Kneg = (Q * w) @ Q.T
    Kneg = (Kneg + Kneg.T) / 2
    cases = [
        ("not square", npz("bad_nsq", None, K=K[:, :-1]), ["square"]),
        ("3-D", npz("bad_3d", None, K=K.reshape(n, k, n * k)),
         ["dimensions"]),
        ("4-D not (n,k,n,k)", npz("bad_4d", None,
                                  K=np.zeros((n, k, n + 1, k))),
         ["(n, k, n, k)"]),
        ("4-D transposed", npz("bad_4dt", None,
                               K=np.zeros((n, k, k, n))), ["(n, k, n, k)"]),
        ("not symmetric", npz("bad_asym", meta, K=Kasym),
         ["not symmetric"]),
        ("NaN", npz("bad_nan", meta, K=Knan), ["non-finite"]),
        ("inf", npz("bad_inf", meta, K=np.where(K == K[1, 1], np.inf, K)),
         ["non-finite"]),
        ("n*k against meta n, k", npz("bad_meta_nk", {"n": 7, "k": 3}, K=K),
         ["meta.json"]),
        ("n*k against meta k", npz("bad_meta_k", {"k": 3}, K=K),
         ["meta.json"]),
        ("4-D against meta n", npz("bad_meta_4d", {"n": 5, "k": 4},
                                   K=K.reshape(n, k, n, k)), ["meta.json"]),
        ("negative eigenvalue", npz("bad_neg", meta, K=Kneg),
         ["K is not positive semidefinite"]),
        ("J and K", npz("bad_both", meta, J=J, K=K), ["J", "K"]),
        ("V beside K", npz("bad_V", meta, K=K, V=np.ones(p)),
         ["V", "KP"]),
        ("H beside K", npz("bad_H", meta, K=K, H=np.eye(p)), ["H"]),
        ("R of a wrong shape", npz("bad_R", meta, K=K, R=np.zeros((n, 3))),
         ["R"]),
        ("KP of a wrong shape", npz("bad_KP", meta, K=K, KP=K[:-1, :-1]),
         ["KP"]),
        ("KP with NaN", npz("bad_KPnan", meta, K=K, KP=Knan), ["KP"]),
    ]
    e = []
    for what, path, needles in cases:
        for cmd in (["info", path], ["analyze", path, "--lr", 0.01,
                                     "--batch", 2]):
            e += ["[%s] %s" % (what, m) for m in refused(cmd, needles)]
    assert_no_errors(e)


def test_gram_psd_up_to_rounding_accepted():
    """K = J J' with rounding-size asymmetry or negative eigenvalues is
    accepted and analyzed as J: antisymmetric noise 1e-14 max|K|; a zero
    eigenvalue moved to -0.1 and -10 times the documented tolerance
    rank_tol^2 lambda_max(K) (accepted, refused)."""
    n, k, p, J, A, K = bad_problem()
    meta = {"n": n, "k": k, "p": p}
    rng = np.random.default_rng(32)
    N = rng.standard_normal(K.shape) * 1e-14 * np.abs(K).max()
    jac = npz("psd_J", meta, J=J)
    lam = np.linalg.eigvalsh(K)[-1]
    w, Q = np.linalg.eigh(K)
    assert w[0] < 1e-10 * lam    # p < n k: a zero eigenvalue
    tol = n * k * EPS * lam      # (sqrt(n k eps))^2 lambda_max
    files = {}
    for name, scale in (("psd_small_neg", -0.1), ("psd_big_neg", -10)):
        w2 = w.copy()
        w2[:n * k - p] = scale * tol
        M = (Q * w2) @ Q.T
        files[name] = npz(name, meta, K=(M + M.T) / 2)
    e = []
    args = ("--lr", 0.05, "--batch", 3)
    dJ = run_json("analyze", jac, *args)
    for path in (npz("psd_antisym", meta, K=K + (N - N.T)),
                 files["psd_small_neg"]):
        dK = run_json("analyze", path, *args)
        e += analyze_errors(os.path.basename(path), dJ, dK, n, 3)
    e += refused(["info", files["psd_big_neg"]],
                 ["K is not positive semidefinite"])
    assert_no_errors(e)


def test_gram_refused_options():
    n, k, p, J, A, K = bad_problem()
    meta = {"n": n, "k": k, "p": p}
    jac = npz("opt_J", meta, J=J)
    gram = npz("opt_K", meta, K=K)
    gram_np = npz("opt_Knp", {"n": n, "k": k}, K=K)
    gram4 = npz("opt_K4", None, K=K.reshape(n, k, n, k))
    rng = np.random.default_rng(33)
    V = rng.uniform(0.5, 1.5, p)
    eps = 1e-8
    KP = (A / (np.sqrt(V) + eps)) @ A.T
    adam = {"kind": "adam", "eps": eps, "momentum": 0.9, "beta2": 0.999}
    gram_adam = npz("opt_Kadam", dict(meta, optimizer=adam), K=K, KP=KP)
    gram_adam_noKP = npz("opt_Kadam_noKP", dict(meta, optimizer=adam), K=K)
    gram_KP_nometa = npz("opt_KP_nometa", meta, K=K, KP=KP)
    vpath = os.path.join(work(), "opt_v.npy")
    np.save(vpath, V)
    s0 = os.path.join(work(), "opt_s0.npy")
    np.save(s0, np.eye(p) / p)
    hpath = os.path.join(work(), "opt_H.npy")
    np.save(hpath, A.T @ A / n)
    an = ("--lr", 0.01, "--batch", 2)
    ev = ("--lr", 0.01, "--batch", 2, "--steps", 3)
    e = []
    e += refused(["analyze", gram, *an, "--hessian", hpath], ["Hessian"])
    e += refused(["critical", gram, "--batch", 2, "--hessian", hpath],
                 ["Hessian"])
    e += refused(["info", jac, "--params", p + 1], [str(p), str(p + 1)])
    e += refused(["analyze", jac, *an, "--params", p - 1],
                 [str(p), str(p - 1)])
    e += refused(["info", gram, "--params", p + 1], [str(p), str(p + 1)])
    e += refused(["analyze", gram, *an, "--optimizer", "adam"], ["KP"])
    e += refused(["analyze", gram_adam_noKP, *an], ["KP"])
    e += refused(["critical", gram_adam, "--batch", 2, "--optimizer", "adam",
                  "--eps", 1e-6], ["eps"])
    e += refused(["analyze", gram_KP_nometa, *an, "--optimizer", "adam"],
                 ["eps"])
    e += refused(["analyze", gram_adam, *an, "--optimizer", "adam",
                  "--weight-decay", 0.1], ["weight decay"])
    e += refused(["analyze", npz("opt_Kadam_wd", dict(meta, optimizer=dict(
        adam, weight_decay=0.1)), K=K, KP=KP), *an], ["weight decay"])
    e += refused(["analyze", gram, *an, "--optimizer", "adam",
                  "--second-moment", vpath], ["second moment"])
    e += refused(["analyze", gram_adam, *an, "--second-moment", vpath],
                 ["second moment"])
    for cmd in ("evolve", "simulate", "stationary"):
        more = ("--label-noise", 0.1) if cmd == "stationary" else ("--init",
                                                                   "zero")
        e += refused([cmd, gram_adam, *ev[:4], *(ev[4:] if cmd != "stationary"
                                                  else ()), *more],
                     ["needs J"])
    # the I/p start without p: non-zero, one line, says --params
    for cmd in ("evolve", "simulate"):
        for path in (gram_np, gram4):
            e += refused([cmd, path, *ev], ["--params"], status=(1, 2),
                         name_file="")
    # a start matrix needs J
    for cmd in ("evolve", "simulate"):
        e += refused([cmd, gram, *ev, "--init", s0], ["needs J"],
                     name_file="")
    # ... but the same commands with J are fine
    run_json("evolve", jac, *ev, "--init", s0)
    run_json("evolve", gram_np, *ev, "--params", p)
    run_json("evolve", gram4, *ev, "--init", "zero", "--label-noise", 0.1)
    assert_no_errors(e)


def test_gram_refusals_name_the_file():
    """Every refusal names its file, as the other input errors do: the I/p
    start without p and a start matrix beside K, in evolve as in
    simulate."""
    n, k, p, J, A, K = bad_problem()
    gram = npz("name_K", {"n": n, "k": k, "p": p}, K=K)
    gram_np = npz("name_Knp", {"n": n, "k": k}, K=K)
    s0 = os.path.join(work(), "name_s0.npy")
    np.save(s0, np.eye(p) / p)
    ev = ("--lr", 0.01, "--batch", 2, "--steps", 3)
    e = []
    for cmd in ("evolve", "simulate"):
        e += refused([cmd, gram_np, *ev], ["--params"], status=(1, 2))
        e += refused([cmd, gram, *ev, "--init", s0], ["needs J"])
    assert_no_errors(e)


# ------------------------------------------------------- 4. memory plan

def test_memory_required():
    e = []
    for P in pairs():
        for label, path, opts, _ in P.variants:
            d = run_json("info", path, *opts)
            if not d["memory_required"] >= 8 * (P.n * P.k) ** 2:
                e.append("%s %s: memory_required %r < 8 (n k)^2" %
                         (P.name, label, d["memory_required"]))
    assert_no_errors(e)


_MB = {"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "B": 1.0, "bytes": 1.0}


def _bytes(num, unit):
    return float(num) * _MB[unit]


def test_memory_plan_large():
    """r = 600 (K of a 600 x 800 J): critical at the default plan, with a
    limit that forces a smaller basis (a note, the same eta*) and with one
    that fits no basis (refused in one line with the r that fits)."""
    rng = np.random.default_rng(41)
    n, p = 600, 800
    A = rng.standard_normal((n, p)) / math.sqrt(p)
    path = npz("mem_big", {"n": n, "k": 1, "p": p}, K=A @ A.T)
    d = run_json("info", path)
    e = []
    if d["rank"] != n:
        e.append("rank %r" % d["rank"])
    if not d["memory_required"] >= 8 * n * n:
        e.append("memory_required %r" % d["memory_required"])
    args = ("critical", path, "--batch", 8)
    d0 = run_json(*args)
    eta0 = d0["critical"][0]["lr_critical"]

    # Too small for any basis: the numbers of the refusal.  The limit
    # counts what the process holds (more under a sanitizer), so it is
    # raised until something is left beside that.
    limit = 20e6
    while True:
        lim = "%dK" % (limit / 1e3)
        res = h.run(*args, "--max-memory", lim)
        e += refused([*args, "--max-memory", lim],
                     ["not enough memory for the engine at r = 600",
                      "r up to"])
        m = re.search(r"needs about ([\d.]+) (\w+) .*more than the ([\d.]+) "
                      r"(\w+) available.*r up to (\d+) fits", res.err)
        assert m, "refusal without its numbers: %r" % res.err
        need8 = _bytes(m.group(1), m.group(2))
        left = _bytes(m.group(3), m.group(4))
        if left > 0.1 * need8 or limit > 1e9:
            break
        limit *= 2
    held = limit - left
    r_fit = int(m.group(5))
    if not 0 < r_fit < n:
        e.append("r up to %d fits, expected 0 < r < %d" % (r_fit, n))
    # a basis vector of the r(r+1)/2 unknowns, twice
    vec = 2 * 8 * n * (n + 1) / 2
    if not need8 >= 8 * vec:
        e.append("need at 8 vectors %g < 8 vectors of %g" % (need8, vec))

    # Between 8 and 48 vectors: about 20.
    mid = held + need8 + 12 * vec
    res = h.run(*args, "--json", "--max-memory", "%dK" % (mid / 1e3))
    mm = re.search(r"eigensolver bases of (\d+) vectors instead of 48",
                   res.err)
    if res.rc != 0 or not mm or not h.one_line(res.err):
        e.append("--max-memory %.3g: status %d, stderr %r" %
                 (mid, res.rc, res.err))
    else:
        if not 8 <= int(mm.group(1)) < 48:
            e.append("basis of %s vectors" % mm.group(1))
        d1 = json.loads(res.out)
        c = d1["critical"][0]
        if not h.close_rel(c["lr_critical"], eta0, ETA_REL):
            e.append("eta* %r with %s vectors, %r with 48" %
                     (c["lr_critical"], mm.group(1), eta0))
        if not c["rel_accuracy"] <= ETA_REL / 2:
            e.append("rel_accuracy %r with %s vectors" %
                     (c["rel_accuracy"], mm.group(1)))

    # Below the need at 8 vectors (what is held grows a little with the
    # limit given): refused.
    low = held + 0.5 * need8
    e += refused([*args, "--max-memory", "%dK" % (low / 1e3)],
                 ["not enough memory for the engine at r = 600", "r up to"])
    assert_no_errors(e)


# ----------------------------------------------------------------- runner

def main():
    """`test_gram_cli.py SGDSTAB`: every test_ function, an ok/FAIL line
    each, the summary line, status 0 when all pass."""
    if len(sys.argv) != 2:
        print(__doc__)
        return 99
    h.SGDSTAB = sys.argv[1]
    if not os.access(h.SGDSTAB, os.X_OK):
        print("cannot run %s" % h.SGDSTAB)
        return 99
    t0 = time.time()
    tests = [(name, f) for name, f in globals().items()
             if name.startswith("test_") and callable(f)]
    for name, f in tests:
        t = time.time()
        try:
            f()
        except AssertionError as exc:
            h.fail("%s (%.1f s)" % (name, time.time() - t),
                   str(exc).splitlines())
        except Exception:
            h.fail(name, traceback.format_exc().splitlines())
        else:
            h.ok("%s (%.1f s)" % (name, time.time() - t))
    print()
    print("%d passed, %d failed (%.1f s)" % (h.npass, h.nfail,
                                             time.time() - t0))
    return 0 if h.nfail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
