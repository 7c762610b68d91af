"""``cbench leaderboard --html``: one self-contained page (``index.html``), nothing fetched at view time.

The page embeds the leaderboard JSON (``leaderboard.to_json``) and the chart (PNG as a data URI), with
inline CSS and JavaScript: sortable columns (click a header), filters by sensor / level / task type /
measured-vs-reported / pretraining-overlap, CIs and rank intervals in the cells, and each cell's provenance
(result files, commit, weights hash, per-sample checksum) on hover and in a panel on click.

The view state can also be set from the URL fragment, e.g. ``index.html#sort=3&dir=desc&sensor=s1&kind=measured``
(``sort`` = a header index, 0 = task), which is how the headless-browser test drives it.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .leaderboard import Leaderboard

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em}
.notes{font-size:.85em;color:#444;max-width:75em}
.warn{background:#fff3cd;border:1px solid #e0c36c;padding:.4em .6em;font-weight:600}
.filters{margin:.8em 0;display:flex;gap:1em;flex-wrap:wrap;font-size:.9em}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .45em;text-align:center;white-space:nowrap}
th{background:#f2f2f2;cursor:pointer;position:sticky;top:0}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
td.task{text-align:left} td.best{font-weight:700} td.reported,th.reported{background:#f4f0ff}
td.na{color:#999} td.missing{color:#b55} .ci{color:#555;font-size:.85em} .rank{color:#1a5fb4;font-size:.85em}
#prov{position:fixed;right:1em;bottom:1em;max-width:40em;max-height:40%;overflow:auto;background:#fff;
border:1px solid #888;padding:.6em;font-size:.8em;display:none;white-space:pre-wrap}
img{max-width:100%}
"""

JS = r"""
const D = JSON.parse(document.getElementById('lb-data').textContent);
const state = {sort: 0, dir: 'asc', sensor: 'all', level: 'all', type: 'all', kind: 'all', overlap: 'all'};
function fmt(v){ if(v===null||v===undefined||Number.isNaN(v)) return 'nan';
  return Math.abs(v)>=100 ? v.toFixed(1) : v.toFixed(2); }
function cellText(c){
  if(c.status==='not-applicable') return '-';
  if(c.status!=='value'||c.mean===null) return '\u2026';
  let t = fmt(c.mean) + (c.std===null ? '' : ' \u00b1 ' + fmt(c.std));
  if(!(c.provenance.length && c.provenance[0].reported)) t += ' (n=' + c.n + ')';
  return t; }
function provText(col, task, c){
  let lines = [col.label + ' \u00b7 ' + task.name];
  if(c.ci) lines.push('95% CI ' + fmt(c.ci[0]) + ' \u2013 ' + fmt(c.ci[1]));
  else if(c.ci_note) lines.push('no CI: ' + c.ci_note);
  if(c.rank_interval) lines.push('rank interval ' + c.rank_interval[0] + '\u2013' + c.rank_interval[1]);
  for(const p of c.provenance) lines.push(JSON.stringify(p));
  if(c.cost && c.cost.device) lines.push('cost: ' + JSON.stringify(c.cost));
  return lines.join('\n'); }
function colVisible(col){
  if(state.kind!=='all' && col.kind!==state.kind) return false;
  if(state.overlap!=='all'){ const card = D.model_cards[col.model]; const o = card ? card.overlap : 'unknown';
    if(col.kind==='reported' || o!==state.overlap) return false; }
  return true; }
function rowVisible(t){
  return (state.sensor==='all'||t.sensor===state.sensor) && (state.level==='all'||String(t.level)===state.level)
      && (state.type==='all'||t.task_type===state.type); }
function render(){
  const cols = D.columns.filter(colVisible);
  const thead = document.querySelector('#lb thead'); const tbody = document.querySelector('#lb tbody');
  const heads = ['Task', 'Metric'].concat(cols.map(c => c.label));
  thead.innerHTML = '<tr>' + heads.map((h, i) => {
    const cls = [(i===state.sort ? 'sorted-' + state.dir : ''), (i>1 && cols[i-2].kind==='reported') ? 'reported' : ''];
    return '<th data-i="' + i + '" class="' + cls.join(' ') + '">' + esc(h) + '</th>'; }).join('') + '</tr>';
  let tasks = D.tasks.filter(rowVisible);
  const key = t => { if(state.sort===0) return t.level*1000 + D.tasks.indexOf(t);
    if(state.sort===1) return t.metric; const c = t.cells[cols[state.sort-2].id]; return c && c.mean!==null ? c.mean : null; };
  tasks = tasks.slice().sort((a, b) => { const ka = key(a), kb = key(b);
    if(ka===null && kb===null) return 0; if(ka===null) return 1; if(kb===null) return -1;
    const r = ka < kb ? -1 : ka > kb ? 1 : 0; return state.dir==='asc' ? r : -r; });
  tbody.innerHTML = '';
  for(const t of tasks){
    const tr = document.createElement('tr'); tr.dataset.task = t.slug;
    tr.innerHTML = '<td class="task">' + esc(t.name) + '</td><td>' + esc(t.metric) + (t.higher_is_better ? ' \u2191' : ' \u2193') + '</td>';
    for(const col of cols){
      const c = t.cells[col.id]; const td = document.createElement('td');
      td.className = (c.best ? 'best ' : '') + (col.kind==='reported' ? 'reported ' : '') + (c.status==='not-applicable' ? 'na' : c.status==='missing' ? 'missing' : '');
      td.innerHTML = esc(cellText(c)) + (c.ci ? ' <span class="ci">[' + fmt(c.ci[0]) + ', ' + fmt(c.ci[1]) + ']</span>' : '')
        + (c.rank_interval ? ' <span class="rank">r' + c.rank_interval[0] + (c.rank_interval[1]!==c.rank_interval[0] ? '\u2013' + c.rank_interval[1] : '') + '</span>' : '');
      const p = provText(col, t, c); td.title = p; td.onclick = () => { const el = document.getElementById('prov'); el.textContent = p; el.style.display = 'block'; };
      tr.appendChild(td); }
    tbody.appendChild(tr); }
  document.getElementById('count').textContent = tasks.length + ' task(s), ' + cols.length + ' column(s)';
  document.querySelectorAll('#lb th').forEach(th => th.onclick = () => { const i = +th.dataset.i;
    if(state.sort===i) state.dir = state.dir==='asc' ? 'desc' : 'asc'; else { state.sort = i; state.dir = i>1 ? 'desc' : 'asc'; }
    render(); }); }
function esc(s){ return String(s).replace(/[&<>"]/g, ch => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[ch])); }
function fromHash(){
  const h = new URLSearchParams(location.hash.slice(1));
  for(const k of Object.keys(state)){ if(h.has(k)) state[k] = k==='sort' ? +h.get(k) : h.get(k); }
  for(const k of ['sensor','level','type','kind','overlap']){ const el = document.getElementById('f-' + k); if(el) el.value = state[k]; } }
for(const k of ['sensor','level','type','kind','overlap']){
  const el = document.getElementById('f-' + k); el.onchange = () => { state[k] = el.value; render(); }; }
fromHash(); render();
"""


def _options(name: str, values: list[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{html.escape(v)}">{html.escape(t)}</option>' for v, t in values)
    return f'<label>{html.escape(name)} <select id="f-{name.split()[0].lower()}">' \
           f'<option value="all">all</option>{opts}</select></label>'


def _summary_html(lb: Leaderboard) -> str:
    from .leaderboard import fmt, group_title

    by_id = {c.id: c for c in lb.columns}
    parts = []
    for s in lb.summaries:
        parts.append(f"<h3>Summary — {html.escape(group_title(s.group))}: {len(s.tasks)} common task(s)</h3>")
        if not s.tasks:
            parts.append("<p>No task has a result in every column of this group.</p>")
            continue
        rows = []
        for cid in sorted(s.columns, key=lambda k: s.mean_rank.get(k, float("inf"))):
            iqm = s.iqm.get(cid)
            ok = iqm is not None and math.isfinite(iqm)
            ci = s.iqm_ci.get(cid) if ok else None
            iv = s.rank_interval.get(cid) if ok else None
            rows.append(f"<tr><td class=task>{html.escape(by_id[cid].label)}</td>"
                        f"<td>{fmt(s.mean_rank.get(cid))}</td><td>{fmt(s.norm_score.get(cid))}</td>"
                        f"<td>{fmt(iqm) if ok else '…'}"
                        f"{f' <span class=ci>[{fmt(ci[0])}, {fmt(ci[1])}]</span>' if ci else ''}</td>"
                        f"<td>{f'{iv[0]}–{iv[1]}' if iv else '…'}</td></tr>")
        parts.append("<table class=summary><thead><tr><th>Column</th><th>Mean rank ↓</th><th>Normalised score ↑</th>"
                     "<th>IQM [95 % CI] ↑</th><th>IQM rank interval</th></tr></thead><tbody>"
                     + "".join(rows) + "</tbody></table>")
        if s.iqm_note:
            parts.append(f"<p class=notes>IQM: {html.escape(s.iqm_note)}.</p>")
    return "\n".join(parts)


def render_html(lb: Leaderboard, chart: str | Path | None = None) -> str:
    """The whole page as one string."""
    from .leaderboard import to_json

    data = _finite(to_json(lb))  # NaN is not JSON: the page's JSON.parse would fail on it
    blob = json.dumps(data, default=str, allow_nan=False).replace("</", "<\\/")
    img = ""
    if chart is not None and Path(chart).is_file():
        b64 = base64.b64encode(Path(chart).read_bytes()).decode()
        img = f'<h2>Normalised scores</h2><img alt="normalised scores" src="data:image/png;base64,{b64}">'
    sensors = sorted({r.card.sensor for r in lb.rows})
    levels = sorted({r.card.level for r in lb.rows})
    types = sorted({r.card.task_type for r in lb.rows})
    filters = "".join([
        _options("sensor", [(s, s.upper()) for s in sensors]),
        _options("level", [(str(v), f"L{v}") for v in levels]),
        _options("type", [(t, t) for t in types]),
        _options("kind", [("measured", "measured"), ("reported", "reported")]),
        _options("overlap", [(o, o) for o in ("none", "possible", "yes", "unknown")]),
    ])
    warn = "".join(f'<p class="warn">{html.escape(n.strip("*"))}</p>' for n in lb.notes if n.startswith("**"))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in lb.notes if not n.startswith("**"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Copernicus-Bench leaderboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>Copernicus-Bench leaderboard</h1>
<p class="notes">Generated by <code>cbench leaderboard</code> on {html.escape(lb.created)} from result files.
Click a header to sort; hover or click a cell for its provenance.</p>
{warn}
<div class="filters">{filters}<span id="count"></span></div>
<table id="lb"><thead></thead><tbody></tbody></table>
<ul class="notes">{notes}</ul>
{_summary_html(lb)}
{img}
<div id="prov"></div>
<script type="application/json" id="lb-data">{blob}</script>
<script>{JS}</script>
</body></html>
"""


def write_html(lb: Leaderboard, path: str | Path, chart: str | Path | None = None) -> Path:
    """Write ``index.html`` atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_html(lb, chart), encoding="utf-8")
    tmp.replace(path)
    return path


def _finite(obj: Any) -> Any:
    """The JSON data with every NaN / infinity replaced by None (shown as '…' or 'nan' on the page)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
