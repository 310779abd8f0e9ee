"""Golden-value generator for the drift layer.

Deterministic (seeded numpy): writes tests/oracle/drift_golden.json with the
inputs of every case and the values scipy / River compute for them. The Rust
tests (tests/drift_oracle.rs) read the same inputs and assert agreement.

Rules implemented here in numpy (the Rust side implements the same ones):
  * PSI bins: cuts = np.quantile(reference, [0.1, ..., 0.9]) ('linear');
    bin = np.searchsorted(cuts, x, side='left'), i.e. bins
    (-inf, c1], (c1, c2], ..., (c9, +inf); proportions floored with
    max(p, 1e-4), no renormalisation; PSI = sum (c - r) ln(c / r).
  * JS: scipy.spatial.distance.jensenshannon on the RAW bin proportions.
  * Categorical: union of categories sorted by name; chi-square expected
    = max(ref_p, 1e-4) renormalised to sum 1, times the window total;
    PSI / JS as above on the category proportion vectors.

Floats are rounded to 6 decimals before use so that their JSON text
round-trips exactly.

Usage: python3 tests/oracle/drift_oracle.py   (from the crate root)
"""

import json
import os

import numpy as np
import river
import scipy
from river import drift
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

FLOOR = 1e-4
RNG = np.random.default_rng(20240611)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "drift_golden.json")


def floats(x):
    return [float(v) for v in np.round(np.asarray(x, dtype=float), 6)]


def num_or_none(x):
    x = float(x)
    return x if np.isfinite(x) else None


def psi_from_props(ref_p, cur_p):
    r = np.maximum(ref_p, FLOOR)
    c = np.maximum(cur_p, FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def numeric_case(name, a, b):
    a, b = floats(a), floats(b)
    aa, bb = np.array(a), np.array(b)
    ks = stats.ks_2samp(aa, bb)
    cuts = np.quantile(aa, [k / 10 for k in range(1, 10)])
    ref_p = np.bincount(np.searchsorted(cuts, aa, side="left"), minlength=10) / len(aa)
    cur_p = np.bincount(np.searchsorted(cuts, bb, side="left"), minlength=10) / len(bb)
    return {
        "name": name,
        "a": a,
        "b": b,
        "ks_statistic": float(ks.statistic),
        "ks_p_value": float(ks.pvalue),
        "ks_method": "exact" if max(len(a), len(b)) <= 10000 else "asymp",
        "wasserstein": float(stats.wasserstein_distance(aa, bb)),
        "cuts": [float(c) for c in cuts],
        "psi": psi_from_props(ref_p, cur_p),
        "js": num_or_none(jensenshannon(ref_p, cur_p)),
        "ref_std": float(np.std(aa)),
    }


def numeric_cases():
    n = RNG.normal
    cases = [
        numeric_case("small_5_vs_7", n(0, 1, 5), n(0.5, 1, 7)),
        numeric_case("small_equal_10", n(0, 1, 10), n(0, 1, 10)),
        numeric_case("no_shift_200_vs_150", n(0, 1, 200), n(0, 1, 150)),
        numeric_case("mean_shift_500", n(0, 1, 500), n(0.3, 1, 500)),
        numeric_case("variance_shift_800_vs_600", n(0, 1, 800), n(0, 2, 600)),
        numeric_case("ties_discrete_700_vs_400", RNG.integers(0, 6, 700), RNG.integers(0, 7, 400)),
        numeric_case("ties_binary_50_vs_60", RNG.integers(0, 2, 50), RNG.integers(0, 2, 60)),
        numeric_case("no_shift_1000", n(5, 2, 1000), n(5, 2, 1000)),
        numeric_case("mean_shift_3000_vs_2500", n(0, 1, 3000), n(0.1, 1, 2500)),
        numeric_case("lognormal_3000_vs_3000", RNG.lognormal(0, 1, 3000), RNG.lognormal(0.05, 1, 3000)),
        numeric_case("large_shift_2000_vs_300", n(0, 1, 2000), n(2, 1, 300)),
        numeric_case("ref_10000_vs_977", n(0, 1, 10000), n(0.05, 1, 977)),
        numeric_case("asymp_12000_vs_11000", n(0, 1, 12000), n(0.02, 1, 11000)),
        numeric_case("asymp_12000_vs_150", n(0, 1, 12000), n(0.1, 1, 150)),
        numeric_case("asymp_15000_vs_100_pomeranz_range", n(0, 1, 15000), n(0.15, 1, 100)),
        numeric_case("asymp_11000_vs_900_shift", n(0, 1, 11000), n(0.3, 1, 900)),
    ]
    # Exact-path cases past the lattice-cell budget (src/drift/two_sample.rs `tail_bound`):
    # a strong shift (p-value reported from the asymptotic tail, capped by an exact bound)
    # and a mild one (the bound does not apply: full exact computation). Own generator, so
    # the cases above keep their draws.
    rng = np.random.default_rng(11)
    cases += [
        numeric_case("tail_bound_3000_vs_2000_shift", rng.normal(0, 1, 3000), rng.normal(0.5, 1, 2000)),
        numeric_case("tail_bound_4000_vs_1500_disjoint", rng.normal(0, 1, 4000), rng.normal(10, 1, 1500)),
        numeric_case("over_budget_10000_vs_3000_mild", rng.normal(0, 1, 10000), rng.normal(0.05, 1, 3000)),
    ]
    return cases


def categorical_case(name, ref_counts, win_counts):
    names = sorted(set(ref_counts) | set(win_counts))
    ref = np.array([ref_counts.get(k, 0) for k in names], dtype=float)
    win = np.array([win_counts.get(k, 0) for k in names], dtype=float)
    ref_p = ref / ref.sum()
    win_p = win / win.sum()
    exp_p = np.maximum(ref_p, FLOOR)
    exp_p = exp_p / exp_p.sum()
    f_exp = exp_p * win.sum()
    chi = stats.chisquare(win, f_exp)
    return {
        "name": name,
        "reference": ref_counts,
        "window": win_counts,
        "chi_square_statistic": num_or_none(chi.statistic),
        "chi_square_p_value": num_or_none(chi.pvalue),
        "psi": psi_from_props(ref_p, win_p),
        "js": num_or_none(jensenshannon(ref_p, win_p)),
    }


def draw_counts(names, probs, n):
    counts = RNG.multinomial(n, probs)
    return {k: int(c) for k, c in zip(names, counts) if c > 0}


def categorical_cases():
    abc = ["a", "b", "c", "d", "e"]
    base = [0.4, 0.3, 0.15, 0.1, 0.05]
    return [
        categorical_case("same_distribution", draw_counts(abc, base, 5000), draw_counts(abc, base, 800)),
        categorical_case("shifted", draw_counts(abc, base, 5000), draw_counts(abc, [0.2, 0.3, 0.2, 0.2, 0.1], 800)),
        categorical_case("new_category_in_window", draw_counts(abc, base, 5000),
                         {**draw_counts(abc, base, 500), "zz_new": 40}),
        categorical_case("missing_in_window", draw_counts(abc, base, 5000),
                         draw_counts(["a", "b", "c"], [0.5, 0.3, 0.2], 300)),
        categorical_case("tiny_window", draw_counts(abc, base, 5000), {"a": 2, "c": 1}),
        categorical_case("large_window", draw_counts(abc, base, 20000), draw_counts(abc, [0.38, 0.31, 0.16, 0.1, 0.05], 20000)),
        categorical_case("many_categories", draw_counts([f"cat{i:02d}" for i in range(40)], np.full(40, 1 / 40), 10000),
                         draw_counts([f"cat{i:02d}" for i in range(40)], np.linspace(1, 2, 40) / np.linspace(1, 2, 40).sum(), 3000)),
    ]


def run_detector(det, stream):
    idx = []
    for i, x in enumerate(stream):
        det.update(x)
        if det.drift_detected:
            idx.append(i)
    return idx


def detector_cases():
    cases = []

    def binary(p_segments):
        parts = [RNG.random(n) < p for n, p in p_segments]
        return np.concatenate(parts).astype(int)

    streams = {
        "bernoulli_0.1_to_0.3_at_5000": ("binary", binary([(5000, 0.1), (5000, 0.3)])),
        "bernoulli_0.2_to_0.05_to_0.4": ("binary", binary([(4000, 0.2), (4000, 0.05), (4000, 0.4)])),
        "bernoulli_no_change_20000": ("binary", binary([(20000, 0.15)])),
        "bernoulli_short_2000": ("binary", binary([(1000, 0.5), (1000, 0.7)])),
        "abs_gauss_mean_shift_at_6000": ("float", floats(np.abs(np.concatenate([RNG.normal(0, 1, 6000), RNG.normal(1.5, 1, 6000)])))),
        "abs_gauss_no_change_8000": ("float", floats(np.abs(RNG.normal(0, 1, 8000)))),
        "gauss_slow_drift_10000": ("float", floats(RNG.normal(0, 1, 10000) + np.linspace(0, 3, 10000))),
    }
    for name, (kind, values) in streams.items():
        values = [int(v) for v in values] if kind == "binary" else values
        entry = {"name": name, "kind": kind}
        entry["stream"] = "".join(str(v) for v in values) if kind == "binary" else values
        xs = [float(v) for v in values]
        adwin = drift.ADWIN()
        entry["adwin"] = {"detections": run_detector(adwin, xs), "estimation": adwin.estimation, "width": int(adwin.width)}
        ph = drift.PageHinkley()
        entry["page_hinkley"] = {"detections": run_detector(ph, xs), "estimation": ph._x_mean.get()}
        if kind == "binary":
            ddm = drift.binary.DDM()
            entry["ddm"] = {"detections": run_detector(ddm, values), "estimation": ddm._p.get()}
        cases.append(entry)
    return cases


def special_cases():
    kstwo = []
    for n in [3, 10, 50, 100, 140, 141, 300, 1000, 6000, 50000, 150000]:
        for d in [0.001, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.45, 0.5, 0.6, 0.9, 1.5 / n, 0.7 / n, 1 - 0.5 / n]:
            kstwo.append({"n": n, "d": d, "sf": float(stats.kstwo.sf(d, n))})
    smirnov = [{"n": n, "d": d, "sf": float(special.smirnov(n, d))}
               for n in [1, 5, 20, 100, 1000, 8000] for d in [0.01, 0.05, 0.1, 0.3, 0.5, 0.8]]
    chi2 = [{"dof": k, "x": x, "sf": float(stats.chi2.sf(x, k))}
            for k in [1, 2, 3, 4, 5, 9, 20, 39, 100] for x in [0.001, 0.5, 1.0, 3.84, 10.0, 30.0, 80.0, 150.0, 400.0]]
    return {"kstwo_sf": kstwo, "smirnov_sf": smirnov, "chi2_sf": chi2}


def main():
    golden = {
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "river": river.__version__},
        "numeric": numeric_cases(),
        "categorical": categorical_cases(),
        "detectors": detector_cases(),
        "special": special_cases(),
    }
    with open(OUT, "w") as f:
        json.dump(golden, f, separators=(",", ":"))
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
