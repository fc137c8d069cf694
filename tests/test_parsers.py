"""Hostile option values (issue 26) against the command line's parsers.

Every case must end in a usage error: exit status 2, no signal, and exactly
one line on stderr holding no control character (untrusted text is quoted
with \\n, \\xHH escapes), naming what was wrong.  Covered: learning-rate and
batch ranges with too many fields (six fields overran cli_parse_lrs's field
array: SIGSEGV), control bytes, ANSI escapes and invalid UTF-8 in option
values, operands and unknown options, and numbers that overflow or underflow
a double (1e-308 was called "not a finite number").  The list parsers are
also fuzzed (tests/fuzz/fuzz_cli_lists.c).

Usage: test_parsers.py SGDSTAB
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402


def check_usage_error(name, args, want):
    """Exit 2, one clean line on stderr matching the regex want.  Arguments
    may be bytes (invalid UTF-8), so this runs the binary itself."""
    try:
        r = subprocess.run([h.SGDSTAB, *args], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        # 1e9 batch sizes were all made before any check (8 GB)
        h.report(name, ["no answer within 20 s"])
        return
    err, body, msgs = r.stderr, r.stderr[:-1], []
    if r.returncode != 2:
        msgs.append(f"exit {r.returncode} (negative: a signal), stderr "
                    f"{err!r}")
    if not err.endswith(b"\n") or re.search(rb"[\x00-\x1f\x7f]", body):
        msgs.append(f"stderr {err!r} is not one line free of control bytes")
    text = body.decode("utf-8", "replace")
    if "\ufffd" in text or re.search(want, text) is None:
        msgs.append(f"stderr {err!r} is not UTF-8 matching {want!r}")
    h.report(name, msgs)


def test_ranges(prob):
    """Too many fields: a usage error naming the value, never a crash."""
    for cmd, opt, value in [
            ("phase", "--lr", "1:1:1:1:1:1"),
            ("phase", "--lr", "1:2:3:4:5:log"),
            ("phase", "--lr", ":" * 40),
            ("phase", "--lr", "1:2:3:4:log"),
            ("critical", "--batch", "1:2:3:4:log"),
            ("critical", "--batch", "1:2:3:4:5:6"),
            ("critical", "--batch", "1:1000000000:1000000000:log")]:
        args = [cmd, prob, opt, value]
        if cmd == "phase":
            args += ["--batch", "2"]
        check_usage_error(f"{cmd} {opt} {value}", args,
                          re.escape(opt + ": '" + value[:20]))


def test_quoting(prob):
    """Untrusted text comes back escaped, on one line."""
    base = ["analyze", prob, "--batch", "2"]
    for name, args, want in [
            ("newline in --lr", base + ["--lr", "1\nX"],
             r"--lr: '1\\nX' is not a finite number"),
            ("escape in --lr", base + ["--lr", b"\x1b[31m1"],
             r"'\\x1B\[31m1'"),
            ("invalid UTF-8 in --lr", base + ["--lr", b"1\xff\xc3"],
             r"'1\\xFF\\xC3'"),
            ("C1 control in --loss", base + ["--lr", "1", "--loss",
                                            "a\u009bb"],
             r"--loss: 'a\\xC2\\x9Bb'"),
            ("tab in --sampling", base + ["--lr", "1", "--sampling", "a\tb"],
             r"--sampling: 'a\\tb'"),
            ("carriage return in --batch",
             ["phase", prob, "--lr", "1,2", "--batch", "4\r"],
             r"--batch: '4\\r'"),
            ("newline in a second operand", base + ["--lr", "1", "x\ny"],
             r"unexpected argument 'x\\ny'"),
            ("newline in an unknown option", base + ["--lr", "1", "--x\ny"],
             r"unknown option '--x\\ny'"),
            ("control character as a short option",
             base + ["--lr", "1", "-\x01"], r"unknown option '-\\x01'"),
            ("UTF-8 kept as it is", base + ["--lr", "1", "--sampling", "é"],
             r"--sampling: 'é'")]:
        check_usage_error(name, args, want)


def test_numbers(prob):
    """Overflow, underflow and non-numbers each get their own message."""
    base = ["analyze", prob, "--batch", "2", "--lr"]
    for value, want in [
            ("1e-308", "is too close to zero to use"),
            ("1e-310", "is too close to zero to use"),
            ("-1e-320", "is too close to zero to use"),
            ("1e-400", "is too close to zero to use"),
            ("0x1p-1074", "is too close to zero to use"),
            ("1e999", "is too large"),
            ("-1e999", "is too large"),
            ("inf", "is not a finite number"),
            ("nan", "is not a finite number"),
            ("0.1x", "is not a finite number")]:
        check_usage_error(f"--lr {value}", base + [value],
                          re.escape(f"--lr: '{value}' {want}"))
    check_usage_error("--lr 0.1,1e-310 (a list)",
                      ["phase", prob, "--batch", "2", "--lr", "0.1,1e-310"],
                      "too close to zero")
    r = h.run("analyze", prob, "--batch", "2", "--lr",
              "2.2250738585072014e-308")
    h.report("--lr DBL_MIN is accepted", [] if r.rc in (0, 1) else
             [f"exit {r.rc}, stderr {r.err!r}"], r)


def test_file_text(work):
    """A file's own text in an error (an .npy header key with an ESC
    sequence and a newline) is escaped: exit 1, one line, no control
    bytes."""
    import struct
    hdr = ("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), "
           "'\x1b[31mevil\nkey': 1, }")
    hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
    path = os.path.join(work, "esc.npy")
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) +
                hdr.encode("latin1") + b"\0" * 32)
    r = h.run("info", path)
    lines = r.err.splitlines()
    clean = not any(ord(c) < 0x20 or ord(c) == 0x7f for c in r.err.rstrip("\n"))
    h.report("an .npy header key with ESC and newline: one escaped line",
             [] if (r.rc == 1 and len(lines) == 1 and clean and
                    "\\x1B[31mevil" in r.err) else
             [f"exit {r.rc}, stderr {r.err!r}"], r)


def body(work):
    prob = os.path.join(work, "p.npz")
    r = h.run("synth", "linear", "-o", prob, "--samples", "8", "--inputs", "2")
    if r.rc != 0:
        h.fail("synth", ["cannot make the test problem"], r)
        return 1
    test_ranges(prob)
    test_quoting(prob)
    test_numbers(prob)
    test_file_text(work)
    return None


if __name__ == "__main__":
    sys.exit(h.main(__doc__, "parsers", body))
