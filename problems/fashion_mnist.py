#!/usr/bin/python3
"""The real-data experiment: minima that SGD finds on Fashion-MNIST, checked
by sgdstab.

    /usr/bin/python3 problems/fashion_mnist.py [--out results/fashion-mnist]
        [--sgdstab build/src/sgdstab] [--data /usr/share/datasets/fashion-mnist]
        [--quick]

1. Data: a class-balanced subset of the Fashion-MNIST training set, read from
   the idx files of Debian's dataset-fashion-mnist (no download): the classes
   in CLASSES, pixels scaled to [0, 1] and centred by the subset's mean,
   one-hot targets (k = number of classes).
2. Model: an MLP d -> HIDDEN (tanh) -> k, trained from one initialization by
   plain SGD with torch.nn.MSELoss (the `mse` convention) at each (eta, B) of
   RUNS, a fresh batch of B distinct samples every step (sgdstab's
   `without` sampling), until the training MSE is below STOP_MSE, i.e. the
   RMS residual is below 1% of the RMS one-hot target (sgdstab's
   interpolation rule) by a margin.
3. Each minimum is exported with src/python/sgdstab_export.py and checked
   with `sgdstab verify` at its own training (eta, B): verdict, rho, eta*(B),
   |H|_F against sqrt(B)/eta, and every theorem and condition.
4. Escape: from the full-batch minimum named by escape_from, polished by
   L-BFGS to exact interpolation, SGD continues at the same eta with the
   largest batch B < n at which sgdstab predicts instability (eta > 1.15
   eta*(B)), in escape_runs independent PyTorch runs started at theta* + a
   small isotropic perturbation; the growth rate
   of the mean training loss (log-linear fit over the escape phase) is set
   beside sgdstab's ln rho and beside `sgdstab simulate` (linearized SGD,
   the same number of runs and steps and the same fit).
5. Optimizers: the model trained again by SGD with momentum 0.9 and weight
   decay 5e-4 and by Adam, at each (kind, eta, B) of optimizer_runs,
   exported with the optimizer, and analyzed at its own optimizer next to
   what a plain-SGD analysis (--optimizer sgd) says.

Writes into --out: runs.csv, checks.csv, escape.csv, escape-fit.json,
optimizers.csv, frobenius.png, escape.png, optimizers.png and report.md.
--quick runs a tiny version (7x7 pooled pixels, 48 samples, a few hundred
parameters) in well under a minute: the CI test of the whole path.  Needs Debian's python3-torch,
python3-numpy and python3-matplotlib.
"""

import copy
import csv
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src", "python"))
import sgdstab_export  # noqa: E402

sys.path.insert(0, HERE)
import script_tools  # noqa: E402

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
         "Shirt", "Sneaker", "Bag", "Ankle boot"]

FULL = {
    "classes": [0, 1, 7, 8],        # T-shirt/top, Trouser, Sneaker, Bag
    "per_class": 128,               # n = 512
    "pool": 1,                      # 28 x 28 pixels
    "hidden": 16,                   # p = 784*16 + 16 + 16*4 + 4 = 12628
    "runs": [(0.2, 4), (0.5, 8), (0.5, 16), (0.1, 32), (1.0, 32),
             (0.7, 64), (1.0, 128), (0.5, 512), (1.0, 512)],
    "escape_from": (0.5, 512),      # the minimum the escape starts from
    "stop_mse": 2e-5,
    "max_steps": 150000,
    "escape_runs": 256,
    "escape_max_steps": 3000,
    # trained with momentum + weight decay (SGD) and with Adam: (kind, eta, B)
    "optimizer_runs": [("momentum", 0.05, 32), ("momentum", 0.05, 128),
                       ("adam", 1e-3, 32), ("adam", 1e-3, 128)],
    "optimizer_max_steps": 30000,
}
QUICK = {
    "classes": [0, 1, 8],
    "per_class": 16,                # n = 48
    "pool": 4,                      # 7 x 7 pixels
    "hidden": 6,                    # p = 49*6 + 6 + 6*3 + 3 = 321
    "runs": [(0.5, 4), (0.5, 48), (1.0, 48)],
    "escape_from": (0.5, 48),
    "stop_mse": 2e-5,
    "max_steps": 60000,
    "escape_runs": 32,
    "escape_max_steps": 1500,
    "optimizer_runs": [("momentum", 0.05, 8), ("adam", 3e-3, 16)],
    "optimizer_max_steps": 6000,
}
SEED = 20261123
STOP_CHECK = 250        # steps between checks of the training loss
ESCAPE_START_MSE = 1e-7  # excess training MSE of the perturbed start
ESCAPE_END_MSE = 1e-3   # the escape phase ends here (still linear)
ESCAPE_MARGIN = 1.15    # escape batch: eta > 1.15 eta*(B)
JACKKNIFE_GROUPS = 8    # standard errors of the escape rates
POLISH_ITERS = 2000     # L-BFGS iterations polishing the escape minimum
MOMENTUM = 0.9          # PyTorch's usual recipe: SGD, momentum 0.9,
WEIGHT_DECAY = 5e-4     # weight decay 5e-4; Adam with its defaults


def read_idx(path):
    """An idx file (the MNIST format): magic, dims, big-endian sizes, bytes."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise SystemExit("%s: not an idx file of unsigned bytes" % path)
    nd = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big")
             for i in range(nd)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd)
    if data.size != int(np.prod(shape)):
        raise SystemExit("%s: %d bytes of data for shape %s"
                         % (path, data.size, shape))
    return data.reshape(shape)


def load_subset(data_dir, cfg):
    images = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))
    rng = np.random.default_rng(SEED)
    pick = np.concatenate([rng.choice(np.flatnonzero(labels == c),
                                      cfg["per_class"], replace=False)
                           for c in cfg["classes"]])
    x = images[pick].astype(np.float64) / 255.0
    q = cfg["pool"]
    x = x.reshape(len(pick), 28 // q, q, 28 // q, q).mean(axis=(2, 4))
    x = x.reshape(len(pick), -1)
    x -= x.mean(axis=0)
    y = np.zeros((len(pick), len(cfg["classes"])))
    y[np.arange(len(pick)), [cfg["classes"].index(c)
                             for c in labels[pick]]] = 1.0
    return (torch.tensor(x, dtype=torch.float32),
            torch.tensor(y, dtype=torch.float32))


def make_model(d, h, k):
    torch.manual_seed(SEED)
    return torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.Tanh(),
                               torch.nn.Linear(h, k))


def make_optimizer(kind, params, lr):
    if kind == "plain":
        return torch.optim.SGD(params, lr=lr)
    if kind == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM,
                               weight_decay=WEIGHT_DECAY)
    return torch.optim.Adam(params, lr=lr)


def train(X, Y, lr, B, cfg, kind="plain", max_steps=None):
    """SGD (plain, or with momentum and weight decay) or Adam with MSELoss,
    a fresh batch of B distinct samples each step, until the training MSE
    < stop_mse or max_steps.  Returns (model, optimizer, steps, mse,
    seconds)."""
    n = X.shape[0]
    model = make_model(X.shape[1], cfg["hidden"], Y.shape[1])
    opt = make_optimizer(kind, model.parameters(), lr)
    loss = torch.nn.MSELoss()
    gen = torch.Generator().manual_seed(SEED + B)
    t0, step, mse = time.time(), 0, math.inf
    while step < (max_steps or cfg["max_steps"]):
        for _ in range(STOP_CHECK):
            idx = torch.randperm(n, generator=gen)[:B]
            opt.zero_grad()
            loss(model(X[idx]), Y[idx]).backward()
            opt.step()
        step += STOP_CHECK
        with torch.no_grad():
            mse = loss(model(X), Y).item()
        if not math.isfinite(mse) or mse < cfg["stop_mse"]:
            break
    return model, opt, step, mse, time.time() - t0


def polish(model, X, Y):
    """A float64 copy of model moved to (numerically) exact interpolation by
    full-batch L-BFGS from where SGD stopped: the same basin, but no
    residual left whose gradient noise would swamp a small perturbation.
    Returns (copy, its training MSE)."""
    model = copy.deepcopy(model).double()
    Xd, Yd = X.double(), Y.double()
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=POLISH_ITERS,
                            history_size=50, tolerance_grad=1e-14,
                            tolerance_change=1e-20,
                            line_search_fn="strong_wolfe")
    loss = torch.nn.MSELoss()

    def closure():
        opt.zero_grad()
        value = loss(model(Xd), Yd)
        value.backward()
        return value

    opt.step(closure)
    with torch.no_grad():
        return model, loss(model(Xd), Yd).item()


def sgdstab(binary, *args, notes=None):
    """sgdstab's JSON for a file in the mse convention (script_tools)."""
    return script_tools.sgdstab_json(binary, *args, "--loss", "mse",
                                     notes=notes)


def fit_rate(series, lo, hi):
    """Least-squares slope of ln(series[t]) over t = lo..hi."""
    t = np.arange(lo, hi + 1)
    return float(np.polyfit(t, np.log(series[lo:hi + 1]), 1)[0])


def jackknife_rate(group_means, lo, hi):
    """The rate of the mean over groups (columns) and its jackknife standard
    error, leaving out one group at a time."""
    G = group_means.shape[1]
    rate = fit_rate(group_means.mean(axis=1), lo, hi)
    loo = [fit_rate(np.delete(group_means, g, axis=1).mean(axis=1), lo, hi)
           for g in range(G)]
    return rate, math.sqrt((G - 1) / G * np.sum((np.array(loo)
                                                 - np.mean(loo)) ** 2))


def batched_runs(model, X, Y, lr, B, R, steps, sigma, seed, observe,
                 weight_decay=0.0, label_noise=0.0):
    """R independent runs of plain SGD (torch.optim.SGD's update with
    MSELoss and coupled weight decay; batched: every parameter of the
    d -> h (tanh) -> k MLP gets a leading run axis) from theta* +
    N(0, sigma^2 I / p), a fresh batch of B distinct samples per run and
    step, its targets plus fresh N(0, label_noise^2) noise.  observe(t, params, forward) is called at t = 0..steps with the
    parameters [W1, b1, W2, b2] (each R x ...) and the batched forward(W1,
    b1, W2, b2, x); returns the list of what it returned."""
    g = torch.Generator().manual_seed(seed)
    lin1, lin2 = model[0], model[2]
    base = [lin1.weight, lin1.bias, lin2.weight, lin2.bias]
    p = sum(q.numel() for q in base)
    params = [(q.detach().double().unsqueeze(0).repeat(R, *[1] * q.dim())
               + sigma / math.sqrt(p) * torch.randn(R, *q.shape, generator=g,
                                                    dtype=torch.float64))
              .requires_grad_() for q in base]
    Xd, Yd = X.double(), Y.double()
    n = X.shape[0]

    def forward(W1, b1, W2, b2, x):        # x: R x m x d
        hidden = torch.tanh(x @ W1.transpose(1, 2) + b1.unsqueeze(1))
        return hidden @ W2.transpose(1, 2) + b2.unsqueeze(1)

    seen = [observe(0, params, forward)]
    for t in range(1, steps + 1):
        idx = torch.stack([torch.randperm(n, generator=g)[:B]
                           for _ in range(R)])
        out = forward(*params, Xd[idx])
        target = Yd[idx]
        if label_noise > 0:
            target = target + label_noise * torch.randn(
                target.shape, generator=g, dtype=torch.float64)
        # the sum over runs of each run's MSELoss: per-run gradients
        batch_mse = ((out - target) ** 2).mean(dim=(1, 2)).sum()
        grads = torch.autograd.grad(batch_mse, params)
        with torch.no_grad():
            for q, gq in zip(params, grads):
                q -= lr * (gq + weight_decay * q if weight_decay else gq)
        seen.append(observe(t, params, forward))
    return seen


def escape_runs(model, X, Y, lr, B, R, steps, sigma, seed):
    """R runs of batched_runs from theta* + N(0, sigma^2 I / p); the
    training MSE of every run at every step, (steps + 1) x R."""
    Xd, Yd = X.double(), Y.double()

    def full_mse(t, params, forward):
        with torch.no_grad():
            out = forward(*params, Xd.expand(R, -1, -1))
            return ((out - Yd) ** 2).mean(dim=(1, 2)).numpy()

    return np.array(batched_runs(model, X, Y, lr, B, R, steps, sigma, seed,
                                 full_mse))


def run_experiment(doc, results_name, full, quick, experiment, options=None):
    """The main of a Fashion-MNIST script: its options (--out, --sgdstab,
    --data, --quick, and what options(parser) adds), the checks of the data
    and the binary, a scratch directory; experiment(args, cfg, work) with
    cfg = full or quick.  Returns what experiment returned."""
    ap = script_tools.arguments(doc, results_name)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--quick", action="store_true")
    if options:
        options(ap)
    args = ap.parse_args()
    cfg = quick if args.quick else full
    torch.set_num_threads(2)
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        if not os.path.isfile(os.path.join(args.data, f)):
            raise SystemExit("%s: no %s (apt-get install dataset-fashion-mnist)"
                             % (args.data, f))
    if not os.access(args.sgdstab, os.X_OK):
        raise SystemExit("%s: not an executable sgdstab (build it first)"
                         % args.sgdstab)
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="sgdstab-%s-" % results_name)
    t_start = time.time()
    try:
        result = experiment(args, cfg, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("done in %.0f s: %s" % (time.time() - t_start, args.out))
    return result


def main():
    return 0 if run_experiment(__doc__, "fashion-mnist", FULL, QUICK,
                               experiment) else 1


def experiment(args, cfg, work):
    X, Y = load_subset(args.data, cfg)
    n, d = X.shape
    k = Y.shape[1]
    runs, checks, minima = [], [], {}
    for i, (lr, B) in enumerate(cfg["runs"]):
        model, _, steps, mse, secs = train(X, Y, lr, B, cfg)
        with torch.no_grad():
            acc = float((model(X).argmax(1) == Y.argmax(1)).float().mean())
        print("run %d: lr %g, B %d: %d steps, MSE %.3g, %.0f s"
              % (i, lr, B, steps, mse, secs), flush=True)
        path = os.path.join(work, "min%d.npz" % i)
        meta = sgdstab_export.export(model, X, Y, path, loss="mse",
                                     train_lr=lr, train_batch=B,
                                     train_sampling="without")
        v = sgdstab(args.sgdstab, "verify", path, "--lr", lr, "--batch", B)
        minima[i] = (model, path, lr, B)
        checks += [(i, c["name"], c["value"], c["bound"], c["relation"],
                    c["theorem"], c["holds"], c["ratio"])
                   for c in v["checks"]]
        frob = next(c for c in v["checks"]
                    if c["name"] == "wu_wang_su_frobenius")
        runs.append({
            "run": i, "lr": lr, "batch": B, "steps": steps,
            "epochs": steps * B / n, "train_mse": mse,
            "residual_rel": meta["residual_rms"] / meta["target_rms"],
            "accuracy": acc, "interpolating": v.get("interpolating"),
            "stable": v["stable"], "spectral_radius": v["spectral_radius"],
            "lr_critical": v["lr_critical"],
            "lr_over_critical": lr / v["lr_critical"],
            "sharpness": v["sharpness"],
            "lr_critical_mean": v["lr_critical_mean"],
            "hessian_frobenius": v["hessian_frobenius"],
            "sqrt_batch_over_lr": math.sqrt(B) / lr,
            "frobenius_bound": frob["bound"],
            "theorems_failed": v["theorems_failed"],
            "seconds_train": secs})
    cols = list(runs[0].keys())
    script_tools.write_csv(os.path.join(args.out, "runs.csv"), cols,
              [[r[c] for c in cols] for r in runs])
    script_tools.write_csv(os.path.join(args.out, "checks.csv"),
              ["run", "name", "value", "bound", "relation", "theorem",
               "holds", "ratio"], checks)
    escape = escape_experiment(args, cfg, minima, runs, X, Y, work)
    trained = optimizer_experiment(args, cfg, X, Y, work)
    plots(args.out, runs, escape, trained)
    write_report(args, cfg, runs, checks, escape, trained, n, d, k)
    return all(r["theorems_failed"] == 0 for r in runs)


def optimizer_experiment(args, cfg, X, Y, work):
    """Minima trained with SGD + momentum + weight decay and with Adam,
    exported with their optimizer (its settings and Adam's exp_avg_sq go
    into the file), each analyzed at its own optimizer (the file's, as
    sgdstab takes it by default) and as plain SGD (--optimizer sgd) at the
    same (eta, B).  Weight decay leaves a residual (the minimum is that of
    the regularized loss): sgdstab notes it and analyzes the Gauss-Newton
    surrogate; the notes are kept in the table, not printed."""
    rows = []
    for i, (kind, lr, B) in enumerate(cfg["optimizer_runs"]):
        model, opt, steps, mse, secs = train(X, Y, lr, B, cfg, kind,
                                             cfg["optimizer_max_steps"])
        print("%s run %d: lr %g, B %d: %d steps, MSE %.3g, %.0f s"
              % (kind, i, lr, B, steps, mse, secs), flush=True)
        path = os.path.join(work, "opt%d.npz" % i)
        meta = sgdstab_export.export(model, X, Y, path, loss="mse",
                                     train_lr=lr, train_batch=B,
                                     train_sampling="without", optimizer=opt)
        notes = []
        own = sgdstab(args.sgdstab, "analyze", path, "--lr", lr, "--batch", B,
                      notes=notes)
        plain = sgdstab(args.sgdstab, "analyze", path, "--lr", lr, "--batch",
                        B, "--optimizer", "sgd", notes=[])
        words = ("SGD, momentum %g, weight decay %g" % (MOMENTUM, WEIGHT_DECAY)
                 if kind == "momentum" else "Adam (defaults)")
        rows.append({
            "run": i, "optimizer": words, "kind": own["optimizer"]["kind"],
            "lr": lr, "batch": B, "steps": steps, "train_mse": mse,
            "residual_rel": meta["residual_rms"] / meta["target_rms"],
            "stable": own["stable"], "verdict": own["verdict"],
            "spectral_radius": own["spectral_radius"],
            "lr_critical": own["lr_critical"],
            "lr_over_critical": lr / own["lr_critical"],
            "lr_noise_free": own["lr_critical_mean"],
            "null_space_decay_rate": own.get("null_space_decay_rate"),
            "beta1": own["optimizer"]["momentum"],
            "plain_stable": plain["stable"],
            "plain_lr_critical": plain["lr_critical"],
            "plain_lr_over_critical": lr / plain["lr_critical"],
            "plain_lr_noise_free": plain["lr_critical_mean"],
            "note": " ".join(notes).replace("\n", " ").replace(
                path, os.path.basename(path)),
            "seconds_train": secs})
    cols = list(rows[0].keys())
    script_tools.write_csv(os.path.join(args.out, "optimizers.csv"), cols,
              [[r[c] for c in cols] for r in rows])
    return rows


def escape_experiment(args, cfg, minima, runs, X, Y, work):
    n = X.shape[0]
    full = next(r for r in runs
                if (r["lr"], r["batch"]) == cfg["escape_from"])
    sgd_model, _, lr, _ = minima[full["run"]]
    model, polished_mse = polish(sgd_model, X, Y)
    path = os.path.join(work, "escape-minimum.npz")
    sgdstab_export.export(model, X, Y, path, loss="mse", train_lr=lr,
                          train_batch=n, train_sampling="without")
    crit = sgdstab(args.sgdstab, "critical", path, "--batch",
                   "1:%d:32:log" % n)
    unstable = [c["batch"] for c in crit["critical"]
                if c["lr_critical"] * ESCAPE_MARGIN < lr and c["batch"] < n]
    if not unstable:
        raise SystemExit("no batch size below n is unstable at lr %g for "
                         "the full-batch minimum" % lr)
    B = max(unstable)
    a = sgdstab(args.sgdstab, "analyze", path, "--lr", lr, "--batch", B)
    rate = a["escape_rate_per_step"]
    # isotropic start: E|delta_0|^2 = sigma^2, excess MSE
    # (c/2) tr(G) sigma^2 / p with c tr G = hessian_trace (the mse scale)
    p = a["p"]
    sigma = math.sqrt(2 * ESCAPE_START_MSE * p / a["hessian_trace"])
    base_mse = polished_mse
    steps = min(cfg["escape_max_steps"],
                int(math.ceil(1.5 * math.log(ESCAPE_END_MSE /
                                             ESCAPE_START_MSE) / rate)))
    R = cfg["escape_runs"]
    losses = escape_runs(model, X, Y, lr, B, R, steps, sigma, SEED)
    excess = losses - base_mse
    mean = excess.mean(axis=1)
    median = np.median(excess, axis=1)
    end = next((t for t in range(len(mean)) if mean[t] > ESCAPE_END_MSE),
               len(mean) - 1)
    lo = max(1, end // 5)
    if end - lo < 5 or np.any(mean[lo:end + 1] <= 0):
        raise SystemExit("escape: no growth phase to fit (end %d)" % end)
    # linearized SGD, the same runs and steps, from S_0 = I/p (scaled by
    # sigma^2 to the same start), in JACKKNIFE_GROUPS calls of R/groups runs;
    # in the mse convention (c = 2/k, the exported file's default) its loss
    # (c/2) delta'G delta is the excess MSE of the linearized model
    groups = []
    for g in range(JACKKNIFE_GROUPS):
        sim_csv = os.path.join(work, "simulate.csv")
        subprocess.run([args.sgdstab, "simulate", path, "--lr", str(lr),
                        "--batch", str(B), "--steps", str(end), "--runs",
                        str(R // JACKKNIFE_GROUPS), "--seed", str(SEED + g),
                        "--csv", sim_csv, "--quiet", "--loss", "mse"],
                       check=True, stdout=subprocess.DEVNULL)
        with open(sim_csv) as f:
            groups.append([sigma ** 2 * float(row["loss"])
                           for row in csv.DictReader(f)])
    sim_groups = np.array(groups).T                     # (end + 1) x groups
    torch_groups = excess[:end + 1].reshape(
        end + 1, JACKKNIFE_GROUPS, -1).mean(axis=2)
    sim = sim_groups.mean(axis=1)
    # the exact mean from the same start: E L_t of `sgdstab evolve`
    evolve_csv = os.path.join(work, "evolve.csv")
    subprocess.run([args.sgdstab, "evolve", path, "--lr", str(lr), "--batch",
                    str(B), "--steps", str(end), "--csv", evolve_csv],
                   check=True, stdout=subprocess.DEVNULL)
    with open(evolve_csv) as f:
        exact = sigma ** 2 * np.array([float(row["loss"])
                                       for row in csv.DictReader(f)])
    torch_rate, torch_se = jackknife_rate(torch_groups, lo, end)
    sim_rate, sim_se = jackknife_rate(sim_groups, lo, end)
    fit = {
        "lr": lr, "batch": B, "from_run": full["run"],
        "lr_critical": next(c["lr_critical"] for c in crit["critical"]
                            if c["batch"] == B),
        "polished_mse": polished_mse,
        "runs": R, "steps": int(end), "fit_from": int(lo),
        "start_excess_mse": float(mean[0]),
        "predicted_rate": rate,
        "pytorch_mean_rate": torch_rate,
        "pytorch_mean_rate_stderr": torch_se,
        "pytorch_median_rate": fit_rate(median, lo, end),
        "linearized_mean_rate": sim_rate,
        "linearized_mean_rate_stderr": sim_se,
        "critical": [(c["batch"], c["lr_critical"])
                     for c in crit["critical"]],
    }
    with open(os.path.join(args.out, "escape-fit.json"), "w") as f:
        json.dump({key: v for key, v in fit.items() if key != "critical"},
                  f, indent=2)
        f.write("\n")
    script_tools.write_csv(os.path.join(args.out, "escape.csv"),
              ["step", "pytorch_mean_excess_mse", "pytorch_median_excess_mse",
               "linearized_mean_mse", "exact_mean_mse"],
              [[t, float(mean[t]), float(median[t]), float(sim[t]),
                float(exact[t])] for t in range(end + 1)])
    fit["series"] = (mean[:end + 1], median[:end + 1], sim, exact)
    return fit


def plots(out, runs, esc, trained):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.4))
    x = np.array([r["sqrt_batch_over_lr"] for r in runs])
    y = np.array([r["hessian_frobenius"] for r in runs])
    bound = np.array([r["frobenius_bound"] if r["frobenius_bound"]
                      is not None else np.nan for r in runs])
    ax[0].loglog(x, y, "o", label=r"$\|H\|_F$ of the minimum")
    ax[0].loglog(x, bound, "v", mfc="none",
                 label=r"Wu-Wang-Su bound $1/(\eta\sqrt{b\,\mu_{min}})$")
    grid = np.geomspace(x.min() / 1.5, x.max() * 1.5, 50)
    ax[0].loglog(grid, grid, "k:", label=r"$\sqrt{B}/\eta$")
    for r in runs:
        ax[0].annotate("B=%d" % r["batch"],
                       (r["sqrt_batch_over_lr"], r["hessian_frobenius"]),
                       textcoords="offset points", xytext=(4, -10),
                       fontsize=7)
    ax[0].set_xlabel(r"$\sqrt{B}/\eta$ (training)")
    ax[0].set_ylabel(r"$\|H\|_F$ (MSELoss convention)")
    ax[0].legend(fontsize=7)
    ax[0].set_title("Flatness of the minima SGD found")
    bs = np.array([r["batch"] for r in runs])
    ratio = np.array([r["lr_over_critical"] for r in runs])
    ax[1].semilogx(bs, ratio, "o")
    ax[1].axhline(1, color="k", ls=":", label=r"$\eta = \eta^*(B)$")
    ax[1].set_xlabel("training batch size B")
    ax[1].set_ylabel(r"$\eta / \eta^*(B)$ at the minimum found")
    ax[1].set_ylim(0, max(1.2, ratio.max() * 1.1))
    ax[1].legend(fontsize=7)
    ax[1].set_title("Linear stability at the training (eta, B)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "frobenius.png"), dpi=110)
    plt.close(fig)

    mean, median, sim, exact = esc["series"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    t = np.arange(len(mean))
    ax.semilogy(t, mean, label="PyTorch, mean over %d runs" % esc["runs"])
    ax.semilogy(t, median, label="PyTorch, median run")
    ax.semilogy(np.arange(len(sim)), sim, "--",
                label="linearized SGD (sgdstab simulate), mean")
    ax.semilogy(t, exact, "k:", label=r"sgdstab evolve: the exact mean "
                r"($\ln\rho$ = %.4g per step)" % esc["predicted_rate"])
    ax.set_ylim(min(mean.min(), median.min()) / 3, exact.max() * 3)
    ax.set_xlabel("step")
    ax.set_ylabel("excess training MSE")
    ax.set_title(r"Escape at $\eta$ = %g, B = %d ($\eta^*(B)$ = %.3g)"
                 % (esc["lr"], esc["batch"], esc["lr_critical"]))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "escape.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    x = np.arange(len(trained))
    ax.semilogy(x, [r["lr_over_critical"] for r in trained], "o", ms=8,
                label="analyzed at its own optimizer")
    ax.semilogy(x, [r["plain_lr_over_critical"] for r in trained], "x",
                ms=8, mew=2, label="analyzed as plain SGD")
    ax.axhline(1, color="k", ls=":", label=r"$\eta = \eta^*(B)$")
    ax.set_xticks(x)
    ax.set_xticklabels(["%s\n$\\eta$=%g, B=%d"
                        % ("momentum + wd" if r["kind"] == "sgd" else "Adam",
                           r["lr"], r["batch"]) for r in trained],
                       fontsize=8)
    ax.set_xlim(-0.5, len(trained) - 0.5)
    ax.set_ylabel(r"$\eta / \eta^*(B)$ at the minimum found")
    ax.set_title("Minima trained with momentum and with Adam")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "optimizers.png"), dpi=110)
    plt.close(fig)


def md_table(columns, formats, rows):
    """A markdown table: the header, the rule, and one line per row, each
    value formatted by its entry of the space-separated formats."""
    fmt = formats.split()
    return (["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(f % v for f, v in zip(fmt, row)) + " |"
               for row in rows])


def write_report(args, cfg, runs, checks, esc, trained, n, d, k):
    p = d * cfg["hidden"] + cfg["hidden"] + cfg["hidden"] * k + k
    L = []
    L.append("# Fashion-MNIST: the minima SGD finds, checked by sgdstab\n")
    L.append("Regenerate: `/usr/bin/python3 problems/fashion_mnist.py%s`\n"
             % (" --quick" if args.quick else ""))
    L.append("Data: n = %d training images of Fashion-MNIST (Debian "
             "dataset-fashion-mnist), %d per class of %s; %d pixels in "
             "[0, 1], centred; one-hot targets (k = %d).  Model: MLP %d -> "
             "%d (tanh) -> %d, p = %d.  Training: plain SGD, "
             "torch.nn.MSELoss, a fresh batch of B distinct samples each "
             "step, from one initialization, until the training MSE < %g "
             "(RMS residual < %.2g%% of the RMS target).\n"
             % (n, cfg["per_class"], ", ".join(NAMES[c] for c in
                                                cfg["classes"]),
                d, k, d, cfg["hidden"], k, p, cfg["stop_mse"],
                100 * math.sqrt(k * cfg["stop_mse"])))
    L.append("## Minima and their verdicts\n")
    L += md_table(
        ["run", "eta", "B", "steps", "train MSE", "residual/target",
         "accuracy", "stable", "rho", "eta*(B)", "eta/eta*", "lambda_max",
         "|H|_F", "sqrt(B)/eta", "WWS bound", "theorems failed"],
        "%d %g %d %d %.3g %.3g %.3f %s %.6f %.4g %.3f %.4g %.4g %.4g %s %d",
        [(r["run"], r["lr"], r["batch"], r["steps"], r["train_mse"],
          r["residual_rel"], r["accuracy"],
          "yes" if r["stable"] else "**no**", r["spectral_radius"],
          r["lr_critical"], r["lr_over_critical"], r["sharpness"],
          r["hessian_frobenius"], r["sqrt_batch_over_lr"],
          "%.4g" % r["frobenius_bound"]
          if r["frobenius_bound"] is not None else "none (B = n)",
          r["theorems_failed"]) for r in runs])
    bad = [r for r in runs if not r["stable"]]
    L.append("")
    if bad:
        L.append("Minima that come out linearly unstable at their own "
                 "training (eta, B):\n")
        for r in bad:
            efold = 1 / math.log(r["spectral_radius"])
            L.append("- run %d (eta = %g, B = %d): eta/eta*(B) = 1 + %.2g, "
                     "rho = 1 + %.2g, so the mean square grows by e only "
                     "every %.3g steps, against the %d steps of training."
                     % (r["run"], r["lr"], r["batch"],
                        r["lr_over_critical"] - 1, r["spectral_radius"] - 1,
                        efold, r["steps"]))
        L.append("")
        L.append("These are minima at the edge of stability: where the "
                 "learning rate is large, SGD (and full-batch GD, whose "
                 "eta*(n) = 2/lambda_max) drives the curvature up until "
                 "eta is at eta*(B), and the nonlinear dynamics keeps it "
                 "there (Cohen et al. 2021; for GD lambda_max stays at "
                 "2/eta).  Stopped on the loss, training leaves the point "
                 "a hair past the linear threshold, where the growth is far "
                 "too slow to matter within the run.  Mean-square stability "
                 "is also stronger than what one run needs: a typical "
                 "trajectory grows at its Lyapunov exponent, below ln "
                 "rho.\n")
    else:
        L.append("Every minimum SGD converged to is linearly stable at the "
                 "(eta, B) it was trained with.\n")
    slow = [r for r in runs if r["stable"] and r["spectral_radius"] > 1 - 1e-6]
    if slow:
        L.append("rho is within 1e-6 of 1 for %d of the stable minima: the "
                 "slowest modes are nearly flat directions of G (it has "
                 "rank up to n k = %d in p = %d parameters, and its "
                 "smallest eigenvalues are tiny), along which SGD barely "
                 "moves.  The margin of stability is read better from "
                 "eta/eta*(B).\n" % (len(slow), n * k, p))
    L.append("The theorem checks of `sgdstab verify` (all %d per minimum) "
             "are in checks.csv; %d failed in all.  frobenius.png: |H|_F "
             "against sqrt(B)/eta with the Wu-Wang-Su bound, and "
             "eta/eta*(B) per run.\n"
             % (len(checks) // len(runs),
                sum(r["theorems_failed"] for r in runs)))
    L.append("## Escape from the full-batch minimum\n")
    L.append("From run %d's minimum (trained at eta = %g with B = %d), "
             "polished by full-batch L-BFGS to a training MSE of %.1e so "
             "that no residual gradient noise is left to swamp the start, "
             "SGD continues at the same eta with B = %d, the largest batch "
             "with eta > %.2f eta*(B) (eta*(%d) = %.4g).  %d independent "
             "runs start at theta* + N(0, sigma^2 I/p), sigma chosen for an "
             "excess MSE of %.0e; the escape phase ends when the mean "
             "excess MSE passes %.0e (step %d), and rates are least-squares "
             "slopes of ln(excess MSE) over steps %d..%d.\n"
             % (esc["from_run"], esc["lr"],
                max(r["batch"] for r in runs), esc["polished_mse"],
                esc["batch"], ESCAPE_MARGIN,
                esc["batch"], esc["lr_critical"], esc["runs"],
                ESCAPE_START_MSE, ESCAPE_END_MSE, esc["steps"],
                esc["fit_from"], esc["steps"]))
    L.append("| growth rate per step | value |")
    L.append("|---|---|")
    L.append("| sgdstab, exact: ln rho | %.5g |" % esc["predicted_rate"])
    L.append("| PyTorch, mean over runs | %.5g |" % esc["pytorch_mean_rate"])
    L.append("| PyTorch, median run | %.5g |" % esc["pytorch_median_rate"])
    L.append("| linearized SGD (sgdstab simulate), mean over runs | %.5g |"
             % esc["linearized_mean_rate"])
    L.append("")
    gap = esc["pytorch_mean_rate"] - esc["linearized_mean_rate"]
    L.append("PyTorch against linearized SGD: %+.3g per step, %.1f standard "
             "errors (jackknife over %d groups of runs).\n"
             % (gap, gap / math.hypot(esc["pytorch_mean_rate_stderr"],
                                      esc["linearized_mean_rate_stderr"]),
                JACKKNIFE_GROUPS))
    L.append("escape.csv holds the series (with the exact mean E L_t from "
             "`sgdstab evolve`, the same start), escape.png draws them.  ln rho "
             "is the growth rate of the mean square; a single run grows at "
             "its Lyapunov exponent, which is smaller, and a mean over "
             "finitely many runs lies between the two once the rare fast "
             "runs are no longer sampled.  The linearized simulation with "
             "the same number of runs shows how much of the gap that "
             "accounts for.\n")
    L += optimizer_report(cfg, trained)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(L))


def optimizer_report(cfg, trained):
    L = ["## Minima trained with momentum and with Adam\n"]
    L.append("The same model and data, trained by SGD with momentum %g and "
             "weight decay %g (PyTorch's usual recipe) and by Adam with "
             "PyTorch's defaults (beta1 0.9, beta2 0.999, eps 1e-8), until "
             "the training MSE < %g or %d steps.  Each minimum is exported "
             "with its optimizer (settings, and Adam's exp_avg_sq, "
             "bias-corrected, as the frozen second moment), then analyzed "
             "by `sgdstab analyze` at its own training (eta, B) twice: at "
             "its own optimizer (the file's, sgdstab's default), and as "
             "plain SGD (`--optimizer sgd`), the answer a tool without "
             "optimizers gives.  optimizers.csv holds every column, "
             "optimizers.png draws eta/eta*(B) both ways.\n"
             % (MOMENTUM, WEIGHT_DECAY, cfg["stop_mse"],
                cfg["optimizer_max_steps"]))
    L += md_table(
        ["run", "optimizer", "eta", "B", "steps", "train MSE",
         "residual/target", "own: verdict", "rho", "eta*(B)", "eta/eta*",
         "noise-free limit", "as plain SGD: verdict", "eta*(B)", "eta/eta*"],
        "%d %s %g %d %d %.3g %.3g %s %.6f %.4g %.3g %.4g %s %.4g %.3g",
        [(r["run"], r["optimizer"], r["lr"], r["batch"], r["steps"],
          r["train_mse"], r["residual_rel"], r["verdict"],
          r["spectral_radius"], r["lr_critical"], r["lr_over_critical"],
          r["lr_noise_free"], "stable" if r["plain_stable"] else "unstable",
          r["plain_lr_critical"], r["plain_lr_over_critical"])
         for r in trained])
    L.append("")
    for r in trained:
        factor = r["plain_lr_over_critical"] / r["lr_over_critical"]
        L.append("- run %d (%s, eta %g, B %d): at its own optimizer eta is "
                 "%.3g eta*(B) (%s); as plain SGD it would be %.3g "
                 "eta*(B): the plain analysis puts the minimum %.3g times "
                 "%s the threshold than it is."
                 % (r["run"], r["optimizer"], r["lr"], r["batch"],
                    r["lr_over_critical"], r["verdict"],
                    r["plain_lr_over_critical"],
                    1 / factor if factor < 1 else factor,
                    "farther from" if factor < 1 else "closer to"))
    L.append("")
    decayed = [r for r in trained if r["kind"] == "sgd" and
               r["null_space_decay_rate"] is not None and
               r["spectral_radius"] < 1 and
               abs(math.log(r["spectral_radius"]) /
                   r["null_space_decay_rate"] - 1) <= 1e-3]
    if decayed:
        L.append("With weight decay the slowest directions are those the "
                 "data leave (nearly) flat, which the decay alone moves: "
                 "rho = %s in %s, within 0.1%% of exp(null_space_decay_rate)"
                 " = %s, the radius of the momentum step at the curvature "
                 "of the decay alone (about (1 - eta lambda_wd/(1 - "
                 "beta))^2), not a property of the data.  The margin is "
                 "read from eta/eta*(B).\n"
                 % (", ".join("%.6f" % r["spectral_radius"] for r in decayed),
                    ", ".join("run %d" % r["run"] for r in decayed),
                    ", ".join("%.6f" % math.exp(r["null_space_decay_rate"])
                              for r in decayed)))
    edge = [r for r in trained if r["kind"] != "sgd" and
            r["lr_over_critical"] > 0.9]
    for r in edge:
        L.append("Run %d, Adam at eta = %g with B = %d, sits at eta = %.3g "
                 "eta*(B) of its own optimizer (rho = %.6f): Adam too "
                 "trains to the edge of its stability, the preconditioned "
                 "curvature lambda_max(P^-1 H) grown to what its step size "
                 "allows (Cohen et al. 2022: full-batch Adam keeps it near "
                 "2(1 + beta1)/((1 - beta1) eta) = %.4g; with batch noise "
                 "the threshold is eta*(B) = %.4g, below the noise-free "
                 "limit %.4g).  As plain SGD the same minimum looks %.0f "
                 "times below its threshold.\n"
                 % (r["run"], r["lr"], r["batch"], r["lr_over_critical"],
                    r["spectral_radius"],
                    (2 + 2 * r["beta1"]) / ((1 - r["beta1"]) * r["lr"]),
                    r["lr_critical"],
                    r["lr_noise_free"],
                    1 / r["plain_lr_over_critical"]))
    noted = [r for r in trained if r["note"]]
    if noted:
        L.append("sgdstab's notes on these files (weight decay leaves a "
                 "residual: the minimum is that of the regularized loss, "
                 "and the analysis is of its Gauss-Newton surrogate):\n")
        for r in noted:
            L.append("- run %d: %s" % (r["run"], r["note"]))
        L.append("")
    return L


if __name__ == "__main__":
    sys.exit(main())
