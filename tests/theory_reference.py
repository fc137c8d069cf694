#!/usr/bin/python3
"""Independent NumPy/SciPy reference for the theory quantities of
`sgdstab verify` (README, The theory checks; include/sgdstab/theory.h), at an
interpolating minimum (H = G).

Everything is computed in the FULL parameter space R^p from the per-sample
matrices A_i = c J_i^T J_i of engine_reference.Problem: no SVD of J, no
reduced coordinates, no Krylov solver, no code shared with the C library.
The exact answers (rho_⊥, eta*) come from engine_reference (Kronecker
matrices); this module adds

    sharpness lambda_max(H), |H|_F, tr H
    non-uniformity   s = sqrt(lambda_max((1/n) sum A_i^2 - G^2))
    alignment        mu(S) = tr(G(Sigma(S) - GSG)) / (tr(GS) |G|_F^2)
    mu_min           min over S >= 0 = min over v in range(G) of
                     v'Mv / (v'Gv |G|_F^2),  M = (1/n) sum A_i G A_i - G^3,
                     solved in an orthonormal eigenbasis of range(G) (eigh)
    Mulayoff-Michaeli  eta* <= <S, A1 S> / <S, A2 S>, A1(S) = HS + SH,
                     A2(S) = HSH - (1 - a) GSG + b Sigma(S), at S = vv' (v the
                     top eigenvector of H) and S = I, both as the closed forms
                     of theory.h and as quadratic forms of the p^2 x p^2
                     Kronecker matrices (the self-check compares them, and
                     compares the closed forms with the published forms of
                     the README (The theory checks) when a = 1 - b)
    Wu-Wang-Su       frobenius bound 1/(eta sqrt(b mu_min)), eta* bound
                     1/(|H|_F sqrt(b mu_min)), growth eta^2 b mu_min |G|_F^2
    top eigenmatrix  S* of T on the symmetric matrices of the range (dense
                     Kronecker matrix, eigh), mu(S*) and the spectral gap

Usage as a script: runs the self-checks, prints "ok", exits 0.
"""

import math
import os
import sys

import numpy as np
import scipy.linalg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_reference as ref  # noqa: E402

SAMPLINGS = ("without", "with", "bernoulli")

# Checks in the order the help of `sgdstab verify` lists them: name ->
# (relation, is a theorem).  wu_wang_su_frobenius is a theorem only when the
# minimum is stable; alignment_top only when the top eigenmatrix is
# semidefinite (always the case for a simple top eigenvalue).
CHECKS = (
    ("mean_stability", "<=", True),
    ("mulayoff_michaeli_top", "<=", True),
    ("mulayoff_michaeli_trace", "<=", True),
    ("wu_wang_su_lr", "<=", True),
    ("wu_wang_su_frobenius", "<=", None),
    ("wu_wang_su_escape", ">=", True),
    ("alignment_top", ">=", None),
    ("wu_ma_e_sharpness", "<=", False),
    ("wu_ma_e_nonuniformity", "<=", False),
)


# ----------------------------------------------------------------- basics

def sigma(prob, S):
    """Sigma(S) = (1/n) sum_i A_i S A_i (full space)."""
    return np.einsum("ipq,qr,irs->ps", prob.A, S, prob.A) / prob.n


def range_eig(prob, rtol=1e-10):
    """Eigenvalues and orthonormal eigenvectors of G on its range (eigh of
    the p x p matrix G; not an SVD of J)."""
    w, V = np.linalg.eigh((prob.G + prob.G.T) / 2)
    keep = w > rtol * max(w[-1], 1e-300)
    return w[keep], V[:, keep]


def top_vector(prob):
    w, V = np.linalg.eigh((prob.H + prob.H.T) / 2)
    return float(w[-1]), V[:, -1]


def alignment(prob, S):
    """mu(S) of the README (The theory checks), from the definition."""
    G = prob.G
    num = np.sum(G * (sigma(prob, S) - G @ S @ G))
    den = np.sum(G * S) * np.sum(G * G)
    return float(num / den) if den != 0 else math.nan


def alignment_operator(prob):
    """M = (1/n) sum A_i G A_i - G^3 (full space).  Equal to
    (1/n) sum (A_i - G) G (A_i - G), hence PSD."""
    G = prob.G
    M = np.einsum("ipq,qr,irs->ps", prob.A, G, prob.A) / prob.n - G @ G @ G
    return (M + M.T) / 2


def alignment_min(prob):
    """(mu_min, v_min, mu_max): the extreme generalized Rayleigh quotients of
    M against G on range(G), divided by |G|_F^2, and a minimizing direction
    v (full space) so that mu(v v') = mu_min."""
    lam, Q = range_eig(prob)
    Mr = Q.T @ alignment_operator(prob) @ Q
    d = 1.0 / np.sqrt(lam)
    K = d[:, None] * Mr * d[None, :]
    w, Y = np.linalg.eigh((K + K.T) / 2)
    g2 = float(np.sum(prob.G * prob.G))
    v = Q @ (d * Y[:, 0])
    return float(w[0]) / g2, v, float(w[-1]) / g2


def alignment_min_scipy(prob):
    """The same minimum by scipy's generalized symmetric-definite solver on
    the pencil (Q'MQ, Q'GQ): a second route for the self-check."""
    _, Q = range_eig(prob)
    Mr = Q.T @ alignment_operator(prob) @ Q
    Gr = Q.T @ prob.G @ Q
    w = scipy.linalg.eigh((Mr + Mr.T) / 2, (Gr + Gr.T) / 2, eigvals_only=True)
    return float(w[0]) / float(np.sum(prob.G * prob.G))


def nonuniformity(prob):
    X = np.einsum("ipq,iqr->pr", prob.A, prob.A) / prob.n - prob.G @ prob.G
    w = np.linalg.eigvalsh((X + X.T) / 2)
    return math.sqrt(max(float(w[-1]), 0.0))


def theory(prob):
    """The problem-only quantities (sgdstab_theory), in the loss convention
    of prob (A_i already scaled by c)."""
    assert not prob.has_H
    lmax, v = top_vector(prob)
    mu, vmin, mu_max = alignment_min(prob)
    q = np.einsum("p,ipq,q->i", v, prob.A, v)
    return {
        "sharpness": lmax,
        "hessian_frobenius": float(np.linalg.norm(prob.H)),
        "hessian_trace": float(np.trace(prob.H)),
        "nonuniformity": nonuniformity(prob),
        "alignment_min": mu,
        "alignment_max": mu_max,         # scale of the mu eigenproblem
        "alignment_min_direction": vmin,
        "top_vector": v,
        "top_moment": float(np.mean(q ** 2)),
        "frobenius_moment": float(np.mean(np.sum(prob.A ** 2, axis=(1, 2)))),
        "top_q": q,                      # v'A_i v, mean = lambda_max
    }


# ----------------------------------------------------------------- bounds

def kron_A12(prob, sampling, B):
    """p^2 x p^2 Kronecker matrices of A1 and A2 on all of R^{p x p}
    (row-major vec: vec(X S Y) = (X kron Y') vec S)."""
    a, b = ref.ab(sampling, prob.n, B)
    H, G, I = prob.H, prob.G, np.eye(prob.p)
    Sig = sum(np.kron(Ai, Ai) for Ai in prob.A) / prob.n
    A1 = np.kron(H, I) + np.kron(I, H)
    A2 = np.kron(H, H) - (1.0 - a) * np.kron(G, G) + b * Sig
    return A1, A2


def rayleigh_bound(prob, sampling, B, S, kron=None):
    """<S, A1 S> / <S, A2 S>: an upper bound on eta* for every S with
    <S, A2 S> > 0 (eta* = min of this ratio, README, eta*(B))."""
    A1, A2 = kron or kron_A12(prob, sampling, B)
    s = np.asarray(S, float).ravel()
    return float(s @ A1 @ s) / float(s @ A2 @ s)


def mm_bounds(prob, sampling, B, th=None):
    """Mulayoff-Michaeli bounds in the general form of theory.h."""
    th = th or theory(prob)
    a, b = ref.ab(sampling, prob.n, B)
    l, f = th["sharpness"], th["hessian_frobenius"]
    top = 2 * l / (a * l * l + b * th["top_moment"])
    trace = 2 * th["hessian_trace"] / (a * f * f + b * th["frobenius_moment"])
    return top, trace


def mm_published(prob, sampling, B, th=None):
    """The published forms (README, The theory checks; their p := b)."""
    th = th or theory(prob)
    _, b = ref.ab(sampling, prob.n, B)
    l, f = th["sharpness"], th["hessian_frobenius"]
    top = 2 * l / (l * l + b * float(np.mean((th["top_q"] - l) ** 2)))
    trace = 2 * th["hessian_trace"] / ((1 - b) * f * f
                                       + b * th["frobenius_moment"])
    return top, trace


def wws(prob, lr, sampling, B, th=None):
    """Wu-Wang-Su: (frobenius bound, eta* bound, growth bound); the bounds
    are inf when b mu_min = 0."""
    th = th or theory(prob)
    _, b = ref.ab(sampling, prob.n, B)
    mu, f = th["alignment_min"], th["hessian_frobenius"]
    if b > 0 and mu > 0:
        fb = 1.0 / (lr * math.sqrt(b * mu))
        lb = 1.0 / (f * math.sqrt(b * mu))
    else:
        fb = lb = math.inf
    return fb, lb, lr * lr * b * mu * f * f


def top_eigenmatrix(prob, lr, sampling, B):
    """(rho_⊥, gap, S*, mu(S*)): the top eigenpair of the dense Kronecker
    matrix of T on the symmetric matrices of the range; S* mapped back to
    R^{p x p}; gap = rho - next eigenvalue (inf if the space is 1-D)."""
    Q = prob.range_basis()
    r = Q.shape[1]
    P = ref.sym_basis(r)
    Ts = P.T @ ref.T_matrix(prob, lr, sampling, B, Q) @ P
    w, X = np.linalg.eigh((Ts + Ts.T) / 2)
    Sr = (P @ X[:, -1]).reshape(r, r)
    S = Q @ Sr @ Q.T
    gap = float(w[-1] - w[-2]) if len(w) > 1 else math.inf
    return float(w[-1]), gap, S, alignment(prob, S)


# ----------------------------------------------------------------- verify

def verify(prob, lr, sampling, B):
    """Every number `sgdstab verify --json` reports, and its checks as
    {name: (value, bound, relation, theorem)} (theorem None: decided by the
    caller, see CHECKS)."""
    th = theory(prob)
    a, b = ref.ab(sampling, prob.n, B)
    eta = ref.lr_critical(prob, sampling, B)
    rho, gap, S, mu_top = top_eigenmatrix(prob, lr, sampling, B)
    fb, lb, growth = wws(prob, lr, sampling, B, th)
    top, trace = mm_bounds(prob, sampling, B, th)
    l = th["sharpness"]
    d = dict(th)
    d.update({
        "a": a, "b": b, "lr": lr, "batch": B, "sampling": sampling,
        "loss_scale": prob.c, "lr_critical": eta, "spectral_radius": rho,
        "spectral_gap": gap, "stable": lr <= eta,
        "escape_rate_per_step": math.log(rho),
        "escape_rate_per_epoch": prob.n / B * math.log(rho),
        "lr_critical_mean": 2.0 / l,
        "alignment_top": mu_top, "top_eigenmatrix": S,
        "frobenius_bound": fb, "growth_bound": growth,
        "escape_rate_lower_bound": math.log(growth) if growth > 0
        else -math.inf,
    })
    f, s = th["hessian_frobenius"], th["nonuniformity"]
    d["checks"] = {
        "mean_stability": (eta, 2.0 / l, "<=", True),
        "mulayoff_michaeli_top": (eta, top, "<=", True),
        "mulayoff_michaeli_trace": (eta, trace, "<=", True),
        "wu_wang_su_lr": (eta, lb, "<=", True),
        "wu_wang_su_frobenius": (f, fb, "<=", lr <= eta),
        "wu_wang_su_escape": (rho, growth, ">=", True),
        "alignment_top": (mu_top, th["alignment_min"], ">=", None),
        "wu_ma_e_sharpness": (l, 2.0 / lr, "<=", False),
        "wu_ma_e_nonuniformity": (s, 1.0 / (lr * math.sqrt(b)) if b > 0
                                  else math.inf, "<=", False),
    }
    return d


def holds(value, bound, relation, rel=0.0):
    """value <= bound (or >=) with a relative slack rel on the bound."""
    if relation == "<=":
        return value <= bound + rel * abs(bound)
    return value >= bound - rel * abs(bound)


# ----------------------------------------------------------------- problems

def rank_one_problem(seed, n, p, k=1):
    """J_i = w_i u' (all J_i parallel): rank-one J with k outputs."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(p)
    w = rng.standard_normal((n, k)) + 0.3
    J = np.einsum("io,p->iop", w, u)
    return J if k > 1 else J[:, 0, :]


def scalar_closed_form(x, sampling, n, B):
    """Rank-one problems (p = 1, or all J_i parallel) with per-sample
    curvatures x_i = c |J_i|^2 (the single non-zero eigenvalue of A_i):
    with m2 = mean x, m4 = mean x^2,
        lambda = |H|_F = tr H = m2,  s = sqrt(m4 - m2^2),
        mu_min = mu(any S) = m4/m2^2 - 1,
        both MM bounds = eta* = 2 m2 / (a m2^2 + b m4)  (tight),
        rho(eta) = 1 - 2 eta m2 + eta^2 (a m2^2 + b m4)."""
    x = np.asarray(x, float)
    m2, m4 = float(np.mean(x)), float(np.mean(x * x))
    a, b = ref.ab(sampling, n, B)
    eta = 2 * m2 / (a * m2 * m2 + b * m4)
    return {"lambda": m2, "s": math.sqrt(max(m4 - m2 * m2, 0.0)),
            "mu_min": m4 / (m2 * m2) - 1, "eta": eta,
            "rho": lambda lr: 1 - 2 * lr * m2 + lr * lr * (a * m2 * m2
                                                           + b * m4)}


# ----------------------------------------------------------------- self-check

def selfcheck():
    """The reference against itself: closed forms vs Kronecker quadratic
    forms vs published forms, mu_min by two solvers, brute force, attained
    minimum, theorems on the reference numbers, rank-one closed forms, loss
    scale invariance."""
    rng = np.random.default_rng(2024)
    cases = [(ref.random_problem(11, 5, 9)[0], 1.0),
             (ref.random_problem(12, 30, 5)[0], 0.37),
             (ref.random_problem(13, 3, 14, k=3)[0], 1.0),
             (ref.random_problem(14, 20, 4, k=3)[0], 2.0 / 3),
             (ref.random_problem(15, 12, 7, null_dirs=2)[0], 1.0)]
    for J, c in cases:
        prob = ref.Problem(J, None, c)
        th = theory(prob)
        mu, v, mu_max = th["alignment_min"], th["alignment_min_direction"], \
            th["alignment_max"]
        assert mu > 0 and mu <= mu_max
        # two solvers, one minimum
        assert abs(alignment_min_scipy(prob) - mu) <= 1e-10 * mu_max, \
            (alignment_min_scipy(prob), mu)
        # attained by v v' and by no PSD S undercut (rank one and full rank)
        assert abs(alignment(prob, np.outer(v, v)) - mu) <= 1e-10 * mu_max
        for _ in range(200):
            x = rng.standard_normal(prob.p)
            assert alignment(prob, np.outer(x, x)) >= mu - 1e-12 * mu_max
            X = rng.standard_normal((prob.p, rng.integers(1, prob.p + 1)))
            assert alignment(prob, X @ X.T) >= mu - 1e-12 * mu_max
        # mu is a property of the problem, not of the loss convention
        assert abs(alignment_min(ref.Problem(J, None, 1.0))[0] - mu) \
            <= 1e-10 * mu
        # s^2 = lambda_max of the sample covariance of the A_i
        D = prob.A - prob.G
        s2 = np.linalg.eigvalsh(np.einsum("ipq,iqr->pr", D, D) / prob.n)[-1]
        assert abs(th["nonuniformity"] ** 2 - s2) <= 1e-12 * th[
            "frobenius_moment"]
        lmax, vtop = th["sharpness"], th["top_vector"]
        for sampling in SAMPLINGS:
            for B in sorted({1, 2, max(2, prob.n // 2), prob.n}):
                a, b = ref.ab(sampling, prob.n, B)
                kr = kron_A12(prob, sampling, B)
                top, trace = mm_bounds(prob, sampling, B, th)
                # the closed forms are the Rayleigh ratios at vv' and I
                assert abs(rayleigh_bound(prob, sampling, B,
                                          np.outer(vtop, vtop), kr) - top) \
                    <= 1e-12 * top
                assert abs(rayleigh_bound(prob, sampling, B,
                                          np.eye(prob.p), kr) - trace) \
                    <= 1e-12 * trace
                # ... and the published forms when a = 1 - b; tighter for
                # bernoulli (a = 1)
                ptop, ptrace = mm_published(prob, sampling, B, th)
                if sampling != "bernoulli":
                    assert abs(a - (1 - b)) < 1e-15
                    assert abs(ptop - top) <= 1e-12 * top
                    assert abs(ptrace - trace) <= 1e-12 * trace
                else:
                    assert top <= ptop * (1 + 1e-14)
                    assert trace <= ptrace * (1 + 1e-14)
                eta = ref.lr_critical(prob, sampling, B)
                fb, lb, _ = wws(prob, eta, sampling, B, th)
                for bound in (2 / lmax, top, trace, lb):
                    assert eta <= bound * (1 + 1e-10), (sampling, B, eta,
                                                        bound)
                if b == 0:
                    assert abs(eta - 2 / lmax) <= 1e-10 * eta
                for f in (0.5, 1.0, 1.5):
                    lr = f * eta
                    rho, gap, S, mu_top = top_eigenmatrix(prob, lr,
                                                          sampling, B)
                    fb, lb, growth = wws(prob, lr, sampling, B, th)
                    assert rho >= growth * (1 - 1e-12)
                    if rho <= 1 + 1e-12:
                        assert th["hessian_frobenius"] <= fb * (1 + 1e-10)
                    # rho agrees with engine_reference's own solve
                    assert abs(rho - ref.rho_perp(prob, lr, sampling, B)) \
                        < 1e-12
                    if gap > 1e-8:
                        assert mu_top >= mu - 1e-12 * mu_max
                        # the top eigenmatrix is an eigenmatrix in R^{p x p}
                        T = ref.T_matrix(prob, lr, sampling, B,
                                         full_space=True)
                        TS = (T @ S.ravel()).reshape(prob.p, prob.p)
                        assert np.abs(TS - rho * S).max() < 1e-11
                        # ... and semidefinite (Krein-Rutman)
                        ws = np.linalg.eigvalsh(S)
                        assert max(ws[0], -ws[-1]) > -1e-10
    # rank-one J (p = 1, and all J_i parallel, k = 1 and 3): closed forms
    for J, c in ((np.random.default_rng(7).standard_normal((6, 1)), 1.0),
                 (np.random.default_rng(8).standard_normal((5, 3, 1)), 0.5),
                 (rank_one_problem(9, 7, 4), 1.0),
                 (rank_one_problem(10, 4, 5, k=3), 2.0 / 3)):
        prob = ref.Problem(J, None, c)
        x = c * np.sum(prob.J ** 2, axis=(1, 2))
        th = theory(prob)
        for sampling in SAMPLINGS:
            for B in range(1, prob.n + 1):
                cf = scalar_closed_form(x, sampling, prob.n, B)
                assert abs(th["sharpness"] - cf["lambda"]) <= 1e-13 * \
                    cf["lambda"]
                assert abs(th["hessian_frobenius"] - cf["lambda"]) <= \
                    1e-13 * cf["lambda"]
                assert abs(th["nonuniformity"] - cf["s"]) <= 1e-10 * cf["s"]
                assert abs(th["alignment_min"] - cf["mu_min"]) <= \
                    1e-10 * cf["mu_min"]
                eta = ref.lr_critical(prob, sampling, B)
                assert abs(eta - cf["eta"]) <= 1e-12 * eta
                for bound in mm_bounds(prob, sampling, B, th):
                    assert abs(bound - cf["eta"]) <= 1e-12 * eta
                assert abs(ref.rho_perp(prob, 0.7 * eta, sampling, B)
                           - cf["rho"](0.7 * eta)) < 1e-13


if __name__ == "__main__":
    selfcheck()
    print("ok")
