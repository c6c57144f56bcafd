/** Dashboard styles: high contrast, visible focus, and every state also in words and patterns. */
export const DASHBOARD_CSS = `
:root {
  --fg: #1b1f24; --muted: #4a5360; --bg: #ffffff; --panel: #f5f7fa; --line: #c9d1db;
  --accent: #0b5cad; --ok: #116329; --bad: #9a1d1d; --focus: #f5b400;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif;
  color: var(--fg); background: var(--bg); line-height: 1.45;
}
* { box-sizing: border-box; }
body { margin: 0; }
.skip { position: absolute; left: -9999px; }
.skip:focus { left: 1rem; top: 1rem; background: var(--bg); padding: .5rem; z-index: 2; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.top { padding: 1rem 1.5rem .5rem; border-bottom: 1px solid var(--line); background: var(--panel); }
h1 { margin: 0 0 .5rem; font-size: 1.5rem; }
h1 .sub { font-weight: 400; color: var(--muted); font-size: 1rem; margin-left: .5rem; }
h2 { font-size: 1.2rem; margin: 0 0 .5rem; }
.facts { display: flex; flex-wrap: wrap; gap: .5rem 2rem; margin: 0; }
.facts div { display: flex; gap: .5rem; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums; }
.connection:empty { display: none; }
.connection { color: var(--bad); font-weight: 600; margin: .5rem 0 0; }
.login { margin: .5rem 0 0; display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
.login[hidden] { display: none; }
main { padding: 1rem 1.5rem; display: grid; gap: 1.25rem; max-width: 1200px; }
.controls { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem; }
.controls h2 { flex-basis: 100%; }
.buttons { display: flex; flex-wrap: wrap; gap: .5rem; }
button { font: inherit; padding: .45rem .9rem; border: 2px solid var(--accent); background: var(--bg); color: var(--accent);
  border-radius: 4px; cursor: pointer; }
button:hover { background: #e8f0fa; }
button.strong { background: var(--accent); color: #fff; }
button.danger { border-color: var(--bad); color: var(--bad); border-style: dashed; }
button:disabled { opacity: .55; cursor: not-allowed; }
.note { color: var(--muted); margin: .25rem 0; }
.action-status { flex-basis: 100%; margin: 0; min-height: 1.5em; font-weight: 600; }
.pools { display: grid; gap: 1.25rem; }
.pool { border: 1px solid var(--line); border-radius: 6px; padding: 1rem; background: var(--bg); }
.pool-head { display: flex; flex-wrap: wrap; gap: .25rem 1.5rem; align-items: baseline; }
.count { font-size: 1.1rem; margin: .25rem 0; }
.count strong { font-size: 1.8rem; font-variant-numeric: tabular-nums; }
.meter { position: relative; height: 1.1rem; border: 2px solid var(--fg); border-radius: 3px; background: var(--bg); max-width: 640px; }
.meter .fill { position: absolute; inset: 0 auto 0 0; background: repeating-linear-gradient(45deg, var(--accent) 0 4px, #ffffff 4px 7px); }
.meter .tick { position: absolute; top: -4px; bottom: -4px; border-left: 2px dashed var(--fg); }
.thresholds { list-style: none; padding: 0; margin: .6rem 0; display: grid; gap: .2rem; }
.thresholds .met { color: var(--ok); font-weight: 700; }
.thresholds .unmet { color: var(--bad); font-weight: 700; }
figure { margin: .5rem 0; }
figcaption { color: var(--muted); font-size: .9rem; }
svg.chart { width: 100%; max-width: 760px; height: auto; border: 1px solid var(--line); background: #fff; }
svg.chart text { font-size: 11px; fill: var(--fg); font-family: inherit; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
caption { text-align: left; font-weight: 600; padding: .4rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: var(--panel); }
td.mono, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85rem; }
td.empty { color: var(--muted); font-style: italic; }
.event-list { list-style: none; padding: 0; margin: 0; max-height: 28rem; overflow-y: auto; border: 1px solid var(--line); border-radius: 6px; }
.event-list li { padding: .35rem .6rem; border-bottom: 1px solid var(--line); font-variant-numeric: tabular-nums; }
.event-list li:last-child { border-bottom: 0; }
.event-list .tag { font-weight: 700; display: inline-block; min-width: 10.5rem; }
.event-list .activated .tag { color: var(--ok); }
.event-list .insufficient .tag { color: var(--muted); }
.event-list .refused .tag { color: var(--bad); }
.foot { padding: 0 1.5rem 1.5rem; color: var(--muted); font-size: .9rem; }
a { color: var(--accent); }
@media (prefers-reduced-motion: reduce) { * { transition: none !important; } }
`;
