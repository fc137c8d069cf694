#!/usr/bin/python3
"""Regenerate problems/example.npy, the default problem of the README.

A linear least-squares model f(x) = w.x at its interpolating minimum: the
per-sample output Jacobian is J_i = x_i.  n = 512 samples, p = 64 inputs drawn
from N(0, diag(j^-1)) (a power-law covariance spectrum), fixed seed.  Run with
Debian's interpreter:  /usr/bin/python3 problems/make_example.py
"""
import os

import numpy as np

n, p, seed = 512, 64, 20261123
rng = np.random.default_rng(seed)
scale = np.arange(1, p + 1) ** -0.5
J = rng.standard_normal((n, p)) * scale
np.save(os.path.join(os.path.dirname(os.path.abspath(__file__)), "example.npy"), J)
