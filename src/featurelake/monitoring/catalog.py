"""The static HTML catalog: one self-contained page (no network) with search and a lineage graph.

The graph is laid out here, in Python, as inline SVG: nodes in layers by longest upstream path
(table -> dbt model -> feature view -> feature service -> training set), ordered within a layer by the
mean position of their upstream nodes to keep edges short. A little inline script filters the cards by the
search box and highlights the lineage of whatever node or card is clicked.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from featurelake.monitoring.checks import TableStatus
    from featurelake.registry import Edge, RegistryObject
    from featurelake.repo.lineage import TrainingSetRef

NODE_W, NODE_H, GAP_Y, GAP_X, PAD = 210, 30, 14, 70, 20
ALIGNED = ("feature_view", "request_view", "feature_service", "training_set")
COLORS = {
    "table": "#8d99ae",
    "path": "#8d99ae",
    "dbt_model": "#f4a261",
    "feature_view": "#2a9d8f",
    "request_view": "#40916c",
    "feature_service": "#5e60ce",
    "training_set": "#e76f51",
}
LABELS = {
    "table": "table",
    "path": "path",
    "dbt_model": "dbt model",
    "feature_view": "feature view",
    "request_view": "request feature view",
    "feature_service": "feature service",
    "training_set": "training set",
    "entity": "entity",
    "source": "source",
}


@dataclass
class CatalogData:
    objects: list[RegistryObject]
    edges: list[Edge]
    statuses: dict[str, TableStatus] = field(default_factory=dict)  # by feature view name
    training_sets: list[TrainingSetRef] = field(default_factory=list)
    registry_version: int | None = None
    generated_at: dt.datetime | None = None


@dataclass(frozen=True)
class Placed:
    node: str
    x: float
    y: float


def layout(edges: list[Edge], extra_nodes: Sequence[str] = ()) -> tuple[dict[str, Placed], float, float]:
    """Positions of every node of the graph, and the drawing's width and height."""
    nodes = list(dict.fromkeys([*extra_nodes, *(n for e in edges for n in e)]))
    preds: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        preds[b].append(a)
    layer: dict[str, int] = {}

    def depth(n: str, trail: frozenset[str] = frozenset()) -> int:
        if n not in layer:
            ups = [p for p in preds[n] if p not in trail]
            layer[n] = 1 + max((depth(p, trail | {n}) for p in ups), default=-1)
        return layer[n]

    for n in nodes:
        depth(n)
    # featurelake's own objects line up in one column per kind, after everything upstream of them
    floor = 1 + max((layer[n] for n in nodes if n.split(":", 1)[0] not in ALIGNED), default=-1)
    for kind in ALIGNED:
        members = [n for n in nodes if n.split(":", 1)[0] == kind]
        if members:
            for n in members:
                layer[n] = max(floor, max((layer[p] + 1 for p in preds[n]), default=floor))
            column = max(layer[n] for n in members)
            for n in members:
                layer[n] = column
            floor = column + 1
    layers: dict[int, list[str]] = defaultdict(list)
    for n in sorted(nodes):
        layers[layer[n]].append(n)
    position: dict[str, float] = {}
    for i in sorted(layers):
        col = layers[i]
        if i > 0:  # barycenter of the upstream nodes, then name
            col.sort(key=lambda n: (sum(position[p] for p in preds[n]) / max(1, len(preds[n])), n))
        for j, n in enumerate(col):
            position[n] = j
    height = max((len(c) for c in layers.values()), default=0)
    placed = {}
    for i, col in layers.items():
        offset = (height - len(col)) * (NODE_H + GAP_Y) / 2
        for j, n in enumerate(col):
            placed[n] = Placed(n, PAD + i * (NODE_W + GAP_X), PAD + offset + j * (NODE_H + GAP_Y))
    width = PAD * 2 + len(layers) * NODE_W + max(0, len(layers) - 1) * GAP_X
    return placed, width, PAD * 2 + height * (NODE_H + GAP_Y) - GAP_Y


def _short(text: str, size: int = 30) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def render_svg(edges: list[Edge], extra_nodes: Sequence[str] = ()) -> str:
    placed, width, height = layout(edges, extra_nodes)
    esc = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="lineage" width="100%" style="min-width:{width * 0.6:.0f}px" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="lineage graph">'
    ]
    for a, b in edges:
        pa, pb = placed[a], placed[b]
        x1, y1, x2, y2 = pa.x + NODE_W, pa.y + NODE_H / 2, pb.x, pb.y + NODE_H / 2
        mid = (x1 + x2) / 2
        parts.append(
            f'<path class="edge" data-from="{esc(a)}" data-to="{esc(b)}" '
            f'd="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"/>'
        )
    for p in placed.values():
        kind, _, name = p.node.partition(":")
        parts.append(
            f'<g class="node" data-node="{esc(p.node)}" transform="translate({p.x:.1f},{p.y:.1f})">'
            f"<title>{esc(LABELS.get(kind, kind))}: {esc(name)}</title>"
            f'<rect width="{NODE_W}" height="{NODE_H}" rx="6" fill="{COLORS.get(kind, "#999")}"/>'
            f'<text x="10" y="{NODE_H / 2 + 4:.0f}">{esc(_short(name))}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _node_of(obj: RegistryObject) -> str | None:
    if obj.kind in ("feature_view", "request_view", "feature_service"):
        return f"{obj.kind}:{obj.name}"
    if obj.kind == "source" and obj.upstream:
        return obj.upstream[0]
    return None


def _kv(rows: list[tuple[str, str]]) -> str:
    esc = html.escape
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows if v) + "</dl>"


def _card(obj: RegistryObject, data: CatalogData) -> str:
    esc, spec = html.escape, obj.spec
    rows = [("owner", spec.get("owner") or ""), ("defined at", obj.defined_at)]
    if spec.get("tags"):
        rows.append(("tags", ", ".join(f"{k}={v}" for k, v in spec["tags"].items())))
    body = ""
    words = [obj.name, obj.kind, spec.get("description") or "", spec.get("owner") or ""]
    if obj.kind == "entity":
        rows.insert(0, ("join keys", ", ".join(spec["join_keys"])))
    elif obj.kind == "source":
        rows.insert(0, ("relation", spec.get("table") or spec.get("path") or ""))
        rows.insert(1, ("timestamp", spec["timestamp_column"]))
    elif obj.kind == "feature_view":
        status = data.statuses.get(obj.name)
        if status is None:
            table_state = "not computed yet"
        else:
            when = status.last_write.strftime("%Y-%m-%d %H:%M UTC") if status.last_write else "-"
            version = status.version if status.version is not None else "-"
            table_state = f"version {version}, written {when}, latest event {status.latest_event or '-'}"
        rows[:0] = [
            ("version", str(obj.version)),
            ("entities", f"{', '.join(spec['entities'])} (keys {', '.join(spec['join_keys'])})"),
            ("ttl", spec.get("ttl") or "none"),
            ("source", f"{spec['source']['name']} ({spec['source'].get('table') or spec['source'].get('path')})"),
            ("computed by", spec["computation"]["kind"]),
            ("offline table", spec.get("offline_table") or ""),
            ("table", table_state),
        ]
        feats = []
        for f in spec["features"]:
            d = f.get("derivation") or {}
            how = " ".join(str(d[k]) for k in ("function", "column", "window") if k in d)
            feats.append(
                f"<tr><td>{esc(f['name'])}</td><td>{esc(f['dtype'])}</td><td>{esc(f['description'] or how)}</td></tr>"
            )
            words.append(f["name"])
        body = "<table><tr><th>feature</th><th>type</th><th>about</th></tr>" + "".join(feats) + "</table>"
    elif obj.kind == "request_view":
        rows[:0] = [
            ("request data", ", ".join(f"{k} {t}" for k, t in spec["request"].items()) or "-"),
            ("features of", "; ".join(f"{s['view']}: {', '.join(s['features'])}" for s in spec["sources"]) or "-"),
            ("function", spec["function"]),
        ]
        feats = [
            f"<tr><td>{esc(f['name'])}</td><td>{esc(f['dtype'])}</td><td>{esc(f['description'])}</td></tr>"
            for f in spec["features"]
        ]
        words += [f["name"] for f in spec["features"]]
        body = "<table><tr><th>feature</th><th>type</th><th>about</th></tr>" + "".join(feats) + "</table>"
    elif obj.kind == "feature_service":
        items = []
        for sel in spec["features"]:
            items.append(f"<li><b>{esc(sel['view'])}</b>: {esc(', '.join(sel['features']))}</li>")
            words += [sel["view"], *sel["features"]]
        body = "<ul>" + "".join(items) + "</ul>"
    node = _node_of(obj)
    button = f'<button class="trace" data-node="{esc(node)}">show lineage</button>' if node else ""
    search = esc(" ".join(words).lower())
    return (
        f'<article class="card" id="{esc(obj.kind)}-{esc(obj.name)}" data-search="{search}">'
        f'<h3><span class="badge {esc(obj.kind)}">{esc(LABELS[obj.kind])}</span> {esc(obj.name)}</h3>'
        f"<p>{esc(spec.get('description') or '')}</p>{_kv(rows)}{body}{button}</article>"
    )


def _training_card(ts: TrainingSetRef) -> str:
    esc = html.escape
    rows = [("service", ts.service or "-"), ("views", ", ".join(ts.views)), ("created", str(ts.created_at or "-"))]
    search = esc(f"{ts.name} training_set {ts.service or ''} {' '.join(ts.views)}".lower())
    return (
        f'<article class="card" data-search="{search}"><h3><span class="badge training_set">training set</span> '
        f"{esc(ts.name)}</h3>{_kv(rows)}"
        f'<button class="trace" data-node="training_set:{esc(ts.name)}">show lineage</button></article>'
    )


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:16px 28px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c6cbd6}main{padding:18px 28px}
#search{width:100%;max-width:520px;padding:9px 12px;font-size:15px;border:1px solid #c6cbd6;border-radius:6px}
.graph{overflow:auto;background:#fff;border:1px solid #dde1e8;border-radius:8px;margin:14px 0;padding:4px}
.edge{fill:none;stroke:#b5bcc9;stroke-width:1.5}.node text{fill:#fff;font-size:12px;pointer-events:none}
.node{cursor:pointer}.dim{opacity:.15}.hot{stroke:#1d2330;stroke-width:2.5}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:12px;height:12px;
border-radius:3px;margin-right:5px;vertical-align:-1px}
h2{margin:22px 0 8px;font-size:17px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:12px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:12px 14px}
.card h3{margin:0 0 4px;font-size:15px}
.card p{margin:2px 0 8px;color:#4a5263}.hidden{display:none}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;margin:0 0 8px}dt{color:#6b7385}dd{margin:0}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{border-top:1px solid #eceef2;padding:3px 6px;
text-align:left}th{color:#6b7385;font-weight:600}
.badge{font-size:11px;color:#fff;border-radius:4px;padding:1px 6px;margin-right:4px;vertical-align:1px;
background:#6b7385}
.badge.feature_view{background:#2a9d8f}.badge.feature_service{background:#5e60ce}.badge.training_set{background:#e76f51}
.badge.source{background:#8d99ae}.badge.entity{background:#264653}
button.trace{margin-top:8px;border:1px solid #c6cbd6;background:#f6f7f9;border-radius:5px;padding:3px 10px;
cursor:pointer}
footer{color:#6b7385;padding:10px 28px 24px;font-size:12px}
"""

SCRIPT = """
const adj = JSON.parse(document.getElementById('graph-data').textContent);
function reach(start, next) {
  const seen = new Set([start]); const todo = [start];
  while (todo.length) { for (const n of (next[todo.pop()] || [])) if (!seen.has(n)) { seen.add(n); todo.push(n); } }
  return seen;
}
function highlight(node) {
  const keep = node ? new Set([...reach(node, adj.down), ...reach(node, adj.up)]) : null;
  document.querySelectorAll('#lineage .node').forEach(g => {
    g.classList.toggle('dim', !!keep && !keep.has(g.dataset.node));
    g.querySelector('rect').classList.toggle('hot', g.dataset.node === node);
  });
  document.querySelectorAll('#lineage .edge').forEach(e => e.classList.toggle('dim',
    !!keep && !(keep.has(e.dataset.from) && keep.has(e.dataset.to))));
  document.getElementById('traced').textContent = node ? 'lineage of ' + node.replace(':', ' ') : '';
}
document.querySelectorAll('#lineage .node').forEach(g => g.addEventListener('click', () => highlight(g.dataset.node)));
document.querySelectorAll('button.trace').forEach(b => b.addEventListener('click', () => {
  highlight(b.dataset.node); document.getElementById('graph').scrollIntoView({behavior: 'smooth'});
}));
document.getElementById('clear').addEventListener('click', () => highlight(null));
document.getElementById('search').addEventListener('input', ev => {
  const q = ev.target.value.trim().toLowerCase();
  document.querySelectorAll('.card').forEach(c => c.classList.toggle('hidden', !!q && !c.dataset.search.includes(q)));
  document.querySelectorAll('#lineage .node').forEach(g => g.classList.toggle('dim',
    !!q && !g.dataset.node.toLowerCase().includes(q)));
});
const start = new URLSearchParams(location.search).get('lineage'); if (start) highlight(start);
"""


def render_catalog(data: CatalogData) -> str:
    """The whole catalog page as one HTML string."""
    esc = html.escape
    extra = [n for o in data.objects if (n := _node_of(o))]
    svg = render_svg(data.edges, extra)
    up: dict[str, list[str]] = defaultdict(list)
    down: dict[str, list[str]] = defaultdict(list)
    for a, b in data.edges:
        down[a].append(b)
        up[b].append(a)
    graph_json = json.dumps({"up": up, "down": down}).replace("</", "<\\/")
    sections = []
    for kind, title in (
        ("feature_service", "Feature services"),
        ("feature_view", "Feature views"),
        ("request_view", "Request feature views"),
        ("entity", "Entities"),
        ("source", "Sources"),
    ):
        cards = "".join(_card(o, data) for o in data.objects if o.kind == kind)
        if cards:
            sections.append(f'<h2>{title}</h2><div class="cards">{cards}</div>')
    if data.training_sets:
        cards = "".join(_training_card(t) for t in data.training_sets)
        sections.append(f'<h2>Training sets</h2><div class="cards">{cards}</div>')
    legend = "".join(
        f'<span><i style="background:{c}"></i>{esc(LABELS[k])}</span>' for k, c in COLORS.items() if k != "path"
    )
    counts: dict[str, int] = defaultdict(int)
    for o in data.objects:
        counts[o.kind] += 1
    summary = (
        f"{counts['feature_service']} feature services, {counts['feature_view']} feature views, "
        f"{counts['entity']} entities, {counts['source']} sources"
    )
    version = "not applied" if data.registry_version is None else f"registry version {data.registry_version}"
    generated = data.generated_at.strftime("%Y-%m-%d %H:%M UTC") if data.generated_at else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>featurelake catalog</title><style>{STYLE}</style></head>
<body><header><h1>featurelake feature catalog</h1><p>{esc(summary)} · {esc(version)}</p></header>
<main><label for="search">Search features, views, services, owners</label><br>
<input id="search" type="search" autofocus>
<h2 id="graph">Lineage <small id="traced"></small> <button id="clear" class="trace">show all</button></h2>
<div class="legend">{legend}</div>
<div class="graph">{svg}</div>
{"".join(sections)}
</main><footer>Generated {esc(generated)} by <code>featurelake catalog</code>.</footer>
<script type="application/json" id="graph-data">{graph_json}</script>
<script>{SCRIPT}</script></body></html>
"""


def write_catalog(out_dir: str | Path, data: CatalogData) -> Path:
    """Write ``index.html`` into ``out_dir`` (created if needed) and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    path.write_text(render_catalog(data), encoding="utf-8")
    return path
