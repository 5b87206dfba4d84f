// Plots for the examples: a terminal line chart drawn with Unicode braille
// dots (2×4 dots per character cell) and a small SVG writer (polylines and
// markers, axes with round-number ticks, labels, a legend). No dependencies.
import { writeFileSync } from 'node:fs';

/** [x, y]; points with a non-finite coordinate are skipped. */
export type Point = [number, number];

/** Exponential moving average with bias correction (as TensorBoard's smoothing). */
export function ema(values: number[], alpha = 0.9): number[] {
  let m = 0,
    w = 0;
  return values.map((v) => {
    m = alpha * m + (1 - alpha) * v;
    w = alpha * w + (1 - alpha);
    return m / w;
  });
}

/** About `count` round tick values (1, 2, 5 × 10^k) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const fmt = (v: number): string => {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
};

function extent(series: { points: Point[] }[], key: 0 | 1): [number, number] {
  let lo = Infinity,
    hi = -Infinity;
  for (const s of series)
    for (const p of s.points) {
      const v = p[key];
      if (Number.isFinite(v)) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) return [lo - 0.5, hi + 0.5];
  return [lo, hi];
}

const BRAILLE: readonly (readonly [number, number])[] = [
  [0x01, 0x08],
  [0x02, 0x10],
  [0x04, 0x20],
  [0x40, 0x80],
]; // [row][col] dot bits
const ANSI = {
  cyan: '\x1b[36m',
  yellow: '\x1b[33m',
  magenta: '\x1b[35m',
  green: '\x1b[32m',
  dim: '\x1b[2m',
  reset: '\x1b[0m',
} as const;
type Colour = Exclude<keyof typeof ANSI, 'dim' | 'reset'>;

/** A series of terminalPlot: a line, or a marker character at each point. */
export interface TerminalSeries {
  name: string;
  points: Point[];
  marker?: string;
  color?: Colour;
}

export interface TerminalPlotOptions {
  width?: number;
  height?: number;
  title?: string;
  yLabel?: string;
  xLabel?: string;
  color?: boolean;
}

/**
 * A text chart. series: [{ name, points: [[x, y], ...], marker?: '●' }]:
 * a series without a marker is a line of braille dots (averaged where several
 * points share a dot column), one with a marker puts that character at each
 * point. color: use ANSI colours (default: only when stdout is a terminal).
 * Returns the lines joined with '\n'.
 */
export function terminalPlot(
  series: TerminalSeries[],
  {
    width = 64,
    height = 14,
    title = '',
    yLabel = '',
    xLabel = '',
    color = Boolean(process.stdout.isTTY),
  }: TerminalPlotOptions = {},
): string {
  const [x0, x1] = extent(series, 0);
  const [y0, y1] = extent(series, 1);
  const dotsW = width * 2,
    dotsH = height * 4;
  const cells = Array.from({ length: height }, () => new Array<number>(width).fill(0));
  const owner = Array.from({ length: height }, () => new Array<number>(width).fill(-1));
  const marks = Array.from({ length: height }, () => new Array<{ ch: string; si: number } | null>(width).fill(null));
  const colours: Colour[] = ['cyan', 'yellow', 'magenta', 'green'];
  const dx = (x: number) => Math.min(dotsW - 1, Math.max(0, Math.round(((x - x0) / (x1 - x0)) * (dotsW - 1))));
  const dy = (y: number) => Math.min(dotsH - 1, Math.max(0, Math.round(((y1 - y) / (y1 - y0)) * (dotsH - 1))));
  const dot = (px: number, py: number, si: number) => {
    const r = Math.floor(py / 4),
      c = Math.floor(px / 2);
    cells[r]![c]! |= BRAILLE[py % 4]![px % 2]!;
    owner[r]![c] = si;
  };
  series.forEach((s, si) => {
    const pts = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
    if (s.marker) {
      for (const [x, y] of pts) {
        const r = Math.floor(dy(y) / 4),
          c = Math.floor(dx(x) / 2);
        marks[r]![c] = { ch: s.marker, si };
      }
      return;
    }
    // Mean of the points falling in each dot column, then join the columns.
    const sum = new Map<number, [number, number]>();
    for (const [x, y] of pts) {
      const c = dx(x),
        e = sum.get(c) ?? [0, 0];
      sum.set(c, [e[0] + y, e[1] + 1]);
    }
    const cols = [...sum.keys()].sort((a, b) => a - b);
    let prev: [number, number] | null = null;
    for (const c of cols) {
      const [t, n] = sum.get(c)!;
      const py = dy(t / n);
      if (prev) {
        let last = prev[1];
        for (let x = prev[0] + 1; x <= c; x++) {
          const yy = Math.round(prev[1] + ((x - prev[0]) / (c - prev[0])) * (py - prev[1]));
          // Every dot between the previous height and this one, so steep drops stay connected.
          const step = yy >= last ? 1 : -1;
          for (let y = last === yy ? yy : last + step; y !== yy + step; y += step) dot(x, y, si);
          last = yy;
        }
      } else dot(c, py, si);
      prev = [c, py];
    }
  });
  const paint = (text: string, si: number) =>
    color && si >= 0 ? ANSI[series[si]!.color ?? colours[si % colours.length]!] + text + ANSI.reset : text;
  const yTicks = new Map([
    [0, y1],
    [Math.floor((height - 1) / 2), (y0 + y1) / 2],
    [height - 1, y0],
  ]);
  const labelWidth = Math.max(...[...yTicks.values()].map((v) => fmt(v).length));
  const lines = [];
  if (title) lines.push(title);
  if (yLabel) lines.push(yLabel);
  for (let r = 0; r < height; r++) {
    const tick = yTicks.get(r);
    const label = tick !== undefined ? fmt(tick).padStart(labelWidth) : ' '.repeat(labelWidth);
    let row = '';
    for (let c = 0; c < width; c++) {
      const m = marks[r]![c];
      const bits = cells[r]![c]!;
      if (m) row += paint(m.ch, m.si);
      else row += bits ? paint(String.fromCharCode(0x2800 + bits), owner[r]![c]!) : ' ';
    }
    lines.push(`${label} ┤${row}`);
  }
  lines.push(`${' '.repeat(labelWidth)} └${'─'.repeat(width)}`);
  const left = fmt(x0),
    right = fmt(x1);
  lines.push(
    `${' '.repeat(labelWidth + 2)}${left}${' '.repeat(Math.max(1, width - left.length - right.length))}${right}`,
  );
  const legend = series.map((s, si) => paint(s.marker ?? '⠤⠤', si) + ' ' + s.name).join('   ');
  lines.push(`${' '.repeat(labelWidth + 2)}${xLabel ? xLabel + '   ' : ''}${legend}`);
  return lines.join('\n');
}

const esc = (s: string): string =>
  String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A series of svgPlot. */
export interface SvgSeries {
  name?: string;
  points: Point[];
  /** CSS colour (default: a palette by series index). */
  color?: string;
  /** Stroke width (default 1.5). */
  width?: number;
  opacity?: number;
  /** stroke-dasharray, e.g. '4 3'. */
  dash?: string;
  /** Circles at the points. */
  markers?: boolean;
  /** Draw the line (default true). */
  line?: boolean;
}

export interface SvgPlotOptions {
  series: SvgSeries[];
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  xScale?: 'linear' | 'log';
}

/**
 * An SVG line chart as a string. series: [{ name, points: [[x, y], ...],
 * color?, width? (stroke), opacity?, dash? ('4 3'), markers? (circles at the
 * points), line? (default true) }]. xScale: 'linear' | 'log'.
 */
export function svgPlot({
  series,
  title = '',
  xLabel = '',
  yLabel = '',
  width = 720,
  height = 420,
  xScale = 'linear',
}: SvgPlotOptions): string {
  const m = { left: 64, right: 20, top: title ? 40 : 16, bottom: 52 };
  const pw = width - m.left - m.right,
    ph = height - m.top - m.bottom;
  const tx = xScale === 'log' ? (v: number) => Math.log10(v) : (v: number) => v;
  const [x0, x1] = extent(
    series.map((s) => ({ points: s.points.map(([x, y]): Point => [tx(x), y]) })),
    0,
  );
  let [y0, y1] = extent(series, 1);
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const X = (x: number) => m.left + ((tx(x) - x0) / (x1 - x0)) * pw;
  const Y = (y: number) => m.top + ((y1 - y) / (y1 - y0)) * ph;
  const palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  if (title) out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="15">${esc(title)}</text>`);
  // Grid and ticks.
  const yt = niceTicks(y0, y1, 6);
  for (const v of yt) {
    const y = Y(v).toFixed(1);
    out.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(v)}</text>`);
  }
  const xt =
    xScale === 'log'
      ? Array.from({ length: Math.floor(x1) - Math.ceil(x0) + 1 }, (_, i) => 10 ** (Math.ceil(x0) + i))
      : niceTicks(x0, x1, 8);
  for (const v of xt) {
    const x = X(v).toFixed(1);
    out.push(`<line x1="${x}" y1="${m.top}" x2="${x}" y2="${m.top + ph}" stroke="#eeeeee"/>`);
    out.push(`<text x="${x}" y="${m.top + ph + 16}" text-anchor="middle">${fmt(v)}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  if (xLabel) out.push(`<text x="${m.left + pw / 2}" y="${height - 12}" text-anchor="middle">${esc(xLabel)}</text>`);
  if (yLabel)
    out.push(
      `<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
    );
  // Series.
  series.forEach((s, i) => {
    const color = s.color ?? palette[i % palette.length];
    const pts = s.points.filter(
      (p) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (xScale !== 'log' || p[0] > 0),
    );
    const attrs = `stroke="${color}" stroke-width="${s.width ?? 1.5}"${s.opacity !== undefined ? ` stroke-opacity="${s.opacity}"` : ''}${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}`;
    if (s.line !== false && pts.length > 1) {
      out.push(
        `<polyline fill="none" ${attrs} stroke-linejoin="round" points="${pts.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`,
      );
    }
    if (s.markers || pts.length === 1) {
      for (const [x, y] of pts)
        out.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3.5" fill="${color}"/>`);
    }
  });
  // Legend (top right).
  const named = series.flatMap((s, i) => (s.name ? [{ s, name: s.name, i }] : []));
  named.forEach(({ s, name, i }, k) => {
    const color = s.color ?? palette[i % palette.length];
    const y = m.top + 14 + k * 18,
      x = m.left + pw - 170;
    if (k === 0)
      out.push(
        `<rect x="${x - 6}" y="${y - 10}" width="176" height="${named.length * 18 + 2}" fill="white" fill-opacity="0.85"/>`,
      );
    if (s.line !== false)
      out.push(
        `<line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${color}" stroke-width="${Math.max(2, s.width ?? 1.5)}"${s.opacity !== undefined ? ` stroke-opacity="${s.opacity}"` : ''}${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
      );
    if (s.markers || s.line === false) out.push(`<circle cx="${x + 11}" cy="${y}" r="3.5" fill="${color}"/>`);
    out.push(`<text x="${x + 28}" y="${y}" dominant-baseline="middle">${esc(name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export function writeSvg(path: string, opts: SvgPlotOptions): void {
  writeFileSync(path, svgPlot(opts));
}
