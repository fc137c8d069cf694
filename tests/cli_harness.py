"""Shared harness of the command-line test scripts: run the sgdstab binary,
collect pass/fail lines, print failures with the command and its output;
the checks of numbers, CSV files and failing commands that the scripts
share."""

import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

SGDSTAB = None   # path of the binary, set by the test script
npass = 0
nfail = 0

# The engine's documented accuracies, the same in every script that checks
# it (engine-cli, verify-cli, phase-cli; each docstring gives the reasons):
RHO_ABS = 1e-10      # rho_⊥ (error estimate <= 1e-11 rho)
ETA_REL = 1e-9       # eta*(B), relative (the engine's documented 1e-10)
EXACT_REL = 1e-12    # one well-conditioned eigenvalue or a sum, relative
SPEC_REL = 1e-9      # extreme eigenvalues of small symmetric matrices
SAMPLINGS = ("without", "with", "bernoulli")


def ok(name):
    global npass
    npass += 1
    print("ok    " + name)


def fail(name, msgs, res=None):
    global nfail
    nfail += 1
    print("FAIL  " + name)
    for m in msgs[:12]:
        print("      " + m)
    if len(msgs) > 12:
        print("      ... %d more" % (len(msgs) - 12))
    if res is not None:
        print("      command: " + " ".join(res.cmd))
        print("      --- stdout:")
        for line in res.out[:2000].splitlines():
            print("      | " + line)
        print("      --- stderr:")
        for line in res.err[:2000].splitlines():
            print("      | " + line)


def report(name, msgs, res=None):
    if msgs:
        fail(name, msgs, res)
    else:
        ok(name)


class Result:
    def __init__(self, cmd, rc, out, err):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err


def run(*args, env=None, timeout=120):
    cmd = [SGDSTAB] + [str(a) for a in args]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, env=env, timeout=timeout)
    return Result(cmd, p.returncode, p.stdout, p.stderr)


def expect_not_psd(name, args, path):
    """A refused --init S_0 (second_moment.h), the matrix saved at path:
    exit status 1 and one line naming the file, the refusal and the smallest
    eigenvalue (%.3g, NumPy's)."""
    smallest = np.linalg.eigvalsh(np.load(path))[0]
    res = run(*args)
    e = [] if res.rc == 1 else ["exit status %d, expected 1" % res.rc]
    for want in (path + ": S_0 is not positive semidefinite",
                 "smallest eigenvalue %.3g," % smallest):
        if want not in res.err:
            e.append("stderr does not contain %r" % want)
    report(name, e, res)


def run_json(*args):
    """Run with --json; returns (dict or None, result, msgs)."""
    res = run(*args, "--json")
    if res.rc != 0:
        return None, res, ["exit status %d, expected 0" % res.rc]
    if res.err:
        return None, res, ["stderr not empty"]
    try:
        d = json.loads(res.out)
    except ValueError as e:
        return None, res, ["stdout is not one JSON document: %s" % e]
    if not isinstance(d, dict):
        return None, res, ["JSON is not an object"]
    return d, res, []


def fmt(x):
    return repr(float(x))


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def close_rel(a, b, rel, abs_=0.0):
    """a is a finite number within rel·|b| + abs_ of b."""
    return is_num(a) and math.isfinite(a) and \
        abs(a - b) <= rel * abs(b) + abs_


def close_abs(a, b, tol):
    """a is a finite number within tol of b."""
    return is_num(a) and math.isfinite(a) and abs(a - b) <= tol


def one_line(text):
    """text is exactly one non-empty line, newline included."""
    return text.endswith("\n") and text.count("\n") == 1 and \
        bool(text.strip())


def failure_errors(res, status):
    """What is wrong with res for a command that must fail: an exit status
    not in status (a tuple), anything on stdout, stderr other than one
    line."""
    e = []
    if res.rc not in status:
        e.append("exit status %d, expected %s"
                 % (res.rc, " or ".join(map(str, status))))
    if res.out:
        e.append("stdout not empty")
    if not one_line(res.err):
        e.append("stderr is not exactly one line")
    return e


def write_problem(work, name, J, H=None, hessian_file=False):
    """Write J (and H) into work as NAME.npy, NAME.npz with J and H, or
    NAME.npy plus NAME_H.npy given by --hessian; returns (path, the extra
    options naming the Hessian file)."""
    import numpy as np
    if H is not None and not hessian_file:
        path = os.path.join(work, name + ".npz")
        np.savez(path, J=J, H=H)
        return path, []
    path = os.path.join(work, name + ".npy")
    np.save(path, J)
    if H is None:
        return path, []
    hp = os.path.join(work, name + "_H.npy")
    np.save(hp, H)
    return path, ["--hessian", hp]


def npz_with_meta(path, J, meta, H=None, V=None, **members):
    """An .npz written with zipfile, as an exporter would: J (and H, V, and
    members such as K or R; an array None is left out) as .npy members
    and, unless meta is None, a raw member meta.json (a dict is dumped as
    JSON, a str written as is)."""
    import numpy as np
    with zipfile.ZipFile(path, "w") as z:
        for key, a in (("J", J), ("H", H), ("V", V), *members.items()):
            if a is not None:
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(a))
                z.writestr(key + ".npy", buf.getvalue())
        if meta is not None:
            z.writestr("meta.json", meta if isinstance(meta, str)
                       else json.dumps(meta))
    return path


def read_csv(path):
    """(whole text, header line, rows split at commas) of a CSV file."""
    with open(path) as f:
        text = f.read()
    lines = text.splitlines()
    return text, (lines[0] if lines else ""), [l.split(",") for l in lines[1:]]


class Case:
    """A problem written into the directory work (write_problem), with its
    reference Problem (engine_reference.py) for each loss scale c and its
    eta*(B), each computed once."""

    def __init__(self, work, name, J, H=None, hessian_file=False):
        import numpy as np
        self.name = name
        self.J, self.H = np.asarray(J, dtype=np.float64), H
        self.path, self.extra = write_problem(work, name, self.J, H,
                                              hessian_file)
        self._prob, self._eta = {}, {}
        p = self.problem()
        self.n, self.k, self.p = p.n, p.k, p.p
        self.rank = p.rank_J()

    def problem(self, c=1.0):
        import engine_reference as ref
        if c not in self._prob:
            self._prob[c] = ref.Problem(self.J, self.H, c)
        return self._prob[c]

    def eta_star(self, sampling, B, c=1.0):
        import engine_reference as ref
        key = (sampling, B, c)
        if key not in self._eta:
            self._eta[key] = ref.lr_critical(self.problem(c), sampling, B)
        return self._eta[key]


def csv_number(field):
    """(value, error or None) for one numeric CSV field: a decimal number, or
    literally inf, -inf, nan."""
    try:
        v = float(field)
    except ValueError:
        return None, "%r is not a number" % field
    if math.isnan(v) and field != "nan":
        return v, "%r: NaN must be written 'nan'" % field
    if math.isinf(v) and field not in ("inf", "-inf"):
        return v, "%r: infinity must be written 'inf' or '-inf'" % field
    return v, None


def same_number(csv_v, json_v):
    """A CSV value equals its JSON twin: the same double (17 significant
    digits round-trip), or non-finite and JSON null."""
    if json_v is None:
        return not math.isfinite(csv_v)
    return is_num(json_v) and csv_v == json_v


def run_quick_script(script, out, files, *args, timeout=600):
    """Run a problems/ script in its --quick size into out with this
    SGDSTAB (and args): (its CompletedProcess, failures as messages: its
    exit status, the files of files it did not write)."""
    p = subprocess.run([sys.executable, script, "--quick", "--out", out,
                        "--sgdstab", SGDSTAB, *args],
                       capture_output=True, text=True, timeout=timeout)
    msgs = [] if p.returncode == 0 else ["exit %d: %s" % (p.returncode,
                                                          p.stderr[-2000:])]
    missing = [f for f in files if not os.path.isfile(os.path.join(out, f))]
    if missing:
        msgs.append("missing: %s" % ", ".join(missing))
    return p, msgs


def run_selfcheck(check, title, what):
    """check() passes (ok "TITLE: WHAT"; None) or raises AssertionError
    (FAIL TITLE with the error; status 1)."""
    try:
        check()
    except AssertionError as exc:
        fail(title, [repr(exc)])
        return 1
    ok("%s: %s" % (title, what))
    return None


def main(doc, name, body, selfcheck=None):
    """A test script's main: `script SGDSTAB` (else print doc, status 99),
    body(work) with a scratch directory that is removed afterwards, then the
    summary line.  A status that body returns ends the script at once.

    selfcheck, if given, is (check, title, what): the self-check of a
    reference module, run before body.  It passes as "TITLE: WHAT"; an
    AssertionError fails TITLE and ends the script with status 1."""
    global SGDSTAB
    if len(sys.argv) != 2:
        print(doc)
        return 99
    SGDSTAB = sys.argv[1]
    if not os.access(SGDSTAB, os.X_OK):
        print("cannot run %s" % SGDSTAB)
        return 99
    work = tempfile.mkdtemp(prefix="sgdstab-%s-" % name)
    t0 = time.time()
    try:
        status = run_selfcheck(*selfcheck) if selfcheck else None
        if status is None:
            status = body(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if status is not None:
        return status
    print()
    print("%d passed, %d failed (%.1f s)" % (npass, nfail, time.time() - t0))
    return 0 if nfail == 0 else 1
