#!/usr/bin/python3
"""Outputs appear whole or not at all, all of them, always.

usage: test_outputs.py SGDSTAB

Each class of attack on the outputs of one command, and what must survive
it: when a command fails, every file it would have written is untouched
byte for byte (old ones) or absent (new ones), no temporary file is left
beside them, the exit status is non-zero and the error one line naming
the file.
- a picture writer that fails: a fake `gnuplot` first on PATH that writes
  half a PNG and exits 0, or writes nothing and exits 1;
- one bad output among several (`phase --plot` naming a directory), and a
  `run` whose second case fails after the first one's phase diagram;
- outputs that are not regular files: a full device (a private node
  c 1 7, never /dev/full itself), a FIFO and /proc/self/fd/1 are written
  in place, not replaced;
- an output that is an input (critical J.npy --csv J.npy) or another
  output (--csv x --boundary-csv ./x): refused before any work;
- terminating signals (SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM,
  SIGTERM, SIGINT, SIGXCPU, SIGPROF ...)
  while a phase --csv is being computed,
  and SIGINT in the middle of a `run`: temporary files removed.
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402

import numpy as np  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def snapshot(d):
    """{name: bytes} of every regular file in directory d (recursively)."""
    out = {}
    for root, _, files in os.walk(d):
        for x in files:
            p = os.path.join(root, x)
            if os.path.isfile(p) and not stat.S_ISFIFO(os.lstat(p).st_mode):
                with open(p, "rb") as f:
                    out[os.path.relpath(p, d)] = f.read()
    return out


def leftovers(d):
    return sorted(n for n in snapshot(d) if ".tmp." in n or ".old." in n)


def failed_cleanly(res, d, before, names, expect_rc=None):
    """The checks of a failed command in directory d whose files were
    `before`: non-zero status (or expect_rc), one error line naming one of
    names, every old file unchanged, no new file, no temporary file."""
    msgs = []
    if res.rc == 0 or (expect_rc is not None and res.rc != expect_rc):
        msgs.append("exit status %d" % res.rc)
    lines = res.err.strip().splitlines()
    if len(lines) != 1 or not any(n in lines[0] for n in names):
        msgs.append("want one error line naming %s, got %r" % (names,
                                                              res.err))
    after = snapshot(d)
    for name, data in before.items():
        if after.get(name) != data:
            msgs.append("%s changed or removed" % name)
    new = sorted(set(after) - set(before))
    if new:
        msgs.append("files left behind: %s" % new)
    return msgs


def fresh(work, name):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


# ------------------------------------------------------------ plot writer

FAKE_GNUPLOT = r"""#!/bin/sh
# A gnuplot that fails to draw: mode %s.
out=$(sed -n "s/^set output '\(.*\)'$/\1/p" | head -n 1)
case %s in
half) printf '\211PNG\r\n\032\n\0\0\0\rIHDR' > "$out"; exit 0 ;;
fail) exit 1 ;;
empty) : > "$out"; exit 0 ;;
esac
"""


def fake_gnuplot(work, mode):
    d = fresh(work, "bin-" + mode)
    path = os.path.join(d, "gnuplot")
    with open(path, "w") as f:
        f.write(FAKE_GNUPLOT % (mode, mode))
    os.chmod(path, 0o755)
    env = dict(os.environ)
    env["PATH"] = d + ":" + env.get("PATH", "/usr/bin:/bin")
    return env


def check_plot_writer(work, J):
    for mode in ("half", "fail", "empty"):
        env = fake_gnuplot(work, mode)
        d = fresh(work, "plot-" + mode)
        write(os.path.join(d, "g.csv"), b"old grid\n")
        write(os.path.join(d, "d.png"), PNG + b"old picture")
        before = snapshot(d)
        res = h.run("phase", J, "--batch", "1,4", "--lr", "0.1:1:3",
                    "--csv", os.path.join(d, "g.csv"), "--boundary-csv",
                    os.path.join(d, "b.csv"), "--plot",
                    os.path.join(d, "d.png"), env=env)
        h.report("phase --plot with a gnuplot that %s: nothing installed"
                 % {"half": "writes half a PNG and exits 0",
                    "fail": "exits 1", "empty": "writes nothing, exits 0"}
                 [mode], failed_cleanly(res, d, before, ["d.png"]), res)


def check_tiny_disk(work, J):
    """A real gnuplot writing to a full file system (a 64 KiB tmpfs, if
    this process may mount one)."""
    if not shutil.which("gnuplot"):
        return
    d = fresh(work, "tiny")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d],
                      capture_output=True).returncode != 0:
        print("skip  full tmpfs (cannot mount)")
        return
    try:
        write(os.path.join(d, "d.png"), PNG + b"old picture")
        write(os.path.join(d, "fill"), b"x" * 40000)
        before = snapshot(d)
        res = h.run("phase", J, "--batch", "1:12", "--lr", "0.01:1:60",
                    "--plot-size", "2000,2000", "--plot",
                    os.path.join(d, "d.png"))
        h.report("phase --plot on a full tmpfs: the old picture kept",
                 failed_cleanly(res, d, before, ["d.png"]), res)
    finally:
        subprocess.run(["umount", d])


# ------------------------------------------------------------ several outputs

def check_plot_directory(work, J):
    d = fresh(work, "plotdir")
    write(os.path.join(d, "g.csv"), b"old grid\n")
    os.mkdir(os.path.join(d, "d.png"))
    before = snapshot(d)
    res = h.run("phase", J, "--batch", "1,4", "--lr", "0.1:1:3", "--csv",
                os.path.join(d, "g.csv"), "--plot", os.path.join(d, "d.png"))
    h.report("phase --csv g.csv --plot DIR.png: g.csv untouched",
             failed_cleanly(res, d, before, ["d.png"]), res)


def run_spec(work, name, samples):
    spec = {"family": "linear", "params": {"inputs": 3, "seed": 3},
            "sweep": {"samples": samples}, "batch": [1, 4],
            "lr_factors": [0.5]}
    if shutil.which("gnuplot"):
        spec["phase"] = {"lr": "0.1:1:3", "lr_unit": "mean"}
    path = os.path.join(work, name + ".json")
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def check_run_later_case(work):
    out = fresh(work, "run-out")
    good = run_spec(work, "good", [8, 9])
    res = h.run("run", good, "--out", out, "--quiet")
    if res.rc != 0:
        h.fail("run: a first, successful run", ["exit status %d" % res.rc],
               res)
        return
    # The second case has 3 samples, fewer than the batch size 4.
    bad = run_spec(work, "bad", [10, 3])
    before = snapshot(out)
    res = h.run("run", bad, "--out", out, "--quiet")
    h.report("run whose second case fails: the first run's files untouched",
             failed_cleanly(res, out, before, ["bad.json", "case"]), res)


def check_run_interrupted(work):
    """SIGINT once the first case's phase diagram is done (the second
    one's files exist): nothing of the new run installed, nothing left."""
    if not shutil.which("gnuplot"):
        return
    out = fresh(work, "run-int")
    write(os.path.join(out, "phase-0.csv"), b"old phase\n")
    path = run_spec(work, "long", [8] + [400] * 40)
    before = snapshot(out)
    p = subprocess.Popen([h.SGDSTAB, "run", path, "--out", out, "--quiet"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None:
        if any(n.startswith("phase-1.") for n in os.listdir(out)):
            break
        time.sleep(0.01)
    time.sleep(0.2)
    interrupted = p.poll() is None
    p.send_signal(signal.SIGINT)
    o, e = p.communicate(timeout=60)
    res = h.Result(p.args, p.returncode, o, e)
    msgs = [] if interrupted else ["the run ended before the signal"]
    if res.rc != -signal.SIGINT:
        msgs.append("exit status %d, want death by SIGINT" % res.rc)
    after = snapshot(out)
    msgs += ["%s changed" % n for n in before if after.get(n) != before[n]]
    msgs += ["left behind: %s" % n for n in sorted(set(after) - set(before))]
    h.report("run interrupted after a case: no new file, no temporary file",
             msgs, res)


# ------------------------------------------------------------ not regular

def check_full_device(work, J):
    d = fresh(work, "dev")
    node = os.path.join(d, "full")
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    except OSError as e:
        print("skip  --csv to a full device (mknod: %s)" % e)
        return
    res = h.run("critical", J, "--batch", "1,4", "--csv", node)
    msgs = failed_cleanly(res, d, {}, ["full"], expect_rc=1)
    if "No space left" not in res.err:
        msgs.append("the error does not say the device is full")
    if not stat.S_ISCHR(os.lstat(node).st_mode):
        msgs.append("the device node was replaced")
    h.report("critical --csv DEVICE-FULL: a write error, the node kept",
             msgs, res)


def check_fifo(work, J):
    d = fresh(work, "fifo")
    fifo = os.path.join(d, "pipe.csv")
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", fifo], stdout=subprocess.PIPE)
    res = h.run("critical", J, "--batch", "1,4", "--csv", fifo)
    try:
        got = reader.communicate(timeout=5)[0].decode()
    except subprocess.TimeoutExpired:
        reader.kill()
        got = reader.communicate()[0].decode()
    msgs = [] if res.rc == 0 else ["exit status %d" % res.rc]
    if not got.startswith("batch,lr_critical,"):
        msgs.append("the reader got %r, not the CSV" % got[:80])
    if not stat.S_ISFIFO(os.lstat(fifo).st_mode):
        msgs.append("the FIFO was replaced")
    if leftovers(d):
        msgs.append("left behind: %s" % leftovers(d))
    h.report("critical --csv FIFO: the CSV through the FIFO", msgs, res)


def check_stdout(J):
    for path in ("/proc/self/fd/1", "/dev/fd/1"):
        res = h.run("critical", J, "--batch", "1,4", "--json", "--csv", path)
        msgs = [] if res.rc == 0 else ["exit status %d" % res.rc]
        if "batch,lr_critical,lr_critical_mean" not in res.out:
            msgs.append("no CSV on stdout")
        h.report("critical --csv %s: the CSV on stdout" % path, msgs, res)


# ------------------------------------------------------------ same file

def check_same_file(work, J):
    d = fresh(work, "same")
    inp = os.path.join(d, "in.npy")
    shutil.copy(J, inp)
    before = snapshot(d)
    res = h.run("critical", inp, "--batch", "1,4", "--csv", inp)
    h.report("critical in.npy --csv in.npy: refused, the input kept",
             failed_cleanly(res, d, before, ["in.npy"], expect_rc=2), res)
    os.symlink("in.npy", os.path.join(d, "link.csv"))
    before = snapshot(d)
    res = h.run("evolve", os.path.join(d, "link.csv"), "--lr", "0.1",
                "--batch", "2", "--steps", "3", "--csv", inp)
    h.report("evolve LINK --csv its target: refused (same inode)",
             failed_cleanly(res, d, before, ["in.npy"], expect_rc=2), res)
    res = h.run("phase", inp, "--batch", "1,4", "--lr", "0.1:1:3", "--csv",
                os.path.join(d, "x.csv"), "--boundary-csv",
                os.path.join(d, ".", "x.csv"))
    h.report("phase --csv x --boundary-csv ./x: refused",
             failed_cleanly(res, d, before, ["x.csv"], expect_rc=2), res)
    # a private null device: an old build would replace the node
    null = os.path.join(d, "null")
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    res = h.run("phase", inp, "--batch", "1,4", "--lr", "0.1:1:3", "--csv",
                null, "--boundary-csv", null)
    msgs = [] if res.rc == 0 else ["exit status %d" % res.rc]
    if not stat.S_ISCHR(os.lstat(null).st_mode):
        msgs.append("the device node was replaced")
    h.report("phase --csv NULL-DEVICE --boundary-csv NULL-DEVICE: allowed",
             msgs, res)


# ------------------------------------------------------------ signals

SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2",
           "SIGALRM", "SIGXCPU", "SIGVTALRM", "SIGPROF")


def check_signals(work, J):
    for name in SIGNALS:
        sig = getattr(signal, name)
        d = fresh(work, "sig-" + name)
        target = os.path.join(d, "s.csv")
        write(target, b"old\n")
        # A runner started in the background (SIGINT and SIGQUIT ignored)
        # or under nohup (SIGHUP) passes the ignore on, and sgdstab rightly
        # leaves an ignored signal ignored: the child starts with the
        # default disposition, as from a terminal.
        p = subprocess.Popen([h.SGDSTAB, "phase", J, "--batch", "1:12",
                              "--lr", "0.01:1:100000", "--quiet", "--csv",
                              target],
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda s=sig: signal.signal(
                                 s, signal.SIG_DFL))
        deadline = time.time() + 10
        while time.time() < deadline and not leftovers(d):
            time.sleep(0.01)
        started = bool(leftovers(d))
        p.send_signal(sig)
        err = p.communicate(timeout=60)[1]
        res = h.Result(p.args, p.returncode, "", err)
        msgs = [] if started else ["no temporary file seen"]
        if p.returncode != -sig:
            msgs.append("exit status %d, want death by %s" % (p.returncode,
                                                             name))
        if leftovers(d):
            msgs.append("left behind: %s" % leftovers(d))
        if open(target, "rb").read() != b"old\n":
            msgs.append("s.csv changed")
        h.report("%s during phase --csv: temporary file removed" % name,
                 msgs, res)


def body(work):
    J = os.path.join(work, "J.npy")
    np.save(J, np.random.default_rng(26).standard_normal((12, 5)))
    check_plot_writer(work, J)
    check_tiny_disk(work, J)
    check_plot_directory(work, J)
    check_run_later_case(work)
    check_run_interrupted(work)
    check_full_device(work, J)
    check_fifo(work, J)
    check_stdout(J)
    check_same_file(work, J)
    check_signals(work, J)


if __name__ == "__main__":
    sys.exit(h.main(__doc__, "outputs", body))
