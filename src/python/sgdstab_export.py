#!/usr/bin/python3
"""sgdstab-export: write what sgdstab reads from a trained PyTorch model.

The output is an .npz archive holding

  J            (n, k, p)  per-sample OUTPUT Jacobians J_i = d f(x_i) / d theta
                          (not loss gradients: those vanish at an
                          interpolating minimum and carry no curvature)
  residual     (n,)       |f(x_i) - y_i|, the training residual per sample
  R            (n, k)     the residuals r_i = f(x_i) - y_i themselves, from
                          which `sgdstab stationary` forms the gradient
                          noise of a minimum that does not interpolate
  H            (p, p)     only with --hessian: the exact Hessian of the
                          canonical loss L = (1/2n) sum_i |f(x_i) - y_i|^2
                          (README, "The mathematics"), in the same
                          convention as J, so that H = J'J/n at a
                          zero-residual point
  V            (p,)       only with an Adam, AdamW or RMSprop optimizer:
                          its second moment, bias-corrected
                          (exp_avg_sq / (1 - beta2^step); RMSprop's
                          square_avg as it is), in J's column order
  meta.json               loss convention the model was trained with, n, k,
                          p, residual_rms, max_residual, target_rms, the
                          training (lr, batch, sampling) if given, the
                          parameter names and shapes in column order, how
                          J was computed, and with an optimizer its
                          "optimizer" object (kind, momentum, dampening,
                          nesterov, weight_decay, beta2, eps, lr, step),
                          which sgdstab takes as the default of its
                          optimizer options

Columns of J follow model.named_parameters() (trainable ones only), each
flattened in row-major order.  The model is evaluated in eval mode
(BatchNorm uses its running statistics, Dropout is off) and put back in the
mode it was in.  Samples are processed in chunks (--chunk), and J is
streamed into the archive chunk by chunk, so memory beyond J's own chunk
stays bounded.  Per-sample Jacobians use torch.func (torch >= 2) or
functorch (torch 1.13) where the model allows it, and plain autograd (one
backward pass per sample and output) otherwise.

Use from Python:

    from sgdstab_export import export
    export(model, X, Y, "minimum.npz", loss="mse", train_lr=0.1,
           train_batch=32)

or from the shell, with a TorchScript or torch.save'd model and an .npz of
X and Y:

    sgdstab-export model.pt data.npz -o minimum.npz --loss mse \
        --lr 0.1 --batch 32

Run with Debian's interpreter (/usr/bin/python3, package python3-torch).
"""

import argparse
import io
import json
import math
import os
import stat
import sys
import zipfile

import numpy as np

try:
    import torch
except ImportError:  # reported by main(); export() needs torch anyway
    torch = None

# p above which --hessian is refused unless hessian_max_params is raised:
# the dense p x p Hessian of 5000 parameters is 200 MB.
HESSIAN_MAX_PARAMS = 5000


class ExportError(Exception):
    """Bad input to the exporter; the message is one line."""


def loss_scale(loss, k):
    """The constant c scaling every A_i = J_i'J_i for a loss convention:
    half-mean (L = (1/2n) sum |f - y|^2) is 1, mse (PyTorch's MSELoss,
    the mean over n*k entries without the 1/2) is 2/k, a number is itself."""
    if loss == "half-mean":
        return 1.0
    if loss == "mse":
        return 2.0 / k
    try:
        c = float(loss)
    except (TypeError, ValueError):
        c = float("nan")
    if not (math.isfinite(c) and c > 0):
        raise ExportError(f"loss {loss!r}: expected half-mean, mse or a "
                          "positive number")
    return c


def _functional_api():
    """(functional_call, jacrev, vmap, name) from torch.func or functorch,
    or None when the installed torch has neither."""
    try:
        from torch.func import functional_call, jacrev, vmap
        return functional_call, jacrev, vmap, "torch.func"
    except ImportError:
        pass
    try:
        from functorch import jacrev, vmap
        from torch.nn.utils.stateless import functional_call
        return functional_call, jacrev, vmap, "functorch"
    except ImportError:
        return None


class _Model:
    """The model in eval mode with its trainable parameters as one flat
    vector theta (named_parameters order, row-major)."""

    def __init__(self, model, dtype):
        self.module = model
        self.named = [(name, q) for name, q in model.named_parameters()
                      if q.requires_grad]
        if not self.named:
            raise ExportError("the model has no trainable parameters")
        self.params = [q for _, q in self.named]
        self.sizes = [q.numel() for q in self.params]
        self.p = sum(self.sizes)
        self.dtype = dtype
        self.buffers = dict(model.named_buffers())

    def outputs(self, x):
        """f(x) for a chunk x, shape (c, k)."""
        return self.module(x).reshape(x.shape[0], -1)

    def unflatten(self, theta):
        out, at = {}, 0
        for (name, q), size in zip(self.named, self.sizes):
            out[name] = theta[at:at + size].reshape(q.shape)
            at += size
        return out

    def flat(self):
        return torch.cat([q.detach().reshape(-1) for q in self.params])


def _jacobian_functional(m, api, x):
    """Per-sample output Jacobians of a chunk, (c, k, p), by vmap over
    jacrev of a one-sample functional call."""
    functional_call, jacrev, vmap, _ = api
    params = {name: q.detach() for name, q in m.named}

    def one(pr, xi):
        return functional_call(m.module, {**pr, **m.buffers},
                               (xi.unsqueeze(0),)).reshape(-1)

    jac = vmap(jacrev(one), in_dims=(None, 0))(params, x)
    return torch.cat([jac[name].reshape(x.shape[0], jac[name].shape[1], -1)
                      for name, _ in m.named], dim=2)


def _jacobian_autograd(m, x):
    """The same with plain autograd: one backward pass per sample and
    output coordinate."""
    rows = []
    for xi in x:
        out = m.outputs(xi.unsqueeze(0)).reshape(-1)
        per_output = []
        for c in range(out.shape[0]):
            grads = torch.autograd.grad(out[c], m.params, retain_graph=True,
                                        allow_unused=True)
            per_output.append(torch.cat([
                (g if g is not None else torch.zeros_like(q)).reshape(-1)
                for g, q in zip(grads, m.params)]))
        rows.append(torch.stack(per_output))
    return torch.stack(rows)


def _chunk_loss(m, api, theta, x, y, n):
    """This chunk's share of the canonical loss (1/2n) sum |f - y|^2 as a
    function of the flat parameters theta."""
    if api is None:
        out = m.outputs(x)
    else:
        out = api[0](m.module, {**m.unflatten(theta), **m.buffers},
                     (x,)).reshape(x.shape[0], -1)
    return 0.5 * ((out - y) ** 2).sum() / n


def _hessian_functional(m, api, x, y, n):
    jacrev = api[1]
    return jacrev(jacrev(lambda th: _chunk_loss(m, api, th, x, y, n)))(
        m.flat())


def _hessian_autograd(m, x, y, n):
    """Rows of the Hessian by differentiating each gradient entry again."""
    loss = _chunk_loss(m, None, None, x, y, n)
    grads = torch.autograd.grad(loss, m.params, create_graph=True,
                                allow_unused=True)
    g = torch.cat([(gi if gi is not None else torch.zeros_like(q)).reshape(-1)
                   for gi, q in zip(grads, m.params)])
    H = torch.zeros(m.p, m.p, dtype=g.dtype)
    for j in range(m.p):
        if not g[j].requires_grad:
            continue  # this entry of the gradient does not depend on theta
        row = torch.autograd.grad(g[j], m.params, retain_graph=True,
                                  allow_unused=True)
        H[j] = torch.cat([(r if r is not None else torch.zeros_like(q))
                          .reshape(-1) for r, q in zip(row, m.params)])
    return H


def _as_tensor(name, a, dtype):
    t = a if torch.is_tensor(a) else torch.as_tensor(np.asarray(a))
    if not t.is_floating_point() and name == "Y":
        raise ExportError("Y must hold real-valued targets (one-hot rows for "
                          "classification), not integer labels")
    t = t.to(dtype)
    if not torch.isfinite(t).all():
        raise ExportError(f"{name} holds non-finite values")
    return t


def _npy_header(shape):
    """The bytes of a .npy v1.0 header for little-endian float64, C order."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _write_array(zf, name, a):
    with zf.open(name + ".npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.ascontiguousarray(a, dtype="<f8"),
                                  allow_pickle=False)



def _temporary_beside(path):
    """A new empty file next to path with the permissions a plain open would
    give path (mkstemp's 0600 would survive the rename): 0666 less the umask
    for a new file, applied by the kernel, or the bits of the regular file
    it will replace."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(path)
        keep = stat.S_ISREG(st.st_mode)
    except OSError:
        keep = False
    for _ in range(100):
        tmp = os.path.join(directory, ".sgdstab-export-%s.npz"
                           % os.urandom(6).hex())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            if keep:
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
        finally:
            os.close(fd)
        return tmp
    raise ExportError(f"{directory}: cannot create a temporary file")


_OPTIMIZER_CLASSES = {"SGD": "sgd", "Adam": "adam", "AdamW": "adamw",
                      "RMSprop": "rmsprop"}


def _optimizer_state(optimizer):
    """(class kind or None, state_dict) of an optimizer, its state_dict, or
    a checkpoint dict holding one under "optimizer" or
    "optimizer_state_dict"."""
    if hasattr(optimizer, "state_dict") and hasattr(optimizer,
                                                    "param_groups"):
        name = type(optimizer).__name__
        if name not in _OPTIMIZER_CLASSES:
            raise ExportError(f"optimizer {name}: sgdstab takes SGD, "
                              "RMSprop, Adam and AdamW")
        return _OPTIMIZER_CLASSES[name], optimizer.state_dict()
    if isinstance(optimizer, dict):
        if "param_groups" in optimizer and "state" in optimizer:
            return None, optimizer
        for key in ("optimizer", "optimizer_state_dict"):
            if isinstance(optimizer.get(key), dict):
                return _optimizer_state(optimizer[key])
    raise ExportError("optimizer: need a torch.optim optimizer, its "
                      "state_dict(), or a checkpoint dict holding one under "
                      "'optimizer'")


def _optimizer_kind(kind, given, group):
    if given is not None:
        if given not in ("sgd", "rmsprop", "adam", "adamw"):
            raise ExportError(f"optimizer kind {given!r}: expected sgd, "
                              "rmsprop, adam or adamw")
        if kind is not None and kind != given:
            raise ExportError(f"optimizer kind {given!r}, but the optimizer "
                              f"is {kind}")
        return given
    if kind is not None:
        return kind
    if "betas" in group:
        raise ExportError("the optimizer's state_dict does not say Adam or "
                          "AdamW (their keys are the same): give the kind "
                          "(--optimizer-kind)")
    return "rmsprop" if "alpha" in group else "sgd"


def _optimizer_meta(optimizer, kind, named):
    """meta.json's "optimizer" object and V (or None) for the parameters
    named (name, tensor) in J's column order."""
    cls, sd = _optimizer_state(optimizer)
    groups = sd["param_groups"]
    settings = [{k: v for k, v in g.items() if k != "params"}
                for g in groups]
    if any(s != settings[0] for s in settings):
        raise ExportError("the optimizer's parameter groups differ in their "
                          "settings; sgdstab takes one optimizer")
    g = settings[0]
    kind = _optimizer_kind(cls, kind, g)
    order = [i for grp in groups for i in grp["params"]]
    if len(order) != len(named):
        raise ExportError(f"the optimizer holds {len(order)} parameters, the "
                          f"model {len(named)} trainable ones: they do not "
                          "match")
    meta = {"kind": kind, "lr": float(g["lr"]),
            "weight_decay": float(g.get("weight_decay", 0))}
    if kind == "sgd":
        meta.update(momentum=float(g.get("momentum", 0)),
                    dampening=float(g.get("dampening", 0)),
                    nesterov=bool(g.get("nesterov", False)))
        return meta, None
    if kind == "rmsprop":
        if g.get("centered"):
            raise ExportError("centered RMSprop: its preconditioner moves "
                              "with the gradient's mean; sgdstab takes the "
                              "plain one")
        meta.update(momentum=float(g.get("momentum", 0)),
                    beta2=float(g["alpha"]), eps=float(g["eps"]))
    else:
        if g.get("amsgrad"):
            raise ExportError("amsgrad: sgdstab takes Adam's own second "
                              "moment, not its running maximum")
        beta1, beta2 = (float(b) for b in g["betas"])
        meta.update(momentum=beta1, beta2=beta2, eps=float(g["eps"]))
    V, step = [], None
    for i, (name, q) in zip(order, named):
        st = sd["state"].get(i)
        key = "square_avg" if kind == "rmsprop" else "exp_avg_sq"
        if not st or key not in st:
            raise ExportError(f"the optimizer has no state for parameter "
                              f"{name} (it never took a step)")
        v = st[key].detach().to(torch.float64)
        if tuple(v.shape) != tuple(q.shape):
            raise ExportError(f"the optimizer's state for parameter {name} "
                              f"has shape {tuple(v.shape)}, the parameter "
                              f"{tuple(q.shape)}: they do not match")
        if kind != "rmsprop":
            step = float(st["step"])
            v = v / (1 - meta["beta2"] ** step)
        V.append(v.reshape(-1).numpy())
    if step is not None:
        meta["step"] = step
    return meta, np.concatenate(V)


def export(model, X, Y, path, *, loss="half-mean", hessian=False, chunk=64,
           train_lr=None, train_batch=None, train_sampling=None,
           method="auto", precision="double",
           hessian_max_params=HESSIAN_MAX_PARAMS, extra_meta=None,
           optimizer=None, optimizer_kind=None):
    """Write model's per-sample output Jacobian at data (X, Y) to path (an
    .npz, written to a temporary file and renamed into place).

    X: inputs, first axis the n samples, as the model takes them.
    Y: targets of the square loss, (n, k) or (n,) (e.g. one-hot rows).
    loss: the convention the model was trained with, "half-mean", "mse"
        (torch.nn.MSELoss) or a positive scale c; sgdstab uses it as the
        default of --loss, so the training learning rate carries over.
    hessian: also write H, the exact Hessian of the canonical loss.
    chunk: samples per chunk (bounds the memory of the computation).
    train_lr, train_batch, train_sampling: how the model was trained
        (recorded in meta.json).
    method: "auto" (torch.func/functorch, autograd if the model refuses),
        "functional" or "autograd".
    precision: "double" evaluates a float64 copy of the model (default;
        the Jacobian is then exact to double precision), "model" keeps the
        model's own dtype.
    optimizer: the torch.optim optimizer of training (SGD, RMSprop, Adam,
        AdamW), its state_dict(), or a checkpoint dict holding one under
        "optimizer": its settings go into meta.json, its second moment
        (bias-corrected) into V; parameters are matched to J's columns in
        order, with their shapes checked.
    optimizer_kind: "adam" or "adamw" for a bare state_dict of either (the
        two write the same keys).
    Returns the metadata dictionary written."""
    if torch is None:
        raise ExportError("PyTorch is not installed (Debian: apt-get install "
                          "python3-torch)")
    if method not in ("auto", "functional", "autograd"):
        raise ExportError(f"method {method!r}: expected auto, functional or "
                          "autograd")
    if precision not in ("double", "model"):
        raise ExportError(f"precision {precision!r}: expected double or model")
    if int(chunk) != chunk or chunk < 1:
        raise ExportError(f"chunk {chunk!r}: expected a whole number >= 1")
    if train_lr is not None and not (math.isfinite(train_lr) and train_lr > 0):
        raise ExportError(f"train_lr {train_lr!r}: expected a positive number")
    if train_batch is not None and (int(train_batch) != train_batch
                                    or train_batch < 1):
        raise ExportError(f"train_batch {train_batch!r}: expected a whole "
                          "number >= 1")

    was_training = model.training
    source = model
    if precision == "double":
        import copy
        source = copy.deepcopy(model).double()
    dtype = next(iter(source.parameters())).dtype if precision == "model" \
        else torch.float64
    source.eval()
    try:
        m = _Model(source, dtype)
        extra = dict(extra_meta or {})
        V = None
        if optimizer is not None:
            extra["optimizer"], V = _optimizer_meta(optimizer,
                                                    optimizer_kind, m.named)
            if train_lr is None:
                train_lr = extra["optimizer"]["lr"]
        return _export(m, X, Y, path, loss, hessian, int(chunk), train_lr,
                       train_batch, train_sampling, method,
                       hessian_max_params, extra, V)
    finally:
        model.train(was_training)


def _export(m, X, Y, path, loss, hessian, chunk, train_lr, train_batch,
            train_sampling, method, hessian_max_params, extra_meta, V):
    X = _as_tensor("X", X, m.dtype)
    Y = _as_tensor("Y", Y, m.dtype)
    n = X.shape[0] if X.dim() else 0
    if n < 1:
        raise ExportError("X holds no samples")
    Y = Y.reshape(Y.shape[0], -1) if Y.dim() else Y.reshape(1, 1)
    if Y.shape[0] != n:
        raise ExportError(f"X has {n} samples but Y has {Y.shape[0]}")
    with torch.no_grad():
        k = m.outputs(X[:1]).shape[1]
    if Y.shape[1] != k:
        raise ExportError(f"the model has {k} outputs per sample but Y has "
                          f"{Y.shape[1]} columns")
    c_scale = loss_scale(loss, k)
    if hessian and m.p > hessian_max_params:
        raise ExportError(f"--hessian: p = {m.p} parameters exceeds the "
                          f"limit {hessian_max_params} (a dense p x p "
                          "Hessian); raise it explicitly if intended")

    api = None if method == "autograd" else _functional_api()
    if method == "functional" and api is None:
        raise ExportError("method functional: this torch has neither "
                          "torch.func nor functorch")
    how = api[3] if api else "autograd"

    def jacobian(x):
        nonlocal api, how
        if api is not None:
            try:
                return _jacobian_functional(m, api, x)
            except Exception as e:  # an op vmap/functional_call cannot take
                if method == "functional":
                    raise ExportError(f"{how} failed on this model: {e}")
                print(f"sgdstab-export: note: {how} failed on this model "
                      f"({type(e).__name__}); using autograd",
                      file=sys.stderr)
                api, how = None, "autograd"
        return _jacobian_autograd(m, x)

    tmp = _temporary_beside(path)
    R = np.empty((n, k))
    target_sq = float((Y ** 2).sum())
    H = np.zeros((m.p, m.p)) if hessian else None
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED,
                             allowZip64=True) as zf:
            with zf.open("J.npy", "w", force_zip64=True) as f:
                f.write(_npy_header((n, k, m.p)))
                for start in range(0, n, chunk):
                    x, y = X[start:start + chunk], Y[start:start + chunk]
                    Jc = jacobian(x).detach()
                    f.write(np.ascontiguousarray(
                        Jc.to(torch.float64).numpy(), dtype="<f8").tobytes())
                    with torch.no_grad():
                        r = m.outputs(x) - y
                    R[start:start + len(x)] = r.to(torch.float64).numpy()
                    if hessian:
                        Hc = _hessian_functional(m, api, x, y, n) if api \
                            else _hessian_autograd(m, x, y, n)
                        H += Hc.detach().to(torch.float64).numpy()
            residual = np.sqrt((R ** 2).sum(axis=1))
            _write_array(zf, "residual", residual)
            _write_array(zf, "R", R)
            if hessian:
                _write_array(zf, "H", 0.5 * (H + H.T))
            if V is not None:
                _write_array(zf, "V", V)
            meta = {
                "format": "sgdstab-export 1",
                "source": f"PyTorch {torch.__version__}",
                "jacobian_method": how,
                "precision": str(m.dtype).replace("torch.", ""),
                "loss": loss if loss in ("half-mean", "mse") else c_scale,
                "loss_scale": c_scale,
                "n": n, "k": k, "p": m.p,
                "residual_rms": math.sqrt(float((residual ** 2).mean())),
                "max_residual": float(residual.max()),
                "target_rms": math.sqrt(target_sq / n),
                "parameters": [{"name": name, "shape": list(q.shape)}
                               for name, q in m.named],
            }
            if train_lr is not None:
                meta["train_lr"] = float(train_lr)
            if train_batch is not None:
                meta["train_batch"] = int(train_batch)
            if train_sampling is not None:
                meta["train_sampling"] = str(train_sampling)
            if extra_meta:
                meta.update(extra_meta)
            zf.writestr("meta.json", json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return meta


def _load_model(path):
    try:
        return torch.jit.load(path, map_location="cpu")
    except Exception:
        pass
    try:
        model = torch.load(path, map_location="cpu")
    except Exception as e:
        raise ExportError(f"{path}: not a TorchScript or torch.save'd model "
                          f"({type(e).__name__}: {e})".splitlines()[0])
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"{path}: holds a {type(model).__name__}, not a "
                          "torch.nn.Module (save the whole model, not its "
                          "state_dict)")
    return model


def _load_data(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [a for a in ("X", "Y") if a not in z.files]
            if missing:
                raise ExportError(f"{path}: no array {missing[0]!r} (the data "
                                  "file needs X and Y)")
            return z["X"], z["Y"]
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"{path}: not a readable .npz of X and Y "
                          f"({type(e).__name__}: {e})".splitlines()[0])


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="sgdstab-export",
        description="Write the per-sample output Jacobian J (n, k, p) of a "
        "trained PyTorch model at its training data, with the residuals, "
        "optionally the exact Hessian H, and metadata, as the .npz that "
        "sgdstab reads.")
    ap.add_argument("model", help="a TorchScript file (torch.jit.save) or a "
                    "whole model saved with torch.save")
    ap.add_argument("data", help=".npz with X (inputs, first axis n) and Y "
                    "(targets of the square loss, (n, k) or (n,))")
    ap.add_argument("-o", "--output", required=True, help="the .npz to write")
    ap.add_argument("--loss", default="half-mean",
                    help="loss convention of training: half-mean (default; "
                    "(1/2n) sum |f - y|^2), mse (torch.nn.MSELoss) or a "
                    "positive scale; sgdstab takes it as its --loss default")
    ap.add_argument("--hessian", action="store_true",
                    help="also write the exact Hessian H of the canonical "
                    "loss (refused when p > --hessian-max-params)")
    ap.add_argument("--hessian-max-params", type=int, metavar="P",
                    default=HESSIAN_MAX_PARAMS,
                    help="largest p for which --hessian writes H "
                    f"(default {HESSIAN_MAX_PARAMS}; H takes 8 p^2 bytes)")
    ap.add_argument("--chunk", type=int, default=64,
                    help="samples per chunk (default 64)")
    ap.add_argument("--lr", type=float, help="learning rate of training")
    ap.add_argument("--batch", type=int, help="batch size of training")
    ap.add_argument("--sampling", help="how training drew batches (recorded)")
    ap.add_argument("--method", default="auto",
                    choices=("auto", "functional", "autograd"),
                    help="per-sample Jacobians by torch.func/functorch "
                    "(auto: if the model allows) or autograd")
    ap.add_argument("--optimizer-state", metavar="FILE",
                    help="the optimizer of training: a torch.save'd "
                    "optimizer.state_dict(), or a checkpoint dict holding one "
                    "under 'optimizer' (settings into meta.json, Adam's "
                    "bias-corrected exp_avg_sq into V)")
    ap.add_argument("--optimizer-kind",
                    choices=("sgd", "rmsprop", "adam", "adamw"),
                    help="the optimizer's class, needed for a state_dict of "
                    "Adam or AdamW (their keys are the same)")
    ap.add_argument("--precision", default="double",
                    choices=("double", "model"),
                    help="evaluate a float64 copy (default) or the model's "
                    "own dtype")
    args = ap.parse_args(argv)
    try:
        if torch is None:
            raise ExportError("PyTorch is not installed (Debian: apt-get "
                              "install python3-torch)")
        model = _load_model(args.model)
        X, Y = _load_data(args.data)
        state = None
        if args.optimizer_state:
            try:
                state = torch.load(args.optimizer_state, map_location="cpu")
            except Exception as e:
                raise ExportError(f"{args.optimizer_state}: not a torch.save'd "
                                  f"file ({type(e).__name__}: {e})"
                                  .splitlines()[0])
        meta = export(model, X, Y, args.output, loss=args.loss,
                      hessian=args.hessian, chunk=args.chunk,
                      train_lr=args.lr, train_batch=args.batch,
                      train_sampling=args.sampling, method=args.method,
                      precision=args.precision,
                      hessian_max_params=args.hessian_max_params,
                      optimizer=state, optimizer_kind=args.optimizer_kind)
    except ExportError as e:
        print(f"sgdstab-export: {e}", file=sys.stderr)
        return 1
    print(f"{args.output}: n = {meta['n']}, k = {meta['k']}, p = {meta['p']}"
          f", RMS residual {meta['residual_rms']:.3g} (RMS target "
          f"{meta['target_rms']:.3g}), J by {meta['jacobian_method']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
