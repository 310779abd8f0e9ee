#!/usr/bin/env python3
"""Independent oracle for the core engine of feedback-loop (join, windows, counts, metrics).

Run from the repository root:

    python3 tests/oracle/core_oracle.py

It (re)generates, for every case, `tests/oracle/core/<case>/` with `config.toml`,
`predictions.jsonl`, `outcomes.jsonl` and `expected.jsonl`: the metrics records that
`feedback-loop replay --config config.toml --predictions predictions.jsonl --outcomes
outcomes.jsonl` must print, in order.

The join / watermark / window / count logic below is a plain re-reading of
docs/semantics.md (an event loop, no optimisation beyond heaps for the expiry order).
Every quality metric is computed with scikit-learn on the joined pairs of the window.
Everything is seeded: the output is byte-for-byte reproducible.

Replay order (the contract of `replay`): all lines of both files are processed in the order
of the key (timestamp, predictions before outcomes, line number in its file). A line whose
timestamp cannot be read (malformed JSON, not an object, missing or unparseable timestamp)
takes the key of the line before it in the same file (-inf for the first line); the
generator gives the invalid lines that do have a readable timestamp the same timestamp as
the valid line before them, so both readings ("own timestamp" / "previous line") agree.
"""

import datetime as dt
import heapq
import json
import math
import os
import random
import re
import shutil
import sys
import warnings
from collections import defaultdict

import numpy as np
from river import drift as river_drift
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon
from sklearn import metrics as skm

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "core")
T0 = 1767225600000  # 2026-01-01T00:00:00Z in epoch ms
SEC = 1000
MIN = 60 * SEC
SCHEMA = "feedback-loop.metrics.v1"

# --------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------


def parse_duration(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text.strip())
    assert m, text
    unit = {"ms": 1, "s": SEC, "m": MIN, "h": 60 * MIN, "d": 24 * 60 * MIN}[m.group(2)]
    return int(m.group(1)) * unit


class Config:
    def __init__(self, d):
        self.raw = d
        j = d.get("join", {})
        w = d.get("window", {})
        self.delay = parse_duration(j.get("max_label_delay", "1h"))
        self.lead = parse_duration(j.get("max_outcome_lead", "5m"))
        self.max_pending = j.get("max_pending", 1000000)
        self.size = parse_duration(w.get("size", "1m"))
        self.attribute_to = w.get("attribute_to", "outcome")
        self.lateness = parse_duration(w.get("allowed_lateness", "5s"))
        fp = {"id": "id", "model": "model", "model_version": "model_version",
              "timestamp": "timestamp", "prediction": "prediction", "score": "score",
              "features": "features", "segment": "segment"}
        fo = {"id": "id", "model": "model", "timestamp": "timestamp", "actual": "actual"}
        fp.update(d.get("fields", {}).get("prediction", {}))
        fo.update(d.get("fields", {}).get("outcome", {}))
        self.fp, self.fo = fp, fo
        self.models = {m["name"]: m for m in d["models"]}

    def toml(self):
        lines = []
        for section in ("join", "window"):
            if section in self.raw:
                lines.append(f"[{section}]")
                for k, v in self.raw[section].items():
                    lines.append(f"{k} = {toml_value(v)}")
                lines.append("")
        for side in ("prediction", "outcome"):
            f = self.raw.get("fields", {}).get(side)
            if f:
                lines.append(f"[fields.{side}]")
                for k, v in f.items():
                    lines.append(f"{k} = {toml_value(v)}")
                lines.append("")
        for m in self.raw["models"]:
            lines.append("[[models]]")
            for k, v in m.items():
                if not isinstance(v, dict):
                    lines.append(f"{k} = {toml_value(v)}")
            lines.append("")
            for k, v in m.items():
                if isinstance(v, dict):
                    lines.append(f"[models.{k}]")
                    for kk, vv in v.items():
                        lines.append(f"{kk} = {toml_value(vv)}")
                    lines.append("")
        return "\n".join(lines)


def toml_value(v):
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


# --------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------

MISSING = object()


class Invalid(Exception):
    def __init__(self, why, model=None):
        super().__init__(why)
        self.model = model  # the configured model the record names, if any


def strict_json(line):
    """JSON as serde_json reads it: no NaN / Infinity literals."""

    def bad_constant(c):
        raise ValueError(f"not JSON: {c}")

    return json.loads(line, parse_constant=bad_constant)


def get_path(obj, path):
    """Dotted path lookup; JSON null counts as absent."""
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return MISSING
        cur = cur[part]
    return MISSING if cur is None else cur


RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_ts(v):
    """Epoch ms (int, or float truncated toward zero) or RFC 3339; None if unreadable."""
    if v is MISSING or isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return math.trunc(v) if math.isfinite(v) else None
    if isinstance(v, str):
        m = RFC3339.fullmatch(v)
        if not m:
            return None
        y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
        frac, off = m.group(7), m.group(8)
        if off in ("Z", "z"):
            tz = dt.timezone.utc
        else:
            sign = 1 if off[0] == "+" else -1
            tz = dt.timezone(sign * dt.timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
        try:
            t = dt.datetime(y, mo, d, h, mi, s, tzinfo=tz)
        except ValueError:
            return None
        ms = int((t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)).total_seconds()) * 1000
        if frac:
            ms += int((frac[1:] + "000")[:3])
        return ms
    return None


def canon_label(v):
    """Canonical string form of a class label (docs/semantics.md, Records)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("non-finite label")
        if v.is_integer():
            return str(int(v))
        r = repr(v)  # shortest round trip; the generator only uses plain decimals
        assert "e" not in r
        return r
    if isinstance(v, str):
        return v
    raise ValueError("not a label")


def to_number(v):
    if isinstance(v, bool):
        raise ValueError("bool is not a number")
    if isinstance(v, (int, float)):
        x = float(v)
    elif isinstance(v, str):
        x = float(v)  # raises on garbage
    else:
        raise ValueError("not a number")
    if not math.isfinite(x):
        raise ValueError("non-finite")
    return x


def read_key_ts(obj, path):
    if not isinstance(obj, dict):
        return None
    return parse_ts(get_path(obj, path))


def decode_prediction(cfg, obj):
    f = cfg.fp
    if not isinstance(obj, dict):
        raise Invalid("not an object")
    model = get_path(obj, f["model"])
    if not isinstance(model, str) or model not in cfg.models:
        raise Invalid("missing or unknown model")
    mc = cfg.models[model]
    rid = get_path(obj, f["id"])
    if not isinstance(rid, str):
        raise Invalid("no id", model)
    ts = parse_ts(get_path(obj, f["timestamp"]))
    if ts is None:
        raise Invalid("bad timestamp", model)
    version = get_path(obj, f["model_version"])
    if version is MISSING:
        version = None
    elif not isinstance(version, str):
        raise Invalid("bad version", model)
    raw = get_path(obj, f["prediction"])
    if raw is MISSING:
        raise Invalid("no prediction", model)
    try:
        if mc["task"] == "regression":
            value = to_number(raw)
        else:
            value = canon_label(raw)
    except ValueError:
        raise Invalid("bad prediction", model)
    score = get_path(obj, f["score"])
    if score is MISSING or mc["task"] == "regression":
        score = None
    elif mc["task"] == "binary":
        if isinstance(score, dict):
            s = score.get(mc["positive_class"], 0.0)
        else:
            s = score
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not (0.0 <= s <= 1.0):
            raise Invalid("bad score", model)
        score = float(s)
    else:  # multiclass
        if not isinstance(score, dict):
            raise Invalid("bad score", model)
        for v in score.values():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v <= 1):
                raise Invalid("bad score", model)
        score = {k: float(v) for k, v in score.items()}
    feats = {}
    fo = get_path(obj, f["features"])
    if fo is not MISSING:
        if not isinstance(fo, dict):
            raise Invalid("bad features", model)
        for name in mc.get("features", []):
            v = fo.get(name)
            if isinstance(v, bool):
                feats[name] = "true" if v else "false"
            elif isinstance(v, (int, float)) and math.isfinite(v):
                feats[name] = float(v)
            elif isinstance(v, str):
                feats[name] = v
    seg = get_path(obj, f["segment"])
    segs = {}
    if isinstance(seg, dict):
        for dim in mc.get("segments", []):
            if dim in seg and seg[dim] is not None:
                assert isinstance(seg[dim], str)
                segs[dim] = seg[dim]
    return dict(id=rid, model=model, version=version, ts=ts, value=value, score=score,
                segs=segs, feats=feats)


def decode_outcome(cfg, obj):
    f = cfg.fo
    if not isinstance(obj, dict):
        raise Invalid("not an object")
    model = get_path(obj, f["model"])
    if model is MISSING:
        model = None
    elif not isinstance(model, str) or model not in cfg.models:
        raise Invalid("unknown model")
    rid = get_path(obj, f["id"])
    if not isinstance(rid, str):
        raise Invalid("no id", model)
    ts = parse_ts(get_path(obj, f["timestamp"]))
    if ts is None:
        raise Invalid("bad timestamp", model)
    actual = get_path(obj, f["actual"])
    if actual is MISSING:
        raise Invalid("no actual", model)
    try:
        if model is not None and cfg.models[model]["task"] == "regression":
            to_number(actual)
        else:
            canon_label(actual)
    except ValueError:
        raise Invalid("bad actual", model)
    return dict(id=rid, model=model, ts=ts, actual=actual)


def actual_for(model_cfg, raw):
    if model_cfg["task"] == "regression":
        return to_number(raw)
    return canon_label(raw)


# --------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------

VERSION_FIELDS = ("predictions", "joined", "expired_predictions", "duplicates", "late")
MODEL_FIELDS = ("outcomes", "orphan_outcomes", "duplicates", "late", "invalid")


class Slice:
    def __init__(self):
        self.c = defaultdict(int)
        self.pairs = []  # (predicted, actual, score)

    def active(self):
        return any(self.c[k] for k in VERSION_FIELDS)


class Window:
    def __init__(self):
        self.series = defaultdict(Slice)  # (model, version) -> Slice
        self.slices = defaultdict(Slice)  # (model, version, dim, value) -> Slice
        self.model_counts = defaultdict(lambda: defaultdict(int))  # model -> field -> n
        self.preds = defaultdict(list)  # (model, version) -> counted predictions (own ts)
        self.outs = defaultdict(list)  # model -> label values of accepted outcomes (own ts)
        self.det = defaultdict(dict)  # (model, version) -> detector -> [count, index, at]
        # (model, version) -> [(attributed time, prediction time, fnv1a64(id), error)]
        self.pairs = defaultdict(list)


class Engine:
    def __init__(self, cfg):
        self.cfg = cfg
        self.wm = -math.inf
        self.max_ts = None
        self.deferred_invalid = []  # models of invalid records seen before any valid ts
        self.seq = 0
        self.pending = {}  # seq -> prediction
        self.pending_key = {}  # (id, model, version) -> seq
        self.pending_by_id = defaultdict(set)  # id -> {seq}
        self.pred_heap = []  # (deadline, seq)
        self.stored = {}  # seq -> outcome
        self.stored_by_id = defaultdict(list)  # id -> [seq]
        self.out_heap = []  # (deadline, seq)
        self.windows = defaultdict(Window)
        self.closed_upto = -math.inf  # every window with end <= this is closed
        self.snapshot = {}  # window start -> {model: versions seen when it closed}
        # Versions with activity in a closed window: what a window with only model-level
        # counts reports (event time only, as the partitioned engine's finalizer knows it).
        self.closed_versions = {m: set() for m in cfg.models}
        self.stats = defaultdict(int)
        # drift: first-windows references, detectors, and what each window saw when it closed
        self.first = defaultdict(list)  # (model, version) -> predictions of its first windows
        self.label_first = defaultdict(list)  # model -> label values of its first windows
        self.detectors = {}  # (model, version) -> (ADWIN, DDM, PageHinkley, [pairs])
        self.close_state = {}  # window start -> state at close

    # -- attribution -------------------------------------------------------------------
    def win(self, t):
        size = self.cfg.size
        w = (t // size) * size
        assert w + size > self.closed_upto, f"count lands in a closed window {w}"
        return w

    def add_version(self, t, p, field, pair=None):
        w = self.windows[self.win(t)]
        targets = [w.series[(p["model"], p["version"])]]
        for dim, val in p["segs"].items():
            targets.append(w.slices[(p["model"], p["version"], dim, val)])
        for s in targets:
            s.c[field] += 1
            if pair is not None:
                s.pairs.append(pair)

    def add_model(self, t, model, field):
        self.windows[self.win(t)].model_counts[model][field] += 1

    def scope(self, outcome_model):
        return [outcome_model] if outcome_model is not None else sorted(self.cfg.models)

    # -- records -----------------------------------------------------------------------
    def invalid(self, model):
        self.stats["invalid_lines"] += 1
        if model is None:
            return
        self.stats["invalid_counted"] += 1
        if self.max_ts is None:
            self.deferred_invalid.append(model)
        else:
            self.add_model(self.max_ts, model, "invalid")

    def prediction(self, p):
        cfg = self.cfg
        if p["ts"] < self.wm:
            self.stats["late"] += 1
            self.add_version(self.max_ts, p, "late")
            return
        key = (p["id"], p["model"], p["version"])
        already_joined = any(
            (p["model"], p["version"]) in self.stored[oseq]["joined"]
            for oseq in self.stored_by_id.get(p["id"], [])
        )
        if key in self.pending_key or already_joined:
            self.stats["dup_predictions"] += 1
            self.add_version(p["ts"], p, "duplicates")
            return
        self.add_version(p["ts"], p, "predictions")
        self.windows[self.win(p["ts"])].preds[(p["model"], p["version"])].append(p)
        # the earliest accepted stored outcome that matches and has not joined this series
        best = None
        for oseq in self.stored_by_id.get(p["id"], []):
            o = self.stored[oseq]
            if o["model"] is not None and o["model"] != p["model"]:
                continue
            if not (-cfg.lead <= o["ts"] - p["ts"] <= cfg.delay):
                continue
            if (p["model"], p["version"]) in o["joined"]:
                continue
            if best is None or o["seq"] < best["seq"]:
                best = o
        if best is not None:
            self.join(p, best)
            return
        # store it, evicting first if the store is full
        if len(self.pending) >= cfg.max_pending:
            while True:
                _, seq = heapq.heappop(self.pred_heap)
                if seq in self.pending:
                    break
            victim = self.unpend(seq)
            self.stats["evicted_predictions"] += 1
            self.expire_prediction(victim)
        self.seq += 1
        p["seq"] = self.seq
        self.pending[self.seq] = p
        self.pending_key[key] = self.seq
        self.pending_by_id[p["id"]].add(self.seq)
        heapq.heappush(self.pred_heap, (p["ts"] + cfg.delay, self.seq))

    def outcome(self, o):
        cfg = self.cfg
        if o["ts"] < self.wm:
            self.stats["late"] += 1
            for m in self.scope(o["model"]):
                self.add_model(self.max_ts, m, "late")
            return
        for oseq in self.stored_by_id.get(o["id"], []):
            s = self.stored[oseq]
            if s["model"] is None or s["model"] == o["model"]:
                self.stats["dup_outcomes"] += 1
                for m in self.scope(o["model"]):
                    self.add_model(o["ts"], m, "duplicates")
                return
        for m in self.scope(o["model"]):
            self.add_model(o["ts"], m, "outcomes")
            try:
                value = actual_for(cfg.models[m], o["actual"])
            except ValueError:
                continue  # not a number, for a regression model
            self.windows[self.win(o["ts"])].outs[m].append(value)
        self.seq += 1
        o["seq"] = self.seq
        o["joined"] = set()
        for pseq in sorted(self.pending_by_id.get(o["id"], ())):
            p = self.pending[pseq]
            if p["id"] != o["id"]:
                continue
            if o["model"] is not None and o["model"] != p["model"]:
                continue
            if not (-cfg.lead <= o["ts"] - p["ts"] <= cfg.delay):
                continue
            self.unpend(pseq)
            self.join(p, o)
        if len(self.stored) >= cfg.max_pending:
            while True:
                _, seq = heapq.heappop(self.out_heap)
                if seq in self.stored:
                    break
            self.stats["evicted_outcomes"] += 1
            self.leave_outcome(seq)
        self.stored[o["seq"]] = o
        self.stored_by_id[o["id"]].append(o["seq"])
        heapq.heappush(self.out_heap, (o["ts"] + cfg.lead, o["seq"]))

    def unpend(self, seq):
        p = self.pending.pop(seq)
        del self.pending_key[(p["id"], p["model"], p["version"])]
        self.pending_by_id[p["id"]].discard(seq)
        return p

    def join(self, p, o):
        self.stats["joined"] += 1
        o["joined"].add((p["model"], p["version"]))
        t = max(p["ts"], o["ts"]) if self.cfg.attribute_to == "outcome" else p["ts"]
        actual = actual_for(self.cfg.models[p["model"]], o["actual"])
        self.add_version(t, p, "joined", pair=(p["value"], actual, p["score"]))
        # the error goes to the series' detectors when the pair's window closes
        if self.cfg.models[p["model"]]["task"] == "regression":
            err = abs(actual - p["value"])
        else:
            err = 0.0 if actual == p["value"] else 1.0
        self.windows[self.win(t)].pairs[(p["model"], p["version"])].append(
            (t, p["ts"], fnv1a64(p["id"]), err))

    def feed_detectors(self, w):
        """Window close: the window's pairs, per series, sorted by (attributed time,
        prediction time, FNV-1a 64 of the id, error), go through the series' detectors."""
        win = self.windows[w]
        for key, pairs in win.pairs.items():
            dets = self.series_detectors(*key)
            for t, _, _, err in sorted(pairs):
                index = dets[3][0]
                dets[3][0] += 1
                for name, d in zip(DETECTORS, dets[:3]):
                    if d is None:
                        continue
                    d.update(err)
                    if d.drift_detected:
                        slot = win.det[key].setdefault(name, [0, None, None])
                        slot[0] += 1
                        slot[1], slot[2] = index, t

    def fill_references(self, w):
        """Window close: "first" references take whole closed windows, in window order,
        until they hold at least reference_size values."""
        win = self.windows[w]
        for key, preds in win.preds.items():
            if preds and len(self.first[key]) < ref_size(self.cfg.models[key[0]]):
                self.first[key].extend(preds)
        for m, values in win.outs.items():
            if values and len(self.label_first[m]) < ref_size(self.cfg.models[m]):
                self.label_first[m].extend(values)

    def series_detectors(self, model, version):
        key = (model, version)
        if key not in self.detectors:
            # DDM models a 0/1 error rate: not run for regression models
            ddm = None if self.cfg.models[model]["task"] == "regression" \
                else river_drift.binary.DDM()
            self.detectors[key] = (river_drift.ADWIN(), ddm, river_drift.PageHinkley(), [0])
        return self.detectors[key]

    def expire_prediction(self, p):
        self.stats["expired"] += 1
        t = p["ts"] + self.cfg.delay if self.cfg.attribute_to == "outcome" else p["ts"]
        self.add_version(t, p, "expired_predictions")

    def leave_outcome(self, seq):
        o = self.stored.pop(seq)
        self.stored_by_id[o["id"]].remove(seq)
        joined_models = {m for (m, _) in o["joined"]}
        for m in self.scope(o["model"]):
            if m not in joined_models:
                self.stats["orphans"] += 1
                self.add_model(o["ts"] + self.cfg.lead, m, "orphan_outcomes")

    # -- time --------------------------------------------------------------------------
    def after_record(self, ts):
        if ts is not None:
            if self.max_ts is None:
                for m in self.deferred_invalid:
                    self.add_model(ts, m, "invalid")
                self.deferred_invalid = []
            self.max_ts = ts if self.max_ts is None else max(self.max_ts, ts)
        if self.max_ts is None:
            return
        new_wm = max(self.wm, self.max_ts - self.cfg.lateness)
        if new_wm > self.wm:
            self.advance(new_wm)

    def advance(self, wm):
        self.wm = wm
        cfg = self.cfg
        # 1. expiries: predictions in deadline order, then outcomes
        while self.pred_heap and self.wm > self.pred_heap[0][0]:
            _, seq = heapq.heappop(self.pred_heap)
            if seq not in self.pending:
                continue  # joined or evicted earlier
            self.expire_prediction(self.unpend(seq))
        while self.out_heap and self.wm > self.out_heap[0][0]:
            _, seq = heapq.heappop(self.out_heap)
            if seq in self.stored:
                self.leave_outcome(seq)
        # 2. windows close
        upto = self.wm if cfg.attribute_to == "outcome" else self.wm - cfg.delay
        if upto > self.closed_upto:
            for w in sorted(self.windows):
                if w + cfg.size <= upto and w not in self.snapshot:
                    self.fill_references(w)
                    self.feed_detectors(w)
                    for m in self.closed_versions:
                        self.closed_versions[m] |= {
                            v for (mm, v), sl in self.windows[w].series.items()
                            if mm == m and sl.active()
                        }
                    self.snapshot[w] = {m: set(v) for m, v in self.closed_versions.items()}
                    self.close_state[w] = {
                        "first_complete": {k for k, v in self.first.items()
                                           if len(v) >= ref_size(cfg.models[k[0]])},
                        "label_complete": {m for m, v in self.label_first.items()
                                           if len(v) >= ref_size(cfg.models[m])},
                        "estimation": {k: estimations(d) for k, d in self.detectors.items()},
                    }
            self.closed_upto = upto

    def finish(self):
        assert not self.deferred_invalid, "invalid records but no valid timestamp at all"
        self.advance(math.inf)


# --------------------------------------------------------------------------------------
# metrics (scikit-learn)
# --------------------------------------------------------------------------------------


def f(x):
    x = float(x)
    assert math.isfinite(x), x
    return x


def classification(pairs, model_cfg):
    binary = model_cfg["task"] == "binary"
    none3 = {"precision": None, "recall": None, "f1": None}
    if not pairs:
        return {"accuracy": None, "precision": None, "recall": None, "f1": None,
                "averages": {"micro": dict(none3), "macro": dict(none3),
                             "weighted": dict(none3)},
                "per_class": {}, "confusion_matrix": {"labels": [], "matrix": []},
                "roc_auc": None, "log_loss": None, "brier": None}
    y_true = [a for (_, a, _) in pairs]
    y_pred = [p for (p, _, _) in pairs]
    labels = sorted(set(y_true) | set(y_pred))
    out = {"accuracy": f(skm.accuracy_score(y_true, y_pred))}
    P, R, F, S = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0)
    averages = {}
    for avg in ("micro", "macro", "weighted"):
        p, r, f1, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=avg, zero_division=0)
        averages[avg] = {"precision": f(p), "recall": f(r), "f1": f(f1)}
    if binary:
        pos = model_cfg["positive_class"]
        p, r, f1, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=[pos], average=None, zero_division=0)
        out.update(precision=f(p[0]), recall=f(r[0]), f1=f(f1[0]))
    else:
        out.update(averages["macro"])
    out["averages"] = averages
    out["per_class"] = {lab: {"precision": f(P[i]), "recall": f(R[i]), "f1": f(F[i]),
                              "support": int(S[i])} for i, lab in enumerate(labels)}
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    out["confusion_matrix"] = {"labels": labels, "matrix": [[int(x) for x in row] for row in cm]}
    scores = [s for (_, _, s) in pairs]
    roc = ll = brier = None
    if all(s is not None for s in scores):
        if binary:
            pos = model_cfg["positive_class"]
            yb = np.array([1 if a == pos else 0 for a in y_true])
            s = np.array(scores, dtype=np.float64)
            if len(set(yb.tolist())) == 2:
                roc = f(skm.roc_auc_score(yb, s))
            ll = f(skm.log_loss(yb, y_proba=s, labels=[0, 1]))
            brier = f(skm.brier_score_loss(yb, s, pos_label=1))
        else:
            classes = sorted(set(y_true) | {k for s in scores for k in s})
            proba = np.array([[s.get(c, 0.0) for c in classes] for s in scores])
            ll = f(skm.log_loss(y_true, y_proba=proba, labels=classes))
    out.update(roc_auc=roc, log_loss=ll, brier=brier)
    return out


def regression(pairs):
    if not pairs:
        return {"mae": None, "rmse": None, "mape": None, "r2": None}
    y_true = np.array([a for (_, a, _) in pairs], dtype=np.float64)
    y_pred = np.array([p for (p, _, _) in pairs], dtype=np.float64)
    return {
        "mae": f(skm.mean_absolute_error(y_true, y_pred)),
        "rmse": f(math.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mape": f(skm.mean_absolute_percentage_error(y_true, y_pred)),
        "r2": f(skm.r2_score(y_true, y_pred)) if len(pairs) >= 2 else None,
    }


def rfc3339(ms):
    t = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=ms)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        s += ".%03d" % (ms % 1000)
    return s + "Z"


def make_record(cfg, w, model, version, vcounts, mcounts, pairs, segment=None):
    mc = cfg.models[model]
    start = rfc3339(w)
    rid = f"{model}/{version if version is not None else '-'}/{start}"
    if segment:
        (dim, val), = segment.items()
        rid += f"/{dim}={val}"
    counts = {}
    for k in ("predictions", "outcomes", "joined", "expired_predictions", "orphan_outcomes",
              "duplicates", "late", "invalid"):
        counts[k] = vcounts.get(k, 0) + mcounts.get(k, 0)
    den = counts["joined"] + counts["expired_predictions"]
    counts["label_coverage"] = counts["joined"] / den if den else None
    rec = {"schema": SCHEMA, "record_id": rid, "model": model, "model_version": version}
    if segment:
        rec["segment"] = dict(segment)
    rec["window"] = {"start": start, "end": rfc3339(w + cfg.size)}
    rec["counts"] = counts
    if mc["task"] == "regression":
        rec["regression"] = regression(pairs)
    else:
        rec["classification"] = classification(pairs, mc)
    return rec


DETECTORS = ("adwin", "ddm", "page_hinkley")
FLOOR = 1e-4  # docs/drift.md: proportions floored at 1e-4 for PSI and expected counts


def fnv1a64(text):
    """FNV-1a, 64 bits, of the UTF-8 bytes of a join id."""
    h = 0xcbf29ce484222325
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def ref_size(model_cfg):
    return model_cfg.get("reference_size", 5000)


def estimations(dets):
    adwin, ddm, ph, _ = dets
    return {"adwin": float(adwin.estimation),
            "ddm": float(ddm._p.get()) if ddm is not None else 0.0,
            "page_hinkley": float(ph._x_mean.get())}


def num_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


def psi_value(ref_p, cur_p):
    r = np.maximum(ref_p, FLOOR)
    c = np.maximum(cur_p, FLOOR)
    return num_or_none(np.sum((c - r) * np.log(c / r)))


def resolve(rule, n_window, test, distance):
    method = rule.get("method", "auto")
    if method == "auto":
        picked = test if n_window <= 1000 else distance
        return picked, {"ks": 0.05, "chi_square": 0.05, "psi": 0.2, "wasserstein": 0.1,
                        "js": 0.1}[picked]
    default = {"ks": 0.05, "chi_square": 0.05, "psi": 0.2, "wasserstein": 0.1, "js": 0.1}
    return method, rule.get("threshold", default[method])


def decide(rule, n_window, drifted):
    """`drifted` is null below `[models.drift] min_window_samples` (default 100)."""
    return drifted if n_window >= rule.get("min_window_samples", 100) else None


def exceeds(method, value, threshold):
    if value is None:
        return False
    return value < threshold if method in ("ks", "chi_square") else value >= threshold


def numeric_drift(ref, win, rule):
    a = np.sort(np.array(ref, dtype=np.float64))
    b = np.sort(np.array(win, dtype=np.float64))
    method, threshold = resolve(rule, len(b), "ks", "wasserstein")
    psi = js = w = None
    ks = {"statistic": None, "p_value": None}
    if len(a) and len(b):
        cuts = np.quantile(a, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
        ref_p = np.bincount(np.searchsorted(cuts, a, side="left"), minlength=10) / len(a)
        cur_p = np.bincount(np.searchsorted(cuts, b, side="left"), minlength=10) / len(b)
        psi = psi_value(ref_p, cur_p)
        js = num_or_none(jensenshannon(ref_p, cur_p))
        r = sps.ks_2samp(a, b)
        ks = {"statistic": num_or_none(r.statistic), "p_value": num_or_none(r.pvalue)}
        w = num_or_none(sps.wasserstein_distance(a, b))
    std = float(np.std(a))
    if w is not None and std > 0:
        wn = num_or_none(w / std)
    elif w == 0.0:
        wn = 0.0
    else:
        wn = None
    if method == "ks":
        drifted = exceeds(method, ks["p_value"], threshold)
    elif method in ("psi", "js"):
        drifted = exceeds(method, psi if method == "psi" else js, threshold)
    elif std == 0.0:
        drifted = w is not None and w > 0
    else:
        drifted = exceeds(method, wn, threshold)
    return {"kind": "numeric", "method": method, "threshold": threshold,
            "n_reference": len(a), "n_window": len(b), "psi": psi, "ks": ks,
            "wasserstein": w, "wasserstein_normalized": wn, "js": js,
            "drifted": decide(rule, len(b), drifted)}


def categorical_drift(ref, win, rule):
    rc, wc = defaultdict(int), defaultdict(int)
    for v in ref:
        rc[v] += 1
    for v in win:
        wc[v] += 1
    n_ref, n_win = len(ref), len(win)
    method, threshold = resolve(rule, n_win, "chi_square", "js")
    names = sorted(set(rc) | set(wc))
    ref_p = np.array([rc[k] / n_ref for k in names])
    win_p = np.array([wc[k] / n_win if n_win else 0.0 for k in names])
    chi = {"statistic": None, "p_value": None}
    psi = js = None
    if n_ref and n_win:
        exp = np.maximum(ref_p, FLOOR)
        exp = exp / exp.sum() * n_win
        obs = np.array([wc[k] for k in names], dtype=np.float64)
        stat = float(np.sum((obs - exp) ** 2 / exp))
        r = sps.chisquare(obs, exp)
        chi = {"statistic": num_or_none(r.statistic),
               "p_value": num_or_none(r.pvalue) if len(names) > 1 else None}
        assert abs(stat - r.statistic) <= 1e-9 * max(1.0, stat)
        psi = psi_value(ref_p, win_p)
        js = num_or_none(jensenshannon(ref_p, win_p))
    value = {"psi": psi, "js": js}.get(method, chi["p_value"])
    return {"kind": "categorical", "method": method, "threshold": threshold,
            "n_reference": n_ref, "n_window": n_win, "chi_square": chi, "psi": psi, "js": js,
            "drifted": decide(rule, n_win, exceeds(method, value, threshold))}


def compare(ref, win, rule):
    """Kind by the reference's majority (ties: numeric); values of the other kind ignored."""
    nums = [v for v in ref if isinstance(v, float)]
    cats = [v for v in ref if isinstance(v, str)]
    if not nums and not cats:
        return None
    if len(nums) >= len(cats):
        return numeric_drift(nums, [v for v in win if isinstance(v, float)], rule)
    return categorical_drift(cats, [v for v in win if isinstance(v, str)], rule)


def prediction_values(preds, getter):
    return [v for v in (getter(p) for p in preds) if v is not None]


def add_drift(cfg, eng, w, model, version, rec):
    mc = cfg.models[model]
    # the oracle cases use the default method (auto); min_window_samples as configured
    rule = {k: v for k, v in mc.get("drift", {}).items() if k == "min_window_samples"}
    state = eng.close_state[w]
    win = eng.windows[w]
    current = win.preds.get((model, version), [])
    kind = mc.get("reference", "first")
    if kind == "first":
        reference = eng.first[(model, version)] if (model, version) in state["first_complete"] \
            else None
        label_ref = eng.label_first[model] if model in state["label_complete"] else None
    else:
        prev = w - cfg.size
        reference = eng.windows[prev].preds.get((model, version)) if prev in eng.windows else None
        label_ref = eng.windows[prev].outs.get(model) if prev in eng.windows else None
    label = compare(label_ref, win.outs.get(model, []), rule) if label_ref else None
    if reference:
        def feats(name):
            return lambda p: p["feats"].get(name)
        features = {name: compare(prediction_values(reference, feats(name)),
                                  prediction_values(current, feats(name)), rule)
                    for name in mc.get("features", [])}
        to_value = (lambda p: float(p["value"])) if mc["task"] == "regression" \
            else (lambda p: p["value"])
        prediction = compare(prediction_values(reference, to_value),
                             prediction_values(current, to_value), rule)
        score = None
        if mc["task"] == "binary":
            score = compare(prediction_values(reference, lambda p: p["score"]),
                            prediction_values(current, lambda p: p["score"]), rule)
        rec["drift"] = {"reference": kind, "features": features, "prediction": prediction,
                        "score": score, "label": label}
    else:
        rec["drift"] = {"reference": kind, "features": None, "prediction": None,
                        "score": None, "label": label}
    est = state["estimation"].get((model, version),
                                  {"adwin": 0.0, "ddm": 0.0, "page_hinkley": 0.0})
    found = win.det.get((model, version), {})
    rec["detectors"] = {}
    for name in DETECTORS:
        if name == "ddm" and mc["task"] == "regression":
            continue
        count, index, at = found.get(name, [0, None, None])
        rec["detectors"][name] = {"drift": count > 0, "detections": count,
                                  "last_detection_index": index,
                                  "last_detection_at": rfc3339(at) if at is not None else None,
                                  "estimation": est[name]}


def vkey(v):
    return (0, "") if v is None else (1, v)


def emit(cfg, eng):
    records = []
    for w in sorted(eng.windows):
        win = eng.windows[w]
        for model in sorted(cfg.models):
            mcounts = {k: v for k, v in win.model_counts.get(model, {}).items() if v}
            series = {v: s for (m, v), s in win.series.items() if m == model and s.active()}
            if not series and mcounts:
                seen = eng.snapshot[w][model] or {None}
                series = {v: Slice() for v in seen}
                eng.stats["model_level_only_records"] += len(seen)
            for version in sorted(series, key=vkey):
                s = series[version]
                rec = make_record(cfg, w, model, version, s.c, mcounts, s.pairs)
                if eng.snapshot[w][model]:  # a version was seen: drift and detectors
                    add_drift(cfg, eng, w, model, version, rec)
                records.append(rec)
                segs = sorted((dim, val) for (m, v, dim, val), sl in win.slices.items()
                              if m == model and v == version and sl.active())
                for dim, val in segs:
                    sl = win.slices[(model, version, dim, val)]
                    records.append(make_record(cfg, w, model, version, sl.c, {}, sl.pairs,
                                               segment={dim: val}))
    return records


# --------------------------------------------------------------------------------------
# replay
# --------------------------------------------------------------------------------------


def replay(cfg, pred_lines, out_lines):
    events = []
    for side, lines, path in ((0, pred_lines, cfg.fp["timestamp"]),
                              (1, out_lines, cfg.fo["timestamp"])):
        key = -math.inf
        for n, line in enumerate(lines):
            try:
                obj = strict_json(line)
            except ValueError:
                obj = MISSING
            ts = None if obj is MISSING else read_key_ts(obj, path)
            if ts is not None:
                key = ts
            events.append((key, side, n, obj))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    eng = Engine(cfg)
    for _, side, _, obj in events:
        ts = None
        try:
            if obj is MISSING:
                raise Invalid("malformed JSON")
            rec = decode_prediction(cfg, obj) if side == 0 else decode_outcome(cfg, obj)
        except Invalid as e:
            eng.invalid(e.model)
        else:
            ts = rec["ts"]
            (eng.prediction if side == 0 else eng.outcome)(rec)
        eng.after_record(ts)
    eng.finish()
    return emit(cfg, eng), eng.stats


# --------------------------------------------------------------------------------------
# stream generators
# --------------------------------------------------------------------------------------


def ts_form(rng, ms, mix):
    """Write a timestamp in one of the accepted forms. mix: dict form -> weight."""
    forms = list(mix)
    form = rng.choices(forms, weights=[mix[k] for k in forms])[0]
    if form == "int":
        return ms
    if form == "float":
        return ms + rng.choice([0.25, 0.5, 0.75, 0.999])  # truncated toward zero
    t = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=ms)
    if form == "rfc_z":
        return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)
    if form == "rfc_us":
        return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03d%03dZ" % (ms % 1000, rng.randrange(1000))
    if form == "rfc_off":
        hours = rng.choice([2, -5, 5])
        tz = dt.timezone(dt.timedelta(hours=hours, minutes=30 if hours == 5 else 0))
        lt = t.astimezone(tz)
        return lt.strftime("%Y-%m-%dT%H:%M:%S") + ".%03d" % (ms % 1000) + lt.strftime("%z")[:3] \
            + ":" + lt.strftime("%z")[3:]
    raise ValueError(form)


def label_form(rng, y, float_p=0.1):
    r = rng.random()
    if r < float_p:
        return float(y)
    if r < float_p + (1 - float_p) / 2:
        return int(y)
    return str(y)


def jitter(rng, items, p=0.02, span=5):
    """Locally shuffle a few lines so that replay has to sort."""
    for i in range(len(items)):
        if rng.random() < p:
            j = min(len(items) - 1, i + rng.randrange(1, span + 1))
            items[i], items[j] = items[j], items[i]
    return items


def gen_binary(seed, n_ids, span, versions, delay, lead, *, zero_label=None, no_score=None,
               p_missing=0.15, p_dup_out=0.03, p_dup_pred=0.01, p_before=0.02,
               p_outside=0.02, delay_max=10 * MIN, p_model_field=0.2, label_rate=0.25,
               segments=True, ts_mix=None):
    rng = random.Random(seed)
    ts_mix = ts_mix or {"int": 0.95, "float": 0.05}
    preds, outs = [], []
    for k in range(n_ids):
        rid = "tx-%06d" % k
        t = T0 + rng.randrange(span)
        rate = label_rate
        if zero_label and zero_label[0] <= t - T0 < zero_label[1]:
            rate = 0.0
        y = 1 if rng.random() < rate else 0
        seg = None
        if segments and rng.random() > 0.05:
            seg = {"channel": rng.choices(["web", "app", "store"], weights=[5, 3, 1])[0]}
            if rng.random() < 0.1:
                seg["country"] = rng.choice(["DE", "FR"])
        for vi, version in enumerate(versions):
            pt = t if vi == 0 else t + rng.randrange(0, 800)
            r = rng.random()
            if r < 0.005:
                s = 0.0
            elif r < 0.01:
                s = 1.0
            else:
                s = round(rng.betavariate(4, 2) if y else rng.betavariate(2, 4), 4)
            label = 1 if s >= 0.5 else 0
            rec = {"id": rid, "model": "fraud", "model_version": version,
                   "timestamp": ts_form(rng, pt, ts_mix), "prediction": label_form(rng, label, 0)}
            r = rng.random()
            if no_score and vi == 0 and no_score[0] <= t - T0 < no_score[1] and r < 0.3:
                pass  # no score
            elif r < 0.88:
                rec["score"] = s
            elif r < 0.98:
                rec["score"] = {"0": round(1 - s, 4), "1": s}
            else:
                rec["score"] = {"0": 1.0}  # positive class absent: probability 0
            if rng.random() < 0.1:
                rec["features"] = {"amount": round(rng.expovariate(0.01), 2),
                                   "country": rng.choice(["DE", "FR", "US"])}
            if seg is not None:
                rec["segment"] = seg
            preds.append((pt, rec))
            if rng.random() < p_dup_pred:
                dup = dict(rec)
                dpt = pt + rng.randrange(0, 5000)
                dup["timestamp"] = dpt
                preds.append((dpt, dup))
        r = rng.random()
        if r < p_missing:
            continue
        r = rng.random()
        if r < p_before:
            d = -rng.randrange(1, lead + 1)
        elif r < p_before + p_outside / 2:
            d = delay + rng.randrange(1, 10 * MIN)
        elif r < p_before + p_outside:
            d = -lead - rng.randrange(1, 3 * MIN)
        elif r < p_before + p_outside + 0.004:
            d = delay  # exactly on the bound: still joins
        elif r < p_before + p_outside + 0.008:
            d = -lead
        elif r < p_before + p_outside + 0.04:
            d = 0
        else:
            d = rng.randrange(0, delay_max + 1)
        ot = t + d
        orec = {"id": rid, "timestamp": ts_form(rng, ot, ts_mix), "actual": label_form(rng, y)}
        if rng.random() < p_model_field:
            orec["model"] = "fraud"
        outs.append((ot, orec))
        if rng.random() < p_dup_out:
            dot = ot if rng.random() < 0.2 else ot + rng.randrange(0, 30000)
            dup = {"id": rid, "timestamp": dot, "actual": label_form(rng, y)}
            if rng.random() < 0.3:
                dup["model"] = "fraud"
            outs.append((dot, dup))
    preds.sort(key=lambda x: x[0])
    outs.sort(key=lambda x: x[0])
    p_lines = jitter(rng, [json.dumps(r, separators=(",", ":")) for _, r in preds])
    o_lines = jitter(rng, [json.dumps(r, separators=(",", ":")) for _, r in outs])
    return p_lines, o_lines


def gen_multiclass(seed):
    rng = random.Random(seed)
    base = ["billing", "tech", "sales", "other"]
    preds, outs = [], []
    # model "intent": versions v1 then v2, classes as strings plus integer labels 7 and 12
    for k in range(4000):
        rid = "i-%05d" % k
        t = T0 + rng.randrange(45 * MIN)
        m = (t - T0) / MIN
        version = "v1" if m < 22 else ("v2" if m >= 25 else rng.choice(["v1", "v2"]))
        weights = [4, 3, 2, 1 if m < 10 else 0]
        y = rng.choices(base, weights=weights)[0]
        if 30 <= m < 35 and rng.random() < 0.15:
            y = 7  # a class that only ever appears among the actuals
        if rng.random() < 0.7 and y != 7:
            pred = y
        else:
            pred = rng.choice(base) if rng.random() > 0.05 else 12  # 12: only predicted
        probs = [rng.randrange(1, 100) for _ in base]
        if pred in base:
            probs[base.index(pred)] += 300
        total = sum(probs)
        milli = [p * 1000 // total for p in probs]
        milli[0] += 1000 - sum(milli)
        rec = {"id": rid, "model": "intent", "model_version": version,
               "timestamp": t, "prediction": pred}
        if not (12 <= m < 14 and rng.random() < 0.4):
            rec["score"] = {c: q / 1000 for c, q in zip(base, milli)}
        seg = {"channel": rng.choice(["web", "app"])}
        if rng.random() < 0.8:
            seg["lang"] = rng.choice(["en", "de", "fr"])
        rec["segment"] = seg
        preds.append((t, rec))
        if rng.random() < 0.10:
            continue
        ot = t + (rng.randrange(0, 5 * MIN) if rng.random() > 0.03 else -rng.randrange(1, MIN))
        actual = y
        if y == 7:
            actual = rng.choice([7, "7", 7.0])
        orec = {"id": rid, "timestamp": ot, "actual": actual}
        if rng.random() < 0.5:
            orec["model"] = "intent"
        outs.append((ot, orec))
        if rng.random() < 0.02:
            dot = ot + rng.randrange(0, 10000)
            outs.append((dot, dict(orec, timestamp=dot)))
    # model "spam": binary with boolean labels, starting at minute 8
    for k in range(1500):
        rid = "s-%05d" % k
        t = T0 + 8 * MIN + rng.randrange(37 * MIN)
        y = rng.random() < 0.3
        s = round(rng.betavariate(5, 2) if y else rng.betavariate(2, 5), 3)
        pred = s >= 0.5
        rec = {"id": rid, "model": "spam", "model_version": "s1", "timestamp": t,
               "prediction": pred if rng.random() < 0.8 else ("true" if pred else "false"),
               "score": s}
        preds.append((t, rec))
        if rng.random() < 0.10:
            continue
        ot = t + rng.randrange(0, 3 * MIN)
        orec = {"id": rid, "timestamp": ot,
                "actual": y if rng.random() < 0.7 else ("true" if y else "false")}
        if rng.random() < 0.5:
            orec["model"] = "spam"
        outs.append((ot, orec))
    preds.sort(key=lambda x: x[0])
    outs.sort(key=lambda x: x[0])
    return (jitter(rng, [json.dumps(r, separators=(",", ":")) for _, r in preds]),
            jitter(rng, [json.dumps(r, separators=(",", ":")) for _, r in outs]))


def num_form(rng, x):
    r = rng.random()
    if r < 0.05:
        return "%.2f" % x  # a string that parses as a number
    if float(x).is_integer() and r < 0.5:
        return int(x)
    return x


def gen_regression(seed):
    rng = random.Random(seed)
    preds, outs = [], []
    n = 0

    def add(t, actual, pred, ot):
        nonlocal n
        rid = "r-%05d" % n
        n += 1
        preds.append((t, {"id": rid, "model": "eta", "model_version": "r1", "timestamp": t,
                          "prediction": num_form(rng, pred)}))
        if ot is not None:
            outs.append((ot, {"id": rid, "timestamp": ot,
                              "result": {"value": num_form(rng, actual)}}))

    def dense(lo, hi, count):
        for _ in range(count):
            t = T0 + lo + rng.randrange(hi - lo)
            if rng.random() < 0.08:
                actual = 0.0
            else:
                actual = round(rng.lognormvariate(2.5, 0.6), 2)
            pred = round(actual + rng.gauss(0, 2.0), 2)
            ot = None if rng.random() < 0.1 else t + rng.randrange(0, 3 * MIN)
            add(t, actual, pred, ot)

    dense(0, 15 * MIN, 2500)
    # special windows, nothing else is joined in them
    w = T0 + 20 * MIN
    for i in range(4):  # all actuals equal, exact predictions: r2 = 1.0
        add(w + (5 + i) * SEC, 3.0, 3.0, w + (20 + i) * SEC)
    w = T0 + 21 * MIN
    for i in range(4):  # all actuals 0 (equal), inexact: r2 = 0.0, mape huge
        add(w + (5 + i) * SEC, 0.0, [0.5, -1.0, 0.25, 2.0][i], w + (20 + i) * SEC)
    for m in range(22, 30):  # exactly one pair: r2 null
        w = T0 + m * MIN
        add(w + 5 * SEC, round(rng.uniform(1, 30), 2), round(rng.uniform(1, 30), 2),
            w + 20 * SEC)
    w = T0 + 30 * MIN
    add(w + 5 * SEC, 0.0, 0.0, w + 10 * SEC)  # one exact pair at 0: mape 0
    dense(31 * MIN, 45 * MIN, 2500)
    preds.sort(key=lambda x: x[0])
    outs.sort(key=lambda x: x[0])
    return (jitter(rng, [json.dumps(r, separators=(",", ":")) for _, r in preds]),
            jitter(rng, [json.dumps(r, separators=(",", ":")) for _, r in outs]))


def gen_invalid_and_mixed(seed):
    rng = random.Random(seed)
    mix = {"int": 0.55, "float": 0.1, "rfc_z": 0.17, "rfc_off": 0.15, "rfc_us": 0.03}
    preds, outs = [], []
    for k in range(1800):
        rid = "f-%05d" % k
        t = T0 + rng.randrange(30 * MIN)
        y = 1 if rng.random() < 0.3 else 0
        s = round(rng.betavariate(4, 2) if y else rng.betavariate(2, 4), 4)
        rec = {"id": rid, "model": "fraud", "timestamp": ts_form(rng, t, mix),
               "prediction": label_form(rng, 1 if s >= 0.5 else 0, 0), "score": s}
        r = rng.random()
        if r < 0.7:
            rec["model_version"] = "1.0"
        elif r < 0.8:
            rec["model_version"] = None  # explicit null: the null version, like absent
        preds.append((t, rec))
        if rng.random() < 0.15:
            continue
        ot = t + rng.randrange(0, 8 * MIN)
        orec = {"id": rid, "timestamp": ts_form(rng, ot, mix), "actual": label_form(rng, y)}
        if rng.random() < 0.4:
            orec["model"] = "fraud"
        outs.append((ot, orec))
    for k in range(1200):
        rid = "e-%05d" % k
        t = T0 + rng.randrange(30 * MIN)
        actual = 0.0 if rng.random() < 0.05 else round(rng.lognormvariate(2, 0.5), 2)
        rec = {"id": rid, "model": "eta", "timestamp": ts_form(rng, t, mix),
               "prediction": num_form(rng, round(actual + rng.gauss(0, 1.5), 2))}
        preds.append((t, rec))
        if rng.random() < 0.15:
            continue
        ot = t + rng.randrange(0, 4 * MIN)
        orec = {"id": rid, "timestamp": ts_form(rng, ot, mix), "actual": num_form(rng, actual)}
        if rng.random() < 0.5:
            orec["model"] = "eta"
        outs.append((ot, orec))
    preds.sort(key=lambda x: x[0])
    outs.sort(key=lambda x: x[0])
    p_lines = [json.dumps(r, separators=(",", ":")) for _, r in preds]
    o_lines = [json.dumps(r, separators=(",", ":")) for _, r in outs]
    p_ts = [t for t, _ in preds]
    o_ts = [t for t, _ in outs]

    # invalid lines; those with a readable timestamp copy the previous line's timestamp
    def p_bad(prev):
        return [
            ('{"id": "x1", "model": "fraud", "timestamp": %d, "predic' % prev, None),
            ("not json at all", None),
            ('{"id": "x2", "model": "eta", "timestamp": %d, "prediction": NaN}' % prev, None),
            ("[1, 2, 3]", None),
            ("42", None),
            (json.dumps({"id": "x3", "model": "fraud", "timestamp": prev, "score": 0.3}), "fraud"),
            (json.dumps({"id": "x4", "timestamp": prev, "prediction": 1}), None),
            (json.dumps({"id": "x5", "model": "churn", "timestamp": prev, "prediction": 1}), None),
            (json.dumps({"id": "x6", "model": "fraud", "timestamp": "yesterday",
                         "prediction": 1}), "fraud"),
            (json.dumps({"id": "x7", "model": "fraud", "timestamp": "2026-13-45T00:00:00Z",
                         "prediction": 0}), "fraud"),
            (json.dumps({"model": "eta", "timestamp": prev, "prediction": 3.5}), "eta"),
            (json.dumps({"model": "fraud", "model_version": "1.0", "timestamp": prev,
                         "prediction": 1, "score": 0.9}), "fraud"),
            (json.dumps({"id": "x8", "model": "eta", "timestamp": prev, "prediction": "abc"}),
             "eta"),
            (json.dumps({"id": "x9", "model": "eta", "timestamp": prev, "prediction": "NaN"}),
             "eta"),
            (json.dumps({"id": "x10", "model": "fraud", "timestamp": prev,
                         "prediction": {"label": 1}}), "fraud"),
        ]

    def o_bad(prev):
        return [
            (json.dumps({"id": "y1", "model": "fraud", "timestamp": prev}), "fraud"),
            (json.dumps({"id": "y2", "timestamp": prev}), None),
            (json.dumps({"id": "y3", "model": "churn", "timestamp": prev, "actual": 1}), None),
            ('{"id": "y4", "timestamp": %d, "actual": 1' % prev, None),
            (json.dumps({"id": "y5", "model": "eta", "timestamp": prev, "actual": "NaN"}), "eta"),
            (json.dumps({"id": "y6", "model": "eta", "timestamp": prev, "actual": "abc"}), "eta"),
            (json.dumps({"id": "y7", "model": "fraud", "timestamp": "soon", "actual": 1}),
             "fraud"),
            (json.dumps({"timestamp": prev, "actual": 1}), None),
            (json.dumps({"model": "eta", "timestamp": prev, "actual": 2.5}), "eta"),
        ]

    def insert(lines, ts, bad_fn, count):
        positions = sorted(rng.sample(range(1, len(lines)), count), reverse=True)
        for pos in positions:
            options = bad_fn(ts[pos - 1])
            line, _ = rng.choice(options)
            lines.insert(pos, line)
            ts.insert(pos, ts[pos - 1])

    insert(p_lines, p_ts, p_bad, 60)
    insert(o_lines, o_ts, o_bad, 40)
    # the very first line: invalid, names "fraud", no readable timestamp: counted at the first
    # valid timestamp seen (the second line is the earliest prediction)
    assert p_ts[0] == min(p_ts + o_ts)
    p_lines.insert(0, json.dumps({"id": "x0", "model": "fraud", "timestamp": "not-a-time",
                                  "prediction": 1}))
    return p_lines, o_lines


# --------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------


def fraud_model(**extra):
    m = {"name": "fraud", "task": "binary", "positive_class": "1",
         "features": ["amount", "country"], "segments": ["channel"]}
    m.update(extra)
    m["drift"] = DECIDE_ALL
    return m


# Every window decided, however small (the cases predate `min_window_samples`; the minimum
# itself is tested in crates/core/tests/drift_oracle.rs).
DECIDE_ALL = {"min_window_samples": 0}


def cases():
    out = {}
    cfg = {"join": {"max_label_delay": "15m", "max_outcome_lead": "2m"},
           "window": {"size": "1m", "attribute_to": "outcome", "allowed_lateness": "5s"},
           "models": [fraud_model(reference_size=300)]}
    out["binary_basic"] = (cfg, lambda: gen_binary(
        1, 5000, 60 * MIN, ["1.0", "2.0-shadow"], 15 * MIN, 2 * MIN,
        zero_label=(15 * MIN, 35 * MIN), no_score=(40 * MIN, 44 * MIN)))

    cfg = {"join": {"max_label_delay": "15m", "max_outcome_lead": "2m"},
           "window": {"size": "5m", "attribute_to": "prediction", "allowed_lateness": "5s"},
           "models": [fraud_model(reference="previous")]}
    out["binary_prediction_time"] = (cfg, lambda: gen_binary(
        2, 4000, 60 * MIN, ["1.0", "2.0-shadow"], 15 * MIN, 2 * MIN,
        zero_label=(15 * MIN, 40 * MIN), no_score=(45 * MIN, 50 * MIN)))

    cfg = {"join": {"max_label_delay": "10m", "max_outcome_lead": "1m"},
           "window": {"size": "1m", "attribute_to": "outcome", "allowed_lateness": "5s"},
           "models": [{"name": "intent", "task": "multiclass", "segments": ["channel", "lang"],
                       "drift": DECIDE_ALL},
                      {"name": "spam", "task": "binary", "positive_class": "true",
                       "drift": DECIDE_ALL}]}
    out["multiclass"] = (cfg, lambda: gen_multiclass(3))

    cfg = {"join": {"max_label_delay": "15m", "max_outcome_lead": "2m"},
           "window": {"size": "1m", "attribute_to": "outcome", "allowed_lateness": "5s"},
           "fields": {"outcome": {"actual": "result.value"}},
           "models": [{"name": "eta", "task": "regression", "reference_size": 400,
                       "drift": DECIDE_ALL}]}
    out["regression"] = (cfg, lambda: gen_regression(4))

    cfg = {"join": {"max_label_delay": "15m", "max_outcome_lead": "2m", "max_pending": 50},
           "window": {"size": "1m", "attribute_to": "outcome", "allowed_lateness": "5s"},
           "models": [fraud_model()]}
    out["small_store"] = (cfg, lambda: gen_binary(
        5, 3000, 60 * MIN, ["1.0"], 15 * MIN, 2 * MIN, p_missing=0.7, delay_max=2 * MIN,
        p_before=0.01, p_outside=0.0, p_model_field=0.0))

    cfg = {"join": {"max_label_delay": "15m", "max_outcome_lead": "2m"},
           "window": {"size": "1m", "attribute_to": "outcome", "allowed_lateness": "5s"},
           "models": [{"name": "eta", "task": "regression", "drift": DECIDE_ALL},
                      fraud_model(segments=[])]}
    out["invalid_and_mixed"] = (cfg, lambda: gen_invalid_and_mixed(6))
    return out


def main():
    warnings.simplefilter("ignore")
    only = set(sys.argv[1:])
    for name, (raw, gen) in cases().items():
        if only and name not in only:
            continue
        cfg = Config(raw)
        p_lines, o_lines = gen()
        records, stats = replay(cfg, p_lines, o_lines)
        d = os.path.join(OUT, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        with open(os.path.join(d, "config.toml"), "w") as fh:
            fh.write(f"# generated by tests/oracle/core_oracle.py (case {name})\n\n" + cfg.toml())
        for fname, lines in (("predictions.jsonl", p_lines), ("outcomes.jsonl", o_lines),
                             ("expected.jsonl", [json.dumps(r, separators=(",", ":")) for r in records])):
            with open(os.path.join(d, fname), "w") as fh:
                fh.write("\n".join(lines) + "\n")
        print(f"{name}: {len(p_lines)} prediction lines, {len(o_lines)} outcome lines, "
              f"{len(records)} records; " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))


if __name__ == "__main__":
    main()
