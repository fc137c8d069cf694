#!/usr/bin/python3
"""A real network, end to end: a convolutional network on Fashion-MNIST,
trained with SGD + momentum to (near) interpolation, exported as its Gram
matrix K = J J' and analyzed by sgdstab at its own optimizer and batch size,
with the time and memory of every stage.

    /usr/bin/python3 problems/fashion_mnist_cnn.py
        [--out results/fashion-mnist-cnn] [--sgdstab build/src/sgdstab]
        [--data /usr/share/datasets/fashion-mnist] [--quick] [--minima DIR]

The settings (per_class, channels, hidden, lr, batch, stop_mse, max_steps,
max_memory) are FULL's, or QUICK's with --quick.

1. data: per_class images of each of the ten classes of the Fashion-MNIST
   training set at full 28 x 28 size, read as problems/fashion_mnist.py
   reads them (Debian's dataset-fashion-mnist; pixels in [0, 1] centred by
   the subset's mean), one-hot targets: n samples, k = 10 outputs.
2. train: conv(1 -> c1, 5x5) ReLU maxpool 2, conv(c1 -> c2, 5x5) ReLU
   maxpool 2, linear(16 c2 -> hidden) ReLU, linear(hidden -> 10), trained
   by torch.optim.SGD with momentum 0.9 at (lr, batch) on torch.nn.MSELoss
   (sgdstab's `mse`), a fresh batch of distinct samples every step
   (sgdstab's `without`), until the training MSE is below stop_mse (the RMS
   residual below 1% of the RMS target, sgdstab's interpolation rule, by a
   margin) or max_steps.
3. export: src/python/sgdstab_export.py in its Gram mode (K of n*k rows,
   J never held, within max_memory), with the optimizer, so that meta.json
   records SGD with momentum 0.9, its lr and batch.
4. info, critical at the batch size and analyze at (lr, batch): `sgdstab`
   on that file, each taking the optimizer from the file's meta.json.

Each stage is timed (wall clock) with its peak resident memory: for the
stages in this process the high-water mark VmHWM, reset before each stage
(/proc/self/clear_refs); for sgdstab its own ru_maxrss (TIMER).

Writes into --out: stages.csv, summary.json and report.md; --minima DIR
keeps minimum.npz (the Gram export) and checkpoint.pt (the model's and the
optimizer's state_dict) in DIR.  --quick: n = 40 and a CNN of a few
thousand parameters, in seconds: the CI test's size.  Needs Debian's
python3-torch and python3-numpy, and dataset-fashion-mnist.
"""

import json
import math
import os
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src", "python"))
import sgdstab_export  # noqa: E402

sys.path.insert(0, HERE)
import fashion_mnist as fm  # noqa: E402
import script_tools  # noqa: E402

FULL = {
    "classes": list(range(10)),
    "per_class": 50,                # n = 500, n*k = 5000 (22 min here)
    "pool": 1,                      # 28 x 28 pixels
    "channels": (16, 32),
    "hidden": 200,                  # p = 117858
    "lr": 0.05,
    "batch": 32,
    "stop_mse": 5e-6,
    "max_steps": 30000,
    "max_memory": "6G",
}
QUICK = {
    "classes": list(range(10)),
    "per_class": 4,                 # n = 40, n*k = 400
    "pool": 1,
    "channels": (4, 8),
    "hidden": 16,                   # p = 3146
    "lr": 0.1,
    "batch": 8,
    "stop_mse": 5e-6,
    "max_steps": 3000,
    "max_memory": "2G",
}
MOMENTUM = 0.9
INTERPOLATION = 0.01    # sgdstab's rule: RMS residual <= 1% of RMS target


def load_images(data_dir, cfg):
    """fashion_mnist.py's subset as images (n, 1, 28, 28) and one-hot Y."""
    X, Y = fm.load_subset(data_dir, cfg)
    return X.reshape(-1, 1, 28, 28), Y


def make_model(cfg):
    torch.manual_seed(fm.SEED)
    c1, c2 = cfg["channels"]
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, c1, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * c2, cfg["hidden"]), nn.ReLU(),
        nn.Linear(cfg["hidden"], len(cfg["classes"])))


def train(model, X, Y, cfg):
    """SGD with momentum on MSELoss, a fresh batch of B distinct samples
    each step, until the training MSE < stop_mse or max_steps.  Returns
    (optimizer, steps, training MSE)."""
    n, B = X.shape[0], cfg["batch"]
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"],
                          momentum=MOMENTUM)
    loss = torch.nn.MSELoss()
    gen = torch.Generator().manual_seed(fm.SEED + B)
    step, mse = 0, math.inf
    while step < cfg["max_steps"] and not mse < cfg["stop_mse"]:
        for _ in range(fm.STOP_CHECK):
            idx = torch.randperm(n, generator=gen)[:B]
            opt.zero_grad()
            loss(model(X[idx]), Y[idx]).backward()
            opt.step()
        step += fm.STOP_CHECK
        with torch.no_grad():
            mse = loss(model(X), Y).item()
        if not math.isfinite(mse):
            raise SystemExit("training diverged at step %d (lr %g)"
                             % (step, cfg["lr"]))
    return opt, step, mse


def proc_bytes(path, key):
    """A "Key: N kB" line of a /proc file, in bytes."""
    with open(path) as f:
        for line in f:
            name, _, value = line.partition(":")
            if name == key:
                return 1024 * int(value.split()[0])
    raise SystemExit("no %s in %s" % (key, path))


def in_process(stages, name, work):
    """work() timed, with this process's peak resident set while it ran
    (VmHWM reset to the current resident set first)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    t0 = time.perf_counter()
    result = work()
    stages.append((name, time.perf_counter() - t0,
                   proc_bytes("/proc/self/status", "VmHWM")))
    return result


# Runs argv[2:] and writes its wall time and peak resident set to the file
# argv[1].  A fresh small interpreter forks it: Linux counts the memory a
# process held before exec in ru_maxrss, so a child forked straight from
# this process (torch, data, model) would report this process's size.
TIMER = """
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
t = time.perf_counter() - t
with open(sys.argv[1], "w") as f:
    f.write("%r %d" % (t, resource.getrusage(resource.RUSAGE_CHILDREN)
                       .ru_maxrss * 1024))
sys.exit(rc)
"""


def child(stages, name, binary, *args):
    """sgdstab's JSON (mse convention) and its notes, timed, with the peak
    resident set of the sgdstab process."""
    notes = []
    with tempfile.NamedTemporaryFile("r") as clock:
        result = script_tools.sgdstab_json(
            sys.executable, "-c", TIMER, clock.name, binary, *args,
            "--loss", "mse", notes=notes)
        seconds, peak = clock.read().split()
    stages.append((name, float(seconds), int(peak)))
    print("%s: %.1f s, %.3g GB peak" % (name, float(seconds),
                                        int(peak) / 1e9), flush=True)
    for note in notes:
        print(note, file=sys.stderr)
    return result, "\n".join(notes)


def experiment(args, cfg, work):
    t_start = time.perf_counter()
    load = os.getloadavg()
    # one thread: at B images a step, two ran ten times slower here
    torch.set_num_threads(1)
    stages = []
    X, Y = in_process(stages, "data", lambda: load_images(args.data, cfg))
    n, k = Y.shape
    model = make_model(cfg)
    p = sum(q.numel() for q in model.parameters())
    print("n = %d, k = %d, p = %d" % (n, k, p), flush=True)
    opt, steps, mse = in_process(stages, "train",
                                 lambda: train(model, X, Y, cfg))
    print("train: %d steps, MSE %.3g, %.0f s" % (steps, mse, stages[-1][1]),
          flush=True)
    torch.set_num_threads(2)
    keep = args.minima or work
    os.makedirs(keep, exist_ok=True)
    path = os.path.join(keep, "minimum.npz")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()},
               os.path.join(keep, "checkpoint.pt"))
    meta = in_process(stages, "export", lambda: sgdstab_export.export(
        model, X, Y, path, loss="mse", train_lr=cfg["lr"],
        train_batch=cfg["batch"], train_sampling="without", optimizer=opt,
        gram=True, max_memory=cfg["max_memory"]))
    print("export: %.0f s" % stages[-1][1], flush=True)

    B, lr = cfg["batch"], cfg["lr"]
    info, info_notes = child(stages, "info", args.sgdstab, "info", path)
    crit, crit_notes = child(stages, "critical", args.sgdstab, "critical",
                             path, "--batch", B)
    an, an_notes = child(stages, "analyze", args.sgdstab, "analyze", path,
                         "--lr", lr, "--batch", B)
    if an["optimizer"]["momentum"] != MOMENTUM or \
            crit["optimizer"]["momentum"] != MOMENTUM:
        raise SystemExit("sgdstab did not take momentum %g from meta.json"
                         % MOMENTUM)
    total = time.perf_counter() - t_start

    residual_rel = meta["residual_rms"] / meta["target_rms"]
    with torch.no_grad():
        accuracy = float((model(X).argmax(1) == Y.argmax(1)).float().mean())
    summary = {
        "n": n, "k": k, "p": p, "nk": n * k, "r": info["rank"],
        "null_dim": info["null_dim"],
        "architecture": "conv(1->%d,5x5) ReLU maxpool2, conv(%d->%d,5x5) "
                        "ReLU maxpool2, linear(%d->%d) ReLU, linear(%d->%d)"
                        % (cfg["channels"][0], cfg["channels"][0],
                           cfg["channels"][1], 16 * cfg["channels"][1],
                           cfg["hidden"], cfg["hidden"], k),
        "train_steps": steps, "train_epochs": steps * B / n,
        "train_mse": mse, "residual_rel": residual_rel,
        "interpolating": residual_rel <= INTERPOLATION,
        "train_accuracy": accuracy,
        "lr": lr, "batch": B, "sampling": "without",
        "momentum": an["optimizer"]["momentum"],
        "optimizer": an["optimizer"]["description"],
        "eta_star": crit["critical"][0]["lr_critical"],
        "eta_star_rel_accuracy": crit["critical"][0]["rel_accuracy"],
        "eta_star_noise_free": crit["lr_critical_mean"],
        "lr_over_eta_star": lr / crit["critical"][0]["lr_critical"],
        "rho": an["spectral_radius"],
        "rho_residual": an["spectral_radius_residual"],
        "verdict": an["verdict"], "stable": an["stable"],
        "escape_rate_per_step": an["escape_rate_per_step"],
        "escape_rate_per_epoch": an["escape_rate_per_epoch"],
        "rms_efold_steps": an["rms_efold_steps"],
        "sharpness": an["sharpness"],
        "operator_applications": an["operator_applications"],
        "memory_required": info["memory_required"],
        "export_gram": meta["gram"],
        "stages": [{"stage": s, "seconds": t, "peak_rss_bytes": m}
                   for s, t, m in stages],
        "total_seconds": total,
        "machine": {"cores": os.cpu_count(),
                    "mem_total_bytes": proc_bytes("/proc/meminfo",
                                                  "MemTotal"),
                    "load_average_at_start": load[0]},
        "notes": {"info": info_notes, "critical": crit_notes,
                  "analyze": an_notes},
    }
    script_tools.write_csv(os.path.join(args.out, "stages.csv"),
                           ["stage", "seconds", "peak_rss_bytes"],
                           [list(s) for s in stages])
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    write_report(args, cfg, summary)
    return summary


def gb(b):
    return "%.2f GB" % (b / 1e9)


def duration(s):
    t = s["total_seconds"]
    return "%.0f seconds" % t if t < 120 else "%.0f minutes" % (t / 60)


def write_report(args, cfg, s):
    lr, B = s["lr"], s["batch"]
    cmd = "/usr/bin/python3 problems/fashion_mnist_cnn.py%s" % (
        " --quick" if args.quick else "")
    L = ["# A convolutional network on Fashion-MNIST, end to end",
         "",
         "Regenerate with `%s` (from the top of the repository, after "
         "building; %s on this machine)." % (cmd, duration(s)),
         "",
         "- Data: %d images of each of the %d classes of the Fashion-MNIST "
         "training set at 28×28 (Debian's dataset-fashion-mnist), pixels in "
         "[0, 1] centred, one-hot targets: n = %d, k = %d, n·k = %d."
         % (cfg["per_class"], s["k"], s["n"], s["k"], s["nk"]),
         "- Model: %s; p = %d parameters." % (s["architecture"], s["p"]),
         "- Training: torch.optim.SGD, lr %g, momentum %g, batch %d (a fresh "
         "batch of distinct samples every step), torch.nn.MSELoss, %d steps "
         "(%.0f epochs): training MSE %.3g, RMS residual %.3g of the RMS "
         "target (%s), training accuracy %.3f."
         % (lr, MOMENTUM, B, s["train_steps"], s["train_epochs"],
            s["train_mse"], s["residual_rel"],
            "interpolating by sgdstab's rule, ≤ 1%" if s["interpolating"]
            else "NOT interpolating by sgdstab's rule (> 1%): sgdstab "
            "analyzes the Gauss–Newton surrogate and says so",
            s["train_accuracy"]),
         "- Export: `sgdstab_export.export(..., optimizer=opt, gram=True, "
         "max_memory=\"%s\")`: K = J Jᵀ (%d × %d, float64) in %d block(s) of "
         "parameters, J never held; meta.json records the optimizer."
         % (cfg["max_memory"], s["nk"], s["nk"], s["export_gram"]["blocks"]),
         "- Analysis: `sgdstab info minimum.npz`, `sgdstab critical "
         "minimum.npz --batch %d`, `sgdstab analyze minimum.npz --lr %g "
         "--batch %d` (with `--loss mse --json`); the optimizer, %s, is the "
         "file's." % (B, lr, B, s["optimizer"]),
         "",
         "## Stages",
         "",
         "Wall time and peak resident memory of each stage (data, train and "
         "export in this Python process: its high-water mark, reset before "
         "the stage; info, critical and analyze: the sgdstab process). The "
         "machine: %d cores, %s of memory, load average %.1f when the run "
         "started (other work shares it, and the times with it)."
         % (s["machine"]["cores"], gb(s["machine"]["mem_total_bytes"]),
            s["machine"]["load_average_at_start"]),
         "",
         "| stage | seconds | peak memory |",
         "|---|---|---|"]
    L += ["| %s | %.1f | %s |" % (t["stage"], t["seconds"],
                                  gb(t["peak_rss_bytes"]))
          for t in s["stages"]]
    L += ["| total, data to analyze | %.1f | |" % s["total_seconds"],
          "",
          "The exporter's own record of its peak (meta.json `gram`): %s, "
          "within its cap of %s. `sgdstab info` plans %s for the analysis; "
          "the numerical rank of K is r = %d (of n·k = %d), so the engine "
          "works on r(r+1)/2 = %d unknowns; `analyze` applied the noise "
          "operator %d times."
          % (gb(s["export_gram"]["peak_memory"]),
             gb(s["export_gram"]["max_memory"]), gb(s["memory_required"]),
             s["r"], s["nk"], s["r"] * (s["r"] + 1) // 2,
             s["operator_applications"]),
          "",
          "## The verdict at its own optimizer and batch size",
          "",
          "| | |",
          "|---|---|",
          "| optimizer | %s |" % s["optimizer"],
          "| lr η, batch B | %r, %d (sampling without replacement) |"
          % (lr, B),
          "| η\\*(B) | %r (relative accuracy %.1g) |"
          % (s["eta_star"], s["eta_star_rel_accuracy"]),
          "| η / η\\*(B) | %.6g |" % s["lr_over_eta_star"],
          "| noise-free limit (full batch) | %r |" % s["eta_star_noise_free"],
          "| ρ⊥ | %r (residual %.1g) |" % (s["rho"], s["rho_residual"]),
          "| verdict | %s |" % s["verdict"],
          "| escape rate ln ρ⊥ | %.6g per step, %.6g per epoch |"
          % (s["escape_rate_per_step"], s["escape_rate_per_epoch"]),
          "| sharpness λmax (mse convention, c = 2/k) | %r |"
          % s["sharpness"],
          "",
          interpretation(s)]
    notes = [x for x in s["notes"].values() if x]
    if notes:
        L += ["", "sgdstab's notes on stderr:", ""]
        L += ["    " + line for x in notes for line in x.splitlines()]
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")


def interpretation(s):
    efold = abs(s["rms_efold_steps"]) if s["rms_efold_steps"] else math.inf
    if s["verdict"] == "threshold":
        return ("The trained minimum sits at the edge of stability: η is "
                "η\\*(B) to within the solver's accuracy, so SGD with "
                "momentum at its own (η, B) neither leaves it nor is pulled "
                "back (ρ⊥ = 1 to rounding).")
    if s["stable"]:
        return ("SGD with momentum %g at its own η = %g and B = %d can stay "
                "at the minimum it found: ρ⊥ = %r < 1, so a small "
                "perturbation of θ\\* shrinks in mean square (its RMS size "
                "by a factor e every %.0f steps). The margin is in η: η is "
                "%.3g of η\\*(B) = %.6g, so a learning rate %.3g times "
                "larger at the same batch size would leave this minimum; the "
                "batch noise brings η\\*(B) down to %.3g of the full-batch "
                "limit %.6g = 2(1 + β)/λmax. How close ρ⊥ is to 1 does not "
                "measure the distance from instability: ρ⊥ is never below "
                "the full-batch radius, whose slowest mode, about "
                "(1 − cηh/(1 − β))² for the smallest curvature h, is that "
                "close to 1 when h is small."
                % (s["momentum"], s["lr"], s["batch"], s["rho"], efold,
                   s["lr_over_eta_star"], s["eta_star"],
                   1 / s["lr_over_eta_star"],
                   s["eta_star"] / s["eta_star_noise_free"],
                   s["eta_star_noise_free"]))
    return ("SGD with momentum %g at its own η = %g and B = %d cannot stay "
            "at the point it stopped: ρ⊥ = %r > 1, a perturbation grows "
            "in mean square, its RMS size by a factor e every %.0f steps; η "
            "is %.3g of η\\*(B) = %.6g."
            % (s["momentum"], s["lr"], s["batch"], s["rho"], efold,
               s["lr_over_eta_star"], s["eta_star"]))


def main():
    def options(ap):
        ap.add_argument("--minima", metavar="DIR",
                        help="keep minimum.npz and checkpoint.pt in DIR")

    fm.run_experiment(__doc__, "fashion-mnist-cnn", FULL, QUICK, experiment,
                      options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
