#!/usr/bin/python3
"""The stationary state of SGD at Fashion-MNIST minima: sgdstab's exact
answer beside PyTorch's own SGD on the trained network.

    /usr/bin/python3 problems/fashion_mnist_stationary.py
        [--out results/fashion-mnist-stationary] [--sgdstab build/src/sgdstab]
        [--data /usr/share/datasets/fashion-mnist] [--quick]

Two minima of an MLP d -> HIDDEN (tanh) -> k on class-balanced subsets of
Fashion-MNIST (read as problems/fashion_mnist.py reads them):

  label-noise  few samples (n*k < p): trained by SGD and polished by L-BFGS
               in float64 to exact interpolation; SGD then runs with label
               noise sigma (targets + N(0, sigma^2), fresh for every element
               of every batch), the classic model of implicit
               regularization.
  residuals    many samples (n*k > p): no parameter fits them all; trained
               by SGD with weight decay and polished by L-BFGS on MSE +
               (lambda/2)|theta|^2 until its gradient vanishes: a minimum
               with residuals of a few tenths, whose per-sample gradients
               are the noise.

Each is exported with its exact Hessian, residuals R and optimizer.  At each
(B, factor) of its points, eta = factor*eta*(B) (`sgdstab critical`), and
`sgdstab stationary` gives the exact stationary E|delta|^2, excess loss,
E|grad L - grad L*|^2 and the variance along every eigendirection of H
(--csv); `sgdstab evolve --init zero` the exact E|delta_t|^2 on the way
there.  RUNS independent PyTorch runs of the network's own SGD (MSELoss,
the same optimizer, a fresh batch of B distinct samples every step,
float64) start at theta* and run STEPS steps; their states from step
STEPS/2 on, every STRIDE steps, are averaged, each run's average one
independent sample (standard errors over runs).  E|delta|^2 is set beside
the exact average over the same steps (no need to have settled); the
variance per direction beside the stationary one where the direction has
settled (5/(2 eta h_j) steps within the first half), the others shown
apart.

Writes into --out: points.csv, directions.csv, variance.png and report.md;
--minima DIR keeps the two exported minima (label-noise.npz,
residuals.npz) there.  --quick: a tiny version
for the CI test.  Needs Debian's python3-torch, python3-numpy and
python3-matplotlib.
"""

import copy
import csv
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src", "python"))
import sgdstab_export  # noqa: E402

sys.path.insert(0, HERE)
import fashion_mnist as fm  # noqa: E402
import script_tools  # noqa: E402

CLASSES = [0, 1, 7, 8]              # T-shirt/top, Trouser, Sneaker, Bag
FULL = {
    "pool": 4,                      # 7 x 7 pixels
    "hidden": 8,                    # p = 49*8 + 8 + 8*4 + 4 = 436
    "runs": 128,
    "steps": 20000,
    "stride": 10,
    "minima": [
        # points: (B, eta/eta*(B), label noise sigma)
        {"name": "label-noise", "per_class": 16,    # n*k = 256 < p
         "weight_decay": 0.0, "train": (0.5, 8, 20000),
         "points": [(8, 0.5, 0.01), (8, 0.9, 0.01), (8, 0.5, 0.1)]},
        {"name": "residuals", "per_class": 128,     # n*k = 2048 > p
         "weight_decay": 1e-2, "train": (0.5, 32, 20000),
         "points": [(32, 0.1, 0.0), (32, 0.5, 0.0), (32, 0.9, 0.0)]},
    ],
}
QUICK = {
    "pool": 7,                      # 4 x 4 pixels
    "hidden": 4,                    # p = 16*4 + 4 + 4*4 + 4 = 88
    "runs": 32,
    "steps": 2000,
    "stride": 10,
    "minima": [
        {"name": "label-noise", "per_class": 4,     # n*k = 64 < p
         "weight_decay": 0.0, "train": (0.5, 4, 3000),
         "points": [(4, 0.5, 0.01)]},
        {"name": "residuals", "per_class": 16,      # n*k = 256 > p
         "weight_decay": 1e-2, "train": (0.5, 8, 3000),
         "points": [(8, 0.1, 0.0), (8, 0.5, 0.0)]},
    ],
}
POLISH_ITERS = 3000
SEED = 20261207
SETTLED = 5                         # relaxation times within the burn


def train(X, Y, cfg, spec):
    """SGD with MSELoss (and weight decay), then a float64 L-BFGS polish of
    the (regularized) loss.  Returns (model in float64, an optimizer for
    the export, MSE, |gradient of the polished objective|)."""
    lr, B, steps = spec["train"]
    wd = spec["weight_decay"]
    n = X.shape[0]
    model = fm.make_model(X.shape[1], cfg["hidden"], Y.shape[1])
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd)
    loss = torch.nn.MSELoss()
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(steps):
        idx = torch.randperm(n, generator=gen)[:B]
        opt.zero_grad()
        loss(model(X[idx]), Y[idx]).backward()
        opt.step()
    model = copy.deepcopy(model).double()
    Xd, Yd = X.double(), Y.double()
    lbfgs = torch.optim.LBFGS(model.parameters(), lr=1,
                              max_iter=POLISH_ITERS, history_size=50,
                              tolerance_grad=1e-15, tolerance_change=1e-24,
                              line_search_fn="strong_wolfe")

    def objective():
        return loss(model(Xd), Yd) + 0.5 * wd * sum(
            (q ** 2).sum() for q in model.parameters())

    def closure():
        lbfgs.zero_grad()
        value = objective()
        value.backward()
        return value

    lbfgs.step(closure)
    lbfgs.zero_grad()
    objective().backward()
    grad = math.sqrt(sum(float((q.grad ** 2).sum())
                         for q in model.parameters()))
    with torch.no_grad():
        mse = loss(model(Xd), Yd).item()
    return (model, torch.optim.SGD(model.parameters(), lr=lr,
                                   weight_decay=wd), mse, grad)


def flat(params):
    """Every run's parameters as a row (R x p), in the export's order."""
    return torch.cat([q.detach().reshape(q.shape[0], -1) for q in params],
                     dim=1)


def pytorch_runs(model, X, Y, lr, B, sigma, cfg, spec, U, cH):
    """RUNS runs of the network's SGD from theta*: per run, the averages
    over the recorded steps (from STEPS/2 on, every STRIDE) of |delta|^2,
    the excess MSE, its quadratic model (1/2) delta' cH delta,
    |grad MSE - grad MSE*|^2 and (u_j' delta)^2 for the columns u_j of U;
    and the recorded steps."""
    R, steps, stride = cfg["runs"], cfg["steps"], cfg["stride"]
    first = steps // 2
    Xd, Yd = X.double(), Y.double()
    theta = torch.cat([q.detach().reshape(-1) for q in model.parameters()])
    Ut, cHt = torch.tensor(U), torch.tensor(cH)
    sums = {"second_moment": 0, "excess_loss": 0, "excess_quadratic": 0,
            "gradient_norm_sq": 0, "directions": 0}
    base, recorded = {}, []

    def full(params, forward):
        out = forward(*params, Xd.expand(R, -1, -1))
        mse = ((out - Yd) ** 2).mean(dim=(1, 2))
        return mse.detach(), flat(torch.autograd.grad(mse.sum(), params))

    def observe(t, params, forward):
        if t == 0:
            base["mse"], base["grad"] = full(params, forward)
        if t < first or (t - first) % stride:
            return None
        mse, grad = full(params, forward)
        delta = flat(params) - theta
        sums["second_moment"] += (delta ** 2).sum(dim=1)
        sums["excess_loss"] += mse - base["mse"]
        sums["excess_quadratic"] += 0.5 * ((delta @ cHt) * delta).sum(dim=1)
        sums["gradient_norm_sq"] += ((grad - base["grad"]) ** 2).sum(dim=1)
        sums["directions"] += (delta @ Ut) ** 2
        recorded.append(t)
        return None

    fm.batched_runs(model, X, Y, lr, B, R, steps, 0.0, SEED + B, observe,
                    weight_decay=spec["weight_decay"],
                    label_noise=sigma)
    return ({key: (v / len(recorded)).numpy() for key, v in sums.items()},
            recorded)


def stat(samples):
    """(mean, standard error) over the runs (axis 0)."""
    return (np.mean(samples, axis=0),
            np.std(samples, axis=0, ddof=1) / math.sqrt(samples.shape[0]))


def match_directions(curv, c, mu, wd):
    """For every row of sgdstab's --csv (curvature c*h_j + weight decay of
    a direction of its reduced basis: H's eigenvectors when H is supplied)
    the index of the eigenvector of H (eigenvalues mu) with that curvature.
    The basis leaves out directions neither H nor J moves, so there may be
    fewer rows than eigenvectors, and takes a flat negative eigenvalue
    (within 1e-6 of the largest) as |mu|."""
    pick, free = [], set(range(len(mu)))
    scale = c * np.max(np.abs(mu))

    def gap(i, h):
        return min(abs(c * mu[i] + wd - h), abs(c * abs(mu[i]) + wd - h))

    for h in curv:
        j = min(free, key=lambda i: gap(i, h))
        if gap(j, h) > 1e-8 * scale:
            raise SystemExit("curvature %g of sgdstab's basis is no "
                             "eigenvalue of H" % h)
        pick.append(j)
        free.discard(j)
    return pick


def read_columns(path, *names):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [np.array([float(r[n]) for r in rows]) for n in names]


def make_minimum(args, cfg, spec, work):
    """Train and export one minimum; (X, Y, model, path, meta, fit)."""
    sub = dict(classes=CLASSES, per_class=spec["per_class"],
               pool=cfg["pool"])
    X, Y = fm.load_subset(args.data, sub)
    t0 = time.time()
    model, opt, mse, grad = train(X, Y, cfg, spec)
    path = os.path.join(args.minima or work, spec["name"] + ".npz")
    meta = sgdstab_export.export(model, X, Y, path, loss="mse", hessian=True,
                                 optimizer=opt, train_batch=spec["train"][1],
                                 train_sampling="without")
    fit = {"mse": mse, "gradient": grad, "seconds": time.time() - t0,
           "n": X.shape[0], "d": X.shape[1], "k": Y.shape[1]}
    print("%s: n %d, p %d, MSE %.3g, |grad| %.2g" % (spec["name"], fit["n"],
                                                    meta["p"], mse, grad),
          flush=True)
    return X, Y, model, path, meta, fit


def at_point(args, cfg, spec, X, Y, model, path, number, point, work):
    """Exact and PyTorch at point number (B, factor, sigma): (the row of
    points.csv, the rows of directions.csv)."""
    B, factor, sigma = point
    k = Y.shape[1]
    c, wd = 2.0 / k, spec["weight_decay"]       # MSELoss: c = 2/k
    noise = ["--label-noise", sigma]
    crit = fm.sgdstab(args.sgdstab, "critical", path, "--batch", B)
    lr = factor * crit["critical"][0]["lr_critical"]
    point = ["--lr", lr, "--batch", B] + noise
    csv_path = os.path.join(work, "directions.csv")
    st = fm.sgdstab(args.sgdstab, "stationary", path, *point, "--csv",
                    csv_path)
    if not st["stable"]:
        raise SystemExit("%s, B %d, eta %g: not stable" % (spec["name"], B,
                                                          lr))
    evolve_csv = os.path.join(work, "evolve.csv")
    fm.sgdstab(args.sgdstab, "evolve", path, *point, "--steps",
               cfg["steps"], "--init", "zero", "--csv", evolve_csv)
    (exact_m2,) = read_columns(evolve_csv, "second_moment")
    # the eigenvectors of H: sgdstab's basis with a supplied H
    H = np.load(path)["H"]
    mu, U = np.linalg.eigh(H)
    curv, var = read_columns(csv_path, "curvature", "variance")
    pick = match_directions(curv, c, mu, wd)
    t0 = time.time()
    mc, recorded = pytorch_runs(model, X, Y, lr, B, sigma, cfg, spec, U,
                                c * H)
    secs = time.time() - t0
    print("  B %d, eta %.4g (%.2g eta*), sigma %g: %d steps x %d runs, "
          "%.0f s" % (B, lr, factor, sigma, cfg["steps"], cfg["runs"], secs),
          flush=True)
    row = {"point": number, "minimum": spec["name"], "batch": B, "lr": lr,
           "lr_over_critical": factor, "label_noise": sigma,
           "weight_decay": wd, "spectral_radius": st["spectral_radius"],
           "relaxation_steps": st["relaxation_steps"],
           "steps": cfg["steps"], "runs": cfg["runs"], "seconds": secs}
    # |delta|^2 in the directions that settled (against the stationary
    # variances there) and in the rest: the slow, flat directions of the
    # basis and those outside it, where sgdstab's noise cannot reach
    first = cfg["steps"] // 2
    settled = SETTLED / (2 * lr * curv) <= first
    mc["settled"] = mc["directions"][:, np.array(pick)[settled]].sum(axis=1)
    mc["rest"] = mc["second_moment"] - mc["settled"]
    window = float(np.mean(exact_m2[recorded]))
    in_settled = float(var[settled].sum())
    for key, mc_key, exact in (
            ("second_moment", "second_moment", window),
            ("settled", "settled", in_settled),
            ("rest", "rest", window - in_settled),
            ("stationary_second_moment", "second_moment",
             st["second_moment"]),
            ("excess_loss", "excess_loss", st["excess_loss"]),
            ("excess_quadratic", "excess_quadratic", st["excess_loss"]),
            ("gradient_norm_sq", "gradient_norm_sq",
             st["gradient_norm_sq"])):
        m, se = stat(mc[mc_key])
        row[key + "_exact"] = exact
        row[key + "_pytorch"] = float(m)
        row[key + "_stderr"] = float(se)
        row[key + "_z"] = float((m - exact) / se)
    m, se = stat(mc["directions"])
    dirs = [(number, i, float(curv[i]), float(var[i]), float(m[j]),
             float(se[j]), "yes" if settled[i] else "no")
            for i, j in enumerate(pick)]
    return row, dirs


def experiment(args, cfg, work):
    points, directions, fits = [], [], {}
    for spec in cfg["minima"]:
        X, Y, model, path, meta, fit = make_minimum(args, cfg, spec, work)
        fit["p"] = meta["p"]
        fit["residual"] = meta["residual_rms"] / meta["target_rms"]
        fits[spec["name"]] = fit
        for point in spec["points"]:
            row, dirs = at_point(args, cfg, spec, X, Y, model, path,
                                 len(points), point, work)
            points.append(row)
            directions += dirs
    cols = list(points[0].keys())
    script_tools.write_csv(os.path.join(args.out, "points.csv"), cols,
                           [[r[c] for c in cols] for r in points])
    script_tools.write_csv(os.path.join(args.out, "directions.csv"),
                           ["point", "index", "curvature", "variance_exact",
                            "variance_pytorch", "variance_stderr",
                            "settled"], directions)
    plot(args.out, cfg, points, directions)
    write_report(args, cfg, points, directions, fits)
    return points


def rows_of(directions, r):
    """The rows of directions.csv of point r."""
    return [t for t in directions if t[0] == r["point"]]


def point_label(r):
    return "B = %d, η = %.1f η*%s" % (
        r["batch"], r["lr_over_critical"],
        ", σ = %g" % r["label_noise"] if r["label_noise"] else "")


def plot(out, cfg, points, directions):
    """Per minimum (rows): variance against curvature, exact and PyTorch;
    PyTorch's variance against the exact one, with the diagonal."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [s["name"] for s in cfg["minima"]]
    fig, axes = plt.subplots(len(names), 2, figsize=(12.5, 5.2 * len(names)),
                             dpi=100, squeeze=False)
    colours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a"]
    titles = {"label-noise": "interpolating minimum, label noise",
              "residuals": "minimum with residuals, weight decay %g"
                           % cfg["minima"][-1]["weight_decay"]}
    for (left, right), name in zip(axes, names):
        mine = [r for r in points if r["minimum"] == name]
        lo, hi = math.inf, 0.0
        for i, r in enumerate(mine):
            rows = rows_of(directions, r)
            h, ex, mc, se = (np.array([t[q] for t in rows])
                             for q in (2, 3, 4, 5))
            ok = np.array([t[6] == "yes" for t in rows])
            col = colours[i % len(colours)]
            label = point_label(r)
            left.plot(h, ex, "x", ms=5, color=col, label=label + ": exact")
            left.plot(h[ok], mc[ok], "o", ms=4, mfc="none", mec=col,
                      label=label + ": PyTorch")
            right.errorbar(ex[ok], mc[ok], yerr=2 * se[ok], fmt="o", ms=3.5,
                           color=col, elinewidth=0.8, alpha=0.85,
                           label=label + " (±2 s.e.)")
            shown = np.concatenate([ex[ok], mc[ok]])
            shown = shown[shown > 0]
            if shown.size:
                lo, hi = min(lo, shown.min()), max(hi, shown.max())
        if hi > 0:
            right.plot([lo, hi], [lo, hi], "-", color="black", lw=1,
                       label="PyTorch = exact")
        title = titles[name]
        left.set_title(title + ": variance against curvature", fontsize=10.5)
        right.set_title(title + ": PyTorch against exact\n(directions "
                        "that settled)", fontsize=10.5)
        left.set_xlabel("curvature of the eigendirection of H "
                        "(c·h + weight decay)")
        left.set_ylabel("stationary variance of δ along it")
        right.set_xlabel("exact stationary variance (sgdstab)")
        right.set_ylabel("PyTorch's variance (time average)")
        for ax in (left, right):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize=8.5, loc="best")
    fig.suptitle("Fashion-MNIST MLP in its stationary state: sgdstab beside "
                 "PyTorch's SGD (unsettled directions left out of PyTorch's "
                 "points)", fontsize=12)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "variance.png"))
    plt.close(fig)


def summary_line(r, directions):
    rows = rows_of(directions, r)
    settled = [t for t in rows if t[6] == "yes" and t[3] > 0]
    if not settled:
        return "- %s, %s: no direction settled." % (
            r["minimum"], point_label(r).replace("*", "\\*"))
    rel = np.array([t[4] / t[3] - 1 for t in settled])
    z = np.array([(t[4] - t[3]) / t[5] for t in settled])
    return ("- %s, %s: %d of %d directions settled; there PyTorch/exact − 1 "
            "has median %+.3f, quartiles %+.3f and %+.3f, and |z| > 3 in %d."
            % (r["minimum"], point_label(r).replace("*", "\\*"),
               len(settled), len(rows), float(np.median(rel)),
               float(np.percentile(rel, 25)), float(np.percentile(rel, 75)),
               int(np.sum(np.abs(z) > 3))))


def agreement(points, directions):
    """Which points the linear answer describes: the median of
    PyTorch/exact − 1 over the settled directions within 10%."""
    good, bad = [], []
    for r in points:
        rows = [t for t in rows_of(directions, r)
                if t[6] == "yes" and t[3] > 0]
        med = float(np.median([t[4] / t[3] - 1 for t in rows])) \
            if rows else math.inf
        (good if abs(med) <= 0.1 else bad).append(
            "%s at %s" % (r["minimum"], point_label(r).replace("*", "\\*")))
    return ("In the directions that settled, PyTorch's variance is within "
            "10%% of sgdstab's (median) for %s; not for %s."
            % ("; ".join(good) or "no point", "; ".join(bad) or "any"))


def write_report(args, cfg, points, directions, fits):
    L = ["# The stationary state at Fashion-MNIST minima",
         "",
         "Regenerate with `/usr/bin/python3 "
         "problems/fashion_mnist_stationary.py%s` (from the top of the "
         "repository, after building)." % (" --quick" if args.quick else ""),
         ""]
    for spec in cfg["minima"]:
        f = fits[spec["name"]]
        L.append("- %s: an MLP %d → %d (tanh) → %d on n = %d images "
                 "(classes %s; %d×%d pooled pixels), p = %d parameters for "
                 "n·k = %d targets; trained by SGD (lr %g, B %d, %d steps%s) "
                 "and polished by L-BFGS in float64%s: training MSE %.3g, "
                 "RMS residual %.3g of the RMS target, gradient %.2g."
                 % (spec["name"], f["d"], cfg["hidden"], f["k"], f["n"],
                    ", ".join(fm.NAMES[c] for c in CLASSES),
                    28 // cfg["pool"], 28 // cfg["pool"], f["p"],
                    f["n"] * f["k"], spec["train"][0], spec["train"][1],
                    spec["train"][2],
                    ", weight decay %g" % spec["weight_decay"]
                    if spec["weight_decay"] else "",
                    " on MSE + (%g/2)‖θ‖²" % spec["weight_decay"]
                    if spec["weight_decay"] else " to interpolation",
                    f["mse"], f["residual"], f["gradient"]))
    L += ["",
          "At each point, %d independent PyTorch runs of the network's own "
          "SGD (MSELoss, the minimum's optimizer, a fresh batch of B "
          "distinct samples each step, float64, with label noise where "
          "named) start at θ\\* and run %d steps; their states from step %d "
          "on, every %d steps, are averaged. Each run's average is one "
          "sample; standard errors are over runs. E‖δ‖² is set beside the "
          "exact average over the same steps (`sgdstab evolve --init "
          "zero`), so it needs no settling; beside it the exact stationary "
          "value (`sgdstab stationary`), which the excess loss and "
          "E‖∇L − ∇L\\*‖² are compared with (their flat, slow directions "
          "weigh little)."
          % (cfg["runs"], cfg["steps"], cfg["steps"] // 2, cfg["stride"]),
          "",
          "| minimum | B | η/η\\* | σ | ρ | E‖δ‖² exact, same steps | "
          "PyTorch (z) | settled directions: exact | PyTorch (z) | the "
          "rest: exact | PyTorch | E‖δ‖² stationary |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in points:
        L.append("| %s | %d | %.1f | %g | %.6f | %.4g | %.4g (%+.1f) | %.4g "
                 "| %.4g (%+.1f) | %.4g | %.4g | %.4g |"
                 % (r["minimum"], r["batch"], r["lr_over_critical"],
                    r["label_noise"], r["spectral_radius"], r["second_moment_exact"],
                    r["second_moment_pytorch"], r["second_moment_z"],
                    r["settled_exact"], r["settled_pytorch"],
                    r["settled_z"], r["rest_exact"], r["rest_pytorch"],
                    r["stationary_second_moment_exact"]))
    L += ["",
          "The excess loss, measured (the full-batch MSE above its value at "
          "θ\\*) and as the quadratic form ½c·δᵀHδ of PyTorch's δ (what "
          "sgdstab computes; the difference is the network's higher-order "
          "terms and, with weight decay, −λθ\\*·E δ: the mean moves at "
          "second order), and E‖∇L − ∇L\\*‖², against sgdstab's stationary "
          "values:",
          "",
          "| minimum | B | η/η\\* | σ | excess MSE exact | PyTorch measured "
          "(z) | PyTorch ½c·δᵀHδ (z) | E‖∇L − ∇L\\*‖² exact | PyTorch (z) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in points:
        L.append("| %s | %d | %.1f | %g | %.4g | %.4g (%+.1f) | %.4g "
                 "(%+.1f) | %.4g | %.4g (%+.1f) |"
                 % (r["minimum"], r["batch"], r["lr_over_critical"],
                    r["label_noise"],
                    r["excess_loss_exact"], r["excess_loss_pytorch"],
                    r["excess_loss_z"], r["excess_quadratic_pytorch"],
                    r["excess_quadratic_z"], r["gradient_norm_sq_exact"],
                    r["gradient_norm_sq_pytorch"], r["gradient_norm_sq_z"]))
    L += ["", "![variance against curvature](variance.png)", "",
          "Per eigendirection of H (`directions.csv`; a direction has "
          "settled when %d relaxation times 1/(2ηh_j) fit in the first "
          "half of the runs):" % SETTLED, ""]
    L += [summary_line(r, directions) for r in points]
    L += ["",
          "Reading the tables. sgdstab's answer is that of the linearized "
          "dynamics at θ\\*, every batch Hessian G_ξ + (H − G). The trained "
          "network differs from it in three ways:",
          "",
          "1. At an interpolating minimum, label noise moves θ along the "
          "manifold of minima (directions J does not move) at second order, "
          "through σ·∇²f·δ. The linearization at θ\\* cannot see this (its "
          "noise lies in J's range): it is the column 'the rest', which "
          "grows with σ and with time, and once θ has drifted the fast "
          "directions are those of another point of the manifold.",
          "2. At a minimum with residuals, the curvature they add, "
          "(1/B) Σ r_i·∇²f_i, changes from batch to batch, while sgdstab "
          "takes it at its mean: a multiplicative noise as large as the "
          "residuals, which acts on S∞ at one order of η more than the "
          "additive noise, so it matters more as η grows.",
          "3. The network is not quadratic: δ of finite size meets "
          "third-order terms, and with weight decay E δ moves at second "
          "order, which the measured excess MSE picks up through "
          "−λθ\\*·E δ and ½c·δᵀHδ does not.",
          "",
          agreement(points, directions)]
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")


def main():
    def options(ap):
        ap.add_argument("--minima", metavar="DIR",
                        help="keep the exported minima (label-noise.npz, "
                        "residuals.npz) in DIR")

    fm.run_experiment(__doc__, "fashion-mnist-stationary", FULL, QUICK,
                      experiment, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
