#!/usr/bin/python3
"""The stationary state of a random-feature minimum that does not
interpolate, over a (B, eta) grid, with the exact boundary where it ceases
to exist.

    /usr/bin/python3 problems/stationary_rfm.py [--out results/stationary-rfm]
        [--sgdstab build/src/sgdstab]

1. `sgdstab synth rfm --samples 256 --inputs 16 --width 64 --seed 11`: a
   random-feature model f(x) = A relu(F x)/sqrt(m) with fewer features
   (m = 64) than samples (n = 256), at the teacher's exact fit.
2. The targets are perturbed by i.i.d. N(0, NOISE^2) noise.  The model is
   linear in its trained layer A, so J does not move, and the least-squares
   fit of the noisy targets is a minimum with residuals r = (I - J J^+) eps:
   its mean gradient J'r vanishes exactly, its per-sample gradients do not.
   The file gets r as its member R (problem.npz in --out).
3. `sgdstab critical` gives eta*(B) for every B of the grid;
   `sgdstab stationary` at every (B, eta) of a 20 x 20 grid (B log-spaced
   in 1..n, eta log-spaced over [eta*(1)/10, 2 eta*(n)]) gives E|delta|^2
   and the excess loss where the map is stable, and "no stationary state"
   where it is not.

Writes grid.csv (batch, lr, stable, second_moment, excess_loss,
gradient_norm_sq, relaxation_steps, iterations, relative_residual),
boundary.csv (batch, lr_critical), stationary.png and report.md into --out.
Needs python3-numpy and python3-matplotlib.
"""

import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import script_tools  # noqa: E402
NOISE = 0.1
GRID = 20


def make_problem(binary, out):
    path = os.path.join(out, "problem.npz")
    subprocess.run([binary, "synth", "rfm", "--samples", "256", "--inputs",
                    "16", "--width", "64", "--seed", "11", "-o", path],
                   check=True, stdout=subprocess.DEVNULL)
    with np.load(path) as z:
        arrays = {name: z[name] for name in z.files}
    J = arrays["J"]
    n = J.shape[0]
    A = J.reshape(n, -1) if J.ndim == 2 else J.reshape(-1, J.shape[-1])
    eps = np.random.default_rng(11).normal(0, NOISE, A.shape[0])
    R = eps - A @ np.linalg.lstsq(A, eps, rcond=None)[0]
    arrays["R"] = R.reshape(n, -1)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path, n


def plot(out, batches, lrs, grid, boundary):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.4))
    edges_b = np.geomspace(batches[0] / 1.3, batches[-1] * 1.3,
                           len(batches) + 1)
    edges_lr = np.geomspace(lrs[0] / 1.2, lrs[-1] * 1.2, len(lrs) + 1)
    for axis, key, title in ((ax[0], "excess_loss", "excess loss E L - L*"),
                             (ax[1], "second_moment", r"$E\|\delta\|^2$")):
        Z = np.full((len(lrs), len(batches)), np.nan)
        for g in grid:
            if g["stable"] and g[key] > 0:  # 0 at B = n: no batch noise
                Z[lrs.index(g["lr"]), batches.index(g["batch"])] = \
                    math.log10(g[key])
        mesh = axis.pcolormesh(edges_b, edges_lr, Z, cmap="viridis",
                               shading="flat")
        fig.colorbar(mesh, ax=axis, label="log10 of the value")
        axis.plot([b for b, _ in boundary], [c for _, c in boundary], "r-",
                  lw=2, label=r"$\eta^*(B)$: no stationary state above")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("batch size B")
        axis.set_ylabel(r"learning rate $\eta$")
        axis.set_title(title)
        axis.legend(fontsize=8, loc="upper left")
    fig.suptitle("Stationary state of a random-feature minimum with "
                 "residuals (white: unstable; at B = n, gradient descent, no "
                 "noise: S = 0)", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "stationary.png"), dpi=110)
    plt.close(fig)


def main():
    ap = script_tools.arguments(__doc__, "stationary-rfm")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    path, n = make_problem(args.sgdstab, args.out)
    crit = script_tools.sgdstab_json(args.sgdstab, "critical", path,
                                     "--batch",
                                     "1:%d:%d:log" % (n, GRID))["critical"]
    batches = [c["batch"] for c in crit]
    boundary = [(c["batch"], c["lr_critical"]) for c in crit]
    lrs = [float(x) for x in np.geomspace(boundary[0][1] / 10,
                                          2 * boundary[-1][1], GRID)]
    grid = []
    for B in batches:
        for lr in lrs:
            d = script_tools.sgdstab_json(args.sgdstab, "stationary", path,
                                          "--lr", lr, "--batch", B)
            grid.append({"batch": B, "lr": lr, "stable": d["stable"],
                         **{k: d.get(k, float("nan"))
                            for k in ("second_moment", "excess_loss",
                                      "gradient_norm_sq", "relaxation_steps",
                                      "iterations", "relative_residual")}})
    keys = ["batch", "lr", "stable", "second_moment", "excess_loss",
            "gradient_norm_sq", "relaxation_steps", "iterations",
            "relative_residual"]
    script_tools.write_csv(os.path.join(args.out, "grid.csv"), keys,
              [[g[k] for k in keys] for g in grid])
    script_tools.write_csv(os.path.join(args.out, "boundary.csv"),
              ["batch", "lr_critical"], boundary)
    plot(args.out, batches, lrs, grid, boundary)
    stable = [g for g in grid if g["stable"]]
    worst = max(g["relative_residual"] for g in stable)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("# The stationary state of a random-feature minimum that does "
                "not interpolate\n\nRegenerate: `/usr/bin/python3 "
                "problems/stationary_rfm.py`\n\n"
                "Problem: `sgdstab synth rfm --samples 256 --inputs 16 "
                "--width 64 --seed 11` (n = %d samples, p = 64 features), "
                "targets perturbed by N(0, %g^2) noise and fitted by least "
                "squares: residuals R = (I - J J^+) eps, RMS %.4g, mean "
                "gradient zero.\n\n"
                "Of the %d grid points %d are stable, each with a stationary "
                "state (solved to a relative residual of at most %.2g); above "
                "the red line eta*(B) of stationary.png there is none "
                "(`sgdstab stationary` reports the escape rate instead).  "
                "grid.csv holds every point, boundary.csv eta*(B).  At B = n "
                "(gradient descent) the mean gradient is the only gradient "
                "and it vanishes: no noise, S = 0.  Along a fixed B < n the "
                "excess loss grows with eta, steeply as eta approaches "
                "eta*(B) (the relaxation time -1/ln rho diverges there), "
                "and the stationary spread exists only inside the stable "
                "region.\n"
                % (n, NOISE, float(np.sqrt(np.mean(np.load(path)["R"] ** 2))),
                   len(grid), len(stable), worst))
    print("done: %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
