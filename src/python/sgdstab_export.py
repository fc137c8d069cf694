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

With --gram, for models whose J is too large to hold, J and V give way to

  K            (n*k, n*k) the Gram matrix J J', row i*k + o for output o of
                          sample i, accumulated in float64 over blocks of
                          parameter columns sized to --max-memory, J never
                          held whole
  KP           (n*k, n*k) only with an Adam, AdamW or RMSprop optimizer:
                          J P^-1 J' with P = diag(sqrt(V) + eps)

and meta.json gains "gram": {blocks, max_memory, peak_memory (bytes)}.

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
import contextlib
import io
import json
import math
import os
import re
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


def _full_block(m):
    """Every column: a block is a list of (parameter index, start, stop),
    a column range of that parameter flattened row-major."""
    return [(i, 0, size) for i, size in enumerate(m.sizes)]


def _width(block):
    return sum(b - a for _, a, b in block)


def _jacobian_functional(m, api, x, block):
    """Per-sample output Jacobians of a chunk with respect to the columns
    of block, (c, k, width), by vmap over jacrev of a one-sample
    functional call."""
    functional_call, jacrev, vmap, _ = api
    fixed = {name: q.detach() for name, q in m.named}
    free = {m.named[i][0]: fixed[m.named[i][0]].reshape(-1)[a:b]
            for i, a, b in block}

    def one(v, xi):
        pr = dict(fixed)
        for i, a, b in block:
            name, q = m.named[i]
            flat = fixed[name].reshape(-1)
            pr[name] = (v[name] if b - a == flat.numel() else
                        torch.cat([flat[:a], v[name], flat[b:]])
                        ).reshape(q.shape)
        return functional_call(m.module, {**pr, **m.buffers},
                               (xi.unsqueeze(0),)).reshape(-1)

    jac = vmap(jacrev(one), in_dims=(None, 0))(free, x)
    return torch.cat([jac[m.named[i][0]].reshape(x.shape[0], -1, b - a)
                      for i, a, b in block], dim=2)


def _jacobian_autograd(m, x, block, out=None):
    """The same with plain autograd, one backward pass per sample and
    output coordinate, written into out (c, k, width) if given."""
    wrt = [m.params[i] for i, _, _ in block]
    for s, xi in enumerate(x):
        f = m.outputs(xi.unsqueeze(0)).reshape(-1)
        if out is None:
            out = torch.empty(len(x), f.shape[0], _width(block),
                              dtype=f.dtype)
        for o in range(f.shape[0]):
            grads = torch.autograd.grad(f[o], wrt, retain_graph=True,
                                        allow_unused=True)
            at = 0
            for g, (_, a, b) in zip(grads, block):
                if g is None:  # the output does not depend on it
                    out[s, o, at:at + b - a] = 0
                else:
                    out[s, o, at:at + b - a] = g.reshape(-1)[a:b]
                at += b - a
    return out


class _Jacobians:
    """Per-sample Jacobians of chunks by torch.func/functorch, falling back
    to autograd (with a note) when the model refuses the functional path
    and method is "auto"; how says which is in use."""

    def __init__(self, m, method):
        self.m, self.method = m, method
        self.api = None if method == "autograd" else _functional_api()
        if method == "functional" and self.api is None:
            raise ExportError("method functional: this torch has neither "
                              "torch.func nor functorch")
        self.how = self.api[3] if self.api else "autograd"

    def __call__(self, x, block):
        if self.api is not None:
            try:
                return _jacobian_functional(self.m, self.api, x, block)
            except Exception as e:  # an op vmap/functional_call cannot take
                if self.method == "functional":
                    raise ExportError(f"{self.how} failed on this model: {e}")
                print(f"sgdstab-export: note: {self.how} failed on this "
                      f"model ({type(e).__name__}); using autograd",
                      file=sys.stderr)
                self.api, self.how = None, "autograd"
        return _jacobian_autograd(self.m, x, block)


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


@contextlib.contextmanager
def _atomic_npz(path):
    """A zip archive written to a temporary file beside path, renamed into
    place when the block ends without an exception and removed if not."""
    tmp = _temporary_beside(path)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED,
                             allowZip64=True) as zf:
            yield zf
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


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


# Gram mode caps the resident set of the whole process; what the process
# holds when the work starts is measured, the rest estimated.  GRAM_SLACK is
# kept free beyond the estimate for torch's allocator, OpenBLAS's buffers
# and the archive writer.
GRAM_SLACK = 100e6

_SIZE_UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_size(text):
    """Bytes of a SIZE as sgdstab's --max-memory takes it: a positive
    number, optionally followed by K, M, G or T (powers of 1000) and B."""
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)([KMGT]?)B?",
                         str(text), re.IGNORECASE)
    v = float(match[1]) * _SIZE_UNITS[match[2].upper()] if match else 0.0
    if not (math.isfinite(v) and v > 0):
        raise ExportError(f"max memory {str(text)!r} is not a size such as "
                          "8G or 512M")
    return v


def _format_bytes(b):
    """"24.2 GB", or "350 MB" below a gigabyte, as sgdstab says sizes."""
    return "%.1f GB" % (b / 1e9) if b >= 1e9 else "%.3g MB" % (b / 1e6)


def _proc_bytes(path, key):
    """A "Key:   123 kB" line of a /proc file in bytes, or None."""
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(":")
                if name == key:
                    return 1024 * int(value.split()[0])
    except OSError:
        pass
    return None


def _resident(key):
    """VmRSS or VmHWM of this process in bytes."""
    b = _proc_bytes("/proc/self/status", key)
    if b is None:
        raise ExportError(f"--gram: cannot read {key} in /proc/self/status "
                          "(the memory cap needs Linux's /proc)")
    return b


def _memory_cap(max_memory):
    """(bytes, where the figure comes from): max_memory if given, but no
    more than MemAvailable plus what this process holds already; by default
    half of MemAvailable."""
    avail = _proc_bytes("/proc/meminfo", "MemAvailable")
    if max_memory is None:
        if avail is None:
            raise ExportError("--gram: cannot read MemAvailable in "
                              "/proc/meminfo; give --max-memory")
        return avail / 2, "half of MemAvailable in /proc/meminfo"
    if avail is not None and max_memory > avail + _resident("VmRSS"):
        return (avail + _resident("VmRSS"), "MemAvailable in /proc/meminfo "
                "plus this process's resident set, less than the limit given")
    return max_memory, "the limit given"


def _saved_bytes(m, x):
    """Bytes autograd saves for the backward pass of a forward pass of x,
    the parameters and buffers left out: the activations that a Jacobian
    of x holds."""
    def storage(t):
        return getattr(t, "untyped_storage", t.storage)().data_ptr()

    own = {storage(t) for t in m.params + list(m.buffers.values())}
    total = 0

    def pack(t):
        nonlocal total
        if storage(t) not in own:
            total += t.numel() * t.element_size()
        return t

    with torch.enable_grad(), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m.outputs(x)
    return total


def _gram_plan(m, n, k, chunk, cap, source, with_KP, act, block_params):
    """Blocks of columns [(block, c)] sized so that the process stays within
    cap bytes.  The rows of J for one block, n*k by at most B columns, are
    held throughout; beside them a transient budget T takes the work of
    one chunk.  Consecutive whole parameters form a block while they fit,
    with per-sample Jacobians of chunks of c samples; a parameter that does
    not fit alone is cut into column ranges (c = None) done by autograd one
    sample and output at a time: each pass needs the gradient of the whole
    parameter, and one at a time that is its only copy.  block_params caps
    B.  ExportError, before any work, when not even one column fits."""
    N = n * k
    held = _resident("VmRSS")
    gram_bytes = 8.0 * N * N * (2 if with_KP else 1)
    room = cap - held - gram_bytes - GRAM_SLACK
    # one pass of a column range: activations, the parameter's gradient
    one_pass = act * (k + 2) + 16 * max(m.sizes)
    least = max(8 * N + one_pass, 8 * N * 8 / 7)
    if room < least:
        raise ExportError(
            "--gram: not enough memory: needs about %s (K %d x %d as float64"
            "%s %s, %s held by torch, the model and the data, %s for the "
            "smallest block of columns, %s for torch's buffers), more than "
            "the %s available (%s)"
            % (_format_bytes(held + gram_bytes + GRAM_SLACK + least), N, N,
               " and KP" if with_KP else "", _format_bytes(gram_bytes),
               _format_bytes(held), _format_bytes(least),
               _format_bytes(GRAM_SLACK), _format_bytes(cap), source))
    B = int(min(m.p, block_params or m.p,
                (room - max(room / 8, one_pass)) // (8 * N)))
    T = room - 8 * N * B

    def chunk_for(w):
        # a chunk's activations and their gradients for the k outputs, the
        # gradients of the block's parameters, its columns in pieces and
        # concatenated: as many samples as T takes, 0 if not one
        return min(chunk, n, int(T // (act * (k + 2) + 24 * k * w)))

    def fits(w):
        return w <= B and chunk_for(w) >= 1

    plan, cur, w = [], [], 0
    for i, size in enumerate(m.sizes):
        if cur and not fits(w + size):
            plan.append((cur, chunk_for(w)))
            cur, w = [], 0
        if fits(size):
            cur.append((i, 0, size))
            w += size
            continue
        width = -(-size // -(-size // B))  # equal ranges of at most B
        plan += [([(i, a, min(a + width, size))], None)
                 for a in range(0, size, width)]
    if cur:
        plan.append((cur, chunk_for(w)))
    return plan


def _progress(total):
    """Blocks done out of total, one line on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        return lambda done: None

    def show(done):
        print(f"\rsgdstab-export: Gram matrix, block {done}/{total}",
              end="\n" if done == total else "", file=sys.stderr, flush=True)
    return show


def _symmetric(G):
    """The upper triangle of the Fortran-order G copied onto the lower one,
    in strips; returned in C order (G.T, equal to G)."""
    N = G.shape[0]
    step = max(1, 2 ** 20 // N)
    for r in range(0, N, step):
        s = slice(r, min(r + step, N))
        G[s, :r] = G[:r, s].T
        G[s, s] = np.triu(G[s, s]) + np.triu(G[s, s], 1).T
    return G.T


def _gram(m, jac, X, k, plan, scale):
    """K = J J' of the per-sample output Jacobians J (n*k rows, sample-major)
    and, when scale (one value per column) is given, KP = (J diag(scale))
    (J diag(scale))', accumulated in float64 one block of columns at a time,
    without J.  Returns [K] or [K, KP]."""
    from scipy.linalg.blas import dsyrk
    n = X.shape[0]
    N = n * k
    grams = [np.zeros((N, N), order="F")
             for _ in range(1 if scale is None else 2)]
    offset = np.cumsum([0] + m.sizes)
    rows = np.empty(N * max(_width(block) for block, _ in plan))
    show = _progress(len(plan))
    for done, (block, c) in enumerate(plan, 1):
        w = _width(block)
        Jb = rows[:N * w].reshape(N, w)
        for start in range(0, n, c or 1):
            x = X[start:start + (c or 1)]
            at = Jb[start * k:(start + len(x)) * k]
            if c:
                at[:] = jac(x, block).detach().to(torch.float64) \
                    .reshape(-1, w).numpy()
            else:
                _jacobian_autograd(m, x, block, torch.from_numpy(at)
                                   .view(len(x), k, w))
        # C += A'A with A = Jb' (Fortran order, not copied): the upper
        # triangle of G += Jb Jb'
        grams[0] = dsyrk(1.0, Jb.T, beta=1.0, c=grams[0], trans=1,
                         overwrite_c=1)
        if scale is not None:
            Jb *= np.concatenate([scale[offset[i] + a:offset[i] + b]
                                  for i, a, b in block])
            grams[1] = dsyrk(1.0, Jb.T, beta=1.0, c=grams[1], trans=1,
                             overwrite_c=1)
        show(done)
    return [_symmetric(G) for G in grams]


def export(model, X, Y, path, *, loss="half-mean", hessian=False, chunk=64,
           train_lr=None, train_batch=None, train_sampling=None,
           method="auto", precision="double",
           hessian_max_params=HESSIAN_MAX_PARAMS, extra_meta=None,
           optimizer=None, optimizer_kind=None, gram=False, max_memory=None,
           block_params=None):
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
    gram: write the Gram matrix K = J J' (n*k, n*k) instead of J, computed
        one block of columns at a time so that J is never held, and with
        an Adam, AdamW or RMSprop optimizer KP = J P^-1 J' with
        P = diag(sqrt(V) + eps) instead of V; no H.
    max_memory: with gram, the most the process may hold (resident set),
        in bytes or a SIZE string such as "8G" (powers of 1000); by default
        half of MemAvailable.  Refused with ExportError, before any work,
        when not even K and one column fit.
    block_params: with gram, at most this many columns per block (a
        parameter with more is split into column ranges); a testing aid,
        the memory cap alone sizes the blocks otherwise.
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
    if gram and hessian:
        raise ExportError("--hessian with --gram: the Gram mode writes K in "
                          "place of J and no Hessian")
    if not gram and (max_memory is not None or block_params is not None):
        raise ExportError("--max-memory (and block_params) size the blocks "
                          "of --gram; without it J is streamed")
    if block_params is not None and (int(block_params) != block_params
                                     or block_params < 1):
        raise ExportError(f"block_params {block_params!r}: expected a whole "
                          "number >= 1")
    if isinstance(max_memory, str):
        max_memory = parse_size(max_memory)
    elif max_memory is not None and not (math.isfinite(max_memory)
                                         and max_memory > 0):
        raise ExportError(f"max_memory {max_memory!r}: expected a positive "
                          "number of bytes")

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
        return _export(m, X, Y, path, loss, hessian, int(chunk),
                       (train_lr, train_batch, train_sampling), method,
                       hessian_max_params, extra, V,
                       (max_memory, block_params) if gram else None)
    finally:
        model.train(was_training)


def _data(m, X, Y):
    """X and Y as tensors of the model's dtype, Y as (n, k), checked against
    the model; returns X, Y, n, k."""
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
    return X, Y, n, k


def _residuals(m, X, Y, chunk):
    """R = f(x_i) - y_i, (n, k) in float64."""
    with torch.no_grad():
        return np.concatenate([
            (m.outputs(X[s:s + chunk]) - Y[s:s + chunk]).to(torch.float64)
            .numpy() for s in range(0, X.shape[0], chunk)])


def _write_jacobian(zf, m, jac, X, Y, k, chunk, hessian):
    """J streamed into zf chunk by chunk; returns H (symmetrized) with
    hessian, else None."""
    n = X.shape[0]
    H = np.zeros((m.p, m.p)) if hessian else None
    block = _full_block(m)
    with zf.open("J.npy", "w", force_zip64=True) as f:
        f.write(_npy_header((n, k, m.p)))
        for start in range(0, n, chunk):
            x, y = X[start:start + chunk], Y[start:start + chunk]
            f.write(np.ascontiguousarray(
                jac(x, block).detach().to(torch.float64).numpy(),
                dtype="<f8").tobytes())
            if hessian:
                Hc = _hessian_functional(m, jac.api, x, y, n) if jac.api \
                    else _hessian_autograd(m, x, y, n)
                H += Hc.detach().to(torch.float64).numpy()
    return None if H is None else 0.5 * (H + H.T)


def _export(m, X, Y, path, loss, hessian, chunk, train, method,
            hessian_max_params, extra_meta, V, gram):
    X, Y, n, k = _data(m, X, Y)
    c_scale = loss_scale(loss, k)
    if hessian and m.p > hessian_max_params:
        raise ExportError(f"--hessian: p = {m.p} parameters exceeds the "
                          f"limit {hessian_max_params} (a dense p x p "
                          "Hessian); raise it explicitly if intended")
    jac = _Jacobians(m, method)
    if gram is not None:
        max_memory, block_params = gram
        cap, source = _memory_cap(max_memory)
        plan = _gram_plan(m, n, k, chunk, cap, source, V is not None,
                          _saved_bytes(m, X[:1]), block_params)
        print(f"sgdstab-export: using up to {_format_bytes(cap)} ({source})",
              file=sys.stderr)

    with _atomic_npz(path) as zf:
        if gram is None:
            H = _write_jacobian(zf, m, jac, X, Y, k, chunk, hessian)
            if H is not None:
                _write_array(zf, "H", H)
            if V is not None:
                _write_array(zf, "V", V)
        else:
            scale = None if V is None else \
                (np.sqrt(V) + extra_meta["optimizer"]["eps"]) ** -0.5
            for name, G in zip(("K", "KP"), _gram(m, jac, X, k, plan, scale)):
                _write_array(zf, name, G)
        R = _residuals(m, X, Y, chunk)
        residual = np.sqrt((R ** 2).sum(axis=1))
        _write_array(zf, "residual", residual)
        _write_array(zf, "R", R)
        train_lr, train_batch, train_sampling = train
        how = jac.how
        if gram is not None and how != "autograd" and \
                any(c is None for _, c in plan):
            how += " (column ranges of a parameter by autograd)"
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
            "target_rms": math.sqrt(float((Y ** 2).sum()) / n),
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
        if gram is not None:
            meta["gram"] = {"blocks": len(plan), "max_memory": int(cap),
                            "peak_memory": _resident("VmHWM")}
        zf.writestr("meta.json", json.dumps(meta, indent=2) + "\n")
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


def _size_argument(text):
    try:
        return parse_size(text)
    except ExportError as e:
        raise argparse.ArgumentTypeError(str(e))


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="sgdstab-export",
        description="Write the per-sample output Jacobian J (n, k, p) of a "
        "trained PyTorch model at its training data (or with --gram its Gram "
        "matrix K = J J'), with the residuals, optionally the exact Hessian "
        "H, and metadata, as the .npz that sgdstab reads.")
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
    ap.add_argument("--gram", action="store_true",
                    help="write the Gram matrix K = J J' (n*k x n*k, "
                    "float64) in place of J, and with an Adam, AdamW or "
                    "RMSprop optimizer KP = J P^-1 J', P = diag(sqrt(V) + "
                    "eps), in place of V; J is never held: it is computed "
                    "one block of parameter columns at a time")
    ap.add_argument("--max-memory", metavar="SIZE", type=_size_argument,
                    help="with --gram, the most the process may hold "
                    "(resident set), which sizes the blocks: bytes or with "
                    "K, M, G, T (powers of 1000), e.g. 8G; default half of "
                    "MemAvailable")
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
                      optimizer=state, optimizer_kind=args.optimizer_kind,
                      gram=args.gram, max_memory=args.max_memory)
    except ExportError as e:
        print(f"sgdstab-export: {e}", file=sys.stderr)
        return 1
    how = f"J by {meta['jacobian_method']}"
    if args.gram:
        g = meta["gram"]
        how = (f"K by {meta['jacobian_method']}, {g['blocks']} block"
               f"{'' if g['blocks'] == 1 else 's'}, peak memory "
               f"{_format_bytes(g['peak_memory'])} of the "
               f"{_format_bytes(g['max_memory'])} cap")
    print(f"{args.output}: n = {meta['n']}, k = {meta['k']}, p = {meta['p']}"
          f", RMS residual {meta['residual_rms']:.3g} (RMS target "
          f"{meta['target_rms']:.3g}), {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
