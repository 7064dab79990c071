import { s } from './dom.ts';

export interface PlotWindow {
  startS: number;
  endS: number;
  probability: number;
}

export interface PlotSpan {
  startS: number;
  endS: number;
}

const H = 240;
const PAD = { l: 44, r: 14, t: 14, b: 30 };

function niceStep(span: number, target: number): number {
  const raw = span / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const m = raw / pow;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * pow;
}

/**
 * Probability over time as an SVG: one point per analysis window (at its centre), the
 * decision threshold as a dashed line and detected events as shaded spans.
 */
export function probabilityPlot(opts: {
  windows: PlotWindow[];
  threshold: number;
  events?: PlotSpan[];
  durationS?: number;
  label?: string;
  /** Drawn at the container's real width so labels are never stretched (phones vs desktops). */
  width?: number;
}): SVGSVGElement {
  const { windows, threshold, events = [] } = opts;
  const W = Math.max(280, Math.round(opts.width ?? 800));
  const end = Math.max(opts.durationS ?? 0, windows.at(-1)?.endS ?? 0, 1);
  const x = (t: number) => PAD.l + (t / end) * (W - PAD.l - PAD.r);
  const y = (p: number) => PAD.t + (1 - p) * (H - PAD.t - PAD.b);
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: 'plot',
    role: 'img',
    'aria-label': opts.label ?? 'Scream probability over time',
    width: W,
    height: H,
  });
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: y(p), y2: y(p), class: 'grid' }));
    svg.append(s('text', { x: PAD.l - 6, y: y(p) + 4, class: 'tick', 'text-anchor': 'end' }, `${p * 100}%`));
  }
  const step = niceStep(end, Math.max(3, Math.floor(W / 100)));
  for (let t = 0; t <= end + 1e-9; t += step) {
    svg.append(s('line', { x1: x(t), x2: x(t), y1: H - PAD.b, y2: H - PAD.b + 4, class: 'axis' }));
    svg.append(
      s('text', { x: x(t), y: H - PAD.b + 17, class: 'tick', 'text-anchor': 'middle' }, `${+t.toFixed(2)} s`),
    );
  }
  for (const e of events) {
    svg.append(
      s('rect', {
        x: x(e.startS),
        y: PAD.t,
        width: Math.max(2, x(e.endS) - x(e.startS)),
        height: H - PAD.t - PAD.b,
        class: 'event-span',
      }),
    );
  }
  if (windows.length > 0) {
    // one window (a file of about a second) has no line between centres: draw it across its span
    const at = (w: PlotWindow) => (windows.length === 1 ? [w.startS, w.endS] : [(w.startS + w.endS) / 2]);
    const pts = windows.flatMap((w) => at(w).map((t) => `${x(t).toFixed(1)},${y(w.probability).toFixed(1)}`));
    const first = windows[0]!;
    const last = windows.at(-1)!;
    const area = `M${x(at(first)[0]!)},${y(0)} L${pts.join(' L')} L${x(at(last).at(-1)!)},${y(0)} Z`;
    svg.append(s('path', { d: area, class: 'prob-area' }));
    svg.append(s('polyline', { points: pts.join(' '), class: 'prob-line' }));
    for (const w of windows) {
      if (w.probability >= threshold || windows.length === 1) {
        svg.append(
          s('circle', { cx: x((w.startS + w.endS) / 2), cy: y(w.probability), r: 3, class: 'prob-hit' }),
        );
      }
    }
  }
  svg.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: y(threshold), y2: y(threshold), class: 'threshold' }));
  svg.append(
    s(
      'text',
      { x: W - PAD.r - 4, y: y(threshold) - 6, class: 'threshold-label', 'text-anchor': 'end' },
      `threshold ${Math.round(threshold * 100)}%`,
    ),
  );
  svg.append(s('line', { x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: H - PAD.b, class: 'axis' }));
  svg.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b, class: 'axis' }));
  return svg;
}

/** Renders a plot into `host` at its current width, and again when the width changes. */
export function mountPlot(host: HTMLElement, make: (width: number) => SVGSVGElement): void {
  let last = -1;
  const draw = () => {
    const w = host.clientWidth;
    if (w === last || w === 0) return;
    last = w;
    host.replaceChildren(make(w));
  };
  draw();
  new ResizeObserver(draw).observe(host);
}
