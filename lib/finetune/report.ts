// What a fine-tuning run shows: a progress line (loss, tokens/s, ETA) on stderr, and loss.svg.

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

/**
 * A progress bar on a terminal (one line redrawn in place); elsewhere (a pipe, a log file) one
 * plain line at each tenth of the run, so logs stay short.
 */
export class ProgressBar {
  private readonly started = performance.now();
  private readonly tty: boolean;
  private lastTenth = -1;

  constructor(
    private readonly total: number,
    private readonly firstStep: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(stream.isTTY);
  }

  update(step: number, loss: number, tokensPerSecond: number): void {
    const done = step - this.firstStep;
    const elapsed = (performance.now() - this.started) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - step) : NaN;
    const text =
      `step ${step}/${this.total}  loss ${loss.toFixed(4)}  ` +
      `${Math.round(tokensPerSecond).toLocaleString('en-US')} tokens/s  ETA ${duration(eta)}`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round((step / this.total) * width);
      this.stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
      return;
    }
    const tenth = Math.floor((step * 10) / this.total);
    if (tenth !== this.lastTenth || step === this.total) {
      this.lastTenth = tenth;
      this.stream.write(text + '\n');
    }
  }

  /** A message on its own line (the bar is redrawn after it). */
  note(message: string): void {
    this.stream.write((this.tty ? '\r\x1b[K' : '') + message + '\n');
  }

  finish(): void {
    if (this.tty) this.stream.write('\n');
  }
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Round step values (1, 2 or 5 × 10^k) for about `count` grid lines over [lo, hi]. */
function gridValues(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const unit = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * unit).find((s) => s >= raw)!;
  const values = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) values.push(Number(v.toPrecision(10)));
  return values;
}

/**
 * An SVG chart of the training loss per step (thin), its moving average (thick) and the
 * evaluation loss (dots), each series given as [step, loss] pairs.
 */
export function lossSvg(train: [number, number][], evaluation: [number, number][], title: string): string {
  const W = 720,
    H = 400,
    left = 60,
    right = 20,
    top = 36,
    bottom = 44;
  const all = [...train, ...evaluation].filter(([, y]) => Number.isFinite(y));
  const xs = all.map(([x]) => x),
    ys = all.map(([, y]) => y);
  const x0 = Math.min(0, ...xs),
    x1 = Math.max(1, ...xs);
  let y0 = ys.length ? Math.min(...ys) : 0,
    y1 = ys.length ? Math.max(...ys) : 1;
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const X = (x: number) => (left + ((x - x0) / (x1 - x0)) * (W - left - right)).toFixed(1);
  const Y = (y: number) => (top + ((y1 - y) / (y1 - y0)) * (H - top - bottom)).toFixed(1);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
  ];
  for (const v of gridValues(y0, y1, 6)) {
    out.push(`<line x1="${left}" x2="${W - right}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 6}" y="${Y(v)}" text-anchor="end" dominant-baseline="middle">${v}</text>`);
  }
  for (const v of gridValues(x0, x1, 8)) {
    out.push(`<text x="${X(v)}" y="${H - bottom + 16}" text-anchor="middle">${v}</text>`);
  }
  out.push(
    `<rect x="${left}" y="${top}" width="${W - left - right}" height="${H - top - bottom}" fill="none" stroke="#333"/>`,
  );
  out.push(`<text x="${(left + W - right) / 2}" y="${H - 8}" text-anchor="middle">optimizer step</text>`);
  const line = (points: [number, number][], attrs: string) =>
    points.length > 1
      ? `<polyline fill="none" ${attrs} points="${points.map(([x, y]) => `${X(x)},${Y(y)}`).join(' ')}"/>`
      : '';
  const finite = train.filter(([, y]) => Number.isFinite(y));
  out.push(line(finite, 'stroke="#1f77b4" stroke-opacity="0.35" stroke-width="1"'));
  // Moving average with bias correction (TensorBoard's smoothing, 0.9).
  let m = 0,
    w = 0;
  const smooth = finite.map(([x, y]): [number, number] => {
    m = 0.9 * m + 0.1 * y;
    w = 0.9 * w + 0.1;
    return [x, m / w];
  });
  out.push(line(smooth, 'stroke="#1f77b4" stroke-width="2"'));
  for (const [x, y] of evaluation.filter(([, v]) => Number.isFinite(v))) {
    out.push(`<circle cx="${X(x)}" cy="${Y(y)}" r="4" fill="#ff7f0e"/>`);
  }
  out.push(
    `<line x1="${W - right - 170}" x2="${W - right - 150}" y1="${top + 14}" y2="${top + 14}" stroke="#1f77b4" stroke-width="2"/>`,
    `<text x="${W - right - 144}" y="${top + 14}" dominant-baseline="middle">training loss</text>`,
  );
  if (evaluation.length) {
    out.push(
      `<circle cx="${W - right - 160}" cy="${top + 32}" r="4" fill="#ff7f0e"/>`,
      `<text x="${W - right - 144}" y="${top + 32}" dominant-baseline="middle">evaluation loss</text>`,
    );
  }
  out.push('</svg>');
  return out.filter(Boolean).join('\n') + '\n';
}
