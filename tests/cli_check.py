#!/usr/bin/python3
"""Helper of test_cli.sh: reads the fixture manifest and checks the JSON
printed by `sgdstab info --json` against NumPy's numbers.

  cli_check.py problems MANIFEST           file<TAB>rtol<TAB>rank per line
                                           (rtol "-" = default)
  cli_check.py bad MANIFEST                file<TAB>alt1|alt2|... per line
  cli_check.py info MANIFEST FILE OUT [RTOL]
                                           check OUT (stdout of info --json)
  cli_check.py info-loss SGDSTAB WORKDIR   info and analyze agree on the
                                           loss convention (below)
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_harness import close_rel, npz_with_meta  # noqa: E402


def load(manifest):
    with open(manifest) as f:
        return json.load(f)


def check_info(m, name, out, rtol):
    e = next((p for p in m["problems"] if p["file"] == name), None)
    if e is None:
        return ["%s is not a problem of the manifest" % name]
    with open(out) as f:
        text = f.read()
    try:
        got = json.loads(text)
    except ValueError as exc:
        return ["stdout is not one JSON document (%s): %r" % (exc, text[:200])]
    if not isinstance(got, dict):
        return ["JSON is not an object"]
    errs = []
    keys = ["file", "n", "k", "p", "dtype", "rank", "rank_rtol", "rank_tol",
            "null_dim", "sigma_max", "lambda_max_G", "trace_G", "has_hessian",
            "hessian_dtype"]
    missing = [k for k in keys if k not in got]
    if missing:
        return ["missing keys %s in %s" % (missing, sorted(got))]

    def int_eq(key, want):
        v = got[key]
        if not (isinstance(v, int) and not isinstance(v, bool) and v == want):
            errs.append("%s = %r, expected %d" % (key, v, want))

    def num_close(key, want, rel):
        v = got[key]
        if not close_rel(v, want, rel):
            errs.append("%s = %r, expected %r (rel %g)" % (key, v, want, rel))

    if name not in got["file"]:
        errs.append("file = %r does not name %s" % (got["file"], name))
    for key in ("n", "k", "p"):
        int_eq(key, e[key])
    if got["dtype"] != e["dtype"]:
        errs.append("dtype = %r, expected %r" % (got["dtype"], e["dtype"]))
    if got["has_hessian"] is not e["has_hessian"]:
        errs.append("has_hessian = %r" % got["has_hessian"])
    if got["hessian_dtype"] != e["hessian_dtype"]:
        errs.append("hessian_dtype = %r, expected %r"
                    % (got["hessian_dtype"], e["hessian_dtype"]))
    num_close("sigma_max", e["sigma_max"], 1e-12)
    num_close("lambda_max_G", e["lambda_max_G"], 1e-12)
    num_close("trace_G", e["trace_G"], 1e-12)
    if rtol is None:
        rank = e["rank"]
        num_close("rank_rtol", e["rank_rtol"], 1e-15)
        num_close("rank_tol", e["rank_tol"], 1e-12)
    else:
        rtol = float(rtol)
        want = [r for t, r in e["ranks_at"] if t == rtol]
        if not want:
            return ["no rank for rtol %r in the manifest" % rtol]
        rank = want[0]
        # 17 significant digits: the given value comes back exactly.
        if got["rank_rtol"] != rtol:
            errs.append("rank_rtol = %r, expected exactly %r"
                        % (got["rank_rtol"], rtol))
        num_close("rank_tol", rtol * e["sigma_max"], 1e-12)
    int_eq("rank", rank)
    # directions that never move: p - rank without H; with H the part of
    # null(H) that J does not move either (manifest, by NumPy)
    if rtol is None:
        int_eq("null_dim", e["null_dim"])
    elif not e["has_hessian"]:
        int_eq("null_dim", e["p"] - rank)
    return errs


def sgdstab_json(exe, *args):
    p = subprocess.run([exe, *args, "--json"], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    if p.returncode or p.stderr:
        raise RuntimeError("%s: status %d, stderr %r"
                           % (" ".join(args), p.returncode, p.stderr))
    return json.loads(p.stdout)


def check_info_loss(exe, work):
    """info's sharpness and tr H are in the loss convention in force and
    equal analyze's: meta.json loss "mse" with k = 3 (c = 2/k), then
    --loss 0.5 over it, then a supplied H.  The reference is c times the
    eigenvalues of J^T J / n (or of H) by NumPy; lambda_max_G and trace_G
    stay those of the unscaled G."""
    import numpy as np
    rng = np.random.default_rng(2025)
    n, k, p = 20, 3, 6
    J = rng.standard_normal((n, k, p))
    G = np.einsum("iop,ioq->pq", J, J) / n
    Q = np.linalg.qr(rng.standard_normal((p, p)))[0]
    H = Q @ np.diag(np.linspace(0.5, 9.0, p)) @ Q.T
    H = (H + H.T) / 2
    errs = []
    for name, hess, opts, c, loss in (
            ("mse", None, [], 2 / k, "mse"),
            ("mse", None, ["--loss", "0.5"], 0.5, "0.5"),
            ("mse-H", H, [], 2 / k, "mse")):
        path = os.path.join(work, name + ".npz")
        npz_with_meta(path, J, {"loss": "mse"}, hess)
        ref = G if hess is None else hess
        want_sharp = c * np.linalg.eigvalsh(ref)[-1]
        want_trace = c * np.trace(ref)
        tag = "%s %s: " % (name, " ".join(opts))
        try:
            info = sgdstab_json(exe, "info", path, *opts)
            an = sgdstab_json(exe, "analyze", path, "--lr", "0.1", "--batch",
                              "4", *opts)
        except RuntimeError as exc:
            errs.append(tag + str(exc))
            continue
        if info.get("loss") != loss:
            errs.append(tag + "loss = %r, want %r" % (info.get("loss"), loss))
        for key, want, rel in (
                ("loss_scale", c, 1e-15), ("sharpness", want_sharp, 1e-10),
                ("hessian_trace", want_trace, 1e-10),
                ("lambda_max_G", np.linalg.eigvalsh(G)[-1], 1e-10),
                ("trace_G", np.trace(G), 1e-10)):
            v = info.get(key)
            if not close_rel(v, want, rel):
                errs.append(tag + "info %s = %r, want %r" % (key, v, want))
        for key in ("loss_scale", "sharpness", "hessian_trace"):
            if key in info and not close_rel(info[key], an[key], 1e-12):
                errs.append(tag + "info %s = %r but analyze %r"
                            % (key, info[key], an[key]))
    return errs


def main():
    cmd, manifest = sys.argv[1], sys.argv[2]
    if cmd == "info-loss":
        errs = check_info_loss(manifest, sys.argv[3])
        for x in errs:
            print("    " + x)
        sys.exit(1 if errs else 0)
    m = load(manifest)
    if cmd == "problems":
        for e in m["problems"]:
            print("%s\t-\t%d" % (e["file"], e["rank"]))
            for t, r in e["ranks_at"]:
                print("%s\t%r\t%d" % (e["file"], t, r))
    elif cmd == "bad":
        for e in m["bad"]:
            print("%s\t%s" % (e["file"], "|".join(e["cli_any"])))
    elif cmd == "info":
        name, out = sys.argv[3], sys.argv[4]
        rtol = sys.argv[5] if len(sys.argv) > 5 else None
        errs = check_info(m, name, out, rtol)
        for x in errs:
            print("    " + x)
        sys.exit(1 if errs else 0)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
