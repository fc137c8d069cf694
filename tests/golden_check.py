"""Regression guard: the JSON the tool prints for a fixed set of commands,
against golden files written by an earlier build (tests/golden/README.md
names the build and the command that wrote them).

This guards refactors, beside the reference tests (which compare with
independent formulations); it never replaces them.  Every number must agree
to SOLVER_RTOL relative (an η* or ρ solved from another eigensolver basis
moves within the solvers' tolerance); strings, booleans and integers
exactly.  Cost counters and a-posteriori error estimates are not compared (a
refactor that removes a duplicate solve changes them): the counts are
printed side by side.  --exact lists every number that is not bit-identical.

  golden_check.py BIN [--record] [--exact] [--slow]
      BIN the sgdstab executable; --slow adds the run specs of SLOW_SPECS
"""
import json
import math
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
GOLDEN = os.path.join(HERE, "golden")
EXAMPLE = os.path.join("problems", "example.npy")   # the tool runs in TOP

# Keys whose value comes out of an eigensolve (η*, ρ and what is derived
# from them): equal within the solvers' tolerances (stability.h: η* to about
# 1e-9 relative, ρ to 1e-10 absolute), with a margin.
SOLVER_RTOL = 1e-8
SOLVER_ATOL = 1e-9
# Cost and a-posteriori accuracy: reported, not compared.
EXACT = "--exact" in sys.argv[2:]
SLOW = "--slow" in sys.argv[2:]
UNCOMPARED = ("operator_applications", "matvecs", "rel_accuracy",
              "error_estimate", "residual", "seconds", "rel_residual",
              "iterations", "threshold_band", "lr_critical_lower",
              "lr_critical_upper", "lr_lower", "lr_upper")


def commands(tmp):
    """(name, argv, needs_file) of every golden; FILE is substituted."""
    rfm = os.path.join(tmp, "rfm.npz")
    ex = EXAMPLE
    return [
        ("synth-rfm", ["synth", "rfm", "-o", rfm, "--samples", "60",
                       "--inputs", "6", "--outputs", "3", "--width", "10",
                       "--seed", "5", "--json"]),
        ("analyze-example", ["analyze", ex, "--lr", "1", "--batch", "8",
                             "--json"]),
        ("analyze-example-unstable", ["analyze", ex, "--lr", "1.6",
                                      "--batch", "8", "--sampling", "with",
                                      "--json"]),
        ("critical-example-all", ["critical", ex, "--batch", "all",
                                  "--json"]),
        ("verify-example", ["verify", ex, "--lr", "1", "--batch", "8",
                            "--json"]),
        ("phase-example-20x20", ["phase", ex, "--batch", "1:512:20:log",
                                 "--lr", "0.2:3:20", "--json", "--quiet"]),
        ("simulate-example", ["simulate", ex, "--lr", "1", "--batch", "8",
                              "--steps", "60", "--runs", "200", "--seed",
                              "1", "--compare", "--json", "--quiet"]),
        ("simulate-example-epoch", ["simulate", ex, "--epoch", "--lr", "1.4",
                                    "--batch", "64", "--runs", "200",
                                    "--seed", "1", "--compare", "--json",
                                    "--quiet"]),
        ("evolve-example", ["evolve", ex, "--lr", "1.6", "--batch", "8",
                            "--steps", "40", "--json"]),
        ("analyze-rfm", ["analyze", rfm, "--lr", "0.5", "--batch", "7",
                         "--sampling", "bernoulli", "--json"]),
        ("critical-rfm", ["critical", rfm, "--batch", "1:60:12:log",
                          "--sampling", "with", "--json"]),
        ("verify-rfm", ["verify", rfm, "--lr", "0.3", "--batch", "5",
                        "--json"]),
        ("phase-rfm", ["phase", rfm, "--batch", "1,4,16,60", "--lr",
                       "0.05:2:6:log", "--sampling", "bernoulli", "--json",
                       "--quiet"]),
        ("simulate-rfm", ["simulate", rfm, "--lr", "0.3", "--batch", "5",
                          "--steps", "30", "--runs", "100", "--seed", "1",
                          "--sampling", "reshuffle", "--json", "--quiet"]),
    ]


# `run` specs of problems/ fast enough for the test suite (all but
# exit-times and reshuffle-linear, minutes each); the golden is their
# summary.json.
RUN_SPECS = ["batch-size-law", "flat-sharp-deep-linear",
             "flat-sharp-two-layer", "phase-deep-linear", "phase-linear",
             "phase-rfm", "phase-two-layer", "size-independence-linear",
             "size-independence-rfm"]
# Compared only with --slow (minutes each).
SLOW_SPECS = ["exit-times", "reshuffle-linear"]


def run_tool(binary, argv):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    res = subprocess.run([binary] + argv, capture_output=True, text=True,
                         env=env, cwd=TOP)
    if res.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (" ".join(argv),
                                                 res.returncode, res.stderr))
    return res.stdout


def outputs(binary):
    """name -> parsed JSON of every golden command and run summary."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in commands(tmp):
            out[name] = json.loads(run_tool(binary, argv))
        for spec in RUN_SPECS + (SLOW_SPECS if SLOW else []):
            d = os.path.join(tmp, spec)
            run_tool(binary, ["run", os.path.join("problems", spec + ".json"),
                              "--out", d, "--quiet"])
            with open(os.path.join(d, "summary.json")) as f:
                out["run-" + spec] = json.load(f)
    return out


# Keys that later issues add to the output on purpose (the optimizer issue:
# "JSON gains an optimizer object"); the numbers beside them are compared.
ADDED = {"optimizer"}


def uncompared(key):
    return any(u in key for u in UNCOMPARED)


def scrub_paths(v):
    """File names as the tool printed them: the temporary directory and the
    checkout's directory differ between runs."""
    if isinstance(v, str) and tempfile.gettempdir() in v:
        return os.path.basename(v)
    if isinstance(v, str):
        return re.sub(r"^/.*/(problems/)", r"\1", v)
    return v


def compare(path, want, got, diffs, costs):
    key = path.rsplit(".", 1)[-1]
    if uncompared(key):
        if want != got:
            costs.append((path, want, got))
        return
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) | set(got)):
            if k not in want and k in ADDED:
                continue
            if k not in want and uncompared(k):
                costs.append((path + "." + k, None, got[k]))
            elif k not in want or k not in got:
                diffs.append("%s.%s: only in %s" % (
                    path, k, "golden" if k in want else "new output"))
            else:
                compare(path + "." + k, want[k], got[k], diffs, costs)
        return
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            diffs.append("%s: length %d, golden %d" % (path, len(got),
                                                        len(want)))
            return
        for i, (w, g) in enumerate(zip(want, got)):
            compare("%s[%d]" % (path, i), w, g, diffs, costs)
        return
    if (isinstance(want, float) or isinstance(got, float)) and \
            isinstance(want, (int, float)) and isinstance(got, (int, float)) \
            and not isinstance(want, bool) and not isinstance(got, bool):
        if want == got or (math.isnan(want) and math.isnan(got)):
            return
        tol = 0 if EXACT else \
            SOLVER_ATOL + SOLVER_RTOL * max(abs(want), abs(got))
        if not abs(want - got) <= tol:
            diffs.append("%s: %r, golden %r" % (path, got, want))
        return
    if scrub_paths(want) != scrub_paths(got):
        diffs.append("%s: %r, golden %r" % (path, got, want))


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    got = outputs(binary)
    if "--record" in sys.argv[2:]:
        os.makedirs(GOLDEN, exist_ok=True)
        for name, value in got.items():
            with open(os.path.join(GOLDEN, name + ".json"), "w") as f:
                json.dump(value, f, indent=1, sort_keys=True)
                f.write("\n")
        print("recorded %d golden files in %s" % (len(got), GOLDEN))
        return
    failed = 0
    for name, value in got.items():
        with open(os.path.join(GOLDEN, name + ".json")) as f:
            want = json.load(f)
        diffs, costs = [], []
        compare(name, want, value, diffs, costs)
        for path, w, g in costs:
            if "applications" in path or "matvecs" in path:
                print("cost %s: %r (golden %r)" % (path, g, w))
        if diffs:
            failed += 1
            print("FAIL %s: %d differences" % (name, len(diffs)))
            for d in diffs[:20]:
                print("  " + d)
        else:
            print("ok   %s" % name)
    if failed:
        raise SystemExit("%d of %d outputs differ from their golden files"
                         % (failed, len(got)))


if __name__ == "__main__":
    main()
