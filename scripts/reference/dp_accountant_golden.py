#!/usr/bin/env python3
"""Golden values for Tessera's RDP privacy accountant (DifferentialPrivacy/RDPAccountant.swift), from dp-accounting.

What
    For every (q, sigma, steps, delta) of the grid below, the (epsilon, optimal order) that Google's
    `dp_accounting.rdp.RdpAccountant` (add-or-remove-one neighbours) reports for
    `SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps)`, twice: with the default orders
    (`epsilon`, `order`) and with only the integer orders of that grid (`integerOrders.epsilon`, `.order`), plus:
      - the full RDP curve (one value per default order) of a few single-step cases, to localise a mismatch, and for
        their fractional orders below 11 the exact RDP by numerical integration with mpmath (`quadrature`);
      - noise-multiplier calibrations (`mechanism_calibration.calibrate_dp_mechanism`, tol 1e-6);
      - the exact RDP of the Laplace mechanism (`LaplaceDpEvent`, Mironov 2017 Prop. 6) for a few epsilons, which
        Tessera's pure-DP curve min(eps, alpha * eps^2 / 2) must bound from above.
    Tests/DifferentialPrivacyTests/RDPAccountantTests.swift compares against them.

    Why two references. For integer orders dp-accounting sums the exact binomial expansion, as Tessera does. For
    fractional orders, dp-accounting 0.6.0's `_compute_log_a_frac` adds the magnitudes of the terms of Mironov, Talwar
    & Zhang's series (the generalised binomial coefficient C(alpha, i) changes sign for i > alpha; its log-space sum
    keeps only |C|), so its fractional-order values are upper bounds on the exact RDP, up to ~55 % above it at orders
    below 2 (e.g. q 0.25, sigma 2, alpha 1.7: 0.02259 against 0.01472 by quadrature). Tessera sums the signed series
    and matches the quadrature. Its epsilon is therefore never above dp-accounting's and equal to it where an integer
    order is optimal; on the integer orders alone the two agree to rounding.

    dp-accounting also gives up on the fractional series after 1000 terms and then drops that order (rdp = inf, with
    an absl warning): low orders (1.1 to 1.6) for q = 0.05 and 0.25. Each case lists those `excludedOrders`, and
    curves write them as null, so the Swift test can minimise over the same orders.

How to run
    python3 scripts/reference/dp_accountant_golden.py [OUTPUT_JSON]
    (default Tests/DifferentialPrivacyTests/Golden/rdp_accountant.json)

    The first run creates the virtual environment scripts/.venv-dp (git-ignored by `/scripts/.venv*/`), installs the
    pinned packages below and re-executes itself there; later runs reuse it.

Pinned packages
    dp-accounting==0.6.0, numpy==2.4.6, scipy==1.17.1, mpmath==1.4.1

Conventions (the Swift code must do the same)
    Orders      dp-accounting's DEFAULT_RDP_ORDERS: 1.1, 1.2, ..., 10.9 (as 1 + x / 10.0), 11, 12, ..., 63, 128, 256,
                512, 1024. Integer orders use the exact binomial expansion, the others the fractional series of
                Mironov, Talwar & Zhang 2019 ("Renyi Differential Privacy of the Sampled Gaussian Mechanism").
    Conversion  epsilon = min over orders of rdp + log1p(-1/a) - (log(delta) + log(a)) / (a - 1) (Canonne, Kamath &
                Steinke 2020, Prop. 12; Asoodeh et al. 2020), clamped at 0; orders <= 1.01 are not used.
"""
import datetime
import json
import math
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(ROOT, "scripts", ".venv-dp")
PINS = ["dp-accounting==0.6.0", "numpy==2.4.6", "scipy==1.17.1", "mpmath==1.4.1"]


def ensure_venv():
    python = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([python, "-m", "pip", "install", "-q", *PINS])
    os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])


ensure_venv()

from importlib import metadata  # noqa: E402

import dp_accounting  # noqa: E402
import mpmath  # noqa: E402
from dp_accounting import mechanism_calibration  # noqa: E402
from dp_accounting.rdp import rdp_privacy_accountant as rdp  # noqa: E402

SAMPLING_RATES = [0.001, 0.01, 0.05, 0.25, 1.0]
NOISE_MULTIPLIERS = [0.5, 0.8, 1.1, 2.0, 5.0]
STEPS = [1, 10, 100, 1000]
DELTAS = [1e-5, 1e-3]
# (q, sigma) whose single-step RDP curve is written in full.
CURVES = [(0.001, 5.0), (0.01, 1.1), (0.05, 0.8), (0.25, 0.5), (0.25, 2.0), (1.0, 1.1)]
# (target epsilon, delta, q, steps) for the noise-multiplier calibration.
CALIBRATIONS = [
    (1.0, 1e-5, 0.01, 1000),
    (3.0, 1e-5, 0.01, 10000),
    (8.0, 1e-5, 0.05, 500),
    (2.0, 1e-5, 0.25, 100),
    (0.5, 1e-3, 1.0, 1),
    (4.0, 1e-3, 0.001, 100000),
]
LAPLACE_EPSILONS = [0.1, 0.5, 1.0, 3.0]


def event(q, sigma, steps):
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)


def finite_or_none(x):
    """JSON has no infinity: an order the reference could not evaluate (rdp = inf) is written as null."""
    return float(x) if math.isfinite(x) else None


def exact_rdp(q, sigma, alpha):
    """log(A_alpha) / (alpha - 1) with A_alpha = E_{z ~ N(0, sigma^2)}[((1 - q) + q mu1(z) / mu0(z))^alpha] by mpmath
    quadrature at 40 digits (MTZ19, Section 3.1); mu1 / mu0 = exp((2z - 1) / (2 sigma^2)). Break points at the
    mean of each mixture component and at alpha, where the integrand of the q^alpha term peaks."""
    with mpmath.workdps(40):
        q, s, a = mpmath.mpf(q), mpmath.mpf(sigma), mpmath.mpf(alpha)

        def integrand(z):
            return mpmath.npdf(z, 0, s) * ((1 - q) + q * mpmath.exp((2 * z - 1) / (2 * s * s))) ** a

        points = sorted({-10 * s, mpmath.mpf(0), mpmath.mpf(1), a, a + 10 * s})
        total = mpmath.quad(integrand, [-mpmath.inf, *points, mpmath.inf])
        return float(mpmath.log(total) / (a - 1))


def accountant_for(ev, orders=None):
    accountant = rdp.RdpAccountant(orders)
    accountant.compose(ev)
    return accountant


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "Tests", "DifferentialPrivacyTests", "Golden", "rdp_accountant.json")
    orders = [float(a) for a in rdp.DEFAULT_RDP_ORDERS]
    integer_orders = [a for a in orders if a.is_integer()]

    cases = []
    for q in SAMPLING_RATES:
        for sigma in NOISE_MULTIPLIERS:
            for steps in STEPS:
                accountant = accountant_for(event(q, sigma, steps))
                integer = accountant_for(event(q, sigma, steps), integer_orders)
                excluded = [a for a, r in zip(orders, accountant.rdp) if math.isinf(r)]
                for delta in DELTAS:
                    eps, order = accountant.get_epsilon_and_optimal_order(delta)
                    eps_int, order_int = integer.get_epsilon_and_optimal_order(delta)
                    cases.append({"samplingRate": q, "noiseMultiplier": sigma, "steps": steps, "delta": delta,
                                  "epsilon": float(eps), "order": float(order), "excludedOrders": excluded,
                                  "integerOrders": {"epsilon": float(eps_int), "order": float(order_int)}})

    curves = []
    for q, sigma in CURVES:
        accountant = accountant_for(event(q, sigma, 1))
        quadrature = [{"order": a, "rdp": exact_rdp(q, sigma, a)}
                      for a in orders if not a.is_integer() and a < 11 and q < 1]
        curves.append({"samplingRate": q, "noiseMultiplier": sigma, "steps": 1,
                       "rdp": [finite_or_none(r) for r in accountant.rdp], "quadrature": quadrature})

    calibrations = []
    for eps, delta, q, steps in CALIBRATIONS:
        sigma = mechanism_calibration.calibrate_dp_mechanism(
            rdp.RdpAccountant, lambda s, q=q, steps=steps: event(q, s, steps), eps, delta,
            mechanism_calibration.ExplicitBracketInterval(0.1, 100.0), tol=1e-6)
        achieved, _ = accountant_for(event(q, sigma, steps)).get_epsilon_and_optimal_order(delta)
        calibrations.append({"targetEpsilon": eps, "delta": delta, "samplingRate": q, "steps": steps,
                             "noiseMultiplier": float(sigma), "achievedEpsilon": float(achieved)})

    laplace = []
    for eps in LAPLACE_EPSILONS:
        accountant = accountant_for(dp_accounting.LaplaceDpEvent(1.0 / eps))
        laplace.append({"epsilon": eps, "rdp": [finite_or_none(r) for r in accountant.rdp]})

    command = "python3 scripts/reference/dp_accountant_golden.py" + "".join(" " + a for a in sys.argv[1:])
    golden = {
        "provenance": {
            "package": "dp-accounting",
            "version": metadata.version("dp-accounting"),
            "numpy": metadata.version("numpy"),
            "scipy": metadata.version("scipy"),
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": command,
            "accountant": "dp_accounting.rdp.RdpAccountant() (DEFAULT_RDP_ORDERS, ADD_OR_REMOVE_ONE)",
            "event": "SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps)",
            "calibration": "mechanism_calibration.calibrate_dp_mechanism, bracket [0.1, 100], tol 1e-6",
            "laplace": "LaplaceDpEvent(1 / epsilon): sensitivity 1, scale 1 / epsilon",
            "quadrature": f"mpmath {metadata.version('mpmath')} quad at 40 digits of E_mu0[(mu / mu0)^alpha]",
        },
        "orders": orders,
        "cases": cases,
        "curves": curves,
        "calibrations": calibrations,
        "laplace": laplace,
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(golden, f, indent=1, allow_nan=False)
        f.write("\n")
    print(f"wrote {out}: {len(cases)} cases, {len(curves)} curves, {len(calibrations)} calibrations, "
          f"{len(laplace)} laplace")


if __name__ == "__main__":
    main()
