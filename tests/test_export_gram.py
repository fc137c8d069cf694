#!/usr/bin/python3
"""Tests of the exporter's Gram mode (sgdstab_export.py --gram): K = J J'
written without J, one block of parameter columns at a time.

usage: test_export_gram.py SGDSTAB

References:
  - K against J J' of the J mode's export of the same model and data (an
    MLP with k = 3 outputs, BatchNorm and Dropout; a small CNN with
    BatchNorm in eval mode), for both Jacobian methods and any chunk size;
    R and meta.json the J mode's;
  - K the same for any blocking: every column its own block, column ranges
    of one parameter, blocks sized by a small --max-memory;
  - KP against J diag(1/(sqrt(V) + eps)) J' from the J mode's J, V and eps
    of an Adam-trained model (and RMSprop's);
  - sgdstab critical on the K archive = on the J archive;
  - a model of p > 10^6 parameters under --max-memory 1.5G in a child
    process: its peak resident set (meta.json and the kernel's rusage of
    the child) below the cap, K symmetric positive semidefinite, and K's
    entries of three samples equal to inner products of per-sample output
    gradients from plain autograd;
  - refusals: --gram with --hessian and a cap too small for K on the
    command line (one line, exit 1, no file left); a cap below what the
    process holds, max_memory without gram, a SIZE that is not one.
Needs Debian's python3-torch and python3-scipy.  Exit status 0 iff every
check passed.
"""

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "src", "python"))
import cli_harness as harness  # noqa: E402
import sgdstab_export as ex  # noqa: E402
from cli_harness import report  # noqa: E402
from test_export import load, rel_err, tiny_mlp as mlp  # noqa: E402

EXPORTER = os.path.join(HERE, "..", "src", "python", "sgdstab_export.py")
torch.set_num_threads(1)


def cnn(seed):
    """Conv - BatchNorm2d - tanh - Linear on 1 x 6 x 6 images, 2 outputs,
    float64, running statistics moved as in test_export.tiny_mlp()."""
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3),
                            torch.nn.Tanh(), torch.nn.Flatten(),
                            torch.nn.Linear(48, 2)).double()
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, 1, 6, 6, dtype=torch.float64) * 1.5 - 0.5)
    return m


def gram_of(J):
    """J J' of an (n, k, p) Jacobian, rows sample-major."""
    A = J.reshape(-1, J.shape[-1])
    return A @ A.T


def check_gram_archive(arrays, meta, n, k, with_KP=False):
    """What every Gram archive must be: K (and KP) (n k, n k) exactly
    symmetric, no J, V or H, meta.json's gram object."""
    msgs = []
    want = {"K", "R", "residual"} | ({"KP"} if with_KP else set())
    if set(arrays) != want:
        msgs.append("members %s, expected %s" % (sorted(arrays),
                                                 sorted(want)))
    for name in want & {"K", "KP"} & set(arrays):
        G = arrays[name]
        if G.shape != (n * k, n * k) or G.dtype != np.float64:
            msgs.append("%s: shape %s dtype %s" % (name, G.shape, G.dtype))
        elif not np.array_equal(G, G.T):
            msgs.append("%s is not exactly symmetric" % name)
    g = meta.get("gram", {})
    if sorted(g) != ["blocks", "max_memory", "peak_memory"] or \
            not all(harness.is_int(v) and v > 0 for v in g.values()):
        msgs.append("meta.json gram %r" % g)
    return msgs


def same_meta(meta_J, meta_K):
    """meta.json of the Gram mode is the J mode's plus "gram" (and a note
    in jacobian_method when a parameter was cut into column ranges)."""
    rest = {key: v for key, v in meta_K.items() if key != "gram"}
    if rest.get("jacobian_method", "").startswith(
            meta_J["jacobian_method"] + " (column ranges"):
        rest["jacobian_method"] = meta_J["jacobian_method"]
    return [] if rest == meta_J else \
        ["meta.json differs from the J mode's in %s" % sorted(
            key for key in set(rest) | set(meta_J)
            if rest.get(key) != meta_J.get(key))]


def gram_export(model, X, Y, path, msgs, **kw):
    """export(..., gram=True) with its stderr, which must be the one line
    saying the cap, checked into msgs; returns the metadata."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        meta = ex.export(model, X, Y, path, gram=True, **kw)
    if not re.fullmatch(r"sgdstab-export: using up to [0-9.]+ [MG]B "
                        r"\([^\n]*\)\n", err.getvalue()):
        msgs.append("stderr %r" % err.getvalue())
    return meta


def critical(path, batches):
    """sgdstab critical's eta* at the batch sizes (a note on stderr
    allowed: these minima do not interpolate); (list or None, msgs)."""
    res = harness.run("critical", path, "--batch", batches, "--json")
    if res.rc:
        return None, ["%s: exit %d: %s" % (path, res.rc, res.err)]
    return [c["lr_critical"] for c in json.loads(res.out)["critical"]], []


def same_eta(a, b):
    return a is not None and b is not None and all(
        harness.close_rel(x, y, harness.ETA_REL) for x, y in zip(a, b))


# ---------------------------------------------------------------- K = J J'

def test_gram_is_JJt(work):
    m = mlp(1)
    X = torch.randn(11, 4, dtype=torch.float64)
    Y = torch.randn(11, 3, dtype=torch.float64)
    running = m[1].running_mean.clone()
    train = dict(loss="mse", train_lr=0.1, train_batch=4,
                 train_sampling="without")
    pJ = os.path.join(work, "mlp_J.npz")
    ex.export(m, X, Y, pJ, chunk=4, **train)
    aJ, meta_J = load(pJ)
    for method in ("functional", "autograd"):
        pK = os.path.join(work, "mlp_K_%s.npz" % method)
        msgs = []
        gram_export(m, X, Y, pK, msgs, chunk=4, method=method, **train)
        aK, meta_K = load(pK)
        msgs += check_gram_archive(aK, meta_K, 11, 3)
        if not msgs:
            e = rel_err(aK["K"], gram_of(aJ["J"]))
            if e > 1e-12:
                msgs.append("|K - J J'| / |K| = %.3g" % e)
        if method == "functional":
            msgs += same_meta(meta_J, meta_K)
            for name in ("R", "residual"):
                if not np.array_equal(aK.get(name), aJ[name]):
                    msgs.append("%s differs from the J mode's" % name)
        elif meta_K["jacobian_method"] != "autograd":
            msgs.append("jacobian_method %r" % meta_K["jacobian_method"])
        if not m.training:
            msgs.append("the model was left in eval mode")
        if not torch.equal(m[1].running_mean, running):
            msgs.append("BatchNorm running statistics changed")
        report("MLP k = 3 (%s): K = J J' of the J mode to 1e-12, R and "
               "meta.json the J mode's" % method, msgs)

    # sgdstab reads K in place of J: the same critical learning rates
    eta_J, msgs = critical(pJ, "2,5")
    eta_K, msgs_K = critical(os.path.join(work, "mlp_K_functional.npz"),
                             "2,5")
    msgs += msgs_K
    if not msgs and not same_eta(eta_K, eta_J):
        msgs.append("eta* %r from K, %r from J" % (eta_K, eta_J))
    report("sgdstab critical: the K archive = the J archive", msgs)

    # CNN with BatchNorm2d in eval mode: K = J J', for any chunk, and R the
    # residuals of one sample at a time (running statistics, not the
    # chunk's)
    c = cnn(2)
    X = torch.randn(9, 1, 6, 6, dtype=torch.float64)
    Y = torch.randn(9, 2, dtype=torch.float64)
    running = c[1].running_var.clone()
    pJ = os.path.join(work, "cnn_J.npz")
    ex.export(c, X, Y, pJ, chunk=9)
    aJ, meta_J = load(pJ)
    c.eval()
    with torch.no_grad():
        R1 = torch.cat([c(x[None]) for x in X]) - Y
    c.train()
    for chunk, method in ((1, "functional"), (4, "functional"),
                          (9, "functional"), (4, "autograd")):
        pK = os.path.join(work, "cnn_K.npz")
        msgs = []
        gram_export(c, X, Y, pK, msgs, chunk=chunk, method=method)
        aK, meta_K = load(pK)
        msgs += check_gram_archive(aK, meta_K, 9, 2)
        if not msgs:
            e = rel_err(aK["K"], gram_of(aJ["J"]))
            if e > 1e-12:
                msgs.append("|K - J J'| / |K| = %.3g" % e)
            if rel_err(aK["R"], R1.numpy()) > 1e-12:
                msgs.append("R differs from the one-sample eval residuals "
                            "by %.3g" % rel_err(aK["R"], R1.numpy()))
        if method == "functional":
            msgs += same_meta(meta_J, meta_K)
        if not c.training or not torch.equal(c[1].running_var, running):
            msgs.append("model mode or running statistics changed")
        report("CNN with BatchNorm2d, chunk %d (%s): K = J J' to 1e-12, "
               "R of single samples" % (chunk, method), msgs)


# ---------------------------------------------------------------- blocks

def test_blocks(work):
    m = mlp(3)
    X = torch.randn(10, 4, dtype=torch.float64)
    Y = torch.randn(10, 3, dtype=torch.float64)
    p = sum(q.numel() for q in m.parameters())
    path = os.path.join(work, "one.npz")
    msgs = []
    meta = gram_export(m, X, Y, path, msgs)
    K1 = load(path)[0]["K"]
    if meta["gram"]["blocks"] != 1:
        msgs.append("%d blocks" % meta["gram"]["blocks"])
    report("default cap, small model: one block", msgs)
    for bp, method in ((1, "functional"), (5, "functional"),
                       (7, "autograd"), (30, "functional")):
        path = os.path.join(work, "bp%d.npz" % bp)
        msgs = []
        meta = gram_export(m, X, Y, path, msgs, block_params=bp,
                           method=method, chunk=3)
        K = load(path)[0]["K"]
        blocks = meta["gram"]["blocks"]
        if rel_err(K, K1) > 1e-12:
            msgs.append("K differs from one block's by %.3g"
                        % rel_err(K, K1))
        # at most bp columns per block: at least ceil(p / bp) blocks, the
        # 24-entry first weight cut into ranges below 24
        if blocks < -(-p // bp) or (bp == 1 and blocks != p):
            msgs.append("%d blocks for p = %d, at most %d per block"
                        % (blocks, p, bp))
        if bp < 24 and method == "functional" and \
                "column ranges" not in meta["jacobian_method"]:
            msgs.append("jacobian_method %r" % meta["jacobian_method"])
        report("block_params %d (%s): %d blocks, K = one block's to 1e-12"
               % (bp, method, blocks), msgs)

    # blocks sized by the cap: about 60 MB beside what this process holds,
    # for a J of 180 MB whose first weight (50 000 columns, 160 MB of J)
    # cannot be held whole
    torch.manual_seed(4)
    big = torch.nn.Sequential(torch.nn.Linear(50, 1000), torch.nn.Tanh(),
                              torch.nn.Linear(1000, 5)).double()
    X = torch.randn(80, 50, dtype=torch.float64)
    Y = torch.randn(80, 5, dtype=torch.float64)
    path = os.path.join(work, "unlimited.npz")
    msgs = []
    gram_export(big, X, Y, path, msgs)
    K1 = load(path)[0]["K"]
    cap = ex._resident("VmRSS") + 8 * 400 ** 2 + ex.GRAM_SLACK + 60e6
    meta = gram_export(big, X, Y, path, msgs, max_memory=cap)
    K = load(path)[0]["K"]
    g = meta["gram"]
    if rel_err(K, K1) > 1e-12:
        msgs.append("K differs from one block's by %.3g" % rel_err(K, K1))
    if g["blocks"] < 4 or g["max_memory"] != int(cap):
        msgs.append("gram %r, expected at least 4 blocks under the cap %d"
                    % (g, cap))
    if "column ranges" not in meta["jacobian_method"]:
        msgs.append("the first weight was not cut into column ranges")
    report("max_memory: %d blocks under a cap of %s, K = one block's to "
           "1e-12" % (g["blocks"], ex._format_bytes(cap)), msgs)


# ---------------------------------------------------------------- KP

def train_steps(m, opt, X, Y, steps=6):
    m.train()
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * ((m(X) - Y) ** 2).sum(dim=1).mean()).backward()
        opt.step()
    m.eval()


def test_preconditioned(work):
    torch.manual_seed(5)
    X = torch.randn(12, 3, dtype=torch.float64)
    Y = torch.randn(12, 2, dtype=torch.float64)

    def model():
        torch.manual_seed(6)
        return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(),
                                   torch.nn.Linear(5, 2)).double()

    cases = []
    m = model()
    adam = torch.optim.Adam(m.parameters(), lr=0.01, betas=(0.8, 0.95),
                            eps=1e-6)
    train_steps(m, adam, X, Y)
    cases.append(("Adam", m, adam))
    m = model()
    rms = torch.optim.RMSprop(m.parameters(), lr=0.01, alpha=0.9, eps=1e-5)
    train_steps(m, rms, X, Y)
    cases.append(("RMSprop", m, rms))
    for name, m, opt in cases:
        pJ = os.path.join(work, "pre_J.npz")
        ex.export(m, X, Y, pJ, optimizer=opt)
        aJ, meta_J = load(pJ)
        eps = meta_J["optimizer"]["eps"]
        A = aJ["J"].reshape(24, -1)
        KP_ref = (A / (np.sqrt(aJ["V"]) + eps)) @ A.T
        for bp in (None, 4):
            pK = os.path.join(work, "pre_K.npz")
            msgs = []
            gram_export(m, X, Y, pK, msgs, optimizer=opt, block_params=bp)
            aK, meta_K = load(pK)
            msgs += check_gram_archive(aK, meta_K, 12, 2, with_KP=True)
            if not msgs:
                for G, ref, what in ((aK["KP"], KP_ref,
                                      "J diag(1/(sqrt(V) + eps)) J'"),
                                     (aK["K"], A @ A.T, "J J'")):
                    if rel_err(G, ref) > 1e-12:
                        msgs.append("differs from %s by %.3g"
                                    % (what, rel_err(G, ref)))
                if rel_err(aK["KP"], aK["K"]) < 1e-3:
                    msgs.append("KP = K: no preconditioner applied")
            msgs += same_meta(meta_J, meta_K)
            report("%s: KP = J diag(1/(sqrt(V) + eps)) J' to 1e-12 (eps "
                   "%g, %s)" % (name, eps, "block_params %d" % bp if bp
                                else "one block"), msgs)

    # the command line with --optimizer-state: KP, the summary line, the
    # cap on stderr; sgdstab takes the file's preconditioner from KP
    m = cases[0][1]
    torch.save(m, os.path.join(work, "adam-model.pt"))
    torch.save({"optimizer": cases[0][2].state_dict()},
               os.path.join(work, "ckpt.pt"))
    np.savez(os.path.join(work, "data.npz"), X=X.numpy(), Y=Y.numpy())
    pK = os.path.join(work, "cli_K.npz")
    res = subprocess.run([sys.executable, EXPORTER,
                          os.path.join(work, "adam-model.pt"),
                          os.path.join(work, "data.npz"), "-o", pK,
                          "--optimizer-state", os.path.join(work, "ckpt.pt"),
                          "--optimizer-kind", "adam", "--gram",
                          "--max-memory", "4G"],
                         capture_output=True, text=True, timeout=300)
    msgs = [] if res.returncode == 0 else ["exit %d: %s" % (res.returncode,
                                                            res.stderr)]
    if not msgs:
        aK, meta_K = load(pK)
        msgs = check_gram_archive(aK, meta_K, 12, 2, with_KP=True)
        if res.stderr != "sgdstab-export: using up to 4.0 GB (the limit " \
                         "given)\n":
            msgs.append("stderr %r" % res.stderr)
        want = "K by %s, 1 block, peak memory %s of the 4.0 GB cap" % (
            meta_K["jacobian_method"],
            ex._format_bytes(meta_K["gram"]["peak_memory"]))
        if not res.stdout.startswith(pK + ": n = 12, k = 2") or \
                want not in res.stdout:
            msgs.append("stdout %r, expected it to end %r" % (res.stdout,
                                                              want))
    report("CLI --gram --optimizer-state: KP, the cap on stderr, the "
           "summary line", msgs)
    if msgs:
        return
    ex.export(m, X, Y, pJ, optimizer=cases[0][2])
    eta_J, msgs = critical(pJ, "2,6")
    eta_K, msgs_K = critical(pK, "2,6")
    msgs += msgs_K
    if not msgs and not same_eta(eta_K, eta_J):
        msgs.append("eta* %r from K and KP, %r from J and V"
                    % (eta_K, eta_J))
    report("sgdstab critical with Adam: K and KP = J and V", msgs)


# ---------------------------------------------------------------- errors

def exporter(*args):
    p = subprocess.run([sys.executable, EXPORTER] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_errors(work):
    torch.manual_seed(7)
    m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                            torch.nn.Linear(8, 10)).double()
    pt = os.path.join(work, "m.pt")
    torch.save(m, pt)
    small = os.path.join(work, "small.npz")
    np.savez(small, X=np.random.rand(5, 4), Y=np.random.rand(5, 10))
    # n k = 20 000: K alone is 3.2 GB
    large = os.path.join(work, "large.npz")
    np.savez(large, X=np.random.rand(2000, 4), Y=np.random.rand(2000, 10))
    cases = [
        ("--gram with --hessian", [pt, small, "--gram", "--hessian"],
         ["--hessian with --gram"]),
        ("a cap below K (20000 x 20000, 3.2 GB)",
         [pt, large, "--gram", "--max-memory", "2G"],
         ["not enough memory: needs about", "K 20000 x 20000 as float64 "
          "3.2 GB", "more than the 2.0 GB available (the limit given)"]),
    ]
    for name, args, needles in cases:
        out = os.path.join(work, "bad.npz")
        rc, so, se = exporter(*args, "-o", out)
        msgs = [] if rc == 1 else ["exit %d, expected 1" % rc]
        lines = se.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("sgdstab-export: "):
            msgs.append("stderr is not one 'sgdstab-export: ' line: %r" % se)
        msgs += ["stderr does not say %r: %r" % (x, se) for x in needles
                 if x not in se]
        if os.path.exists(out):
            msgs.append("an output file was left")
        left = [f for f in os.listdir(work) if f.startswith(".sgdstab-")]
        if left:
            msgs.append("temporary files left: %s" % left)
        report("exporter refuses %s: exit 1, one line, no file" % name, msgs)

    X, Y = np.zeros((3, 4)), np.zeros((3, 10))
    for name, kw, needle in (
            ("gram with hessian", dict(gram=True, hessian=True),
             "--hessian with --gram"),
            ("a cap below what the process holds",
             dict(gram=True, max_memory="1M"),
             "more than the 1 MB available (the limit given)"),
            ("max_memory without gram", dict(max_memory=8e9),
             "without it J is streamed")):
        path = os.path.join(work, "api.npz")
        try:
            ex.export(m, X, Y, path, **kw)
            msgs = ["no error"]
        except ex.ExportError as e:
            msgs = [] if needle in str(e) else ["message %r" % str(e)]
        if os.path.exists(path):
            msgs.append("an output file was left")
        report("export() refuses %s" % name, msgs)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            ex.main([pt, small, "-o", os.path.join(work, "x.npz"), "--gram",
                     "--max-memory", "8Q"])
            status = 0
        except SystemExit as e:
            status = e.code
    report("--max-memory 8Q: usage error (exit 2)",
           [] if status == 2 and "not a size such as 8G" in err.getvalue()
           else ["exit %r, stderr %r" % (status, err.getvalue())])


# ---------------------------------------------------------------- p > 10^6

def test_large(work):
    """An MLP 784 -> 1280 -> 10 (1 017 610 parameters), n = 30: J would be
    2.4 GB, the cap is 1.5 GB."""
    cap = 1.5e9
    torch.manual_seed(8)
    m = torch.nn.Sequential(torch.nn.Linear(784, 1280), torch.nn.Tanh(),
                            torch.nn.Linear(1280, 10))
    p = sum(q.numel() for q in m.parameters())
    pt = os.path.join(work, "large.pt")
    torch.save(m, pt)
    g = torch.Generator().manual_seed(9)
    X = torch.rand(30, 784, generator=g)
    Y = torch.rand(30, 10, generator=g, dtype=torch.float64)
    data = os.path.join(work, "large-data.npz")
    np.savez(data, X=X.numpy(), Y=Y.numpy())
    out = os.path.join(work, "large-K.npz")
    # the child's own rusage (wait4), not the maximum over all children
    logs = [os.path.join(work, "large.%s" % f) for f in ("out", "err")]
    with open(logs[0], "w") as so, open(logs[1], "w") as se:
        child = subprocess.Popen([sys.executable, EXPORTER, pt, data, "-o",
                                  out, "--gram", "--max-memory", "1.5G"],
                                 stdout=so, stderr=se)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss * 1024
    with open(logs[1]) as f:
        err = f.read()
    msgs = [] if child.returncode == 0 else ["exit %d: %s"
                                             % (child.returncode, err)]
    if msgs:
        report("p = %d: export under --max-memory 1.5G" % p, msgs)
        return
    arrays, meta = load(out)
    gm = meta["gram"]
    msgs = check_gram_archive(arrays, meta, 30, 10)
    if meta["p"] != p or p < 10 ** 6:
        msgs.append("p = %d" % meta["p"])
    if gm["max_memory"] != int(cap) or gm["blocks"] < 2:
        msgs.append("gram %r: expected the cap 1.5e9 and several blocks"
                    % gm)
    for what, peak in (("meta.json's peak_memory", gm["peak_memory"]),
                       ("the child's ru_maxrss", rss)):
        if not peak <= cap:
            msgs.append("%s %d exceeds the cap %d" % (what, peak, cap))
    report("p = %d, n k = 300: %d blocks, peak %s (ru_maxrss %s) within "
           "the %s cap" % (p, gm["blocks"], ex._format_bytes(gm["peak_memory"]),
                           ex._format_bytes(rss), ex._format_bytes(cap)),
           msgs)
    print("      measured peak resident set %d bytes (VmHWM), %d (ru_maxrss);"
          " cap %d" % (gm["peak_memory"], rss, cap))

    K = arrays["K"]
    lam = np.linalg.eigvalsh(K)
    msgs = [] if lam[0] >= -1e-12 * lam[-1] else \
        ["smallest eigenvalue %.3g of largest %.3g" % (lam[0], lam[-1])]
    # samples 0, 13, 29: K's entries are inner products of the gradients
    # of f_o(x_i), one backward pass each on the float64 model
    md = m.double().eval()
    rows, grads = [], []
    for i in (0, 13, 29):
        f = md(X[i:i + 1].double()).reshape(-1)
        for o in range(10):
            gs = torch.autograd.grad(f[o], list(md.parameters()),
                                     retain_graph=True)
            grads.append(torch.cat([t.reshape(-1) for t in gs]))
            rows.append(i * 10 + o)
    G = torch.stack(grads).numpy()
    ref = G @ G.T
    sub = K[np.ix_(rows, rows)]
    diag = np.abs(np.diag(sub) - np.diag(ref)) / np.diag(ref)
    if diag.max() > 1e-10:
        msgs.append("diagonal entries |grad f_o(x_i)|^2 off by %.3g (rel)"
                    % diag.max())
    if rel_err(sub, ref) > 1e-10:
        msgs.append("30 x 30 block differs from the gradients' inner "
                    "products by %.3g" % rel_err(sub, ref))
    report("p = %d: K symmetric PSD, K = <grad f_o(x_i), grad f_o'(x_j)> "
           "of plain autograd to 1e-10" % p, msgs)


def body(work):
    test_gram_is_JJt(work)
    test_blocks(work)
    test_preconditioned(work)
    test_errors(work)
    test_large(work)


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, "export-gram", body))
