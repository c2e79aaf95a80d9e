import type { FC } from 'hono/jsx';

/** One slice or bar: a label, its count, and a CSS class that picks its colour. */
export interface Datum {
  label: string;
  value: number;
  tone: string;
  href?: string;
}

const RADIUS = 15.9155; // circumference 100, so dash lengths are percentages

/** A donut of parts of a whole, with a text legend carrying the same numbers for screen readers. */
export const Donut: FC<{ data: Datum[]; title: string; centre: string }> = ({ data, title, centre }) => {
  const total = data.reduce((s, d) => s + d.value, 0);
  let offset = 25;
  const arcs = data
    .filter((d) => d.value > 0)
    .map((d) => {
      const length = total > 0 ? (d.value / total) * 100 : 0;
      const arc = (
        <circle class={`arc tone-${d.tone}`} cx="21" cy="21" r={RADIUS} fill="none" stroke-width="6" stroke-dasharray={`${length} ${100 - length}`} stroke-dashoffset={String(offset)} />
      );
      offset = (offset - length + 100) % 100;
      return arc;
    });
  return (
    <figure class="chart donut">
      <svg viewBox="0 0 42 42" role="img" aria-label={`${title}: ${data.map((d) => `${d.label} ${d.value}`).join(', ')}`}>
        <circle class="track" cx="21" cy="21" r={RADIUS} fill="none" stroke-width="6" />
        {arcs}
        <text x="21" y="23" text-anchor="middle" class="donut-centre">
          {centre}
        </text>
      </svg>
      <figcaption>
        <ul class="legend">
          {data.map((d) => (
            <li>
              <span class={`swatch tone-${d.tone}`} aria-hidden="true"></span>
              {d.href ? <a href={d.href}>{d.label}</a> : d.label} <strong>{d.value.toLocaleString('en-US')}</strong>
            </li>
          ))}
        </ul>
      </figcaption>
    </figure>
  );
};

const LABEL_CHARS = 26;

/** Horizontal bars, largest first; long labels are cut with the full text in a tooltip. */
export const Bars: FC<{ data: Datum[]; title: string }> = ({ data, title }) => {
  const max = Math.max(1, ...data.map((d) => d.value));
  const rowHeight = 22;
  const height = Math.max(rowHeight, data.length * rowHeight);
  return (
    <svg class="chart bars" viewBox={`0 0 400 ${height}`} role="img" aria-label={`${title}: ${data.map((d) => `${d.label} ${d.value}`).join(', ')}`}>
      {data.map((d, i) => {
        const y = i * rowHeight;
        const width = Math.max(2, (d.value / max) * 190);
        const label = d.label.length > LABEL_CHARS ? `${d.label.slice(0, LABEL_CHARS - 1)}…` : d.label;
        return (
          <g>
            <title>{`${d.label}: ${d.value}`}</title>
            <text x="0" y={y + 15} class="bar-label">
              {label}
            </text>
            <rect x="170" y={y + 4} width={width} height="14" rx="2" class={`bar tone-${d.tone}`} />
            <text x={170 + width + 6} y={y + 15} class="bar-value">
              {d.value.toLocaleString('en-US')}
            </text>
          </g>
        );
      })}
    </svg>
  );
};
