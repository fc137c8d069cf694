"""`sgdstab stationary` against independent NumPy references: the dense
Kronecker solve of Mulayoff and Michaeli, vec S = eta b (2C - eta D)^+ vec
Sigma_g (C = (H (+) H)/2, D = E[H_xi (x) H_xi]), in parameter space for all
three samplings, k = 1 and 3; the full-batch label-noise closed form
S = (eta sigma^2/n)(2I - eta H)^-1 on the range; zero residuals without
label noise give S = 0; the unstable report; a supplied H singular where
J moves: the random walk's rate against torch.optim's update rule, and
with weight decay the dense solve; the CSV; bad input refused in
one line; evolve with the noise tends to the stationary solve, and
simulate's runs with residual gradients and label noise agree with the
exact evolution (z-scores) for plain SGD, heavy ball and Adam.

Usage: test_stationary_cli.py SGDSTAB"""

import os
import sys

import numpy as np

import cli_harness as h


def centred_residuals(J, rng, scale=0.3):
    """Residuals R (n, k) whose mean gradient sum_i J_i' r_i is zero."""
    n, k, p = J.shape
    A = J.reshape(n * k, p)
    r = scale * rng.standard_normal(n * k)
    Q, _ = np.linalg.qr(A)
    r -= Q @ (Q.T @ r)
    return r.reshape(n, k)


def coefficients(sampling, n, B):
    if sampling == "without":
        b = (n - B) / (B * (n - 1))
        return 1 - b, b
    if sampling == "with":
        return 1 - 1 / B, 1 / B
    return 1.0, (1 - B / n) / B


def gradient_covariance(J, R, B, sampling, sigma):
    """Sigma (p x p): the covariance of a batch's mean gradient (c = 1),
    label noise included."""
    n = J.shape[0]
    a, b = coefficients(sampling, n, B)
    g = np.array([J[i].T @ R[i] for i in range(n)])
    gbar = g.mean(axis=0)
    G = sum(J[i].T @ J[i] for i in range(n)) / n
    return (b * (g.T @ g) / n - (1 - a) * np.outer(gbar, gbar) +
            sigma ** 2 / B * G)


def mulayoff_michaeli(J, R, lr, B, sampling, sigma, H=None, decay=0.0):
    """E|delta|^2, (1/2) tr(H S), tr(H S H) of S = eta b (2C - eta D)^+ vec
    Sigma (c = 1), Sigma = the gradient covariance (with label noise).  A
    supplied H and coupled weight decay enter every batch Hessian as the
    deterministic part H + decay I - G (the loss's H alone in the
    summary)."""
    n, k, p = J.shape
    a, b = coefficients(sampling, n, B)
    A = [J[i].T @ J[i] for i in range(n)]
    G = sum(A) / n
    H = G if H is None else H
    I = np.eye(p)
    Hd = H + decay * I
    Delta = Hd - G
    D = (a * np.kron(G, G) + b * sum(np.kron(Ai, Ai) for Ai in A) / n +
         np.kron(G, Delta) + np.kron(Delta, G) + np.kron(Delta, Delta))
    Cop = 0.5 * (np.kron(Hd, I) + np.kron(I, Hd))
    Sigma = gradient_covariance(J, R, B, sampling, sigma)
    S = lr * (np.linalg.pinv(2 * Cop - lr * D) @ Sigma.reshape(-1))
    S = S.reshape(p, p)
    return np.trace(S), 0.5 * np.trace(H @ S), np.trace(H @ S @ H)


def impulse_gain(lr, momentum, dampening, nesterov, steps=5000):
    """How far torch.optim.SGD's update (its buffer filled, zero) moves a
    parameter of zero curvature in all after one unit gradient: the
    per-step standard deviation of the random walk per unit of gradient
    noise."""
    x, buf = 0.0, 0.0
    for t in range(steps):
        g = 1.0 if t == 0 else 0.0
        buf = momentum * buf + (1 - dampening) * g
        x -= lr * (g + momentum * buf if nesterov else buf)
    return abs(x)


def null_space(work, rng):
    """A supplied H singular on a direction J moves: no stationary state,
    the random walk's rate; weight decay restores the stationary state."""
    n, p, B = 7, 4, 3
    J = rng.standard_normal((n, 1, p)) / np.sqrt(p)
    R = centred_residuals(J, rng)
    G = J[:, 0, :].T @ J[:, 0, :] / n
    w, V = np.linalg.eigh(G)
    w[0] = 0.0
    H = (V * w) @ V.T
    u = V[:, 0]
    path = os.path.join(work, "nullH.npz")
    np.savez(path, J=J, R=R, H=H)
    lr = 0.5 / w.max()
    optimizers = (("plain SGD", 0.0, 0.0, False),
                  ("heavy ball 0.9", 0.9, 0.0, False),
                  ("momentum 0.6, dampening 0.3", 0.6, 0.3, False),
                  ("nesterov 0.8", 0.8, 0.0, True))
    for sampling in h.SAMPLINGS:
        for sigma in (0.0, 0.3):
            for name, beta, tau, nest in optimizers:
                opts = ["--momentum", beta, "--dampening", tau]
                opts += ["--nesterov"] if nest else []
                d, res, e = h.run_json("stationary", path, "--lr", lr,
                                       "--batch", B, "--sampling", sampling,
                                       "--label-noise", sigma, *opts)
                Sigma = gradient_covariance(J, R, B, sampling, sigma)
                want = impulse_gain(lr, beta, tau, nest) ** 2 * (u @ Sigma @ u)
                if d is not None and (
                        d["stable"] or d["null_space_directions"] != 1 or
                        not h.close_rel(d["null_space_drift_rate"], want,
                                        1e-9)):
                    e.append("stable %r, directions %r, drift %r, want %r"
                             % (d["stable"], d["null_space_directions"],
                                d["null_space_drift_rate"], want))
                h.report("singular H, %s, %s, sigma %g: the random walk"
                         % (name, sampling, sigma), e, res)
    # Adam: the walk in y = P^(1/2) delta, measured in parameter space
    v = os.path.join(work, "v_walk.npy")
    vhat = rng.uniform(0.5, 2.0, p)
    np.save(v, vhat)
    P = np.sqrt(vhat) + 1e-8
    Hy = H / np.sqrt(np.outer(P, P))
    w = np.linalg.eigh(Hy)[1][:, 0]               # Hy's null direction
    for sampling in h.SAMPLINGS:
        d, res, e = h.run_json("stationary", path, "--lr", lr, "--batch", B,
                               "--sampling", sampling, "--label-noise", 0.3,
                               "--optimizer", "adam", "--second-moment", v)
        Sigma = gradient_covariance(J, R, B, sampling, 0.3)
        Cy = Sigma / np.sqrt(np.outer(P, P))
        # Adam's step per unit of constant gradient: (1 - beta1) lr c /
        # (1 - beta1) = lr (c = 1)
        want = lr ** 2 * (w @ (w / P)) * (w @ Cy @ w)
        if d is not None and not (
                d["null_space_directions"] == 1 and
                h.close_rel(d["null_space_drift_rate"], want, 1e-8)):
            e.append("directions %r, drift %r, want %r"
                     % (d["null_space_directions"],
                        d["null_space_drift_rate"], want))
        h.report("singular H, Adam, %s: the random walk in parameter space"
                 % sampling, e, res)

    # no noise at all: the undamped direction counted, no walk
    quiet = os.path.join(work, "nullH_quiet.npz")
    np.savez(quiet, J=J, H=H)
    d, res, e = h.run_json("stationary", quiet, "--lr", lr, "--batch", B)
    if d is not None and (d["stable"] or d["null_space_directions"] != 1 or
                          d["null_space_drift_rate"] != 0):
        e.append("stable %r, directions %r, drift %r"
                 % (d["stable"], d["null_space_directions"],
                    d["null_space_drift_rate"]))
    h.report("singular H without noise: the direction counted, rate 0", e,
             res)

    # not a minimum, residuals whose mean gradient is not zero: still the
    # unstable report (the escape), not a refusal
    Hneg = H - 0.3 * np.eye(p)
    lost = os.path.join(work, "saddle.npz")
    np.savez(lost, J=J, H=Hneg, R=rng.standard_normal((n, 1)))
    d, res, e = h.run_json("stationary", lost, "--lr", lr, "--batch", B)
    if d is not None and (d["stable"] or d["null_space_directions"] != 0 or
                          not d["escape_rate_per_step"] > 0):
        e.append("stable %r, directions %r, escape %r"
                 % (d["stable"], d["null_space_directions"],
                    d["escape_rate_per_step"]))
    h.report("not a minimum, residuals not stationary: the escape rate", e,
             res)

    res = h.run("stationary", path, "--lr", lr, "--batch", B,
                "--label-noise", 0.3)
    e = h.failure_errors(res, (0,)) if res.rc else []
    if "random walk" not in res.out:
        e.append("the text does not report the random walk")
    h.report("singular H: the text", e, res)

    for sampling in h.SAMPLINGS:
        d, res, e = h.run_json("stationary", path, "--lr", lr, "--batch", B,
                               "--sampling", sampling, "--label-noise", 0.3,
                               "--weight-decay", 0.2)
        if d is not None:
            want = mulayoff_michaeli(J, R, lr, B, sampling, 0.3, H, 0.2)
            for key, wv in zip(("second_moment", "excess_loss",
                                "gradient_norm_sq"), want):
                if not h.close_rel(d[key], wv, 1e-9):
                    e.append("%s %r, Mulayoff-Michaeli %r" % (key, d[key], wv))
            if d["null_space_directions"] != 0:
                e.append("null_space_directions %r with weight decay"
                         % d["null_space_directions"])
        h.report("singular H, weight decay 0.2, %s: the dense solve"
                 % sampling, e, res)

    v = os.path.join(work, "v_null.npy")
    np.save(v, rng.uniform(0.5, 2.0, p))
    adamw = ["--batch", B, "--optimizer", "adamw", "--weight-decay", 0.5,
             "--second-moment", v]
    c, res, e = h.run_json("critical", path, *adamw)
    st = ev = None
    if c is not None:
        point = ["--lr", 0.5 * c["critical"][0]["lr_critical"],
                 "--label-noise", 0.3] + adamw
        st, res, e = h.run_json("stationary", path, *point)
        ev, res2, e2 = h.run_json("evolve", path, "--steps", 3000, *point)
        e += e2
    if st is not None and ev is not None and not (
            st["stable"] and st["null_space_directions"] == 0 and
            h.close_rel(ev["second_moment"][-1], st.get("second_moment"),
                        1e-8)):
        e.append("stable %r, directions %r, stationary %r, evolve %r"
                 % (st["stable"], st["null_space_directions"],
                    st.get("second_moment"), ev["second_moment"][-1]))
    h.report("singular H, AdamW's decoupled decay: stationary = evolve's "
             "limit", e, res)


def body(work):
    rng = np.random.default_rng(29)
    keys = ("second_moment", "excess_loss", "gradient_norm_sq")
    for k in (1, 3):
        n, p, B = 9, 5, 3
        J = rng.standard_normal((n, k, p)) / np.sqrt(p)
        R = centred_residuals(J, rng)
        path = os.path.join(work, "nonint%d.npz" % k)
        np.savez(path, J=J, R=R)
        for sampling in h.SAMPLINGS:
            for sigma in (0.0, 0.5):
                c, _, e = h.run_json("critical", path, "--batch", B,
                                     "--sampling", sampling)
                if c is None:
                    h.report("critical k=%d %s" % (k, sampling), e)
                    continue
                lr = 0.5 * c["critical"][0]["lr_critical"]
                d, res, e = h.run_json("stationary", path, "--lr", lr,
                                       "--batch", B, "--sampling", sampling,
                                       "--label-noise", sigma)
                if d is not None:
                    want = mulayoff_michaeli(J, R, lr, B, sampling, sigma)
                    for key, w in zip(keys, want):
                        if not h.close_rel(d[key], w, 1e-9):
                            e.append("%s %r, Mulayoff-Michaeli %r"
                                     % (key, d[key], w))
                    if not (d["stable"] and d["converged"] and
                            d["relative_residual"] < 1e-10):
                        e.append("stable %r converged %r residual %r"
                                 % (d["stable"], d["converged"],
                                    d["relative_residual"]))
                h.report("k=%d %s sigma %g: the dense Kronecker solve"
                         % (k, sampling, sigma), e, res)

    # The affine recursion: evolve tends to the stationary solve, and
    # Monte Carlo runs of the real update (residual gradients, fresh label
    # noise, each optimizer) agree with it step by step.
    path3 = os.path.join(work, "nonint3.npz")
    v = os.path.join(work, "v.npy")
    np.save(v, rng.uniform(0.2, 2.0, 5))
    for name, opts in (("plain SGD", []), ("heavy ball 0.7", ["--momentum",
                                                            0.7]),
                       ("Adam", ["--optimizer", "adam", "--second-moment",
                                 v])):
        c, _, e = h.run_json("critical", path3, "--batch", 3, *opts)
        if c is None:
            h.report("critical %s" % name, e)
            continue
        lr = 0.5 * c["critical"][0]["lr_critical"]
        point = ["--lr", lr, "--batch", 3, "--label-noise", 0.3] + opts
        st, res, e = h.run_json("stationary", path3, *point)
        ev, res2, e2 = h.run_json("evolve", path3, "--steps", 4000, *point)
        e += e2
        if st is not None and ev is not None and not h.close_rel(
                ev["second_moment"][-1], st["second_moment"], 1e-8):
            e.append("evolve after 4000 steps %r, stationary %r"
                     % (ev["second_moment"][-1], st["second_moment"]))
        h.report("%s: evolve with the noise tends to the stationary state"
                 % name, e, res2)
        zeros = os.path.join(work, "zeros.npy")
        np.save(zeros, np.zeros((5, 5)))
        z1, res, e = h.run_json("evolve", path3, "--steps", 50, "--init",
                                "zero", *point)
        z2, res2, e2 = h.run_json("evolve", path3, "--steps", 50, "--init",
                                  zeros, *point)
        e += e2
        if z1 is not None and z2 is not None and not (
                z1["second_moment"][0] == 0 and
                z1["second_moment"] == z2["second_moment"] and
                z1["second_moment"][-1] > 0):
            e.append("--init zero %r, a zero S0 file %r"
                     % (z1["second_moment"][:3], z2["second_moment"][:3]))
        h.report("%s: evolve --init zero starts at the minimum" % name, e,
                 res)
        d, res, e = h.run_json("simulate", path3, "--steps", 30, "--runs",
                               20000, "--init", "zero", "--compare",
                               "--quiet", "--seed", 5, *point)
        if d is not None:
            worst = max(abs(z) for z in d["z_score"][1:])
            if not worst <= 4:
                e.append("max |z| %.3g over 30 steps" % worst)
            if d["second_moment"][0] != 0:
                e.append("runs do not start at the minimum")
        h.report("%s: simulate with residuals and label noise against the "
                 "exact evolution" % name, e, res)

    # Full batch, label noise only: (eta sigma^2/n)(2I - eta H)^-1.
    n, p = 8, 12
    J = rng.standard_normal((n, p))
    path, _ = h.write_problem(work, "full", J)
    hs = np.linalg.eigvalsh(J.T @ J / n)
    hs = hs[hs > 1e-10 * hs.max()]
    lr, sigma = 0.7 * 2 / hs.max(), 0.3
    v = lr * sigma ** 2 / n / (2 - lr * hs)
    d, res, e = h.run_json("stationary", path, "--lr", lr, "--batch", n,
                           "--label-noise", sigma)
    if d is not None:
        for key, w in zip(keys, (v.sum(), 0.5 * (hs * v).sum(),
                                 (hs ** 2 * v).sum())):
            if not h.close_rel(d[key], w, 1e-10):
                e.append("%s %r, closed form %r" % (key, d[key], w))
    h.report("full-batch label noise: the closed form", e, res)

    csv_path = os.path.join(work, "var.csv")
    d, res, e = h.run_json("stationary", path, "--lr", lr, "--batch", n,
                           "--label-noise", sigma, "--csv", csv_path)
    if d is not None:
        _, head, rows = h.read_csv(csv_path)
        if head != "index,curvature,variance":
            e.append("header %r" % head)
        curv = sorted(float(r[1]) for r in rows)
        var = {round(float(r[1]), 12): float(r[2]) for r in rows}
        if not np.allclose(curv, np.sort(hs), rtol=1e-10):
            e.append("curvatures %r, eigenvalues %r" % (curv, hs))
        for hj, vj in zip(hs, v):
            got = var.get(round(hj, 12))
            if got is None or not h.close_rel(got, vj, 1e-9):
                e.append("variance at curvature %r: %r, closed form %r"
                         % (hj, got, vj))
    h.report("--csv: variance against curvature", e, res)

    d, res, e = h.run_json("stationary", path, "--lr", 0.05 / hs.max(),
                           "--batch", 2)
    if d is not None and not d["stable"]:
        e.append("not stable at 0.05/lambda_max")
    elif d is not None and not (d["second_moment"] == 0 and
                              d["iterations"] == 0):
        e.append("zero residuals, no label noise: second_moment %r"
                 % d["second_moment"])
    h.report("zero residuals and sigma = 0: S = 0", e, res)

    d, res, e = h.run_json("stationary", path, "--lr", 3 * lr, "--batch", 2,
                           "--label-noise", 0.1)
    if d is not None and (d["stable"] or d["spectral_radius"] < 1 or
                          not d["escape_rate_per_step"] > 0):
        e.append("above eta*: stable %r rho %r" % (d["stable"],
                                                   d["spectral_radius"]))
    h.report("unstable: no stationary state, the escape rate", e, res)

    null_space(work, rng)

    Jk = rng.standard_normal((6, 2, 4))
    bad = {"shape": dict(J=Jk, R=np.zeros((6, 3))),
           "nan": dict(J=Jk, R=np.full((6, 2), np.nan)),
           "mean": dict(J=Jk, R=np.ones((6, 2)))}
    needles = {"shape": "must have shape (6, 2)", "nan": "non-finite",
               "mean": "not a stationary point"}
    for name, arrays in bad.items():
        bp = os.path.join(work, "bad_%s.npz" % name)
        np.savez(bp, **arrays)
        res = h.run("stationary", bp, "--lr", 0.01, "--batch", 2)
        e = h.failure_errors(res, (1,))
        if needles[name] not in res.err:
            e.append("stderr lacks %r" % needles[name])
        h.report("refused: R %s" % name, e, res)
    res = h.run("simulate", path, "--lr", lr, "--batch", 2, "--epoch",
                "--label-noise", 0.1)
    e = h.failure_errors(res, (2,))
    if "--label-noise" not in res.err:
        e.append("stderr lacks '--label-noise'")
    h.report("refused: simulate --epoch --label-noise", e, res)
    res = h.run("stationary", path, "--lr", lr, "--batch", 2,
                "--label-noise", -1)
    e = h.failure_errors(res, (2,))
    if "negative" not in res.err:
        e.append("stderr lacks 'negative'")
    h.report("refused: --label-noise -1", e, res)
    return None


if __name__ == "__main__":
    sys.exit(h.main(__doc__, "stationary", body))
