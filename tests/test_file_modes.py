#!/usr/bin/python3
"""Output files get the permissions a plain open() would give them.

usage: test_file_modes.py SGDSTAB

Every kind of output sgdstab writes goes through a temporary file and a
rename (outfile.h); the temporary file's mode survives the rename.  Under a
umask m each output file must have mode 0666 & ~m and each directory the
tool creates 0777 & ~m -- the modes open(2) and mkdir(2) give, computed
here from m, not from anything the tool prints.  Checked under umasks 022
and 077 (the tool runs in a subprocess that sets the umask first) for:
--csv of critical, evolve, simulate and phase (grid and --boundary-csv),
phase --plot PNG and SVG (if gnuplot is on PATH), synth -o X.npz, and
`run --out A/B/C`: the three directories it creates and every file in
them.  (A default ACL on the scratch directory would change the expected
modes; the scratch directory is a fresh one under $TMPDIR.)
"""

import json
import os
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402

import numpy as np  # noqa: E402

UMASKS = (0o022, 0o077)


def run_with_umask(mask, *args):
    cmd = [h.SGDSTAB] + [str(a) for a in args]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=120,
                       preexec_fn=lambda: os.umask(mask))
    return h.Result(cmd, p.returncode, p.stdout, p.stderr)


def mode_errors(paths, mask):
    msgs = []
    for path in paths:
        st = os.stat(path)
        want = (0o777 if stat.S_ISDIR(st.st_mode) else 0o666) & ~mask
        got = stat.S_IMODE(st.st_mode)
        if got != want:
            msgs.append("%s: mode %04o, want %04o under umask %03o"
                        % (path, got, want, mask))
    return msgs


def check(name, mask, args, outputs):
    """Run args under mask; every path in outputs must exist with its
    open()/mkdir() mode."""
    for path in outputs:
        if os.path.exists(path):
            os.remove(path)
    res = run_with_umask(mask, *args)
    if res.rc != 0:
        h.fail(name, ["exit status %d" % res.rc], res)
        return
    missing = [p for p in outputs if not os.path.exists(p)]
    msgs = ["%s not written" % p for p in missing]
    h.report(name, msgs or mode_errors(outputs, mask), res)


def problem(work):
    rng = np.random.default_rng(25)
    path = os.path.join(work, "J.npy")
    np.save(path, rng.standard_normal((12, 5)))
    return path


def run_tree(top):
    """Every directory and file under top, top included."""
    paths = [top]
    for root, dirs, files in os.walk(top):
        paths += [os.path.join(root, x) for x in dirs + files]
    return paths


def check_run(work, mask):
    spec = {"family": "linear", "params": {"samples": 8, "inputs": 3,
                                           "seed": 3},
            "batch": [1, 4], "lr_factors": [0.5]}
    if shutil.which("gnuplot"):
        spec["phase"] = {"lr": "0.1:1:3", "lr_unit": "mean"}
    path = os.path.join(work, "spec.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    top = os.path.join(work, "run%03o" % mask)
    out = os.path.join(top, "a", "b")
    name = "run --out: directories and files, umask %03o" % mask
    res = run_with_umask(mask, "run", path, "--out", out, "--quiet")
    if res.rc != 0:
        h.fail(name, ["exit status %d" % res.rc], res)
        return
    paths = run_tree(top)
    msgs = [] if len(paths) > 4 else ["only %s written" % paths]
    h.report(name, msgs + mode_errors(paths, mask), res)


def check_replace(work, J):
    """Replacing an existing regular file keeps its permission bits, as
    open(O_TRUNC) would, whatever the umask: a result made private stays
    private, one made shared stays shared."""
    path = os.path.join(work, "kept.csv")
    for mode in (0o600, 0o644, 0o640):
        with open(path, "w") as f:
            f.write("old\n")
        os.chmod(path, mode)
        res = run_with_umask(0o022, "critical", J, "--batch", "1,4", "--csv",
                             path)
        got = stat.S_IMODE(os.stat(path).st_mode)
        msgs = [] if res.rc == 0 else ["exit status %d" % res.rc]
        if got != mode:
            msgs.append("mode %04o, want the old file's %04o" % (got, mode))
        if open(path).read() == "old\n":
            msgs.append("the file was not replaced")
        h.report("critical --csv over an existing %04o file (umask 022)"
                 % mode, msgs, res)


def body(work):
    J = problem(work)
    check_replace(work, J)
    out = lambda name: os.path.join(work, name)  # noqa: E731
    for mask in UMASKS:
        tag = " (umask %03o)" % mask
        check("critical --csv" + tag, mask,
              ["critical", J, "--batch", "1,4", "--csv", out("c.csv")],
              [out("c.csv")])
        check("evolve --csv" + tag, mask,
              ["evolve", J, "--lr", "0.1", "--batch", "2", "--steps", "3",
               "--csv", out("e.csv")], [out("e.csv")])
        check("simulate --csv" + tag, mask,
              ["simulate", J, "--lr", "0.1", "--batch", "2", "--steps", "3",
               "--runs", "10", "--quiet", "--csv", out("s.csv")],
              [out("s.csv")])
        check("phase --csv --boundary-csv" + tag, mask,
              ["phase", J, "--batch", "1,4", "--lr", "0.1:1:3", "--quiet",
               "--csv", out("g.csv"), "--boundary-csv", out("b.csv")],
              [out("g.csv"), out("b.csv")])
        check("synth -o X.npz" + tag, mask,
              ["synth", "linear", "-o", out("x.npz"), "--samples", "6"],
              [out("x.npz")])
        if shutil.which("gnuplot"):
            for ext in ("png", "svg"):
                check("phase --plot %s%s" % (ext.upper(), tag), mask,
                      ["phase", J, "--batch", "1,4", "--lr", "0.1:1:3",
                       "--quiet", "--plot", out("p." + ext)],
                      [out("p." + ext)])
        else:
            print("skip  phase --plot: gnuplot not on PATH")
        check_run(work, mask)
    return None


if __name__ == "__main__":
    sys.exit(h.main(__doc__, "file-modes", body))
