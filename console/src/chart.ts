/**
 * A small line chart drawn as SVG by hand: a few series over time, one y axis from zero to the
 * largest value, labelled first and last times. Presentation attributes and CSS classes only (no
 * style attributes), so it lives under the console's Content-Security-Policy; a text summary for
 * screen readers comes with it.
 */
const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 600;
const HEIGHT = 160;
const PAD = { left: 36, right: 8, top: 8, bottom: 22 };

export interface ChartSeries {
  label: string;
  /** A class from app.css that colours the line (`chart-a`, `chart-b`, ...). */
  className: string;
  points: Array<{ at: number; value: number }>;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

const clock = (at: number) => new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

/** A chart of `series` between `from` and `to` (epoch ms), titled `title` for assistive technology. */
export function lineChart(title: string, series: ChartSeries[], from: number, to: number): HTMLElement {
  const max = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p.value)));
  const x = (at: number) => PAD.left + ((at - from) / Math.max(1, to - from)) * (WIDTH - PAD.left - PAD.right);
  const y = (value: number) => HEIGHT - PAD.bottom - (value / max) * (HEIGHT - PAD.top - PAD.bottom);

  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'chart', role: 'img', 'aria-label': title });
  root.append(svg('title', {}, title));
  for (const value of [0, max]) {
    root.append(svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value), class: 'chart-grid' }));
    root.append(svg('text', { x: PAD.left - 4, y: y(value) + 4, 'text-anchor': 'end', class: 'chart-label' }, String(value)));
  }
  root.append(svg('text', { x: PAD.left, y: HEIGHT - 6, class: 'chart-label' }, clock(from)));
  root.append(svg('text', { x: WIDTH - PAD.right, y: HEIGHT - 6, 'text-anchor': 'end', class: 'chart-label' }, clock(to)));
  for (const s of series) {
    if (s.points.length === 0) continue;
    const path = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
    root.append(svg('path', { d: path, class: `chart-line ${s.className}`, fill: 'none' }));
    // A lone point is no line: a dot shows it.
    for (const p of s.points.length === 1 ? s.points : []) root.append(svg('circle', { cx: x(p.at), cy: y(p.value), r: 3, class: `chart-dot ${s.className}` }));
  }

  const legend = document.createElement('p');
  legend.className = 'chart-legend';
  for (const s of series) {
    const item = document.createElement('span');
    item.className = `chart-key ${s.className}`;
    const last = s.points.at(-1);
    item.textContent = `${s.label}: ${last ? last.value : '—'}`;
    legend.append(item);
  }
  const figure = document.createElement('figure');
  figure.className = 'chart-figure';
  figure.append(root, legend);
  return figure;
}
