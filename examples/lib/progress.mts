// A one-line progress bar redrawn in place with '\r' on a terminal; when the
// output is not a terminal (a pipe, a CI log) it prints a plain line about
// every tenth of the way instead.

function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  s = Math.round(s);
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

/** Where the bar is drawn: process.stdout, or any stream that may be a terminal. */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

export class ProgressBar {
  readonly total: number;
  readonly stream: ProgressStream;
  readonly width: number;
  readonly label: string;
  private readonly tty: boolean;
  private readonly start: number;
  private lastDraw: number;
  private lastPrintedTenth: number;
  private lastLength: number;

  /** total: steps; stream: where to draw (default process.stdout); width: bar cells. */
  constructor(
    total: number,
    {
      stream = process.stdout,
      width = 24,
      label = '',
    }: { stream?: ProgressStream; width?: number; label?: string } = {},
  ) {
    this.total = total;
    this.stream = stream;
    this.width = width;
    this.label = label;
    this.tty = Boolean(stream.isTTY);
    this.start = performance.now();
    this.lastDraw = -Infinity;
    this.lastPrintedTenth = -1;
    this.lastLength = 0;
  }

  /** step: steps done so far; fields: e.g. { loss: '2.345', 'tok/s': '4120' }. */
  update(step: number, fields: Record<string, string> = {}): void {
    const now = performance.now();
    const frac = Math.min(1, step / this.total);
    const elapsed = (now - this.start) / 1000;
    const eta = frac > 0 ? (elapsed * (1 - frac)) / frac : NaN;
    const info = Object.entries(fields)
      .map(([k, v]) => `${k} ${v}`)
      .join('  ');
    const count = `${String(step).padStart(String(this.total).length)}/${this.total}`;
    if (this.tty) {
      if (now - this.lastDraw < 80 && step < this.total) return;
      this.lastDraw = now;
      const full = Math.round(frac * this.width);
      const bar = '█'.repeat(full) + '░'.repeat(this.width - full);
      const line = `${this.label}${bar} ${count}  ${info}  ${formatSeconds(elapsed)}<${formatSeconds(eta)}`;
      const cols = this.stream.columns || 120;
      const shown = line.length >= cols ? line.slice(0, cols - 1) : line;
      this.stream.write(`\r${shown}${' '.repeat(Math.max(0, this.lastLength - shown.length))}`);
      this.lastLength = shown.length;
    } else {
      const tenth = Math.floor(frac * 10);
      if (tenth === this.lastPrintedTenth && step < this.total) return;
      this.lastPrintedTenth = tenth;
      this.stream.write(`${this.label}${count}  ${info}  ${formatSeconds(elapsed)}\n`);
    }
  }

  /** Ends the line on a terminal. */
  finish(): void {
    if (this.tty && this.lastLength > 0) this.stream.write('\n');
    this.lastLength = 0;
  }
}
