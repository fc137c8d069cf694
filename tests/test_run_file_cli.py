"""`sgdstab run` with "problem": every case of the spec analyzes a problem
file (J, or its Gram matrix K) in place of a synthetic minimum, and gives
the numbers of the per-command tools on that file.

  * J (n = 20, k = 3, p = 9) in a .npy beside the spec, named relatively:
    critical.csv's eta*(B) = `critical FILE --batch ... --json` (1e-9
    relative) at the spec's sampling and loss; every verify.csv row's
    verdict and spectral radius = `verify` at its batch and lr; cases.csv
    (input jacobian, d and residual empty) and summary.json's "problem"
    object; the report names the file as the spec gives it.
  * The same J as K = J J' with meta.json n, k, p: eta*(B) = J's (1e-9);
    K whose meta.json gives no p: p empty in cases.csv, null in
    summary.json, "unknown" in the report, and "problem_params" gives it.
  * The loss convention of the file's meta.json (4) without "loss" in the
    spec, and "loss" overriding it, as `critical` without / with --loss;
    residuals R: cases.csv's residual = max |R|; a momentum sweep =
    `critical --momentum`; the momentum of the file's meta.json optimizer
    = `critical FILE` (which takes it), "optimizer": {} = --momentum 0.
  * A phase section: phase.csv and phase-boundary.csv = `phase FILE --csv
    --boundary-csv` (numbers to 1e-9 relative).
  * Refusals, each exit 1, nothing on stdout, one stderr line naming the
    spec and the key, no output directory: "problem" beside "family",
    "params" or a sweep of synth's parameters; "problem_params" of the
    wrong type, without "problem", against J's p; a missing file, a
    malformed fixture and a K that is not positive semidefinite (the line
    ends in the loader's message, that of `sgdstab info FILE`); "exit" on
    K without p; an Adam file; "lr" with the file's momentum.
  * The shipped problems/run-from-file.json runs; its eta*(B) are
    critical's on problems/example.npy.

Usage: test_run_file_cli.py SGDSTAB"""

import json
import os
import sys

import numpy as np

import cli_harness as h

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES_HEAD = ("case,input,n,k,p,d,rank,residual,sharpness,hessian_frobenius,"
              "hessian_trace,nonuniformity,alignment_min,lr_critical_mean")


def run_spec(work, name, spec):
    """spec as WORK/NAME.json run into WORK/NAME-out: (spec path, output
    directory, result)."""
    path = os.path.join(work, name + ".json")
    with open(path, "w") as f:
        json.dump(spec, f)
    out = os.path.join(work, name + "-out")
    return path, out, h.run("run", path, "--out", out, "--quiet")


def table(out, name):
    """The rows of OUT/NAME as dicts."""
    _, head, rows = h.read_csv(os.path.join(out, name))
    return [dict(zip(head.split(","), r)) for r in rows]


def summary_case(out, c=0):
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)["cases"][c]


def ran(name, res):
    """The run succeeded; else a FAIL line.  Returns whether it did."""
    if res.rc != 0:
        h.report(name, ["exit status %d" % res.rc], res)
    return res.rc == 0


def etas(rows):
    return [float(r["lr_critical"]) for r in rows]


def critical_errors(rows, args):
    """rows of critical.csv (one case) against `critical ARGS --json` at
    their batch sizes."""
    batches = ",".join(r["batch"] for r in rows)
    d, res, e = h.run_json("critical", *args, "--batch", batches)
    if d is None:
        return e + [res.err.strip()]
    for r, x in zip(rows, d["critical"]):
        if not h.close_rel(float(r["lr_critical"]), x["lr_critical"],
                           h.ETA_REL):
            e.append("B = %s: run %s, critical %r" % (r["batch"],
                                                      r["lr_critical"],
                                                      x["lr_critical"]))
    return e


def same_etas(a, b):
    return [] if len(a) == len(b) and all(
        h.close_rel(x, y, h.ETA_REL) for x, y in zip(a, b)) else \
        ["eta*(B) %r, expected %r" % (a, b)]


def test_jacobian(work, J):
    spec = {"problem": "J.npy", "batch": [1, 4, 12, 20], "sampling": "with",
            "loss": "mse", "lr": [0.3], "lr_factors": [0.5, 1.5]}
    path, out, res = run_spec(work, "jac", spec)
    if not ran("J file", res):
        return None
    opts = ["--sampling", "with", "--loss", "mse"]
    crit = table(out, "critical.csv")
    h.report("J file: critical.csv = critical --json",
             critical_errors(crit, [os.path.join(work, "J.npy")] + opts),
             res)
    e = []
    for r in table(out, "verify.csv"):
        d, vres, ve = h.run_json("verify", os.path.join(work, "J.npy"),
                                 "--lr", r["lr"], "--batch", r["batch"],
                                 *opts)
        if d is None:
            e += ve
        elif r["verdict"] != d["verdict"] or not h.close_abs(
                float(r["spectral_radius"]), d["spectral_radius"],
                h.RHO_ABS * max(1.0, d["spectral_radius"])):
            e.append("B %s lr %s: %s rho %s, verify %s rho %r"
                     % (r["batch"], r["lr"], r["verdict"],
                        r["spectral_radius"], d["verdict"],
                        d["spectral_radius"]))
    h.report("J file: verify.csv verdicts = verify --json", e, res)
    text, head, rows = h.read_csv(os.path.join(out, "cases.csv"))
    e = [] if head == CASES_HEAD else ["cases.csv header %r" % head]
    if rows[0][1:8] != ["jacobian", "20", "3", "9", "", "9", ""]:
        e.append("cases.csv row %r" % rows[0])
    jc = summary_case(out)
    want = {"file": "J.npy", "input": "jacobian", "n": 20, "k": 3, "p": 9,
            "d": None, "residual": None, "loss": "mse"}
    if jc.get("problem") != want or "meta" in jc:
        e.append("summary.json case: problem %r, meta %s"
                 % (jc.get("problem"), "meta" in jc))
    with open(os.path.join(out, "report.md")) as f:
        report = f.read()
    if "Problem file `J.npy` (input `jacobian`), sampling `with`, " \
       "loss `mse`" not in report:
        e.append("report.md does not name the file")
    h.report("J file: cases.csv, summary.json, report.md", e, res)
    return etas(crit)


def test_gram(work, jac_etas):
    base = {"batch": [1, 4, 12, 20], "sampling": "with", "loss": "mse"}
    for name, spec, p_csv, p_json in (
            ("K with meta n k p", {"problem": "K.npz"}, "9", 9),
            ("K without p", {"problem": "Knop.npz"}, "", None),
            ("K without p, problem_params",
             {"problem": "Knop.npz", "problem_params": 9}, "9", 9)):
        _, out, res = run_spec(work, "gram", dict(base, **spec))
        if not ran(name, res):
            continue
        e = same_etas(etas(table(out, "critical.csv")), jac_etas)
        row = table(out, "cases.csv")[0]
        got = (row["input"], row["p"], summary_case(out)["problem"]["p"])
        if got != ("gram", p_csv, p_json):
            e.append("input, p in cases.csv and summary.json: %r" % (got,))
        with open(os.path.join(out, "report.md")) as f:
            if p_json is None and "| 20 | unknown |" not in f.read():
                e.append("report.md: p not 'unknown'")
        h.report("%s: eta*(B) = J's" % name, e, res)


def test_file_settings(work, J, rng):
    """The file's loss, residuals and optimizer; a momentum sweep."""
    n, k, p = J.shape
    R = rng.standard_normal((n, k))
    loss = h.npz_with_meta(os.path.join(work, "Jloss.npz"), J, {"loss": 4},
                           R=R)
    for name, spec, opts, shown in (
            ("the file's loss", {}, [], "4 from the file's metadata"),
            ("the spec's loss", {"loss": "half-mean"},
             ["--loss", "half-mean"], "half-mean")):
        _, out, res = run_spec(work, "loss", dict(
            {"problem": "Jloss.npz", "batch": [2, 20]}, **spec))
        if not ran(name, res):
            continue
        e = critical_errors(table(out, "critical.csv"), [loss] + opts)
        residual = float(table(out, "cases.csv")[0]["residual"])
        if not h.close_rel(residual, np.abs(R).max(), 1e-15):
            e.append("residual %r, max |R| %r" % (residual,
                                                   np.abs(R).max()))
        with open(os.path.join(out, "report.md")) as f:
            if "loss `%s`" % shown not in f.read():
                e.append("report.md lacks loss `%s`" % shown)
        h.report("%s (R in the file): critical.csv = critical" % name, e,
                 res)
    jpath = os.path.join(work, "J.npy")
    _, out, res = run_spec(work, "sweep", {
        "problem": "J.npy", "batch": [2, 20],
        "sweep": {"momentum": [0, 0.5]}})
    if ran("momentum sweep", res):
        rows = table(out, "critical.csv")
        e = []
        for m in ("0", "0.5"):
            e += critical_errors([r for r in rows if r["momentum"] == m],
                                 [jpath, "--momentum", m])
        h.report("momentum sweep: critical.csv = critical --momentum", e,
                 res)
    mom = os.path.join(work, "Jmom.npz")
    for name, spec, opts in (
            ("the file's optimizer", {}, []),
            ("'optimizer' over the file's", {"optimizer": {}},
             ["--momentum", "0"])):
        _, out, res = run_spec(work, "mom", dict(
            {"problem": "Jmom.npz", "batch": [2, 20]}, **spec))
        if ran(name, res):
            h.report("%s: critical.csv = critical" % name, critical_errors(
                table(out, "critical.csv"), [mom] + opts), res)


def same_table(a, b):
    """Two CSV files: the same header and rows, numbers to 1e-9."""
    ta, ha, ra = h.read_csv(a)
    tb, hb, rb = h.read_csv(b)
    if ha != hb or len(ra) != len(rb):
        return ["%s: header or rows differ from %s" % (a, b)]
    e = []
    for x, y in zip(ra, rb):
        for u, v in zip(x, y):
            fu, err_u = h.csv_number(u)
            fv, err_v = h.csv_number(v)
            if u != v and (err_u or err_v or
                           not h.close_rel(fu, fv, h.ETA_REL)):
                e.append("%s: %s, phase %s" % (os.path.basename(a), u, v))
    return e


def test_phase(work):
    _, out, res = run_spec(work, "phase", {
        "problem": "J.npy", "batch": [1, 4, 20], "sampling": "bernoulli",
        "phase": {"lr": "0.1:2:6"}})
    if not ran("phase", res):
        return
    grid, bd = os.path.join(work, "g.csv"), os.path.join(work, "b.csv")
    pres = h.run("phase", os.path.join(work, "J.npy"), "--batch", "1,4,20",
                 "--lr", "0.1:2:6", "--sampling", "bernoulli", "--csv", grid,
                 "--boundary-csv", bd, "--quiet")
    e = ["phase: exit %d" % pres.rc] if pres.rc else []
    e += same_table(os.path.join(out, "phase.csv"), grid)
    e += same_table(os.path.join(out, "phase-boundary.csv"), bd)
    h.report("phase section = sgdstab phase --csv --boundary-csv", e, res)


def fixture(name):
    """A file of the build's fixtures (make_npy_fixtures.py)."""
    d = os.environ.get("SGDSTAB_FIXTURES") or os.path.join(
        os.path.dirname(os.path.dirname(h.SGDSTAB)), "tests", "fixtures")
    return os.path.join(d, name)


def loader_message(path):
    """What `sgdstab info FILE` says of a file it cannot use."""
    res = h.run("info", path)
    return res.err.strip().split("sgdstab: ", 1)[-1]


def test_refusals(work, J):
    n, k, p = J.shape
    K = J.reshape(n * k, p) @ J.reshape(n * k, p).T
    K[0, 0] -= 10 * np.abs(K).max()
    bad_k = h.npz_with_meta(os.path.join(work, "Kbad.npz"), None, {"n": n},
                            K=K)
    h.npz_with_meta(os.path.join(work, "Jadam.npz"), J,
                    {"optimizer": {"kind": "adam"}}, V=np.ones(p))
    exit_ = {"radius": 1, "noise_scale": 0.1, "series": [
        {"alpha": 1.5, "clip": 0.7, "lr": [0.1, 0.2]}]}
    base = {"problem": "J.npy", "batch": [1, 4]}
    missing = os.path.join(work, "missing.npy")
    malformed = fixture("bad_magic.npy")
    cases = [
        ("beside family", dict(base, family="linear"), "key 'family'", None),
        ("beside params", dict(base, params={"samples": 10}), "key 'params'",
         None),
        ("sweep of a synth parameter", dict(base, sweep={"width": [3, 4]}),
         "key 'sweep.width'", None),
        ("problem_params a string", dict(base, problem_params="9"),
         "key 'problem_params'", None),
        ("problem_params without problem",
         {"family": "linear", "batch": [1], "problem_params": 9},
         "key 'problem_params'", None),
        ("problem_params against J's p", dict(base, problem_params=10),
         "key 'problem': ", "J has p = 9 parameters, not the 10 given"),
        ("missing file", dict(base, problem="missing.npy"), "key 'problem': ",
         loader_message(missing)),
        ("malformed fixture", dict(base, problem=malformed),
         "key 'problem': ", loader_message(malformed)),
        ("K not positive semidefinite", dict(base, problem="Kbad.npz"),
         "key 'problem': ", loader_message(bad_k)),
        ("exit on K without p", dict(base, problem="Knop.npz", exit=exit_),
         "key 'exit'", "problem_params"),
        ("an Adam file", dict(base, problem="Jadam.npz"), "key 'problem'",
         "Adam"),
        ("lr with the file's momentum",
         dict(base, problem="Jmom.npz", lr=[0.1]), "key 'lr'", "meta.json"),
    ]
    for name, spec, key, message in cases:
        path, out, res = run_spec(work, "bad", spec)
        e = h.failure_errors(res, (1,))
        line = res.err.strip()
        if not line.startswith("sgdstab run: %s: %s" % (path, key)):
            e.append("stderr does not open with the spec and %r" % key)
        if message and not (line.endswith(message) if key.endswith(": ")
                            else message in line):
            e.append("stderr lacks %r" % message)
        if os.path.exists(out):
            e.append("%s was created" % out)
        h.report("refused: %s" % name, e, res)


def test_shipped_example(work):
    out = os.path.join(work, "example")
    res = h.run("run", os.path.join(TOP, "problems", "run-from-file.json"),
                "--out", out, "--quiet")
    if not ran("problems/run-from-file.json", res):
        return
    e = critical_errors(table(out, "critical.csv"),
                        [os.path.join(TOP, "problems", "example.npy")])
    for f in ("phase.png", "verify.csv", "report.md"):
        if not os.path.isfile(os.path.join(out, f)):
            e.append("no %s" % f)
    h.report("problems/run-from-file.json: critical.csv = critical", e, res)


def write_problems(work, J):
    """J.npy; K = J J' as K.npz (meta.json n, k, p) and Knop.npz (n only);
    J with a meta.json optimizer of momentum 0.5 as Jmom.npz."""
    n, k, p = J.shape
    A = J.reshape(n * k, p)
    np.save(os.path.join(work, "J.npy"), J)
    h.npz_with_meta(os.path.join(work, "K.npz"), None,
                    {"n": n, "k": k, "p": p}, K=A @ A.T)
    h.npz_with_meta(os.path.join(work, "Knop.npz"), None, {"n": n},
                    K=A @ A.T)
    h.npz_with_meta(os.path.join(work, "Jmom.npz"), J, {
        "optimizer": {"kind": "sgd", "momentum": 0.5}})


def body(work):
    rng = np.random.default_rng(11)
    J = rng.standard_normal((20, 3, 9)) / 3
    write_problems(work, J)
    jac_etas = test_jacobian(work, J)
    if jac_etas:
        test_gram(work, jac_etas)
    test_file_settings(work, J, rng)
    test_phase(work)
    test_refusals(work, J)
    test_shipped_example(work)
    return None


if __name__ == "__main__":
    sys.exit(h.main(__doc__, "run-file", body))
