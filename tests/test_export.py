#!/usr/bin/python3
"""Tests of the PyTorch exporter (src/python/sgdstab_export.py) and of the
path PyTorch -> .npz -> sgdstab.

usage: test_export.py SGDSTAB

Independent references only:
  - J against central finite differences of the model's outputs, for a tiny
    MLP with BatchNorm (running statistics, eval mode) and Dropout, by both
    Jacobian methods (torch.func/functorch and autograd);
  - H against torch.autograd.functional.hessian of the canonical loss, and
    H = J'J/n at a zero-residual point; c H = the Hessian of
    torch.nn.MSELoss (c = 2/k);
  - the residuals and metadata against NumPy;
  - sgdstab analyze on exported linear models against engine_reference.py
    (full-space Kronecker formulation with the analytic Jacobian
    J_i = I_k (x) x_i') and the one-parameter closed form
    eta* = 2 G / (G^2 + b Var(A_i)).
Needs Debian's python3-torch.  Exit status 0 iff every check passed.
"""

import json
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "src", "python"))
import cli_harness as harness  # noqa: E402
import engine_reference as ref  # noqa: E402
import sgdstab_export as ex  # noqa: E402
from cli_harness import report, run, run_json  # noqa: E402

EXPORTER = os.path.join(HERE, "..", "src", "python", "sgdstab_export.py")
torch.set_num_threads(1)


def tiny_mlp(seed, d=4, h=5, k=3):
    """Linear - BatchNorm - tanh - Dropout - Linear, float64, with running
    statistics moved away from (0, 1) by a few training-mode passes."""
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.BatchNorm1d(h),
                            torch.nn.Tanh(), torch.nn.Dropout(0.5),
                            torch.nn.Linear(h, k)).double()
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(16, d, dtype=torch.float64) * 2 + 1)
        m[1].weight.mul_(1.7)
        m[1].bias.add_(0.3)
    return m


def flat_params(m):
    return torch.cat([q.detach().reshape(-1) for q in m.parameters()])


def set_flat(m, theta):
    at = 0
    with torch.no_grad():
        for q in m.parameters():
            q.copy_(theta[at:at + q.numel()].reshape(q.shape))
            at += q.numel()


def outputs_at(m, X, theta):
    """f(X) in eval mode at the flat parameters theta (model restored)."""
    keep, mode = flat_params(m), m.training
    m.eval()
    set_flat(m, theta)
    with torch.no_grad():
        out = m(X).reshape(X.shape[0], -1).clone()
    set_flat(m, keep)
    m.train(mode)
    return out


def finite_difference_J(m, X, h=1e-6):
    theta = flat_params(m)
    cols = []
    for j in range(theta.numel()):
        e = torch.zeros_like(theta)
        e[j] = h
        cols.append((outputs_at(m, X, theta + e)
                     - outputs_at(m, X, theta - e)) / (2 * h))
    return torch.stack(cols, dim=2).numpy()       # n x k x p


def canonical_loss_hessian(m, X, Y, scale_mse=False):
    """The Hessian of (1/2n) sum |f - y|^2 (or of torch.nn.MSELoss) in the
    flat parameters, by torch.autograd.functional.hessian."""
    from torch.nn.utils.stateless import functional_call
    names = [nm for nm, _ in m.named_parameters()]
    shapes = [q.shape for q in m.parameters()]
    buffers = dict(m.named_buffers())
    m.eval()

    def loss(theta):
        params, at = {}, 0
        for nm, sh in zip(names, shapes):
            size = int(np.prod(sh))
            params[nm] = theta[at:at + size].reshape(sh)
            at += size
        out = functional_call(m, {**params, **buffers}, (X,))
        out = out.reshape(X.shape[0], -1)
        if scale_mse:
            return torch.nn.functional.mse_loss(out, Y)
        return 0.5 * ((out - Y) ** 2).sum() / X.shape[0]

    return torch.autograd.functional.hessian(loss, flat_params(m)).numpy()


def load(path):
    with np.load(path) as z:
        meta = json.loads(bytes(z["meta.json"]).decode())
        return {f: z[f] for f in z.files if f != "meta.json"}, meta


def rel_err(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max()
                 / max(np.abs(np.asarray(b)).max(), 1e-300))


# ---------------------------------------------------------------- exporter

def test_jacobian(work):
    m = tiny_mlp(1)
    X = torch.randn(6, 4, dtype=torch.float64)
    Y = torch.randn(6, 3, dtype=torch.float64)
    Jfd = finite_difference_J(m, X)
    running = m[1].running_mean.clone()
    outs = {}
    for method in ("functional", "autograd"):
        msgs = []
        path = os.path.join(work, "tiny_%s.npz" % method)
        ex.export(m, X, Y, path, method=method, chunk=4)
        arrays, meta = load(path)
        J = arrays["J"]
        outs[method] = J
        if J.shape != Jfd.shape:
            msgs.append("J shape %s, expected %s" % (J.shape, Jfd.shape))
        elif rel_err(J, Jfd) > 1e-7:
            msgs.append("J differs from finite differences by %.3g (rel)"
                        % rel_err(J, Jfd))
        if not m.training:
            msgs.append("the model was left in eval mode")
        if not torch.equal(m[1].running_mean, running):
            msgs.append("BatchNorm running statistics changed")
        if meta["jacobian_method"] != ("autograd" if method == "autograd"
                                       else ex._functional_api()[3]):
            msgs.append("jacobian_method %r" % meta["jacobian_method"])
        report("J = finite differences (%s, BatchNorm eval, Dropout off)"
               % method, msgs)
    report("functional and autograd Jacobians agree to 1e-13",
           [] if rel_err(outs["functional"], outs["autograd"]) < 1e-13
           else ["differ by %.3g" % rel_err(outs["functional"],
                                            outs["autograd"])])
    msgs = []
    for chunk in (1, 5, 6, 100):
        path = os.path.join(work, "chunk.npz")
        ex.export(m, X, Y, path, chunk=chunk)
        J = load(path)[0]["J"]
        if rel_err(J, outs["functional"]) > 1e-13:
            msgs.append("chunk %d: J differs by %.3g" % (chunk,
                                                         rel_err(J, Jfd)))
    report("J independent of the chunk size (1, 5, 6, 100)", msgs)

    # float32 model, precision "model": J in float32 arithmetic, close to
    # the double one; precision "double" of the same float32 model is exact
    m32 = tiny_mlp(1).float()
    X32, Y32 = X.float(), Y.float()
    path = os.path.join(work, "f32.npz")
    meta = ex.export(m32, X32, Y32, path, precision="model")
    J32 = load(path)[0]["J"]
    e32 = rel_err(J32, Jfd)
    report("precision model: float32 J within 1e-5 of the double one",
           [] if meta["precision"] == "float32" and 0 < e32 < 1e-5
           else ["precision %s, rel err %.3g" % (meta["precision"], e32)])


def test_hessian_and_meta(work):
    m = tiny_mlp(2)
    X = torch.randn(7, 4, dtype=torch.float64)
    # zero residual: the targets are the model's own eval-mode outputs
    Y0 = outputs_at(m, X, flat_params(m))
    path = os.path.join(work, "zero.npz")
    ex.export(m, X, Y0, path, hessian=True, chunk=3, loss="mse")
    arrays, meta = load(path)
    J, H = arrays["J"], arrays["H"]
    G = np.einsum("iop,ioq->pq", J, J) / J.shape[0]
    msgs = []
    if rel_err(H, G) > 1e-10:
        msgs.append("|H - J'J/n| / |J'J/n| = %.3g" % rel_err(H, G))
    if meta["residual_rms"] > 1e-14 or meta["max_residual"] > 1e-14:
        msgs.append("residual %.3g, expected 0" % meta["residual_rms"])
    if not np.array_equal(H, H.T):
        msgs.append("H not exactly symmetric")
    report("zero residual: exported H = J'J/n", msgs)
    Hmse = canonical_loss_hessian(m, X, Y0, scale_mse=True)
    c = 2.0 / 3
    report("c H = Hessian of torch.nn.MSELoss (c = 2/k = %.4g)" % c,
           [] if rel_err(c * H, Hmse) < 1e-10
           else ["rel err %.3g" % rel_err(c * H, Hmse)])

    Y = Y0 + 0.3 * torch.randn(7, 3, dtype=torch.float64)
    for method in ("functional", "autograd"):
        path = os.path.join(work, "resid_%s.npz" % method)
        ex.export(m, X, Y, path, hessian=True, chunk=2, method=method,
                  loss=0.25, train_lr=0.1, train_batch=2,
                  train_sampling="without")
        arrays, meta = load(path)
        Href = canonical_loss_hessian(m, X, Y)
        msgs = []
        if rel_err(arrays["H"], Href) > 1e-10:
            msgs.append("H rel err %.3g against autograd.functional.hessian"
                        % rel_err(arrays["H"], Href))
        if rel_err(arrays["H"], G) < 1e-3:
            msgs.append("H = G although the residual is not zero")
        report("nonzero residual: H = exact Hessian of the canonical loss "
               "(%s)" % method, msgs)
    r = (outputs_at(m, X, flat_params(m)) - Y).numpy()
    res = np.linalg.norm(r, axis=1)
    msgs = []
    expect = {"n": 7, "k": 3, "p": int(flat_params(m).numel()),
              "loss": 0.25, "loss_scale": 0.25, "train_lr": 0.1,
              "train_batch": 2, "train_sampling": "without",
              "residual_rms": float(np.sqrt((res ** 2).mean())),
              "max_residual": float(res.max()),
              "target_rms": float(np.sqrt((Y.numpy() ** 2).sum(1).mean()))}
    for key, want in expect.items():
        got = meta.get(key)
        if isinstance(want, float):
            if not (isinstance(got, float) and abs(got - want)
                    <= 1e-12 * abs(want)):
                msgs.append("%s = %r, expected %r" % (key, got, want))
        elif got != want:
            msgs.append("%s = %r, expected %r" % (key, got, want))
    if rel_err(arrays["residual"], res) > 1e-12:
        msgs.append("residual array differs from |f(x_i) - y_i|")
    if arrays["R"].shape != r.shape or rel_err(arrays["R"], r) > 1e-12:
        msgs.append("R differs from f(x_i) - y_i")
    names = [nm for nm, _ in m.named_parameters()]
    if [q["name"] for q in meta["parameters"]] != names or \
            sum(int(np.prod(q["shape"])) for q in meta["parameters"]) \
            != expect["p"]:
        msgs.append("parameters list does not follow named_parameters()")
    report("metadata: residuals (and R), n k p, loss, training (lr, batch)",
           msgs)


def test_cli_and_errors(work):
    m = tiny_mlp(3)
    X = torch.randn(5, 4, dtype=torch.float64)
    Y = torch.randn(5, 3, dtype=torch.float64)
    data = os.path.join(work, "data.npz")
    np.savez(data, X=X.numpy(), Y=Y.numpy())
    ref_path = os.path.join(work, "api.npz")
    for mask in (0o022, 0o077):
        # the archive gets the mode a plain open would give: 0666 & ~umask
        old = os.umask(mask)
        try:
            ex.export(m, X, Y, ref_path)
        finally:
            os.umask(old)
        mode = os.stat(ref_path).st_mode & 0o777
        report("export under umask %03o: mode %04o" % (mask, 0o666 & ~mask),
               [] if mode == 0o666 & ~mask else ["mode %04o" % mode])
        os.remove(ref_path)
    # replacing an existing archive keeps its permission bits
    with open(ref_path, "w") as f:
        f.write("old")
    os.chmod(ref_path, 0o640)
    ex.export(m, X, Y, ref_path)
    mode = os.stat(ref_path).st_mode & 0o777
    report("export over an existing 0640 file keeps 0640",
           [] if mode == 0o640 else ["mode %04o" % mode])
    Jref = load(ref_path)[0]["J"]
    pt = os.path.join(work, "model.pt")
    torch.save(m, pt)
    ts = os.path.join(work, "model.ts")
    m.eval()
    torch.jit.script(m).save(ts)
    m.train()

    def exporter(*args):
        p = subprocess.run([sys.executable, EXPORTER] + [str(a) for a in
                                                         args],
                           capture_output=True, text=True, timeout=300)
        return p.returncode, p.stdout, p.stderr

    for name, model in (("torch.save", pt), ("TorchScript", ts)):
        out = os.path.join(work, "cli.npz")
        rc, so, se = exporter(model, data, "-o", out, "--lr", "0.5",
                              "--batch", "2", "--loss", "mse")
        msgs = [] if rc == 0 else ["exit %d: %s" % (rc, se.strip())]
        if rc == 0:
            arrays, meta = load(out)
            if rel_err(arrays["J"], Jref) > 1e-13:
                msgs.append("J differs from the API's by %.3g"
                            % rel_err(arrays["J"], Jref))
            if meta["loss"] != "mse" or meta["train_lr"] != 0.5 or \
                    meta["train_batch"] != 2:
                msgs.append("metadata %r" % meta)
            if name == "TorchScript" and "autograd" not in se + \
                    meta["jacobian_method"]:
                msgs.append("TorchScript: expected the autograd fallback")
        report("exporter CLI, %s model = Python API" % name, msgs)

    np.savez(os.path.join(work, "noY.npz"), X=X.numpy())
    np.savez(os.path.join(work, "badY.npz"), X=X.numpy(),
             Y=np.zeros((5, 2)))
    np.savez(os.path.join(work, "fewY.npz"), X=X.numpy(),
             Y=np.zeros((4, 3)))
    Xn = X.numpy().copy()
    Xn[2, 1] = np.nan
    np.savez(os.path.join(work, "nanX.npz"), X=Xn, Y=Y.numpy())
    np.savez(os.path.join(work, "intY.npz"), X=X.numpy(),
             Y=np.zeros((5, 3), dtype=np.int64))
    with open(os.path.join(work, "junk.pt"), "w") as f:
        f.write("not a model\n")
    torch.save(m.state_dict(), os.path.join(work, "state.pt"))
    cases = [
        ("missing model", [os.path.join(work, "nope.pt"), data], 1),
        ("junk model", [os.path.join(work, "junk.pt"), data], 1),
        ("state_dict", [os.path.join(work, "state.pt"), data], 1),
        ("no Y", [pt, os.path.join(work, "noY.npz")], 1),
        ("Y columns", [pt, os.path.join(work, "badY.npz")], 1),
        ("Y rows", [pt, os.path.join(work, "fewY.npz")], 1),
        ("NaN in X", [pt, os.path.join(work, "nanX.npz")], 1),
        ("integer Y", [pt, os.path.join(work, "intY.npz")], 1),
        ("missing data", [pt, os.path.join(work, "nope.npz")], 1),
        ("--loss bogus", [pt, data, "--loss", "bogus"], 1),
        ("--loss -1", [pt, data, "--loss", "-1"], 1),
        ("--chunk 0", [pt, data, "--chunk", "0"], 1),
        ("--lr 0", [pt, data, "--lr", "0"], 1),
        ("--batch 0", [pt, data, "--batch", "0"], 1),
        ("--hessian beyond the limit",
         [pt, data, "--hessian", "--hessian-max-params", "10"], 1),
        ("--method unknown", [pt, data, "--method", "magic"], 2),
    ]
    for name, args, want in cases:
        out = os.path.join(work, "bad.npz")
        rc, so, se = exporter(*args, "-o", out)
        msgs = []
        if rc != want:
            msgs.append("exit %d, expected %d" % (rc, want))
        lines = se.strip().splitlines()
        if want == 1 and (len(lines) != 1 or
                          not lines[0].startswith("sgdstab-export: ")):
            msgs.append("stderr is not one 'sgdstab-export: ' line: %r" % se)
        if os.path.exists(out):
            msgs.append("an output file was left")
        left = [f for f in os.listdir(work) if f.startswith(".sgdstab-")]
        if left:
            msgs.append("temporary files left: %s" % left)
        report("exporter error: %s" % name, msgs)


# ---------------------------------------------------------------- round trip

def linear_case(work, name, d, k, n, seed, loss):
    """nn.Linear(d, k, bias=False) at a zero-residual point; returns the
    exported path and the analytic J_i = I_k (x) x_i'."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64) \
        * torch.arange(1, d + 1, dtype=torch.float64) ** -0.5
    model = torch.nn.Linear(d, k, bias=False).double()
    with torch.no_grad():
        Y = model(X)
    path = os.path.join(work, name + ".npz")
    ex.export(model, X, Y, path, loss=loss)
    Xn = X.numpy()
    J = np.einsum("ab,nj->nabj", np.eye(k), Xn).reshape(n, k, k * d)
    return path, J


def test_round_trip(work):
    for d, k, sampling, B, loss in ((3, 2, "without", 2, "mse"),
                                    (4, 1, "with", 3, "half-mean"),
                                    (2, 3, "bernoulli", 4, "mse")):
        n = 9
        path, J = linear_case(work, "lin%d%d" % (d, k), d, k, n, d + k,
                              loss)
        c = ex.loss_scale(loss, k)
        prob = ref.Problem(J, c=c)
        eta_star = ref.lr_critical(prob, sampling, B)
        msgs = []
        for factor in (0.7, 1.3):
            lr = factor * eta_star
            res_json, res, m = run_json("analyze", path, "--lr", repr(lr),
                                        "--batch", B, "--sampling", sampling)
            msgs += m
            if res_json is None:
                break
            rho = ref.rho_perp(prob, lr, sampling, B)
            if abs(res_json["spectral_radius"] - rho) > 1e-10:
                msgs.append("rho %r, reference %r"
                            % (res_json["spectral_radius"], rho))
            if abs(res_json["lr_critical"] - eta_star) > 1e-9 * eta_star:
                msgs.append("eta* %r, reference %r"
                            % (res_json["lr_critical"], eta_star))
            if res_json["loss_scale"] != c:
                msgs.append("loss_scale %r: the file's convention %s is %r"
                            % (res_json["loss_scale"], loss, c))
            if res_json["stable"] != (factor < 1):
                msgs.append("verdict %r at %.1f eta*"
                            % (res_json["stable"], factor))
            if res_json.get("interpolating") is not True:
                msgs.append("interpolating %r" % res_json.get("interpolating"))
        report("round trip nn.Linear(%d, %d), %s, B = %d, loss %s: sgdstab "
               "= full-space reference" % (d, k, sampling, B, loss), msgs,
               res)

    # one parameter: A_i = x_i^2, eta* = 2 G / (G^2 + b Var(A)) (Wu, Ma & E)
    n, B = 11, 3
    path, J = linear_case(work, "scalar", 1, 1, n, 7, "half-mean")
    A = J[:, 0, 0] ** 2
    b = (n - B) / (B * (n - 1))
    closed = 2 * A.mean() / (A.mean() ** 2 + b * A.var())
    res_json, res, msgs = run_json("critical", path, "--batch", B)
    if res_json is not None:
        got = res_json["critical"][0]["lr_critical"]
        if abs(got - closed) > 1e-9 * closed:
            msgs.append("eta* %r, closed form %r" % (got, closed))
    report("round trip p = 1: eta* = 2G/(G^2 + b Var A)", msgs, res)

    # not interpolating: the same J (it does not depend on Y), a note on
    # stderr with the residual, and the same analysis of the Gauss-Newton
    # surrogate
    g = torch.Generator().manual_seed(5)
    X = torch.randn(8, 3, generator=g, dtype=torch.float64)
    model = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        Y = model(X)
    exact, noisy = (os.path.join(work, f) for f in ("exact.npz", "noisy.npz"))
    ex.export(model, X, Y, exact)
    meta = ex.export(model, X, Y + 0.1 * torch.randn(8, 2, generator=g,
                                                     dtype=torch.float64),
                     noisy)
    args = ("--lr", "0.3", "--batch", "2")
    a, res_a, msgs = run_json("analyze", exact, *args)
    res = run("analyze", noisy, *args, "--json")
    lines = res.err.strip().splitlines()
    if res.rc != 0:
        msgs.append("exit %d" % res.rc)
    if len(lines) != 1 or "not an interpolating minimum" not in lines[0] \
            or noisy not in lines[0]:
        msgs.append("expected one note naming the file, got %r" % res.err)
    else:
        rel = meta["residual_rms"] / meta["target_rms"]
        shown = [w for w in lines[0].replace("(", " ").replace(",", " ")
                 .split() if w.rstrip("%").replace(".", "").isdigit()]
        if not any(abs(float(w.rstrip("%")) - 100 * rel) < 0.05 * 100 * rel
                   for w in shown if w.endswith("%")):
            msgs.append("the note does not give the relative residual "
                        "%.3g%%" % (100 * rel))
    if not msgs:
        b_json = json.loads(res.out)
        if b_json["spectral_radius"] != a["spectral_radius"] or \
                b_json["lr_critical"] != a["lr_critical"]:
            msgs.append("the analysis changed with the residual")
        if b_json["interpolating"] is not False or \
                b_json["residual_rms"] != meta["residual_rms"]:
            msgs.append("JSON interpolating %r, residual_rms %r"
                        % (b_json["interpolating"],
                           b_json["residual_rms"]))
    report("non-interpolating export: a note with the residual, the same "
           "Gauss-Newton analysis", msgs, res)


def train_steps(m, opt, X, Y, steps=5):
    """A few full-batch steps of opt on the half-mean square loss."""
    m.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * ((m(X) - Y) ** 2).sum(dim=1).mean()
        loss.backward()
        opt.step()
    m.eval()


def test_optimizer(work):
    """The optimizer's settings in meta.json and Adam's bias-corrected
    second moment in V, against torch's own state computed here; sgdstab
    takes them as its defaults, with the same numbers as the same settings
    given as options and V as a separate --second-moment file."""
    torch.manual_seed(3)
    X = torch.randn(10, 3, dtype=torch.float64)
    Y = torch.randn(10, 2, dtype=torch.float64)

    def model():
        torch.manual_seed(4)
        return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                   torch.nn.Linear(4, 2)).double()

    m = model()
    sgd = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9,
                          dampening=0.1, weight_decay=1e-3)
    train_steps(m, sgd, X, Y)
    path = os.path.join(work, "sgd.npz")
    meta = ex.export(m, X, Y, path, optimizer=sgd)
    arrays, written = load(path)
    want = {"kind": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.1,
            "nesterov": False, "weight_decay": 1e-3}
    msgs = [] if written["optimizer"] == want and "V" not in arrays else \
        ["optimizer %r, V %s" % (written["optimizer"], "V" in arrays)]
    if meta["train_lr"] != 0.05:
        msgs.append("train_lr %r" % meta["train_lr"])
    report("export: SGD's settings in meta.json, no V", msgs)

    m = model()
    adam = torch.optim.Adam(m.parameters(), lr=0.01, betas=(0.8, 0.95),
                            eps=1e-6)
    train_steps(m, adam, X, Y, steps=7)
    v = np.concatenate([
        (adam.state[q]["exp_avg_sq"] / (1 - 0.95 ** 7)).reshape(-1).numpy()
        for q in m.parameters()])
    path = os.path.join(work, "adam.npz")
    ckpt = os.path.join(work, "ckpt.pt")
    torch.save({"optimizer": adam.state_dict()}, ckpt)
    torch.save(m, os.path.join(work, "adam-model.pt"))
    np.savez(os.path.join(work, "data.npz"), X=X.numpy(), Y=Y.numpy())
    res = subprocess.run([sys.executable, EXPORTER,
                          os.path.join(work, "adam-model.pt"),
                          os.path.join(work, "data.npz"), "-o", path,
                          "--optimizer-state", ckpt, "--optimizer-kind",
                          "adam"], capture_output=True, text=True)
    msgs = [] if res.returncode == 0 else ["exporter: " + res.stderr]
    if not msgs:
        arrays, written = load(path)
        o = written["optimizer"]
        if (o["kind"], o["momentum"], o["beta2"], o["eps"], o["step"]) != \
                ("adam", 0.8, 0.95, 1e-6, 7):
            msgs.append("optimizer %r" % o)
        if rel_err(arrays["V"], v) > 1e-12:
            msgs.append("V differs from exp_avg_sq / (1 - beta2^step) by "
                        "%.3g" % rel_err(arrays["V"], v))
    report("export --optimizer-state: Adam's settings and bias-corrected V",
           msgs, res)
    if msgs:
        return
    vfile = os.path.join(work, "v.npy")
    np.save(vfile, v)
    # The tiny model does not interpolate: a note on stderr, JSON on stdout.
    r1 = run("critical", path, "--batch", "2,10", "--json")
    r2 = run("critical", path, "--batch", "2,10", "--json", "--optimizer",
             "adam", "--betas", "0.8,0.95", "--eps", "1e-6",
             "--second-moment", vfile)
    msgs = ["exit %d" % r.rc for r in (r1, r2) if r.rc]
    d_file = json.loads(r1.out) if not r1.rc else None
    d_opts = json.loads(r2.out) if not r2.rc else None
    if d_file and d_opts:
        for a, b in zip(d_file["critical"], d_opts["critical"]):
            if not harness.close_rel(a["lr_critical"], b["lr_critical"],
                                     1e-12):
                msgs.append("B = %d: %r from the file, %r from options" %
                            (a["batch"], a["lr_critical"], b["lr_critical"]))
        if d_file["optimizer"]["kind"] != "adam":
            msgs.append("optimizer %r" % d_file["optimizer"])
    res = run("analyze", path, "--lr", 0.01, "--batch", 2)
    if "(from the file's metadata)" not in res.out:
        msgs.append("analyze does not say the optimizer is the file's")
    report("sgdstab takes the file's optimizer and V as defaults", msgs, res)

    other = torch.optim.Adam(torch.nn.Linear(3, 2).double().parameters())
    for opt, kind, needle in ((other, None, "do not match"),
                              (adam.state_dict(), None, "Adam or AdamW")):
        try:
            ex.export(m, X, Y, os.path.join(work, "bad.npz"), optimizer=opt,
                      optimizer_kind=kind)
            msgs = ["no error"]
        except ex.ExportError as e:
            msgs = [] if needle in str(e) else ["message %r" % str(e)]
        report("export refuses an optimizer: %s" % needle, msgs)


def body(work):
    test_jacobian(work)
    test_hessian_and_meta(work)
    test_cli_and_errors(work)
    test_round_trip(work)
    test_optimizer(work)


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, "export", body))
