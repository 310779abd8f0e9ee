#!/usr/bin/env python3
"""Helpers of scripts/check-deploy.sh (Python 3 + PyYAML, nothing else).

Each subcommand prints one line per check, `ok   - …` or `FAIL - …` (indented details after a
failure), and exits 0; check-deploy.sh counts the lines.

  mounts     every file or directory the compose file mounts or builds from, and every
             Dockerfile COPY source, exists (and is not excluded by .dockerignore)
  dashboard  the Grafana dashboard is provisionable: schemaVersion, uid, title, a
             `datasource` variable, and every panel, target, variable and annotation
             query uses it
  names      every feedback_loop_* metric the dashboard and alerts.yml use is registered
             in src/telemetry.rs (catches typos and metrics not merged yet)
  live URL   runs every PromQL expression of the dashboard and alerts.yml against a live
             Prometheus at URL; each must return data (see `live` below)
"""
import fnmatch
import json
import os
import re
import sys
import urllib.parse
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARD = os.path.join(ROOT, "config/grafana/dashboards/feedback-loop.json")
ALERTS = os.path.join(ROOT, "config/prometheus/alerts.yml")
TELEMETRY = os.path.join(ROOT, "src/telemetry.rs")
TELEMETRY_DIR = os.path.join(ROOT, "src/telemetry")


def ok(msg):
    print(f"ok   - {msg}")


def fail(msg, detail=""):
    print(f"FAIL - {msg}")
    for line in str(detail).splitlines()[:20]:
        print(f"       {line}")


# ---------------------------------------------------------------------------------------
def dockerignored(path, patterns):
    """A small .dockerignore matcher: last matching pattern wins, `!` re-includes."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.strip("/")
        if p.startswith("**/"):
            hit = any(fnmatch.fnmatch(pre.split("/")[-1], p[3:]) for pre in prefixes)
        else:
            hit = any(fnmatch.fnmatch(pre, p) for pre in prefixes)
        if hit:
            ignored = not neg
    return ignored


def mounts():
    compose_path = os.path.join(ROOT, "docker-compose.yml")
    compose = yaml.safe_load(open(compose_path))
    for name, svc in compose.get("services", {}).items():
        build = svc.get("build")
        if build:
            ctx = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            path = os.path.join(ROOT, ctx, dockerfile)
            (ok if os.path.isfile(path) else fail)(f"compose {name}: build {os.path.relpath(path, ROOT)} exists")
        for vol in svc.get("volumes", []) or []:
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith(".") or src.startswith("/"):
                path = os.path.normpath(os.path.join(ROOT, src))
                (ok if os.path.exists(path) else fail)(f"compose {name}: mount {src} exists")
    # Dockerfile COPY sources (not --from=stage).
    patterns = []
    ignore = os.path.join(ROOT, ".dockerignore")
    if os.path.exists(ignore):
        patterns = [l.strip() for l in open(ignore) if l.strip() and not l.startswith("#")]
    for line in open(os.path.join(ROOT, "Dockerfile")):
        line = line.strip()
        if not line.upper().startswith(("COPY ", "ADD ")):
            continue
        words = [w for w in line.split()[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in line.split()):
            continue
        for src in words[:-1]:
            path = os.path.join(ROOT, src)
            exists = os.path.exists(path)
            if not exists:
                fail(f"Dockerfile COPY {src} exists")
            elif dockerignored(os.path.normpath(src), patterns):
                fail(f"Dockerfile COPY {src} is excluded by .dockerignore")
            else:
                ok(f"Dockerfile COPY {src} exists and is in the build context")


# ---------------------------------------------------------------------------------------
def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def ds_is_var(ds):
    if isinstance(ds, dict):
        return ds.get("uid") in ("${datasource}", "$datasource")
    return ds in ("${datasource}", "$datasource")


def dashboard():
    try:
        d = json.load(open(DASHBOARD))
    except Exception as e:  # noqa: BLE001
        fail("dashboard JSON parses", e)
        return
    ok("dashboard JSON parses")
    sv = d.get("schemaVersion")
    (ok if isinstance(sv, int) and sv >= 36 else fail)(f"dashboard schemaVersion {sv} (>= 36)")
    (ok if d.get("uid") and len(d["uid"]) <= 40 and re.fullmatch(r"[A-Za-z0-9_-]+", d["uid"]) else fail)(f"dashboard uid `{d.get('uid')}` fixed and valid")
    (ok if d.get("title") else fail)("dashboard has a title")
    (ok if d.get("id") is None else fail)("dashboard has no numeric id (provisioning assigns it)")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    dsvar = variables.get("datasource")
    (ok if dsvar and dsvar.get("type") == "datasource" and dsvar.get("query") == "prometheus" else fail)("dashboard has a `datasource` variable of type prometheus")
    for name in ("model", "version"):
        v = variables.get(name)
        good = v and v.get("type") == "query" and ds_is_var(v.get("datasource")) and "feedback_loop_model_quality" in json.dumps(v.get("query"))
        (ok if good else fail)(f"dashboard variable `{name}` is label_values of feedback_loop_model_quality on $datasource")
    bad, ids = [], set()
    for p in walk_panels(d.get("panels", [])):
        if p.get("id") in ids:
            bad.append(f"panel id {p.get('id')} repeated")
        ids.add(p.get("id"))
        if p.get("type") == "row":
            continue
        if "gridPos" not in p:
            bad.append(f"panel `{p.get('title')}` has no gridPos")
        if not ds_is_var(p.get("datasource")):
            bad.append(f"panel `{p.get('title')}` datasource is {p.get('datasource')}")
        if not p.get("targets"):
            bad.append(f"panel `{p.get('title')}` has no targets")
        for t in p.get("targets", []):
            if not ds_is_var(t.get("datasource")):
                bad.append(f"panel `{p.get('title')}` target {t.get('refId')} datasource is {t.get('datasource')}")
            if not t.get("expr"):
                bad.append(f"panel `{p.get('title')}` target {t.get('refId')} has no expr")
    for a in d.get("annotations", {}).get("list", []):
        if a.get("builtIn"):
            continue
        if not ds_is_var(a.get("datasource")):
            bad.append(f"annotation `{a.get('name')}` datasource is {a.get('datasource')}")
    (fail("every panel, target and annotation uses $datasource", "\n".join(bad)) if bad
     else ok(f"every panel ({len(ids)}), target and annotation uses $datasource"))


# ---------------------------------------------------------------------------------------
def expressions():
    """(where, expr) for every PromQL expression of the dashboard and alerts.yml."""
    out = []
    d = json.load(open(DASHBOARD))
    for p in walk_panels(d.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((f"dashboard `{p.get('title')}` {t.get('refId')}", t["expr"]))
    for a in d.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append((f"dashboard annotation `{a.get('name')}`", a["expr"]))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q or "")
        if v.get("type") == "query" and m:
            out.append((f"dashboard variable `{v['name']}`", m.group(1)))
    for g in yaml.safe_load(open(ALERTS))["groups"]:
        for r in g["rules"]:
            out.append((f"alert {r.get('alert') or r.get('record')}", r["expr"]))
    return out


KNOWN_SUFFIXES = ("_bucket", "_sum", "_count")


def registered_names():
    # src/telemetry.rs, or the module directory src/telemetry/ it became.
    if os.path.isdir(TELEMETRY_DIR):
        src = "".join(open(os.path.join(TELEMETRY_DIR, f)).read()
                      for f in sorted(os.listdir(TELEMETRY_DIR)) if f.endswith(".rs"))
    else:
        src = open(TELEMETRY).read()
    names = set(re.findall(r'opts\(\s*"([a-z0-9_]+)"', src))
    names = {f"feedback_loop_{n}" for n in names}
    names |= set(re.findall(r'"(feedback_loop_[a-z0-9_]+)"', src))
    return names


def names():
    known = registered_names()
    used = {}
    for where, expr in expressions():
        for n in re.findall(r"\bfeedback_loop_[a-z0-9_]+", expr):
            used.setdefault(n, where)
    for n, where in sorted(used.items()):
        base = n
        for s in KNOWN_SUFFIXES:
            if n.endswith(s) and n[: -len(s)] in known:
                base = n[: -len(s)]
        (ok if base in known else fail)(f"metric {n} (first used by {where}) is registered in src/telemetry.rs")


# ---------------------------------------------------------------------------------------
COMPARISON = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?-?[0-9.]+(e[+-]?[0-9]+)?\s*$", re.I)


def query(base, expr):
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(body.get("error"))
    return body["data"]["result"]


def live(base):
    """Each expression, with template variables substituted, must return data. When it is
    empty and ends in a comparison with a number (an alert condition, an annotation's
    `> 0`), the part before the comparison is run instead: it must return data, i.e. every
    metric it reads exists and has series; whether the threshold is crossed is up to the
    data (and is what alerts.test.yml checks)."""
    models = []
    try:
        url = base.rstrip("/") + "/api/v1/label/model/values?" + urllib.parse.urlencode({"match[]": "feedback_loop_model_quality"})
        models = json.load(urllib.request.urlopen(url, timeout=10))["data"]
    except Exception as e:  # noqa: BLE001
        fail("label_values(feedback_loop_model_quality, model)", e)
    model = "fraud" if "fraud" in models else (models[0] if models else "fraud")
    subst = {
        "${datasource}": "", "$datasource": "",
        "$__rate_interval": "1m", "${__rate_interval}": "1m",
        "$__interval": "15s", "${__interval}": "15s",
        "$__range": "5m", "${__range}": "5m",
        "$window": "1m", "${window}": "1m",
        "$model": model, "${model}": model,
        "$version": ".*", "${version}": ".*",
    }
    for where, expr in expressions():
        e = expr
        for k in sorted(subst, key=len, reverse=True):
            e = e.replace(k, subst[k])
        if "$" in e:
            fail(f"{where}: unsubstituted variable", e)
            continue
        try:
            result = query(base, e)
            note = ""
            if not result and COMPARISON.search(e):
                stripped = COMPARISON.sub("", e)
                result = query(base, stripped)
                note = " (without its threshold comparison)"
            if result:
                ok(f"{where}: {len(result)} series{note}")
            else:
                fail(f"{where}: no data", e)
        except Exception as ex:  # noqa: BLE001
            fail(f"{where}: query error", f"{ex}\n{e}")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "mounts":
        mounts()
    elif cmd == "dashboard":
        dashboard()
    elif cmd == "names":
        names()
    elif cmd == "live" and len(sys.argv) == 3:
        live(sys.argv[2])
    else:
        sys.exit(__doc__)
