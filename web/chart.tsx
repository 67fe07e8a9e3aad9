// A small SVG line chart of messages per minute (received and delivered). The plot stretches to
// its box; labels are HTML so they keep their size on any screen.

export interface ChartPoint {
  minute: number;
  in: number;
  out: number;
}

function path(points: ChartPoint[], key: "in" | "out", max: number): string {
  const step = 100 / (points.length - 1);
  return points
    .map((p, i) =>
      `${i === 0 ? "M" : "L"}${(i * step).toFixed(2)},${(100 - (p[key] / max) * 100).toFixed(2)}`
    )
    .join(" ");
}

function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

export function MessagesChart({ points }: { points: ChartPoint[] }) {
  if (points.length < 2) return <div class="state empty">Not enough data for a chart yet.</div>;
  const peak = Math.max(1, ...points.map((p) => Math.max(p.in, p.out)));
  // A round top value keeps the three gridline labels readable.
  const max = peak <= 4 ? 4 : Math.ceil((peak * 1.1) / 2) * 2;
  const total = points.reduce((a, p) => a + p.in + p.out, 0);
  return (
    <figure class="chart">
      <div class="chart-grid">
        <div class="y-labels" aria-hidden="true">
          <span>{max}</span>
          <span>{max / 2}</span>
          <span>0</span>
        </div>
        <svg
          viewBox="0 0 100 100"
          preserveAspectRatio="none"
          role="img"
          aria-label={`Messages per minute over the last ${points.length} minutes`}
        >
          {[0, 50, 100].map((y) => <line key={y} x1="0" x2="100" y1={y} y2={y} class="grid" />)}
          <path d={path(points, "in", max)} class="line in" />
          <path d={path(points, "out", max)} class="line out" />
        </svg>
        <span />
        <div class="x-labels" aria-hidden="true">
          <span>{clock(points[0].minute)}</span>
          <span>now</span>
        </div>
      </div>
      <figcaption>
        <span class="key in">received</span>
        <span class="key out">delivered</span>
        {total === 0 && <span>no traffic in this period</span>}
      </figcaption>
    </figure>
  );
}
