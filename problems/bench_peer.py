#!/usr/bin/python3
"""Time sgdstab against a plain NumPy/SciPy implementation of the same math.

The peer solves plain SGD (H = G, half-mean loss) in the reduced coordinates
of the README ("Reduced coordinates"): one thin SVD J = U diag(s) V^T of the
(n*k) x p Jacobian, kept to rank r by sgdstab's default rule
(s > max(nk, p) * eps * s_max), Phi = U_r diag(s_r) and h = s_r^2 / n.  On
r x r matrices Z, stored whole as vectors of r^2 numbers,

    Sigma(Z) = (1/n) sum_i Phi_i^T (Phi_i Z Phi_i^T) Phi_i
    T(Z)     = (1 - eta h_j)(1 - eta h_l) Z_jl
               + eta^2 [b Sigma(Z) - (1 - a) h_j h_l Z_jl]
    K(Z)     = D [a h_j h_l Z_jl + b Sigma(DZ)],  D: Z_jl / sqrt(h_j + h_l)

with (a, b) the README's batch rule, and scipy.sparse.linalg.eigsh (ARPACK
Lanczos, k=1, which='LA', tol=1e-10, started from the identity) gives
rho_perp = lambda_max(T) and eta*(B) = 1 / lambda_max(K).  Both operators
map symmetric matrices to symmetric ones and their top eigenmatrix is PSD,
so working on all r^2 entries changes nothing but the cost.

As a script: writes a random J with i.i.d. N(0, 1/p) entries (by default
sgdstab bench's reference case n = 2000, p = 1500, k = 1, B = 32) as .npy
into a scratch directory and times, best of three, end to end from that
file: `sgdstab critical --json`, `sgdstab analyze --lr 0.5 eta* --json`
(which also solves eta*), the peer's eta* and the peer's rho at the same
learning rate, each run reported on stderr as it ends.  Prints a table
with the ratios peer / sgdstab and the agreement of the two; exits 1 if
eta* or rho differ by more than 1e-6 relative.  With --out DIR also writes
DIR/bench-peer.json.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy
import scipy.sparse.linalg as sla

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from engine_reference import ab as batch_rule  # noqa: E402  (a, b) table
EIGSH_TOL = 1e-10
AGREE_REL = 1e-6
REPEATS = 3


def load_jacobian(path):
    """J from a .npy or the member J of a .npz: (float64 (n*k) x p, n, k,
    eps of the stored dtype).  A file with a Hessian is refused: the peer
    covers H = G only."""
    with open(path, "rb") as f:
        data = np.load(f)
        if isinstance(data, np.lib.npyio.NpzFile):
            if "H" in data.files:
                raise ValueError("%s: has a Hessian; the peer needs H = G"
                                 % path)
            data = data["J"]
    if data.ndim not in (2, 3):
        raise ValueError("%s: J must have 2 or 3 dimensions" % path)
    n, p = data.shape[0], data.shape[-1]
    k = data.shape[1] if data.ndim == 3 else 1
    eps = float(np.finfo(data.dtype).eps)
    return np.asarray(data, dtype=np.float64).reshape(n * k, p), n, k, eps


class Reduced:
    """Phi and h of one file, with the time loading and the SVD took."""

    def __init__(self, path):
        t0 = time.perf_counter()
        J, self.n, self.k, eps = load_jacobian(path)
        self.p = J.shape[1]
        t1 = time.perf_counter()
        U, s, _ = np.linalg.svd(J, full_matrices=False)
        tol = max(J.shape) * eps * s[0] if s.size else 0.0
        self.r = int(np.count_nonzero(s > tol))
        if self.r == 0:
            raise ValueError("%s: J is zero" % path)
        self.phi = U[:, :self.r] * s[:self.r]           # (n*k) x r
        self.phi3 = self.phi.reshape(self.n, self.k, self.r)
        self.h = s[:self.r] ** 2 / self.n
        t2 = time.perf_counter()
        self.seconds_load = t1 - t0
        self.seconds_svd = t2 - t1

    def sigma(self, Z):
        """Sigma(Z), over all samples at once."""
        Y = (self.phi @ Z).reshape(self.n, self.k, self.r)      # Phi_i Z
        M = np.einsum("ika,ila->ikl", Y, self.phi3)   # Phi_i Z Phi_i^T
        W = np.einsum("ikl,ila->ika", M, self.phi3)
        return self.phi.T @ W.reshape(self.n * self.k, self.r) / self.n


def top_eigenvalue(apply, r):
    """lambda_max of a symmetric operator on r x r matrices (apply: Z ->
    r x r) by eigsh from I / sqrt(r): (value, seconds, applications)."""
    count = [0]

    def matvec(x):
        count[0] += 1
        return apply(x.reshape(r, r)).ravel()

    t0 = time.perf_counter()
    if r == 1:
        value = float(matvec(np.ones(1))[0])    # eigsh needs dimension > 1
    else:
        op = sla.LinearOperator((r * r, r * r), matvec=matvec,
                                dtype=np.float64)
        v0 = np.eye(r).ravel() / math.sqrt(r)
        w = sla.eigsh(op, k=1, which="LA", tol=EIGSH_TOL, v0=v0,
                      return_eigenvectors=False)
        value = float(w[0])
    return value, time.perf_counter() - t0, count[0]


def _result(red, key, value, solve, applications, t0):
    return {key: value, "rank": red.r,
            "seconds": time.perf_counter() - t0,
            "seconds_load": red.seconds_load,
            "seconds_factorization": red.seconds_svd,
            "seconds_eigensolve": solve, "applications": applications}


def peer_critical(path, batch, sampling="without"):
    """eta*(B) of the file, end to end (load, SVD, eigsh on K)."""
    t0 = time.perf_counter()
    red = Reduced(path)
    a, b = batch_rule(sampling, red.n, batch)
    h = red.h
    hsum = h[:, None] + h[None, :]
    D = 1.0 / np.sqrt(hsum)
    diag = a * np.outer(h, h) / hsum

    def K(Z):
        return diag * Z + b * D * red.sigma(D * Z)

    mu, solve, nmv = top_eigenvalue(K, red.r)
    return _result(red, "lr_critical", 1.0 / mu, solve, nmv, t0)


def peer_rho(path, lr, batch, sampling="without"):
    """rho_perp = lambda_max(T) of the file at (lr, batch), end to end."""
    t0 = time.perf_counter()
    red = Reduced(path)
    a, b = batch_rule(sampling, red.n, batch)
    m = 1.0 - lr * red.h
    diag = np.outer(m, m) - lr * lr * (1.0 - a) * np.outer(red.h, red.h)

    def T(Z):
        return diag * Z + lr * lr * b * red.sigma(Z)

    rho, solve, nmv = top_eigenvalue(T, red.r)
    return _result(red, "spectral_radius", rho, solve, nmv, t0)


# ----------------------------------------------------------------- the bench

def best_of(label, fn):
    """fn() REPEATS times, each time on stderr: (the result of the fastest
    run, its time, every time)."""
    runs = []
    for i in range(REPEATS):
        t0 = time.perf_counter()
        res = fn()
        runs.append((time.perf_counter() - t0, res))
        print("%s, run %d of %d: %.3f s" % (label, i + 1, REPEATS,
                                            runs[-1][0]),
              file=sys.stderr, flush=True)
    best = min(runs, key=lambda x: x[0])
    return best[1], best[0], [t for t, _ in runs]


def tool_json(tool, *args):
    cmd = [tool] + [str(x) for x in args] + ["--json"]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise SystemExit("bench_peer.py: %s failed (exit %d): %s"
                         % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return json.loads(p.stdout)


def rel_diff(x, ref):
    return abs(x - ref) / abs(ref)


def arguments():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--params", type=int, default=1500)
    ap.add_argument("--outputs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tool", "--sgdstab", dest="tool",
                    default=os.path.join(HERE, "..", "build", "src",
                                         "sgdstab"))
    ap.add_argument("--out", help="directory for bench-peer.json")
    args = ap.parse_args()
    if min(args.samples, args.params, args.outputs, args.batch) < 1 or \
            args.batch > args.samples:
        ap.error("need N, P, K >= 1 and 1 <= B <= N")
    return args


def main():
    args = arguments()
    n, p, k, B = args.samples, args.params, args.outputs, args.batch
    rng = np.random.default_rng(args.seed)
    J = rng.standard_normal((n * k, p)) / math.sqrt(p)
    cores = os.cpu_count()
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as work:
        path = os.path.join(work, "J.npy")
        np.save(path, J.reshape(n, k, p) if k > 1 else J)
        del J

        crit, t_crit, runs_crit = best_of(
            "sgdstab critical",
            lambda: tool_json(args.tool, "critical", path, "--batch", B))
        eta = crit["critical"][0]["lr_critical"]
        lr = 0.5 * eta
        ana, t_ana, runs_ana = best_of(
            "sgdstab analyze",
            lambda: tool_json(args.tool, "analyze", path, "--lr", repr(lr),
                              "--batch", B))
        pc, t_pc, runs_pc = best_of("peer eta*",
                                     lambda: peer_critical(path, B))
        pr, t_pr, runs_pr = best_of("peer rho",
                                     lambda: peer_rho(path, lr, B))

    rho = ana["spectral_radius"]
    d_eta = rel_diff(pc["lr_critical"], eta)
    d_rho = rel_diff(pr["spectral_radius"], rho)
    print("n = %d, k = %d, p = %d, rank %d, B = %d (without replacement), "
          "%d cores, best of %d, end to end from the .npy"
          % (n, k, p, pc["rank"], B, cores, REPEATS))
    print("%-28s %11s %11s %13s" % ("", "sgdstab", "peer", "peer/sgdstab"))
    print("%-28s %9.3f s %9.3f s %13.2f"
          % ("eta*(B)", t_crit, t_pc, t_pc / t_crit))
    print("%-28s %9.3f s %9.3f s %13.2f"
          % ("rho at 0.5 eta*", t_ana, t_pr, t_pr / t_ana))
    print("  (sgdstab analyze also solves eta*: %d applications in all)"
          % ana["operator_applications"])
    for name, r in (("peer eta*", pc), ("peer rho", pr)):
        print("  %-10s load %.3f s, SVD %.3f s, eigsh %.3f s "
              "(%d applications, %.4f s each)"
              % (name, r["seconds_load"], r["seconds_factorization"],
                 r["seconds_eigensolve"], r["applications"],
                 r["seconds_eigensolve"] / r["applications"]))
    print("eta*: sgdstab %.12g, peer %.12g, relative difference %.1e"
          % (eta, pc["lr_critical"], d_eta))
    print("rho:  sgdstab %.12g, peer %.12g, relative difference %.1e"
          % (rho, pr["spectral_radius"], d_rho))

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        summary = {
            "problem": {"n": n, "k": k, "p": p, "rank": pc["rank"],
                        "batch": B, "sampling": "without",
                        "seed": args.seed},
            "machine": {"cores": cores,
                        "cores_usable": len(os.sched_getaffinity(0)),
                        "openblas_num_threads":
                            os.environ.get("OPENBLAS_NUM_THREADS"),
                        "python": platform.python_version(),
                        "numpy": np.__version__, "scipy": scipy.__version__},
            "repeats": REPEATS,
            "sgdstab": {"tool": os.path.abspath(args.tool),
                        "critical_seconds": t_crit,
                        "critical_runs": runs_crit,
                        "analyze_seconds": t_ana,
                        "analyze_runs": runs_ana,
                        "analyze_applications": ana["operator_applications"],
                        "lr_critical": eta, "lr": lr,
                        "spectral_radius": rho},
            "peer": {"critical_seconds": t_pc, "critical_runs": runs_pc,
                     "critical": pc,
                     "rho_seconds": t_pr, "rho_runs": runs_pr, "rho": pr},
            "ratio_critical": t_pc / t_crit,
            "ratio_rho": t_pr / t_ana,
            "rel_diff_lr_critical": d_eta,
            "rel_diff_spectral_radius": d_rho,
        }
        with open(os.path.join(args.out, "bench-peer.json"), "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")

    if not (d_eta <= AGREE_REL and d_rho <= AGREE_REL):
        print("bench_peer.py: sgdstab and the peer disagree by more than %g"
              % AGREE_REL, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
