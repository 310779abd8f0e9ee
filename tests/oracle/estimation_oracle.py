"""Golden-value generator for performance estimation (NannyML CBPE 0.13.1).

Deterministic (seeded numpy Generators): writes tests/oracle/estimation_golden.json
with the input rows of every case and, per chunk (= window) and metric, what
NannyML 0.13.1 computes: CBPE estimate, sampling error, confidence band,
thresholds, alert, realized value (and PerformanceCalculator's realized sampling
error / alert).  The exact rules are written down in
docs/estimation-nannyml-notes.md; the second half of this file is an independent
numpy re-implementation of those notes (own isotonic regression / PAVA /
np.interp, own MT19937 + StratifiedShuffleSplit for the "auto" decision, own
metrics) and the script asserts that it reproduces every NannyML number to
1e-12 (relative, absolute below 1).

Calibration modes (see the notes, section "forcing calibration"):
  * "on"   -> nannyml.performance_estimation.confidence_based.cbpe.needs_calibration
              is replaced by a function returning True during fit;
  * "off"  -> same, returning False;
  * "auto" -> NannyML's own needs_calibration (nothing patched).

Usage (from the repository root, in the venv of estimation_requirements.txt):
    NML_DISABLE_USAGE_LOGGING=1 python tests/oracle/estimation_oracle.py
"""

import os

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sklearn  # noqa: E402
import scipy  # noqa: E402
import nannyml as nml  # noqa: E402
from nannyml import calibration as nml_calibration  # noqa: E402
from nannyml.performance_estimation.confidence_based import cbpe as cbpe_module  # noqa: E402
from sklearn.isotonic import IsotonicRegression  # noqa: E402
from sklearn.model_selection import StratifiedShuffleSplit  # noqa: E402

warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "estimation_golden.json")

ROWS = 500  # rows per window == NannyML chunk_size
REF_WINDOWS = 8
ANA_WINDOWS = 8
WINDOW_MS = 60_000
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a multiple of WINDOW_MS
BINARY_METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc"]
MODES = ["on", "off", "auto"]
MC_CLASSES = ["bird", "cat", "dog", "fish"]  # sorted; NannyML sorts class keys
TOL = 1e-12


# --------------------------------------------------------------------------- data


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def timestamps(first_window, n_windows):
    # row i of window w: T0 + w * WINDOW_MS + i * (WINDOW_MS / ROWS); strictly increasing
    out = []
    for w in range(first_window, first_window + n_windows):
        out.extend(T0_MS + w * WINDOW_MS + (i * WINDOW_MS) // ROWS for i in range(ROWS))
    return out


def binary_period(rng, first_window, specs):
    """specs: one (mu, sd, slope, shift, decimals) per window.

    z ~ N(mu, sd); P(y=1|z) = sigmoid(slope * 1.3 z - 0.3 + shift);
    the model score is a FIXED function of z: sigmoid(0.75 (1.3 z - 0.3) + 0.35)
    (mis-calibrated), optionally rounded to `decimals`; y_pred = score >= 0.5.
    """
    window, y_true, y_pred, score = [], [], [], []
    for k, (mu, sd, slope, shift, decimals) in enumerate(specs):
        z = rng.normal(mu, sd, ROWS)
        p = sigmoid(slope * 1.3 * z - 0.3 + shift)
        y = (rng.random(ROWS) < p).astype(int)
        s = sigmoid(0.75 * (1.3 * z - 0.3) + 0.35)
        if decimals is not None:
            s = np.round(s, decimals)
        window += [first_window + k] * ROWS
        y_true += [int(v) for v in y]
        y_pred += [int(v) for v in (s >= 0.5)]
        score += [float(v) for v in s]
    return {
        "window": window,
        "ts_ms": timestamps(first_window, len(specs)),
        "y_true": y_true,
        "y_pred": y_pred,
        "score": score,
    }


MC_W = np.array([[2.0, 0.0], [0.0, 2.0], [-1.5, -1.5], [1.0, -1.0]])
MC_B = np.array([0.2, 0.0, -0.2, 0.1])
MC_C = np.array([0.1, -0.1, 0.2, 0.0])


def softmax(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def multiclass_period(rng, first_window, mus):
    """x ~ N(mu, 0.9^2 I) in R^2; true P(y|x) = softmax(W x + b); the model outputs
    softmax(0.7 (W x + b) + c) (mis-calibrated); y_pred = argmax (first max)."""
    window, y_true, y_pred = [], [], []
    scores = {c: [] for c in MC_CLASSES}
    for k, mu in enumerate(mus):
        x = rng.normal(0.0, 0.9, (ROWS, 2)) + np.asarray(mu)
        logits = x @ MC_W.T + MC_B
        p_true = softmax(logits)
        p_model = softmax(0.7 * logits + MC_C)
        u = rng.random(ROWS)
        y = np.minimum((np.cumsum(p_true, axis=1) < u[:, None]).sum(axis=1), len(MC_CLASSES) - 1)
        yp = np.argmax(p_model, axis=1)
        window += [first_window + k] * ROWS
        y_true += [MC_CLASSES[i] for i in y]
        y_pred += [MC_CLASSES[i] for i in yp]
        for j, c in enumerate(MC_CLASSES):
            scores[c] += [float(v) for v in p_model[:, j]]
    return {
        "window": window,
        "ts_ms": timestamps(first_window, len(mus)),
        "y_true": y_true,
        "y_pred": y_pred,
        "scores": scores,
    }


def make_cases():
    base = (0.0, 1.0, 1.0, 0.0, None)
    cases = {}

    rng = np.random.default_rng(1001)
    cases["binary_reference"] = {
        "problem": "binary",
        "description": "analysis drawn from the reference distribution (no shift)",
        "reference": binary_period(rng, 0, [base] * REF_WINDOWS),
        "analysis": binary_period(rng, REF_WINDOWS, [base] * ANA_WINDOWS),
    }

    rng = np.random.default_rng(1002)
    cov = [(0.0, 1.0), (0.3, 1.0), (0.6, 1.0), (1.0, 0.9), (1.5, 0.8), (2.0, 0.7), (-0.8, 1.2), (-1.5, 1.0)]
    cases["binary_covariate_shift"] = {
        "problem": "binary",
        "description": "z (and so the score) distribution moves; P(y|z) and so P(y|score) unchanged; "
        "some analysis scores lie outside the reference range (calibrator clips)",
        "reference": binary_period(rng, 0, [base] * REF_WINDOWS),
        "analysis": binary_period(rng, REF_WINDOWS, [(m, s, 1.0, 0.0, None) for m, s in cov]),
    }

    rng = np.random.default_rng(1003)
    concept = [(1.0, 0.0), (1.0, 0.0), (1.0, 0.6), (1.0, 1.2), (0.6, 0.0), (0.3, 0.0), (1.0, -1.0), (1.5, -0.5)]
    cases["binary_concept_drift"] = {
        "problem": "binary",
        "description": "score distribution unchanged; P(y|score) changes (slope, shift) in the analysis "
        "windows: CBPE is wrong there, realized differs",
        "reference": binary_period(rng, 0, [base] * REF_WINDOWS),
        "analysis": binary_period(rng, REF_WINDOWS, [(0.0, 1.0, sl, sh, None) for sl, sh in concept]),
    }

    rng = np.random.default_rng(1004)
    tie_ref = [(0.0, 1.6, 1.0, 0.0, 2)] * REF_WINDOWS
    tie_ana = [(0.0, 1.6, 1.0, 0.0, 2)] * 4 + [(0.2, 1.6, 1.0, 0.0, 1)] * 4
    cases["binary_ties"] = {
        "problem": "binary",
        "description": "scores rounded to 2 decimals (reference, analysis windows 8-11) and 1 decimal "
        "(analysis windows 12-15): many ties, scores of exactly 0.0 / 0.5 / 1.0 occur",
        "reference": binary_period(rng, 0, tie_ref),
        "analysis": binary_period(rng, REF_WINDOWS, tie_ana),
    }

    rng = np.random.default_rng(1005)
    mc_ana = [(0, 0), (0, 0), (0, 0), (0.4, 0), (0.8, 0.2), (1.2, 0.4), (0, -0.8), (-0.5, -1.0)]
    cases["multiclass_4"] = {
        "problem": "multiclass",
        "classes": MC_CLASSES,
        "description": "4 classes, per-class probabilities from a softmax (sum to 1 up to rounding); "
        "covariate shift in analysis windows 11-15",
        "reference": multiclass_period(rng, 0, [(0, 0)] * REF_WINDOWS),
        "analysis": multiclass_period(rng, REF_WINDOWS, mc_ana),
    }
    return cases


# --------------------------------------------------------------------- NannyML runs


def proba_column(c):
    return f"proba_{c}"


def to_frame(case, period):
    rows = case[period]
    df = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(np.asarray(rows["ts_ms"], dtype=np.int64), unit="ms"),
            "y_true": rows["y_true"],
            "y_pred": rows["y_pred"],
        }
    )
    if case["problem"] == "binary":
        df["score"] = np.asarray(rows["score"], dtype=np.float64)
    else:
        # deliberately not in sorted order: NannyML sorts the class keys itself
        for c in reversed(case["classes"]):
            df[proba_column(c)] = np.asarray(rows["scores"][c], dtype=np.float64)
    return df


def nml_kwargs(case):
    if case["problem"] == "binary":
        return dict(y_pred_proba="score", problem_type="classification_binary")
    return dict(
        y_pred_proba={c: proba_column(c) for c in reversed(case["classes"])},
        problem_type="classification_multiclass",
    )


def run_nannyml(case, mode):
    ref, ana = to_frame(case, "reference"), to_frame(case, "analysis")
    kw = dict(
        metrics=BINARY_METRICS,
        y_pred="y_pred",
        y_true="y_true",
        timestamp_column_name="timestamp",
        chunk_size=ROWS,
        **nml_kwargs(case),
    )
    original = cbpe_module.needs_calibration
    if mode != "auto":
        forced = mode == "on"
        cbpe_module.needs_calibration = lambda *args, **kwargs: forced
    try:
        est = nml.CBPE(**kw)
        est.fit(ref)
        est_df = est.estimate(ana).to_df()
    finally:
        cbpe_module.needs_calibration = original

    if case["problem"] == "binary":
        decision = bool(est.needs_calibration)
        calibrators = {"score": est.calibrator if decision else None}
    else:
        decision = {
            c: isinstance(est._calibrators[c], nml_calibration.IsotonicCalibrator) for c in case["classes"]
        }
        calibrators = {c: est._calibrators[c] if decision[c] else None for c in case["classes"]}

    calc = nml.PerformanceCalculator(**kw)
    calc.fit(ref)
    calc_df = calc.calculate(ana).to_df()
    assert len(est_df) == len(calc_df) == REF_WINDOWS + ANA_WINDOWS
    components = {m.name: m._sampling_error_components for m in est.metrics}
    return est_df, calc_df, decision, calibrators, components


def num(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def chunk_records(est_df, calc_df, case):
    out = []
    for i in range(len(est_df)):
        r, q = est_df.iloc[i], calc_df.iloc[i]
        period = r[("chunk", "period")]
        assert q[("chunk", "period")] == period
        assert int(r[("chunk", "start_index")]) == (i % REF_WINDOWS) * ROWS
        rec = {
            "period": period,
            "window": i,  # reference windows 0..7, analysis windows 8..15
            "chunk_index": int(r[("chunk", "chunk_index")]),
            "rows": ROWS,
            "metrics": {},
        }
        for m in BINARY_METRICS:
            realized = num(r[(m, "realized")])
            calc_value = num(q[(m, "value")])
            assert (realized is None and calc_value is None) or realized == calc_value, (m, realized, calc_value)
            assert num(q[(m, "upper_threshold")]) == num(r[(m, "upper_threshold")])
            assert num(q[(m, "lower_threshold")]) == num(r[(m, "lower_threshold")])
            rec["metrics"][m] = {
                "value": num(r[(m, "value")]),
                "sampling_error": num(r[(m, "sampling_error")]),
                "lower_confidence_boundary": num(r[(m, "lower_confidence_boundary")]),
                "upper_confidence_boundary": num(r[(m, "upper_confidence_boundary")]),
                "lower_threshold": num(r[(m, "lower_threshold")]),
                "upper_threshold": num(r[(m, "upper_threshold")]),
                "alert": bool(r[(m, "alert")]),
                "realized": realized,
                "realized_sampling_error": num(q[(m, "sampling_error")]),
                "realized_alert": bool(q[(m, "alert")]),
            }
        out.append(rec)
    return out


def components_json(components, problem):
    out = {}
    for name, comp in components.items():
        if problem == "binary" or name == "accuracy":
            out[name] = [num(v) for v in comp]
        else:
            out[name] = [[num(v) for v in c] for c in comp]
    return out


def calibrators_json(calibrators):
    out = {}
    for k, cal in calibrators.items():
        if cal is None:
            out[k] = None
        else:
            reg = cal._regressor
            out[k] = {
                "x_min": float(reg.X_min_),
                "x_max": float(reg.X_max_),
                "x_thresholds": [float(v) for v in reg.X_thresholds_],
                "y_thresholds": [float(v) for v in reg.y_thresholds_],
            }
    return out


# ============================================================================
# Independent re-implementation of docs/estimation-nannyml-notes.md
# (plain Python loops where the Rust side would loop; numpy only for argsort
# where NannyML's own unstable sort order is the thing being reproduced)
# ============================================================================


def seq_sum(values):
    s = 0.0
    for v in values:
        s += v
    return s


def mean(values):
    return seq_sum(values) / len(values)


def pstd(values):  # population standard deviation (ddof = 0), like np.std
    m = mean(values)
    return math.sqrt(seq_sum((v - m) * (v - m) for v in values) / len(values))


def pvar(values):
    m = mean(values)
    return seq_sum((v - m) * (v - m) for v in values) / len(values)


# ---- isotonic calibration (sklearn IsotonicRegression(out_of_bounds="clip", increasing=True))


def ri_pava(x, w):
    """scipy.optimize.isotonic_regression (Busing 2022, scipy/optimize/_pava), in place."""
    n = len(x)
    r = [0] * (n + 1)
    r[0], r[1] = 0, 1
    b = 0
    xb_prev, wb_prev = x[0], w[0]
    i = 1
    while i < n:
        b += 1
        xb, wb = x[i], w[i]
        if xb_prev >= xb:
            b -= 1
            sb = wb_prev * xb_prev + wb * xb
            wb += wb_prev
            xb = sb / wb
            while i < n - 1 and xb >= x[i + 1]:
                i += 1
                sb += w[i] * x[i]
                wb += w[i]
                xb = sb / wb
            while b > 0 and x[b - 1] >= xb:
                b -= 1
                sb += w[b] * x[b]
                wb += w[b]
                xb = sb / wb
        x[b] = xb_prev = xb
        w[b] = wb_prev = wb
        r[b + 1] = i + 1
        i += 1
    f = n - 1
    for k in range(b, -1, -1):
        t = r[k]
        for j in range(f, t - 1, -1):
            x[j] = x[k]
        f = t - 1
    return x


def ri_isotonic_fit(scores, labels):
    pairs = sorted(zip((float(s) for s in scores), (float(y) for y in labels)))
    ux, uy, uw = [], [], []
    cx, cy, cw = pairs[0][0], 0.0, 0.0
    for xv, yv in pairs:
        if xv - cx >= 1e-15:  # np.finfo(np.float64).resolution
            ux.append(cx)
            uw.append(cw)
            uy.append(cy / cw)
            cx, cy, cw = xv, yv, 1.0
        else:
            cw += 1.0
            cy += yv
    ux.append(cx)
    uw.append(cw)
    uy.append(cy / cw)
    fy = ri_pava(uy, uw)
    keep = [True] * len(fy)
    for i in range(1, len(fy) - 1):
        keep[i] = fy[i] != fy[i - 1] or fy[i] != fy[i + 1]
    return {
        "x_min": ux[0],
        "x_max": ux[-1],
        "x": [v for v, k in zip(ux, keep) if k],
        "y": [v for v, k in zip(fy, keep) if k],
    }


def ri_interp(v, xp, fp):
    """np.interp (numpy/_core/src/multiarray/compiled_base.c: arr_interp), v inside [xp0, xpn]."""
    n = len(xp)
    if n == 1:
        return fp[0]
    lo, hi = 0, n - 1
    if v >= xp[hi]:
        return fp[hi]
    while hi - lo > 1:  # largest j with xp[j] <= v
        mid = (lo + hi) // 2
        if xp[mid] <= v:
            lo = mid
        else:
            hi = mid
    if xp[lo] == v:
        return fp[lo]
    slope = (fp[lo + 1] - fp[lo]) / (xp[lo + 1] - xp[lo])
    return slope * (v - xp[lo]) + fp[lo]


def ri_calibrate(cal, scores):
    out = []
    for s in scores:
        s = min(max(float(s), cal["x_min"]), cal["x_max"])  # out_of_bounds="clip"
        out.append(ri_interp(s, cal["x"], cal["y"]))
    return out


# ---- needs_calibration ("auto"): MT19937 RandomState(42) + StratifiedShuffleSplit + ECE


class RiMT19937:
    """numpy.random.RandomState(seed) with an int seed: legacy mt19937_seed (init_genrand)."""

    def __init__(self, seed):
        self.mt = [0] * 624
        self.mt[0] = seed & 0xFFFFFFFF
        for i in range(1, 624):
            prev = self.mt[i - 1]
            self.mt[i] = (1812433253 * (prev ^ (prev >> 30)) + i) & 0xFFFFFFFF
        self.pos = 624

    def next_u32(self):
        if self.pos >= 624:
            mt = self.mt
            for i in range(624):
                y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7FFFFFFF)
                v = mt[(i + 397) % 624] ^ (y >> 1)
                if y & 1:
                    v ^= 0x9908B0DF
                mt[i] = v
            self.pos = 0
        y = self.mt[self.pos]
        self.pos += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        return y

    def interval(self, mx):  # legacy random_interval, mx < 2**32
        if mx == 0:
            return 0
        mask = mx
        for sh in (1, 2, 4, 8, 16):
            mask |= mask >> sh
        while True:
            v = self.next_u32() & mask
            if v <= mx:
                return v

    def shuffle(self, arr):  # legacy RandomState.shuffle of a 1-d array
        arr = list(arr)
        for i in range(len(arr) - 1, 0, -1):
            j = self.interval(i)
            arr[i], arr[j] = arr[j], arr[i]
        return arr

    def permutation(self, n_or_list):
        return self.shuffle(range(n_or_list) if isinstance(n_or_list, int) else n_or_list)


def ri_approximate_mode(class_counts, n_draws, rng):
    total = float(sum(class_counts))
    continuous = [c / total * n_draws for c in class_counts]
    floored = [math.floor(c) for c in continuous]
    need = int(n_draws - sum(floored))
    if need > 0:
        remainder = [c - f for c, f in zip(continuous, floored)]
        for value in sorted(set(remainder), reverse=True):
            inds = [i for i, r in enumerate(remainder) if r == value]
            add_now = min(len(inds), need)
            chosen = [inds[j] for j in rng.permutation(len(inds))[:add_now]]  # choice(replace=False)
            for i in chosen:
                floored[i] += 1
            need -= add_now
            if need == 0:
                break
    return [int(f) for f in floored]


def ri_stratified_shuffle_split(y, n_splits=10, test_size=0.1, seed=42):
    n = len(y)
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    classes = sorted(set(y))
    class_indices = [[i for i in range(n) if y[i] == c] for c in classes]
    counts = [len(ix) for ix in class_indices]
    rng = RiMT19937(seed)
    for _ in range(n_splits):
        n_i = ri_approximate_mode(counts, n_train, rng)
        t_i = ri_approximate_mode([c - a for c, a in zip(counts, n_i)], n_test, rng)
        train, test = [], []
        for k in range(len(classes)):
            perm = rng.permutation(counts[k])
            idx = [class_indices[k][p] for p in perm]
            train += idx[: n_i[k]]
            test += idx[n_i[k] : n_i[k] + t_i[k]]
        yield rng.permutation(train), rng.permutation(test)


def ri_ece(y_true, proba, order):
    n = len(proba)
    bins = 10
    if n <= 2 * bins:
        bins = n // 2
    width = n // bins
    edges = list(range(0, n + 1, width))
    edges[-1] = n
    p = [proba[i] for i in order]
    t = [y_true[i] for i in order]
    terms = []
    for a, b in zip(edges[:-1], edges[1:]):
        terms.append((b - a) / n * abs(mean(p[a:b]) - mean(t[a:b])))
    return seq_sum(terms)


def ri_needs_calibration(y_true, scores):
    """Returns (decision, ece_before, ece_after, ece_after_stable_sort, decision_stable_sort)."""
    if len(set(y_true)) == 1:
        return False, None, None, None, False
    if ri_roc_auc(y_true, scores) > 0.999:
        return False, None, None, None, False
    yt, pr, pc = [], [], []
    for train, test in ri_stratified_shuffle_split(y_true):
        cal = ri_isotonic_fit([scores[i] for i in train], [y_true[i] for i in train])
        yt += [y_true[i] for i in test]
        pr += [scores[i] for i in test]
        pc += ri_calibrate(cal, [scores[i] for i in test])
    # NannyML sorts with np.argsort (numpy's default, NOT stable): tie order is numpy's
    before = ri_ece(yt, pr, list(np.argsort(np.asarray(pr))))
    after = ri_ece(yt, pc, list(np.argsort(np.asarray(pc))))
    before_s = ri_ece(yt, pr, sorted(range(len(pr)), key=lambda i: pr[i]))
    after_s = ri_ece(yt, pc, sorted(range(len(pc)), key=lambda i: pc[i]))
    return before > after, before, after, after_s, before_s > after_s


# ---- realized metrics


def ri_roc_auc(y, s):
    """Tie-aware AUC (= sklearn roc_auc_score): P(s_pos > s_neg) + 0.5 P(s_pos == s_neg)."""
    order = sorted(range(len(s)), key=lambda i: s[i])
    n_pos = sum(1 for v in y if v == 1)
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    neg_below = 0
    acc = 0.0
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and s[order[j]] == s[order[i]]:
            j += 1
        pos_here = sum(1 for k in order[i:j] if y[k] == 1)
        neg_here = (j - i) - pos_here
        acc += pos_here * (neg_below + 0.5 * neg_here)
        neg_below += neg_here
        i = j
    return acc / (n_pos * n_neg)


def ri_binary_realized(y, yp, s):
    n = len(y)
    tp = sum(1 for a, b in zip(y, yp) if a == 1 and b == 1)
    fp = sum(1 for a, b in zip(y, yp) if a == 0 and b == 1)
    fn = sum(1 for a, b in zip(y, yp) if a == 1 and b == 0)
    acc = sum(1 for a, b in zip(y, yp) if a == b) / n
    nan = float("nan")
    single = len(set(y)) <= 1 or len(set(yp)) <= 1
    return {
        "accuracy": acc,
        "precision": nan if single else (tp / (tp + fp) if tp + fp else 0.0),
        "recall": nan if single else (tp / (tp + fn) if tp + fn else 0.0),
        "f1": nan if single else (2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0),
        "roc_auc": nan if len(set(y)) <= 1 else ri_roc_auc(y, s),
    }


def ri_multiclass_realized(y, yp, scores, classes):
    nan = float("nan")
    single = len(set(y)) <= 1 or len(set(yp)) <= 1
    prec, rec, f1, auc = [], [], [], []
    for c in classes:
        tp = sum(1 for a, b in zip(y, yp) if a == c and b == c)
        pred = sum(1 for b in yp if b == c)
        true = sum(1 for a in y if a == c)
        prec.append(tp / pred if pred else 0.0)
        rec.append(tp / true if true else 0.0)
        f1.append(2 * tp / (true + pred) if true + pred else 0.0)
        auc.append(ri_roc_auc([1 if a == c else 0 for a in y], scores[c]))
    return {
        "accuracy": nan if single else sum(1 for a, b in zip(y, yp) if a == b) / len(y),
        "precision": nan if single else mean(prec),
        "recall": nan if single else mean(rec),
        "f1": nan if single else mean(f1),
        "roc_auc": nan if set(y) != set(classes) else mean(auc),
    }


# ---- estimated metrics


def ri_round5(v):
    return float(np.rint(v * 1e5) / 1e5)  # np.round(v, 5) == rint(v * 10**5) / 10**5


def ri_estimate_roc_auc(calibrated, uncalibrated):
    # descending by uncalibrated score; rows with equal uncalibrated score have equal
    # calibrated probability in the binary case, so the tie order does not matter there
    order = sorted(range(len(uncalibrated)), key=lambda i: -uncalibrated[i])
    tps, fps = [0.0], [0.0]
    cum = 0.0
    for k, i in enumerate(order):
        cum += calibrated[i]
        tps.append(ri_round5(cum))
        fps.append(ri_round5((1 + k) - cum))
    tpr = [v / tps[-1] for v in tps]
    fpr = [v / fps[-1] for v in fps]
    for a, b in zip(fpr[:-1], fpr[1:]):
        assert b >= a, "fpr not monotone (sklearn.metrics.auc would raise -> NaN)"
    return seq_sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2.0 for i in range(len(tpr) - 1))


def ri_binary_estimates(yp, p):
    tp = seq_sum(v for v, b in zip(p, yp) if b == 1)
    fp = seq_sum(1 - v for v, b in zip(p, yp) if b == 1)
    fn = seq_sum(v for v, b in zip(p, yp) if b == 0)
    tn = seq_sum(1 - v for v, b in zip(p, yp) if b == 0)
    return {
        "accuracy": (tp + tn) / len(yp),
        "precision": tp / (tp + fp) if tp + fp != 0 else 0.0,
        "recall": tp / (tp + fn) if tp + fn != 0 else 0.0,
        "f1": tp / (tp + 0.5 * (fp + fn)) if tp + 0.5 * (fp + fn) != 0 else 0.0,
    }


# ---- sampling error components (reference) and chunk sampling errors


def ri_auroc_components(y, s, stable=False):
    """Returns (ser_multi list, fraction).  NannyML: np.argsort (unstable) ascending."""
    y = list(y)
    s = list(s)
    if mean(y) > 0.5:
        y = [1 - v for v in y]
        s = [1 - v for v in s]
    if stable:
        order = sorted(range(len(s)), key=lambda i: s[i])
    else:
        order = list(np.argsort(np.asarray(s, dtype=np.float64)))
    ys = [y[i] for i in order]
    ranks = sorted(set(r * v for r, v in enumerate(ys)))[1:]  # drops the smallest (always 0)
    ser = [idx - i for i, idx in enumerate(ranks)]
    n_pos = sum(ys)
    n_neg = len(ys) - n_pos
    return [v / n_neg for v in ser], n_pos / len(ys)


def ri_binary_components(y, yp, s, stable=False):
    n = len(y)
    tp = sum(1 for a, b in zip(y, yp) if a == b and b == 1)
    fp = sum(1 for a, b in zip(y, yp) if a != b and b == 1)
    fn = sum(1 for a, b in zip(y, yp) if a != b and b == 0)
    comps = {"accuracy": (pstd([1.0 if a == b else 0.0 for a, b in zip(y, yp)]),)}
    comps["precision"] = (pstd([1.0] * tp + [0.0] * fp), sum(yp) / n)
    comps["recall"] = (pstd([1.0] * tp + [0.0] * fn), sum(y) / n)
    cf = (tp + fn + fp) / ((fn + fp) * 0.5 + tp)
    comps["f1"] = (pstd([1.0 * cf] * tp + [0.0] * (fn + fp)), (tp + fn + fp) / n)
    ser, frac = ri_auroc_components(y, s, stable)
    comps["roc_auc"] = (pstd(ser), frac)
    return comps


def ri_binary_se(comps, n):
    out = {"accuracy": comps["accuracy"][0] / math.sqrt(n)}
    for m in ("precision", "recall", "f1", "roc_auc"):
        std, frac = comps[m]
        out[m] = std / math.sqrt(n * frac)
    return out


def ri_multiclass_components(y, yp, scores, classes):
    n = len(y)
    comps = {m: [] for m in ("precision", "recall", "f1", "roc_auc")}
    for c in classes:
        bt = [1 if a == c else 0 for a in y]
        bp = [1 if b == c else 0 for b in yp]
        tp = sum(1 for a, b in zip(bt, bp) if a == 1 and b == 1)
        fp = sum(1 for a, b in zip(bt, bp) if a == 0 and b == 1)
        fn = sum(1 for a, b in zip(bt, bp) if a == 1 and b == 0)
        comps["precision"].append((pvar([1.0] * tp + [0.0] * fp), sum(bp) / n))
        comps["recall"].append((pvar([1.0] * tp + [0.0] * fn), sum(bt) / n))
        comps["f1"].append((pvar([1.0] * tp + [0.0] * (fn + fp)), (tp + fn + fp) / n))
        ser, frac = ri_auroc_components(bt, scores[c])
        comps["roc_auc"].append((pvar(ser), frac))
    comps["accuracy"] = (pstd([1.0 if a == b else 0.0 for a, b in zip(y, yp)]),)
    return comps


def ri_multiclass_se(comps, n):
    out = {"accuracy": comps["accuracy"][0] / math.sqrt(n)}
    for m in ("precision", "recall", "f1", "roc_auc"):
        k = len(comps[m])
        v = math.sqrt(seq_sum(var / (n * frac) for var, frac in comps[m])) / k
        out[m] = v * 1.2 if m == "roc_auc" else v
    return out


# ---- thresholds, band, alerts


def ri_thresholds(ref_values):
    vals = [v for v in ref_values if not math.isnan(v)]
    m = mean(vals)
    sd = pstd(vals)
    lower, upper = m - sd * 3, m + sd * 3
    if lower <= 0:
        lower = 0.0
    if upper >= 1:
        upper = 1.0
    return lower, upper


def ri_case(case, mode, auto_decision):
    classes = case.get("classes")
    ref, ana = case["reference"], case["analysis"]
    multiclass = case["problem"] == "multiclass"

    # calibration decision
    if mode == "on":
        decision = {c: True for c in classes} if multiclass else True
    elif mode == "off":
        decision = {c: False for c in classes} if multiclass else False
    else:
        decision = auto_decision

    # fit calibrators on the whole reference
    if multiclass:
        cals = {
            c: ri_isotonic_fit(ref["scores"][c], [1 if a == c else 0 for a in ref["y_true"]]) if decision[c] else None
            for c in classes
        }
    else:
        cals = {"score": ri_isotonic_fit(ref["score"], ref["y_true"]) if decision else None}

    def calibrated(period):
        rows = case[period]
        if not multiclass:
            s = rows["score"]
            return ri_calibrate(cals["score"], s) if cals["score"] else list(s)
        cols = {c: (ri_calibrate(cals[c], rows["scores"][c]) if cals[c] else list(rows["scores"][c])) for c in classes}
        out = {c: [] for c in classes}
        for i in range(len(rows["y_true"])):
            denom = seq_sum(cols[c][i] for c in classes)
            for c in classes:
                out[c].append(cols[c][i] / denom if denom != 0 else 1.0 / len(classes))
        return out

    if multiclass:
        comps = ri_multiclass_components(ref["y_true"], ref["y_pred"], ref["scores"], classes)
    else:
        comps = ri_binary_components(ref["y_true"], ref["y_pred"], ref["score"])

    def chunks(period):
        rows = case[period]
        cal = calibrated(period)
        out = []
        for w in range(len(rows["y_true"]) // ROWS):
            sl = slice(w * ROWS, (w + 1) * ROWS)
            y, yp = rows["y_true"][sl], rows["y_pred"][sl]
            if multiclass:
                sc = {c: rows["scores"][c][sl] for c in classes}
                cp = {c: cal[c][sl] for c in classes}
                realized = ri_multiclass_realized(y, yp, sc, classes)
                est = {}
                per = {m: [] for m in ("precision", "recall", "f1")}
                aucs = []
                for c in classes:
                    b = [1 if v == c else 0 for v in yp]
                    e = ri_binary_estimates(b, cp[c])
                    for m in per:
                        per[m].append(e[m])
                    aucs.append(ri_estimate_roc_auc(cp[c], sc[c]))
                est["accuracy"] = mean([cp[v][i] for i, v in enumerate(yp)])
                for m in per:
                    est[m] = mean(per[m])
                est["roc_auc"] = mean(aucs)
                se = ri_multiclass_se(comps, ROWS)
            else:
                s = rows["score"][sl]
                realized = ri_binary_realized(y, yp, s)
                est = ri_binary_estimates(yp, cal[sl])
                est["roc_auc"] = ri_estimate_roc_auc(cal[sl], s)
                se = ri_binary_se(comps, ROWS)
            out.append((est, se, realized))
        return out

    ref_chunks, ana_chunks = chunks("reference"), chunks("analysis")
    thresholds = {m: ri_thresholds([c[2][m] for c in ref_chunks]) for m in BINARY_METRICS}
    records = []
    for period, lst in (("reference", ref_chunks), ("analysis", ana_chunks)):
        for est, se, realized in lst:
            rec = {}
            for m in BINARY_METRICS:
                lo, up = thresholds[m]
                v = est[m]
                rec[m] = {
                    "value": v,
                    "sampling_error": se[m],
                    "lower_confidence_boundary": max(0.0, v - 3 * se[m]),
                    "upper_confidence_boundary": min(1.0, v + 3 * se[m]),
                    "lower_threshold": lo,
                    "upper_threshold": up,
                    "alert": v < lo or v > up,
                    "realized": realized[m],
                    "realized_sampling_error": se[m],
                    "realized_alert": realized[m] < lo or realized[m] > up,
                }
            records.append(rec)
    return records, cals


def close(a, b):
    if a is None or b is None:
        return a is None and (b is None or (isinstance(b, float) and math.isnan(b)))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    return abs(a - b) <= TOL * max(1.0, abs(a))


def check_against_nannyml(name, mode, golden_chunks, ri_records):
    assert len(golden_chunks) == len(ri_records)
    worst = 0.0
    for g, r in zip(golden_chunks, ri_records):
        for m in BINARY_METRICS:
            for field, gv in g["metrics"][m].items():
                rv = r[m][field]
                if not close(gv, rv):
                    raise AssertionError(f"{name}/{mode}/window {g['window']}/{m}/{field}: nannyml {gv!r} vs notes {rv!r}")
                if isinstance(gv, float) and isinstance(rv, float):
                    worst = max(worst, abs(gv - rv))
    return worst


def self_checks():
    # MT19937 / legacy permutation against numpy's RandomState
    rng = RiMT19937(42)
    ref = np.random.RandomState(42)
    for n in (1, 2, 10, 1000, 3):
        assert rng.permutation(n) == list(ref.permutation(n)), n
    # StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=42), incl. remainder ties
    g = np.random.default_rng(11)
    for n, p in ((1003, 0.37), (4000, 0.45), (57, 0.5)):
        y = [int(v) for v in (g.random(n) < p)]
        sss = StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=42)
        for (tr, te), (rtr, rte) in zip(sss.split(np.zeros(n), np.asarray(y)), ri_stratified_shuffle_split(y)):
            assert list(tr) == rtr and list(te) == rte, n
    # isotonic fit / predict against sklearn on tied, unsorted data
    x = np.round(g.random(3000), 2)
    y = (g.random(3000) < x).astype(int)
    cal = ri_isotonic_fit(x, y)
    reg = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(x, y)
    t = np.concatenate([g.random(500) * 1.2 - 0.1, x[:200]])
    assert ri_calibrate(cal, t) == [float(v) for v in reg.predict(t)]
    # np.round(v, 5) == rint(v * 1e5) / 1e5
    vals = np.random.default_rng(7).random(20000) * 600
    assert np.array_equal(np.round(vals, 5), np.rint(vals * 1e5) / 1e5)


# ------------------------------------------------------------------------------ main


def main():
    self_checks()
    cases = make_cases()
    golden = {
        "generator": {
            "script": "tests/oracle/estimation_oracle.py",
            "python": sys.version.split()[0],
            "nannyml": nml.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "scikit-learn": sklearn.__version__,
            "scipy": scipy.__version__,
        },
        "conventions": {
            "rows_per_window": ROWS,
            "chunk_size": ROWS,
            "window_ms": WINDOW_MS,
            "ts_ms": "T0 + window * window_ms + (i * window_ms) // rows_per_window, T0 = 1767225600000",
            "reference_windows": list(range(REF_WINDOWS)),
            "analysis_windows": list(range(REF_WINDOWS, REF_WINDOWS + ANA_WINDOWS)),
            "metrics": BINARY_METRICS,
            "calibration_modes": {
                "on": "cbpe.needs_calibration patched to return True (binary: isotonic on the whole "
                "reference; multiclass: one isotonic calibrator per class)",
                "off": "patched to return False (binary: raw scores; multiclass: NoopCalibrator per class, "
                "rows still renormalised to sum 1)",
                "auto": "NannyML's own nannyml.calibration.needs_calibration",
            },
            "null": "NaN in NannyML",
            "chunks": "results.<mode>: 8 reference chunks (period 'reference', CBPE run on the reference "
            "itself) then 8 analysis chunks; realized_* from the same chunk with y_true "
            "(realized_sampling_error and realized_alert from nannyml.PerformanceCalculator)",
        },
        "cases": {},
    }
    report = []
    for name, case in cases.items():
        multiclass = case["problem"] == "multiclass"
        out = {k: v for k, v in case.items()}
        out["results"] = {}
        # auto decision, independently
        ref = case["reference"]
        if multiclass:
            auto_info = {}
            for c in case["classes"]:
                bt = [1 if a == c else 0 for a in ref["y_true"]]
                d, b, a, a_s, d_s = ri_needs_calibration(bt, ref["scores"][c])
                auto_info[c] = {
                    "needs_calibration": d,
                    "ece_before": b,
                    "ece_after": a,
                    "ece_after_stable_sort": a_s,
                    "needs_calibration_stable_sort": d_s,
                }
            ri_auto = {c: auto_info[c]["needs_calibration"] for c in case["classes"]}
        else:
            d, b, a, a_s, d_s = ri_needs_calibration(ref["y_true"], ref["score"])
            auto_info = {
                "needs_calibration": d,
                "ece_before": b,
                "ece_after": a,
                "ece_after_stable_sort": a_s,
                "needs_calibration_stable_sort": d_s,
            }
            ri_auto = d
        out["auto_calibration"] = auto_info
        for mode in MODES:
            est_df, calc_df, decision, calibrators, components = run_nannyml(case, mode)
            if mode == "auto":
                assert decision == ri_auto, (name, decision, ri_auto)
            golden_chunks = chunk_records(est_df, calc_df, case)
            ri_records, ri_cals = ri_case(case, mode, ri_auto)
            # calibrators: same thresholds
            for key, cal in calibrators.items():
                if cal is None:
                    assert ri_cals[key] is None
                    continue
                reg = cal._regressor
                assert ri_cals[key]["x"] == [float(v) for v in reg.X_thresholds_], (name, key)
                assert all(
                    close(float(u), v) for u, v in zip(reg.y_thresholds_, ri_cals[key]["y"])
                ), (name, key)
            worst = check_against_nannyml(name, mode, golden_chunks, ri_records)
            report.append(f"{name:24s} {mode:4s} calibration={decision} max|nannyml - notes| = {worst:.2e}")
            out["results"][mode] = {
                "needs_calibration": decision,
                "calibrators": calibrators_json(calibrators),
                "sampling_error_components": components_json(components, case["problem"]),
                "chunks": golden_chunks,
            }
        if name == "binary_ties":
            # AUROC sampling-error components depend on the order numpy's unstable argsort
            # gives to tied scores; the stable (row order) variant is what a port can reproduce
            ser_n, frac = ri_auroc_components(ref["y_true"], ref["score"], stable=False)
            ser_s, _ = ri_auroc_components(ref["y_true"], ref["score"], stable=True)
            se_n = pstd(ser_n) / math.sqrt(ROWS * frac)
            se_s = pstd(ser_s) / math.sqrt(ROWS * frac)
            ref_ties = len(ref["score"]) - len(set(ref["score"]))
            out["tie_sensitivity"] = {
                "note": "roc_auc sampling_error (estimated and realized) is computed by NannyML after "
                "np.argsort of the reference scores (numpy's default, unstable kind): the order of tied "
                "scores is numpy/CPU-specific. Values under a stable sort (ties in row order):",
                "reference_rows_sharing_a_score": ref_ties,
                "roc_auc_component_std_numpy": pstd(ser_n),
                "roc_auc_component_std_stable": pstd(ser_s),
                "roc_auc_component_fraction": frac,
                "roc_auc_sampling_error_numpy": se_n,
                "roc_auc_sampling_error_stable": se_s,
                # per mode and chunk (reference then analysis): the roc_auc fields that change
                "chunks_stable": {
                    mode: [
                        {
                            "sampling_error": se_s,
                            "lower_confidence_boundary": max(0.0, ch["metrics"]["roc_auc"]["value"] - 3 * se_s),
                            "upper_confidence_boundary": min(1.0, ch["metrics"]["roc_auc"]["value"] + 3 * se_s),
                            "realized_sampling_error": se_s,
                        }
                        for ch in out["results"][mode]["chunks"]
                    ]
                    for mode in MODES
                },
            }
            report.append(f"{name:24s} roc_auc SE numpy-order {se_n!r} vs stable-order {se_s!r}")
        golden["cases"][name] = out

    text = json.dumps(golden, indent=None, separators=(",", ":"), allow_nan=False)
    with open(OUT, "w") as f:
        f.write(text + "\n")
    for line in report:
        print(line)
    print(f"wrote {OUT} ({len(text) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
