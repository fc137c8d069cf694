#!/usr/bin/python3
"""Independent NumPy reference for the exact stability engine (README, The
mathematics).

Everything here works in the FULL parameter space: no SVD-reduced coordinates,
no Lanczos, no shared code with the C library.  Only plain Kronecker products,
dense symmetric eigenproblems (numpy/scipy) and, for the evolution and the
(a, b) table, brute-force enumeration of every possible minibatch.

Conventions (README, The mathematics):
    A_i = c J_i^T J_i            J_i the k x p output Jacobian of sample i
    G   = (1/n) sum_i A_i
    H   = c H_file if a Hessian is given, else G
    H_xi = G_xi + (H - G),  G_xi the minibatch average of the A_i
    T(S) = (I - eta H) S (I - eta H) + eta^2 [b Sigma(S) - (1 - a) G S G]
    Sigma(S) = (1/n) sum_i A_i S A_i
    E|delta_t|^2 = tr S_t,   E L_t = (1/2) tr(G S_t) = (c/2) tr(G_1 S_t)
(G_1 the Gauss-Newton matrix of the unscaled, half-mean loss).

Usage as a script: `engine_reference.py` runs the self-checks (the Kronecker
formula against enumeration, for every sampling), prints "ok" and exits 0.
"""

import itertools
import math

import numpy as np
import scipy.linalg


# ----------------------------------------------------------------- problem

class Problem:
    """A_i, G, H of one problem in the user's loss convention (scale c)."""

    def __init__(self, J, H=None, c=1.0):
        J = np.asarray(J, dtype=np.float64)
        if J.ndim == 2:
            J = J[:, None, :]
        self.n, self.k, self.p = J.shape
        self.J = J
        self.c = float(c)
        self.A = self.c * np.einsum("iop,ioq->ipq", J, J)       # n x p x p
        self.G = self.A.mean(axis=0)
        if H is None:
            self.H = self.G.copy()
            self.has_H = False
        else:
            H = np.asarray(H, dtype=np.float64)
            assert H.shape == (self.p, self.p)
            self.H = self.c * H
            self.has_H = True
        self.D = self.H - self.G                  # deterministic part of H_xi

    # rank of J with sgdstab's documented default rule (max(nk, p) eps smax)
    def rank_J(self):
        M = self.J.reshape(self.n * self.k, self.p)
        s = np.linalg.svd(M, compute_uv=False)
        tol = max(self.n * self.k, self.p) * np.finfo(float).eps * s[0]
        return int(np.sum(s > tol))

    def range_basis(self, rtol=1e-9):
        """Orthonormal basis Q (p x r) of range(G + H^2): the orthogonal
        complement of null(H) ∩ null(all A_i) (A_i PSD: null(G) = ∩ null A_i).
        Each term is normalised so that both scales count."""
        gs = max(np.linalg.norm(self.G, 2), 1e-300)
        H2 = self.H @ self.H
        hs = max(np.linalg.norm(H2, 2), 1e-300)
        w, V = np.linalg.eigh(self.G / gs + H2 / hs)
        keep = w > rtol * max(w[-1], 1e-300)
        return V[:, keep]

    def sharpness(self):
        return float(np.linalg.eigvalsh(self.H)[-1])

    def lr_critical_mean(self):
        return 2.0 / self.sharpness()


# ----------------------------------------------------------------- (a, b)

def ab(sampling, n, B):
    """E[G_xi S G_xi] = a G S G + b Sigma(S) (the README's (a, b) table)."""
    if sampling == "without":
        b = (n - B) / (B * (n - 1)) if n > 1 else 0.0
        return 1.0 - b, b
    if sampling == "with":
        return 1.0 - 1.0 / B, 1.0 / B
    if sampling == "bernoulli":
        return 1.0, 1.0 / B - 1.0 / n
    raise ValueError(sampling)


# ----------------------------------------------------------------- Kronecker

def sym_basis(r):
    """P (r^2 x r(r+1)/2): orthonormal (Frobenius) basis of symmetric r x r
    matrices, columns = vec(E_jj) and vec((E_jl + E_lj)/sqrt 2)."""
    cols = []
    for j in range(r):
        for l in range(j, r):
            E = np.zeros((r, r))
            if j == l:
                E[j, j] = 1.0
            else:
                E[j, l] = E[l, j] = 1.0 / math.sqrt(2.0)
            cols.append(E.ravel())
    return np.array(cols).T


def restricted(prob, Q=None):
    """A_i, G, H restricted to span(Q) (default: the range basis)."""
    if Q is None:
        Q = prob.range_basis()
    A = np.einsum("pa,ipq,qb->iab", Q, prob.A, Q)
    return A, Q.T @ prob.G @ Q, Q.T @ prob.H @ Q


def kron_parts(prob, sampling, B, Q=None):
    """A1 = H⊗I + I⊗H, A2 = H⊗H - (1-a) G⊗G + b (1/n) sum A_i⊗A_i, both on
    symmetric matrices of the range (matrices in the basis sym_basis)."""
    A, G, H = restricted(prob, Q)
    r = H.shape[0]
    a, b = ab(sampling, prob.n, B)
    I = np.eye(r)
    Sig = sum(np.kron(Ai, Ai) for Ai in A) / prob.n
    A1 = np.kron(H, I) + np.kron(I, H)
    A2 = np.kron(H, H) - (1.0 - a) * np.kron(G, G) + b * Sig
    P = sym_basis(r)
    return P.T @ A1 @ P, P.T @ A2 @ P


def T_matrix(prob, lr, sampling, B, Q=None, full_space=False):
    """The r^2 x r^2 Kronecker matrix of T (on the range, or on all of R^p
    with full_space=True), not yet restricted to symmetric matrices."""
    if full_space:
        Q = np.eye(prob.p)
    A, G, H = restricted(prob, Q)
    r = H.shape[0]
    a, b = ab(sampling, prob.n, B)
    M = np.eye(r) - lr * H
    Sig = sum(np.kron(Ai, Ai) for Ai in A) / prob.n
    return np.kron(M, M) + lr ** 2 * (b * Sig - (1.0 - a) * np.kron(G, G))


def rho_perp(prob, lr, sampling, B):
    """rho_⊥ = lambda_max of T restricted to symmetric matrices of the range."""
    Q = prob.range_basis()
    r = Q.shape[1]
    if r == 0:
        return 0.0
    P = sym_basis(r)
    Ts = P.T @ T_matrix(prob, lr, sampling, B, Q) @ P
    Ts = (Ts + Ts.T) / 2
    return float(np.linalg.eigvalsh(Ts)[-1])


def lr_critical(prob, sampling, B):
    """eta*(B) = 1 / mu_max of A2 x = mu A1 x (symmetric-definite), on the
    symmetric matrices of the range.  None if A1 is not positive definite
    there (H not positive definite on the range: unstable for every eta).
    inf if mu_max <= 0."""
    A1, A2 = kron_parts(prob, sampling, B)
    A1 = (A1 + A1.T) / 2
    A2 = (A2 + A2.T) / 2
    if np.linalg.eigvalsh(A1)[0] <= 1e-12 * np.abs(A1).max():
        return None
    mu = scipy.linalg.eigh(A2, A1, eigvals_only=True)
    return math.inf if mu[-1] <= 0 else 1.0 / float(mu[-1])


# ----------------------------------------------------------------- enumeration

def batches(n, B, sampling):
    """Every minibatch with its probability, as (prob, w) with w the weight
    vector over samples: G_xi = sum_i w_i A_i."""
    out = []
    if sampling == "without":
        combos = list(itertools.combinations(range(n), B))
        for s in combos:
            w = np.zeros(n)
            w[list(s)] = 1.0 / B
            out.append((1.0 / len(combos), w))
    elif sampling == "with":
        for s in itertools.product(range(n), repeat=B):
            w = np.zeros(n)
            for i in s:
                w[i] += 1.0 / B
            out.append((float(n) ** (-B), w))
    elif sampling == "bernoulli":
        q = B / n
        for mask in range(1 << n):
            members = [i for i in range(n) if mask >> i & 1]
            w = np.zeros(n)
            w[members] = 1.0 / B
            m = len(members)
            out.append((q ** m * (1.0 - q) ** (n - m), w))
    else:
        raise ValueError(sampling)
    assert abs(sum(pr for pr, _ in out) - 1.0) < 1e-12
    return out


def step_matrices(prob, lr, sampling, B):
    """(prob, I - eta H_xi) for every minibatch xi, in the full space."""
    I = np.eye(prob.p)
    return [(pr, I - lr * (np.einsum("i,ipq->pq", w, prob.A) + prob.D))
            for pr, w in batches(prob.n, B, sampling)]


def T_enumerated(prob, lr, sampling, B):
    """Kronecker matrix of S -> E[M_xi S M_xi] on all of R^p, by enumeration."""
    return sum(pr * np.kron(M, M) for pr, M in step_matrices(prob, lr, sampling, B))


def trajectory(G, S, steps, step):
    """tr S_t and (1/2) tr(G S_t), t = 0..steps, from S_0 = S with S_{t+1}
    the symmetric part of step(S_t)."""
    m2, loss = [], []
    for t in range(steps + 1):
        m2.append(float(np.trace(S)))
        loss.append(0.5 * float(np.sum(G * S)))
        if t < steps:
            S = step(S)
            S = (S + S.T) / 2
    return np.array(m2), np.array(loss)


def evolve_full(prob, lr, sampling, B, steps, S0=None):
    """Exact E|delta_t|^2 = tr S_t and E L_t = (1/2) tr(G S_t), t = 0..steps,
    by S <- sum_xi P(xi) M_xi S M_xi over every possible minibatch, in the
    original coordinates of R^p."""
    p = prob.p
    S = np.eye(p) / p if S0 is None else np.array(S0, dtype=np.float64)
    Ms = step_matrices(prob, lr, sampling, B)
    return trajectory(prob.G, S, steps,
                      lambda S: sum(pr * M @ S @ M.T for pr, M in Ms))


def evolve(prob, lr, sampling, B, steps, S0=None):
    """The same enumeration as evolve_full, in the orthonormal basis
    V = [Q N] (Q: range, N: null(H) ∩ null(all A_i)), where the rows and
    columns of A_i and H on N, zero in exact arithmetic, are set to exactly
    zero.  This only removes roundoff: in the original coordinates the
    ~1e-16 leakage of a large never-moving share of tr S_0 into the range
    swamps a loss that has decayed by many orders of magnitude.  Null
    directions keep their share of tr S_0 (README, The mathematics) exactly."""
    p = prob.p
    Q = prob.range_basis()
    r = Q.shape[1]
    w, V = np.linalg.eigh(Q @ Q.T)              # eigenvalues ~0 (N), ~1 (Q)
    N = V[:, w < 0.5]
    Vf = np.hstack([Q, N])
    assert Vf.shape == (p, p)

    def rot(X):
        Y = Vf.T @ X @ Vf
        Y[r:, :] = 0.0
        Y[:, r:] = 0.0
        return (Y + Y.T) / 2

    A = np.array([rot(Ai) for Ai in prob.A])
    G = A.mean(axis=0)
    D = rot(prob.H) - G
    S = np.eye(p) / p if S0 is None else Vf.T @ np.asarray(S0, float) @ Vf
    I = np.eye(p)
    Ms = [(pr, I - lr * (np.einsum("i,ipq->pq", wt, A) + D))
          for pr, wt in batches(prob.n, B, sampling)]
    return trajectory(G, S, steps,
                      lambda S: sum(pr * M @ S @ M.T for pr, M in Ms))


# ----------------------------------------------------------------- problems

def random_problem(seed, n, p, k=1, hessian=None, null_dirs=0):
    """J (n x p or n x k x p) and optionally H.
    hessian: None | "pd" (G + small symmetric perturbation, shifted to be
    positive definite) | "range" (G + perturbation inside range(G), positive
    definite there: keeps null(G) as a null space of H) | "negative" (one
    eigenvalue pushed below zero).  null_dirs: number of directions that J
    never moves (J = X W with W of rank p - null_dirs)."""
    rng = np.random.default_rng(seed)
    J = rng.standard_normal((n * k, p)) / math.sqrt(p)
    if null_dirs:
        W = rng.standard_normal((p - null_dirs, p))
        J = J[:, :p - null_dirs] @ W / math.sqrt(p)
    Jr = J.reshape(n, k, p) if k > 1 else J
    if hessian is None:
        return Jr, None
    G = J.T @ J / n
    lam = np.linalg.eigvalsh(G)[-1]
    E = rng.standard_normal((p, p))
    E = (E + E.T) / 2
    if hessian == "pd":
        H = G + 0.1 * lam * E / np.linalg.norm(E, 2)
        lo = np.linalg.eigvalsh(H)[0]
        if lo < 0.05 * lam:
            H = H + (0.05 * lam - lo) * np.eye(p)
    elif hessian == "range":
        w, V = np.linalg.eigh(G)
        Qr = V[:, w > 1e-10 * w[-1]]
        Er = Qr.T @ E @ Qr
        Hr = Qr.T @ G @ Qr + 0.1 * lam * Er / np.linalg.norm(Er, 2)
        lo = np.linalg.eigvalsh(Hr)[0]
        if lo < 0.05 * lam:
            Hr = Hr + (0.05 * lam - lo) * np.eye(Hr.shape[0])
        H = Qr @ Hr @ Qr.T
    elif hessian == "negative":
        w, V = np.linalg.eigh(G)
        v = V[:, -1]                          # the sharpest direction
        H = G - 1.3 * lam * np.outer(v, v)    # eigenvalue -0.3 lam
    else:
        raise ValueError(hessian)
    H = (H + H.T) / 2
    return Jr, H


def random_psd(seed, p, rank=None):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((p, rank or p))
    S = X @ X.T / p
    return (S + S.T) / 2


def not_psd(seed, p):
    """random_psd(seed, p) with its smallest eigenvalue made -0.1 times the
    largest: a symmetric matrix that is not positive semidefinite."""
    w, V = np.linalg.eigh(random_psd(seed, p))
    w[0] = -0.1 * w[-1]
    return (V * w) @ V.T


# ----------------------------------------------------------------- self-check

def selfcheck():
    """The (a, b) table and the Kronecker formula of T against enumeration
    of every minibatch; T symmetric; rho = 1 at eta* on the range."""
    cases = [
        (random_problem(1, 5, 3), 1.0),
        (random_problem(2, 4, 3, k=2, hessian="pd"), 0.5),
        (random_problem(3, 5, 4, null_dirs=1), 2.0),
        (random_problem(4, 4, 4, hessian="range", null_dirs=1), 1.0),
    ]
    for (J, H), c in cases:
        prob = Problem(J, H, c)
        lr = 0.7 / prob.sharpness()
        for sampling in ("without", "with", "bernoulli"):
            for B in range(1, prob.n + 1):
                if sampling == "with" and B > 3:
                    continue
                T1 = T_matrix(prob, lr, sampling, B, full_space=True)
                T2 = T_enumerated(prob, lr, sampling, B)
                err = np.abs(T1 - T2).max()
                assert err < 1e-12 * max(1.0, np.abs(T2).max()), \
                    (sampling, B, err)
                assert np.allclose(T1, T1.T, atol=1e-13)
                eta = lr_critical(prob, sampling, B)
                if eta is not None and math.isfinite(eta):
                    r = rho_perp(prob, eta, sampling, B)
                    assert abs(r - 1.0) < 1e-9, (sampling, B, r)
                    assert rho_perp(prob, 0.99 * eta, sampling, B) < 1.0
                    assert rho_perp(prob, 1.01 * eta, sampling, B) > 1.0
        # without replacement at B = n is full-batch GD: eta* = 2/lambda_max
        if not prob.has_H or np.linalg.eigvalsh(
                restricted(prob)[2])[0] > 0:
            e = lr_critical(prob, "without", prob.n)
            assert abs(e - prob.lr_critical_mean()) < 1e-10 * e
    # evolution by enumeration = iterating the Kronecker T, in both bases
    prob = Problem(*random_problem(5, 5, 4, k=2, null_dirs=1))
    lr = 0.5 / prob.sharpness()
    S0 = random_psd(6, prob.p)
    for sampling in ("without", "with", "bernoulli"):
        m2, loss = evolve(prob, lr, sampling, 2, 6)
        for (a1, b1), (a2, b2) in (
                ((m2, loss), evolve_full(prob, lr, sampling, 2, 6)),
                (evolve(prob, lr, sampling, 2, 6, S0),
                 evolve_full(prob, lr, sampling, 2, 6, S0))):
            assert np.allclose(a1, a2, rtol=1e-12, atol=0)
            assert np.allclose(b1, b2, rtol=1e-12, atol=0)
        T = T_matrix(prob, lr, sampling, 2, full_space=True)
        s = (np.eye(prob.p) / prob.p).ravel()
        for t in range(7):
            S = s.reshape(prob.p, prob.p)
            assert abs(np.trace(S) - m2[t]) < 1e-13 * m2[t]
            assert abs(0.5 * np.sum(prob.G * S) - loss[t]) < 1e-13 * loss[t]
            s = T @ s


if __name__ == "__main__":
    selfcheck()
    print("ok")
