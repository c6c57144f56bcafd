/**
 * Fleet results as files: the timeline as JSON and CSV, and an SVG chart written by hand (pool counts
 * with the thresholds, activated share per product class). The chart is readable without colour:
 * every line has its own dash pattern and a text label at its end, and thresholds are labelled.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FleetProgress, FleetResult, MachineKind, TimelineRow } from './fleet.js';

const KINDS: readonly MachineKind[] = ['windows', 'server', 'office'];
const KIND_LABEL: Record<MachineKind, string> = {
  windows: 'Windows clients',
  server: 'Windows Servers',
  office: 'Office',
};

/** The result without per-machine detail, as written to fleet-timeline.json. */
export function fleetJson(r: FleetResult): string {
  const { machines: _omit, ...rest } = r;
  return `${JSON.stringify(rest, null, 2)}\n`;
}

export function fleetCsv(r: FleetResult): string {
  const poolCols = r.pools.map((p) => `pool_${p.name}`);
  const head = [
    'day',
    'date',
    ...poolCols,
    ...KINDS.map((k) => `present_${k}`),
    ...KINDS.map((k) => `activated_${k}`),
    'requests',
    'activations',
    'insufficient',
    'errors',
    'first_activations',
    'arrived',
    'left',
  ];
  const lines = [head.join(',')];
  for (const row of r.timeline) {
    lines.push(
      [
        row.day,
        row.date,
        ...r.pools.map((p) => row.pools[p.name] ?? 0),
        ...KINDS.map((k) => row.present[k]),
        ...KINDS.map((k) => row.activated[k]),
        row.requests,
        row.activations,
        row.insufficient,
        row.errors,
        row.firstActivations,
        row.arrived,
        row.left,
      ].join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------
// SVG

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(n: number): string {
  return (Math.round(n * 10) / 10).toString();
}

function niceStep(range: number, maxTicks: number, steps: readonly number[]): number {
  for (const s of steps) if (range / s <= maxTicks) return s;
  return steps[steps.length - 1]!;
}

interface Series {
  label: string;
  dash: string;
  color: string;
  values: number[];
}

interface Panel {
  title: string;
  top: number;
  height: number;
  yMax: number;
  yStep: number;
  yUnit: string;
  series: Series[];
  /** Horizontal reference lines (thresholds). */
  rules: { value: number; label: string }[];
}

const POOL_STYLE = [
  { dash: '', color: '#1f4e9c' },
  { dash: '10 5', color: '#c2410c' },
  { dash: '2 4', color: '#15803d' },
];
const KIND_STYLE: Record<MachineKind, { dash: string; color: string }> = {
  windows: { dash: '', color: '#1f4e9c' },
  server: { dash: '14 4 3 4', color: '#6d28d9' },
  office: { dash: '6 4', color: '#c2410c' },
};

/**
 * The timeline as an SVG document: top panel, the count each pool reports with a rule at every
 * threshold; bottom panel, the share of present machines holding an activation, per class.
 */
export function fleetSvg(r: FleetResult): string {
  const W = 960;
  const left = 64;
  const right = 205;
  const plotW = W - left - right;
  const days = r.days;
  const rows: TimelineRow[] = r.timeline;
  const x = (d: number) => left + (d / days) * plotW;

  const poolSeries: Series[] = r.pools.map((p, i) => ({
    label: `${p.name} pool`,
    ...POOL_STYLE[i % POOL_STYLE.length]!,
    values: [0, ...rows.map((row) => row.pools[p.name] ?? 0)],
  }));
  const maxCount = Math.max(
    10,
    ...poolSeries.flatMap((s) => s.values),
    ...r.thresholds.map((t) => t.requiredCount),
  );
  const countStep = niceStep(maxCount, 6, [1, 2, 5, 10, 20, 25, 50, 100, 200, 500]);
  const yMaxCount = Math.ceil(maxCount / countStep) * countStep;
  const kindsShown = KINDS.filter((k) => rows.some((row) => row.present[k] > 0));
  const kindSeries: Series[] = kindsShown.map((k) => ({
    label: KIND_LABEL[k],
    ...KIND_STYLE[k],
    values: [0, ...rows.map((row) => (row.present[k] > 0 ? (100 * row.activated[k]) / row.present[k] : 0))],
  }));
  const thresholdLabel = (t: { requiredCount: number; kinds: MachineKind[] }) =>
    `${t.requiredCount}: ${t.kinds.map((k) => KIND_LABEL[k]).join(', ')} activate`;
  const panels: Panel[] = [
    {
      title: 'KMS count reported by each pool (CMIDs seen in the last 30 days)',
      top: 92,
      height: 250,
      yMax: yMaxCount,
      yStep: countStep,
      yUnit: '',
      series: poolSeries,
      rules: r.thresholds.map((t) => ({ value: t.requiredCount, label: thresholdLabel(t) })),
    },
    {
      title: 'Present machines holding a valid activation, per product class',
      top: 452,
      height: 180,
      yMax: 100,
      yStep: 25,
      yUnit: '%',
      series: kindSeries,
      rules: [],
    },
  ];
  const H = 710;
  const out: string[] = [];
  const fleetText = KINDS.filter((k) => r.fleet[k] > 0)
    .map((k) => `${r.fleet[k]} ${KIND_LABEL[k]}`)
    .join(', ');
  const title = `Simulated fleet: ${fleetText || 'no machines'} over ${days} days`;
  const sub = `seed ${r.seed}, churn ${fmt(r.churn * 100)}% a day, ${r.totals.requests.toLocaleString('en-US')} requests, ${r.totals.errors} errors; ${r.host}`;
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="t d" font-family="DejaVu Sans, Arial, Helvetica, sans-serif" font-size="12">`,
    `<title id="t">${esc(title)}</title>`,
    `<desc id="d">${esc(
      `Top: count per KMS pool by day, with threshold lines at ${r.thresholds.map((t) => t.requiredCount).join(' and ')}. Bottom: percentage of present machines that are activated, per product class. ${sub}`,
    )}</desc>`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${left}" y="28" font-size="17" font-weight="bold" fill="#111">${esc(title)}</text>`,
    `<text x="${left}" y="48" font-size="12" fill="#333">${esc(sub)}</text>`,
  );
  const xStep = niceStep(days, 12, [1, 2, 5, 7, 14, 30, 60, 90, 180, 365, 730]);
  for (const p of panels) {
    const y = (v: number) => p.top + p.height - (v / p.yMax) * p.height;
    out.push(`<g>`);
    out.push(
      `<text x="${left}" y="${p.top - 12}" font-size="13" font-weight="bold" fill="#111">${esc(p.title)}</text>`,
    );
    // Grid and y ticks.
    for (let v = 0; v <= p.yMax + 1e-9; v += p.yStep) {
      out.push(
        `<line x1="${left}" y1="${fmt(y(v))}" x2="${left + plotW}" y2="${fmt(y(v))}" stroke="#e5e5e5" stroke-width="1"/>`,
        `<text x="${left - 8}" y="${fmt(y(v) + 4)}" text-anchor="end" fill="#333">${fmt(v)}${p.yUnit}</text>`,
      );
    }
    // x ticks.
    for (let d = 0; d <= days; d += xStep) {
      out.push(
        `<line x1="${fmt(x(d))}" y1="${p.top + p.height}" x2="${fmt(x(d))}" y2="${p.top + p.height + 5}" stroke="#333"/>`,
        `<text x="${fmt(x(d))}" y="${p.top + p.height + 18}" text-anchor="middle" fill="#333">${d}</text>`,
      );
    }
    out.push(
      `<text x="${left + plotW / 2}" y="${p.top + p.height + 34}" text-anchor="middle" fill="#333">virtual day</text>`,
      `<line x1="${left}" y1="${p.top}" x2="${left}" y2="${p.top + p.height}" stroke="#333"/>`,
      `<line x1="${left}" y1="${p.top + p.height}" x2="${left + plotW}" y2="${p.top + p.height}" stroke="#333"/>`,
    );
    // Threshold rules, then the lines, then the rule labels (with a white halo) above the lines.
    const shown = p.rules.filter((rule) => rule.value <= p.yMax);
    for (const rule of shown) {
      out.push(
        `<line x1="${left}" y1="${fmt(y(rule.value))}" x2="${left + plotW}" y2="${fmt(y(rule.value))}" stroke="#555" stroke-width="1.2" stroke-dasharray="1 3"/>`,
      );
    }
    for (const s of p.series) {
      const pts = s.values.map((v, d) => `${fmt(x(d))},${fmt(y(v))}`).join(' ');
      out.push(
        `<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2.2" stroke-linejoin="round"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
      );
    }
    for (const rule of shown) {
      out.push(
        `<text x="${left + 6}" y="${fmt(y(rule.value) - 5)}" fill="#333" font-size="11" stroke="#ffffff" stroke-width="3" paint-order="stroke">threshold ${esc(rule.label)}</text>`,
      );
    }
    // End labels, pushed apart so they never overlap.
    const ends = p.series
      .map((s) => ({ s, y: y(s.values[s.values.length - 1] ?? 0) }))
      .sort((a, b) => a.y - b.y);
    for (let i = 1; i < ends.length; i++) ends[i]!.y = Math.max(ends[i]!.y, ends[i - 1]!.y + 15);
    for (const e of ends) {
      const last = e.s.values[e.s.values.length - 1] ?? 0;
      out.push(
        `<line x1="${left + plotW + 4}" y1="${fmt(e.y)}" x2="${left + plotW + 30}" y2="${fmt(e.y)}" stroke="${e.s.color}" stroke-width="2.2"${e.s.dash ? ` stroke-dasharray="${e.s.dash}"` : ''}/>`,
        `<text x="${left + plotW + 34}" y="${fmt(e.y + 4)}" fill="#111">${esc(e.s.label)} (${fmt(last)}${p.yUnit})</text>`,
      );
    }
    // Legend: one row under the axis, a line sample with its dash pattern before each name.
    let lx = left;
    const ly = p.top + p.height + 54;
    for (const s of p.series) {
      out.push(
        `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 40}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2.2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
        `<text x="${lx + 46}" y="${ly}" fill="#111">${esc(s.label)}</text>`,
      );
      lx += 46 + 7 * s.label.length + 28;
    }
    out.push('</g>');
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------
// Files and progress

export interface FleetFiles {
  json: string;
  csv: string;
  svg: string;
}

/** Writes `<base>.json`, `<base>.csv` and `<base>.svg` into `dir` (created if missing). */
export function writeFleetOutputs(r: FleetResult, dir: string, base = 'fleet-timeline'): FleetFiles {
  fs.mkdirSync(dir, { recursive: true });
  const files: FleetFiles = {
    json: path.join(dir, `${base}.json`),
    csv: path.join(dir, `${base}.csv`),
    svg: path.join(dir, `${base}.svg`),
  };
  fs.writeFileSync(files.json, fleetJson(r));
  fs.writeFileSync(files.csv, fleetCsv(r));
  fs.writeFileSync(files.svg, fleetSvg(r));
  return files;
}

/** A one-line progress bar on a terminal; silent when the stream is not a TTY. */
export class ProgressBar {
  private readonly enabled: boolean;
  private last = 0;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly width = 30,
  ) {
    this.enabled = stream.isTTY === true;
  }

  update(p: FleetProgress): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (p.day < p.days && now - this.last < 100) return;
    this.last = now;
    const filled = Math.round((p.day / p.days) * this.width);
    const bar = '#'.repeat(filled) + '.'.repeat(this.width - filled);
    this.stream.write(
      `\r[${bar}] day ${p.day}/${p.days}  ${p.requests.toLocaleString('en-US')} requests\x1b[K`,
    );
    this.drawn = true;
  }

  done(): void {
    if (this.enabled && this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}
