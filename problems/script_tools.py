"""What the scripts in problems/ share: running sgdstab for its JSON, and
writing CSV tables."""

import argparse
import csv
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def arguments(doc, results_name):
    """The options every script takes: --out (default results/NAME) and
    --sgdstab (default the build tree's)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "results",
                                                  results_name))
    ap.add_argument("--sgdstab", default=os.path.join(HERE, "..", "build",
                                                      "src", "sgdstab"))
    return ap


def sgdstab_json(binary, *args, notes=None):
    """Run sgdstab with --json; returns the parsed object.  stderr (e.g. a
    note on the residual) is passed through, or appended to notes."""
    cmd = [binary] + [str(a) for a in args] + ["--json"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.stderr and notes is not None:
        notes.append(p.stderr.strip())
    elif p.stderr:
        sys.stderr.write(p.stderr)
    if p.returncode != 0:
        raise SystemExit("failed (%d): %s" % (p.returncode, " ".join(cmd)))
    return json.loads(p.stdout)


def write_csv(path, header, rows):
    """A CSV table, floats with 10 significant digits."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow([("%.10g" % v) if isinstance(v, float) else v
                        for v in r])
