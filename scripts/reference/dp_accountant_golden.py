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

    Second reference: Opacus (`opacus`, section "opacus" of the JSON). `opacus/accountants/analysis/rdp.py` (ported
    from TF Privacy) sums the fractional series with its signs (`_log_sub` for the negative coefficients), like
    Tessera and unlike dp-accounting 0.6.0, so its fractional orders are exact up to rounding. Written: its
    single-step RDP curve (`compute_rdp`, steps 1) on Tessera's orders for every (q, sigma) of the grid (a k-step
    curve is k times it, as `compute_rdp` itself multiplies), and for every case two epsilons:
      - `epsilon`, `order`: Opacus's own `get_privacy_spent` (Balle et al. 2020, "Hypothesis Testing
        Interpretations and Renyi Differential Privacy", Theorem 21): eps(a) = rdp - (log(delta) + log(a)) / (a - 1)
        + log((a - 1) / a), minimised with nanargmin. The same per-order bound as dp-accounting's, but with no clamp
        at 0 (it can return a negative epsilon), no "epsilon = 0 when delta^2 + expm1(-rdp) > 0" and no a > 1.01
        guard (irrelevant here: the smallest order is 1.1).
      - `convertedEpsilon`, `convertedOrder`: dp-accounting's `compute_epsilon` (Tessera's conversion) applied to
        Opacus's RDP values: the apples-to-apples epsilon.
    Why importlib and --no-deps: `import opacus` (and `import opacus.accountants`) imports torch through
    privacy_engine / DPOptimizer, and torch is neither wanted nor installed here. The RDP analysis file itself needs
    only math, numpy and scipy, so the wheel is installed with `pip install --no-deps` and that one file is loaded
    with importlib.util.spec_from_file_location, bypassing the package's __init__. Its SHA-256 is recorded.

How to run
    python3 scripts/reference/dp_accountant_golden.py [OUTPUT_JSON]
    (default Tests/DifferentialPrivacyTests/Golden/rdp_accountant.json)

    The first run creates the virtual environment scripts/.venv-dp (git-ignored by `/scripts/.venv*/`), installs the
    pinned packages below and re-executes itself there; later runs reuse it (and add Opacus to an older venv).

Pinned packages
    dp-accounting==0.6.0, numpy==2.4.6, scipy==1.17.1, mpmath==1.4.1; opacus==1.6.0 with --no-deps (no torch)

Conventions (the Swift code must do the same)
    Orders      dp-accounting's DEFAULT_RDP_ORDERS: 1.1, 1.2, ..., 10.9 (as 1 + x / 10.0), 11, 12, ..., 63, 128, 256,
                512, 1024. Integer orders use the exact binomial expansion, the others the fractional series of
                Mironov, Talwar & Zhang 2019 ("Renyi Differential Privacy of the Sampled Gaussian Mechanism").
    Conversion  epsilon = min over orders of rdp + log1p(-1/a) - (log(delta) + log(a)) / (a - 1) (Canonne, Kamath &
                Steinke 2020, Prop. 12; Asoodeh et al. 2020), clamped at 0; orders <= 1.01 are not used.
"""
import datetime
import hashlib
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(ROOT, "scripts", ".venv-dp")
PINS = ["dp-accounting==0.6.0", "numpy==2.4.6", "scipy==1.17.1", "mpmath==1.4.1"]
OPACUS = "1.6.0"  # installed with --no-deps: its wheel requires torch, which this script never imports


def ensure_venv():
    python = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([python, "-m", "pip", "install", "-q", *PINS])
    os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])


def ensure_opacus():
    """Installs the pinned Opacus without its dependencies (torch, opt-einsum) when the venv lacks it."""
    from importlib import metadata
    try:
        if metadata.version("opacus") == OPACUS:
            return
    except metadata.PackageNotFoundError:
        pass
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--no-deps", f"opacus=={OPACUS}"])


ensure_venv()
ensure_opacus()

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


def load_opacus_rdp():
    """opacus/accountants/analysis/rdp.py as a stand-alone module, and its SHA-256. Not `import opacus`: the
    package's __init__ imports torch (see the header); this file imports only math, numpy and scipy."""
    path = str(metadata.distribution("opacus").locate_file("opacus/accountants/analysis/rdp.py"))
    spec = importlib.util.spec_from_file_location("opacus_analysis_rdp", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return module, digest


def opacus_section(orders, command):
    """Opacus's single-step RDP curves on `orders` and, per case, its own epsilon and dp-accounting's conversion of
    its RDP (see the header)."""
    analysis, digest = load_opacus_rdp()
    curves, cases = [], []
    for q in SAMPLING_RATES:
        for sigma in NOISE_MULTIPLIERS:
            one = [float(r) for r in analysis.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=orders)]
            if not all(math.isfinite(r) and r >= 0 for r in one):
                raise RuntimeError(f"Opacus RDP not finite and >= 0 for q {q} sigma {sigma}: {one}")
            curves.append({"samplingRate": q, "noiseMultiplier": sigma, "rdp": one})
            for steps in STEPS:
                curve = analysis.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
                for delta in DELTAS:
                    with warnings.catch_warnings():  # "optimal order is the largest alpha" for tiny epsilons
                        warnings.simplefilter("ignore")
                        eps, order = analysis.get_privacy_spent(orders=orders, rdp=curve, delta=delta)
                    converted, converted_order = rdp.compute_epsilon(orders, [float(r) for r in curve], delta)
                    cases.append({"samplingRate": q, "noiseMultiplier": sigma, "steps": steps, "delta": delta,
                                  "epsilon": float(eps), "order": float(order),
                                  "convertedEpsilon": float(converted), "convertedOrder": float(converted_order)})
    provenance = {
        "package": "opacus",
        "version": metadata.version("opacus"),
        "install": f"pip install --no-deps opacus=={OPACUS} (no torch)",
        "module": "opacus/accountants/analysis/rdp.py loaded with importlib.util.spec_from_file_location",
        "moduleSHA256": digest,
        "numpy": metadata.version("numpy"),
        "scipy": metadata.version("scipy"),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "rdp": "compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=orders): single step; k steps = k * it",
        "epsilon": "get_privacy_spent(orders, rdp, delta): Balle et al. 2020 Thm 21, "
                   "rdp - (log delta + log a) / (a - 1) + log((a - 1) / a), nanargmin, no clamp at 0",
        "convertedEpsilon": "dp_accounting.rdp.rdp_privacy_accountant.compute_epsilon(orders, Opacus rdp, delta): "
                            "the same bound with log1p(-1/a), 0 when delta^2 + expm1(-rdp) > 0, clamped at 0",
    }
    return {"provenance": provenance, "orders": list(orders), "curves": curves, "cases": cases}


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
        "opacus": opacus_section(orders, command),
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(golden, f, indent=1, allow_nan=False)
        f.write("\n")
    print(f"wrote {out}: {len(cases)} cases, {len(curves)} curves, {len(calibrations)} calibrations, "
          f"{len(laplace)} laplace, Opacus: {len(golden['opacus']['curves'])} curves, "
          f"{len(golden['opacus']['cases'])} cases")


if __name__ == "__main__":
    main()
