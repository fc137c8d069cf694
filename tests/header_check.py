#!/usr/bin/python3
"""Every public header (include/sgdstab/*.h) stands on its own.

Each header is the only include of a translation unit, twice (its include
guard), compiled with -Wall -Wextra -Wpedantic -Werror as C17 and, when a C++
compiler is given, as C++17; and it declares its names inside an
extern "C" block, so that C++ callers link to the library.  The headers are
listed from the directory, so a new one is checked without being named here.

Usage: header_check.py INCLUDE_DIR --cc CC... [--cxx CXX...]
"""

import glob
import os
import subprocess
import sys
import tempfile

FLAGS = ["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only"]
LANGUAGES = {"--cc": ("c", "-std=c17", ".c"),
             "--cxx": ("c++", "-std=c++17", ".cpp")}


def compilers(argv):
    """{option: command} from '--cc CMD... [--cxx CMD...]'."""
    found, option = {}, None
    for arg in argv:
        if arg in LANGUAGES:
            option = arg
            found[option] = []
        elif option is None:
            sys.exit("header_check.py: expected --cc before %r" % arg)
        else:
            found[option].append(arg)
    if not found.get("--cc"):
        sys.exit("header_check.py: no C compiler (--cc)")
    return found


def compile_alone(command, language, include_dir, name, tmp):
    """The compiler's complaints about NAME included alone, or ''."""
    lang, std, ext = LANGUAGES[language]
    unit = os.path.join(tmp, os.path.splitext(name)[0] + ext)
    with open(unit, "w") as f:
        f.write('#include "sgdstab/%s"\n#include "sgdstab/%s"\n'
                % (name, name))
    res = subprocess.run(command + ["-x", lang, std] + FLAGS +
                         ["-I", include_dir, unit],
                         capture_output=True, text=True)
    return "" if res.returncode == 0 else res.stdout + res.stderr


def main():
    include_dir = sys.argv[1]
    tools = compilers(sys.argv[2:])
    headers = sorted(os.path.basename(p) for p in
                     glob.glob(os.path.join(include_dir, "sgdstab", "*.h")))
    if not headers:
        sys.exit("header_check.py: no headers in %s/sgdstab" % include_dir)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in headers:
            msgs = []
            with open(os.path.join(include_dir, "sgdstab", name)) as f:
                if 'extern "C" {' not in f.read():
                    msgs.append('no extern "C" block')
            for language, command in tools.items():
                out = compile_alone(command, language, include_dir, name, tmp)
                if out:
                    msgs.append("does not compile alone as %s:\n%s"
                                % (LANGUAGES[language][0], out))
            print("%s  sgdstab/%s" % ("FAIL" if msgs else "ok  ", name))
            for m in msgs:
                print("      " + m)
            failed += bool(msgs)
    langs = " and ".join(LANGUAGES[t][0] for t in tools)
    print("%d of %d headers compile alone as %s" %
          (len(headers) - failed, len(headers), langs))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
